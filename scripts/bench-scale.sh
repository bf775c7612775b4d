#!/usr/bin/env bash
# bench-scale.sh — one broker with 1 to 10,000 partitions. For each
# partition count P, on a fresh data directory: start `runnel serve --fsync
# always`, create a topic of P partitions (timed), produce RECORDS records
# of 100 B to it with `runnel bench produce`, read the broker's memory,
# open file descriptors and memory mappings, stop it with SIGTERM, start it
# again on the same data and time how long it takes to open the P
# partitions (until it logs "runnel serving"; that line's startup= field is
# the broker's own measure), then read the same numbers again.
#
#   scripts/bench-scale.sh
#   PARTITIONS="1 100 1000" RUNS=1 scripts/bench-scale.sh
#
# Environment: PARTITIONS (default "1 10 100 1000 10000"); RUNS (default 3)
# runs of each step, each on a fresh data directory, medians reported;
# RECORDS (default 5000000) records per produce run, the same at every P;
# PORT (default 19392) and METRICS_PORT (default 19844) for the broker; OUT
# (default $TMPDIR/runnel-bench-scale) for the binary, logs, scale.json (one
# JSON object per run) and report.md. A run's data directory is removed
# when the run is done.
#
# The broker keeps one file descriptor and, for the active segment, one
# memory mapping per partition, so the open file limit is raised here when
# it is below what the largest P needs; vm.max_map_count is only checked.
# The broker and the client share the machine.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-5000000}
PARTITIONS=${PARTITIONS:-1 10 100 1000 10000}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench-scale}
PORT=${PORT:-19392}
METRICS_PORT=${METRICS_PORT:-19844}
BROKERS=127.0.0.1:$PORT
TOPIC=scale
RECORD_SIZE=100

in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$PORT" "$METRICS_PORT"; do
	if in_use "$port"; then
		echo "port $port is in use; set PORT and METRICS_PORT to free ports" >&2
		exit 1
	fi
done

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
go build -o "$OUT/runnel" ./cmd/runnel
R="$OUT/runnel"
JSON="$OUT/scale.json"
REPORT="$OUT/report.md"
: >"$JSON"

# Open files: one descriptor per segment (a partition here never fills its
# first segment) plus the index, Raft store, sockets and the runtime's own.
maxp=$(tr -s ' ' '\n' <<<"$PARTITIONS" | sort -n | tail -1)
need=$((maxp + 1024))
soft0=$(ulimit -Sn)
hard0=$(ulimit -Hn)
below() { [ "$1" != unlimited ] && [ "$1" -lt "$2" ]; }
limit_note="open file limit (ulimit -n) $soft0 soft, $hard0 hard; the largest step needs about $need: unchanged"
if below "$hard0" "$need"; then
	if ulimit -Hn "$need" 2>/dev/null && ulimit -Sn "$need"; then
		limit_note="open file limit raised from $soft0 soft, $hard0 hard to $need (the largest step needs about $need)"
	else
		limit_note="open file limit $soft0 soft, $hard0 hard, below the $need the largest step needs, and raising it failed: expect that step to fail"
	fi
elif below "$soft0" "$need"; then
	ulimit -Sn "$need"
	limit_note="open file limit raised from $soft0 to $need soft ($hard0 hard; the largest step needs about $need)"
fi
MAX_MAP_COUNT=$(cat /proc/sys/vm/max_map_count)
map_note="vm.max_map_count = $MAX_MAP_COUNT"
if [ "$MAX_MAP_COUNT" -lt "$need" ]; then
	map_note="$map_note, below the about $need mappings the largest step needs: expect it to fail (not changed here)"
fi
echo "$limit_note; $map_note" >&2

now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b - a) / 1e9}'; }
status_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
nfds() { ls "/proc/$1/fd" | wc -l; }
nmaps() { wc -l <"/proc/$1/maps"; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
field() { sed -n -e "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p;t" -e "s/.*\"$1\":\([^,}]*\).*/\1/p"; }
mib() { awk -v k="$1" 'BEGIN {if (k == "" || k == "-") print "-"; else printf "%.0f", k / 1024}'; }

# shellcheck source=scripts/lib-broker.sh
source scripts/lib-broker.sh # the working directory is the repository

SERVE_FLAGS=(--listen "$BROKERS" --metrics-listen "127.0.0.1:$METRICS_PORT" --fsync always --log-format json)

# start_broker DATA LOG: start a broker and wait until it logs "runnel
# serving". Sets pid, open_wall (seconds from exec to that line appearing,
# polled every 10 ms) and open_logged (its startup= field). Fails if the
# broker exits or takes more than 10 minutes.
start_broker() {
	local t0 line
	t0=$(now)
	"$R" serve --data-dir "$1" "${SERVE_FLAGS[@]}" >>"$2" 2>&1 &
	pid=$!
	for _ in $(seq 1 60000); do
		line=$(grep -m1 '"msg":"runnel serving"' "$2" || true)
		if [ -n "$line" ]; then
			open_wall=$(secs "$t0" "$(now)")
			open_logged=$(awk -v ns="$(printf '%s' "$line" | field startup)" 'BEGIN {printf "%.3f", ns / 1e9}')
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null || true
			pid=
			return 1
		fi
		sleep 0.01
	done
	return 1
}

# term_broker: SIGTERM and wait; sets stop_secs and stop_status.
term_broker() {
	local t0
	t0=$(now)
	kill -TERM "$pid"
	stop_status=0
	wait "$pid" || stop_status=$?
	stop_secs=$(secs "$t0" "$(now)")
	pid=
}

# records_spread: from `runnel topic describe`, partitions holding records,
# and the least, median and most records in one partition.
records_spread() {
	"$R" topic describe "$TOPIC" --brokers "$BROKERS" |
		awk '/^PARTITION/ {t = 1; next} t && NF == 0 {exit} t {print $7}' | sort -n |
		awk '{v[NR] = $1; if ($1 > 0) ne++} END {printf "%d %d %d %d\n", ne, v[1], v[int((NR + 1) / 2)], v[NR]}'
}

# mem PREFIX: the broker's memory, descriptors and mappings as JSON fields.
mem() {
	printf '"%s_rss_kib":%s,"%s_hwm_kib":%s,"%s_rss_anon_kib":%s,"%s_rss_file_kib":%s,"%s_vmsize_kib":%s,"%s_fds":%s,"%s_maps":%s' \
		"$1" "$(status_kib "$pid" VmRSS)" "$1" "$(status_kib "$pid" VmHWM)" "$1" "$(status_kib "$pid" RssAnon)" \
		"$1" "$(status_kib "$pid" RssFile)" "$1" "$(status_kib "$pid" VmSize)" "$1" "$(nfds "$pid")" "$1" "$(nmaps "$pid")"
}

# fail P RUN LOG WHAT: record a failed run with the end of the broker's log.
fail() {
	printf '{"partitions":%d,"run":%d,"error":"%s","broker_log":"%s"}\n' "$1" "$2" "$(printf '%s' "$4" | tr '\n"\134' '  /')" "$3" |
		tee -a "$JSON" >&2
	{
		echo "P=$1 run $2: $4"
		echo "broker log $3, last lines other than Raft's:"
		grep -v '"component":"raft"' "$3" | tail -20 | sed 's/^/    /'
		echo
	} >>"$OUT/failures.txt"
	stop_broker
}

# step P RUN: one run at P partitions; appends a JSON line to scale.json.
# Runs in an if, where set -e does not apply, so every failure is checked.
step() {
	local p=$1 run=$2 data="$OUT/data-p$1-r$2" log="$OUT/broker-p$1-r$2.log" reopen="$OUT/broker-p$1-r$2-reopen.log"
	local t0 create create_error res after_produce with_records rmin rmed rmax bytes
	rm -rf "$data"
	if ! start_broker "$data" "$log"; then
		fail "$p" "$run" "$log" "the broker did not start"
		return 1
	fi
	limits=$(awk '/^Max open files/ {print $4 "/" $5}' "/proc/$pid/limits")
	t0=$(now)
	create_error=
	if ! "$R" topic create "$TOPIC" --brokers "$BROKERS" --partitions "$p" --replication-factor 1 \
		>"$OUT/create-p$p-r$run.txt" 2>&1; then
		# The client gives up after its request timeout while the broker
		# may still be creating the partitions: say so, and time the
		# creation by the broker's "created topic" line instead.
		create_error="$(secs "$t0" "$(now)") s: $(tr '\n"\134' '  /' <"$OUT/create-p$p-r$run.txt")"
		echo "topic create failed after $create_error; waiting for the broker to log \"created topic\"" >&2
		for _ in $(seq 1 6000); do
			grep -q '"msg":"created topic"' "$log" && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if ! grep -q '"msg":"created topic"' "$log"; then
			fail "$p" "$run" "$log" "topic create failed after $create_error; the broker did not log created topic within 10 minutes"
			return 1
		fi
	fi
	create=$(secs "$t0" "$(now)")
	if ! res=$("$R" bench produce --brokers "$BROKERS" --topic "$TOPIC" --partitions "$p" \
		--records "$RECORDS" --record-size "$RECORD_SIZE" --json 2>"$OUT/produce-p$p-r$run.err" | tail -1); then
		fail "$p" "$run" "$log" "produce failed: $res $(tail -3 "$OUT/produce-p$p-r$run.err")"
		return 1
	fi
	after_produce=$(mem produce)
	read -r with_records rmin rmed rmax <<<"$(records_spread || echo '"-" "-" "-" "-"')"
	bytes=$(du -sb "$data" | cut -f1)
	term_broker
	if ! start_broker "$data" "$reopen"; then
		fail "$p" "$run" "$reopen" "the broker did not start again on the data of $p partitions"
		return 1
	fi
	printf '{"partitions":%d,"run":%d,"records":%d,"record_size":%d,"create_seconds":%s,"records_per_second":%s,"mb_per_second":%s,"produce_errors":%s,%s,"partitions_with_records":%s,"records_per_partition_min":%s,"records_per_partition_median":%s,"records_per_partition_max":%s,"data_bytes":%s,"stop_seconds":%s,"stop_status":%s,"open_seconds":%s,"open_wall_seconds":%s,%s,"open_files_limit":"%s","create_client_error":"%s"}\n' \
		"$p" "$run" "$RECORDS" "$RECORD_SIZE" "$create" "$(printf '%s' "$res" | field records_per_second)" \
		"$(printf '%s' "$res" | field mb_per_second)" "$(printf '%s' "$res" | field errors)" "$after_produce" \
		"$with_records" "$rmin" "$rmed" "$rmax" "$bytes" "$stop_secs" "$stop_status" "$open_logged" "$open_wall" "$(mem open)" "$limits" "$create_error" | tee -a "$JSON" >&2
	term_broker
	rm -rf "$data"
}

echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD) $(go version | cut -d' ' -f3) $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
started=$(date -u +%FT%TZ)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
memavail=$(awk '$1 == "MemAvailable:" {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)

for p in $PARTITIONS; do
	for run in $(seq 1 "$RUNS"); do
		echo "-- $p partitions, run $run" >&2
		if ! step "$p" "$run"; then
			echo "-- $p partitions failed; see $OUT/failures.txt; skipping its other runs" >&2
			break
		fi
	done
done

# ---- report ----

# med P FIELD: the median of FIELD over the runs at P that did not fail.
med() { grep "^{\"partitions\":$1,\"run\":[0-9]*,\"records\"" "$JSON" | field "$2" | median; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN {if (v == "-") print "-"; else printf f, v}'; }
ok_runs() { grep -c "^{\"partitions\":$1,\"run\":[0-9]*,\"records\"" "$JSON" || true; }

{
	echo "### Partition scaling, one broker"
	echo
	echo "$started to $(date -u +%FT%TZ), code at \`$(git rev-parse --short HEAD)\`$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)'), $(go version | cut -d' ' -f3), $(nproc) CPUs, load at the start $load0, $memavail available."
	echo "\`runnel serve --fsync always\`, a fresh data directory for every run; $RECORDS records of $RECORD_SIZE B per produce run at every P; RUNS=$RUNS, medians over the runs that completed (column \"runs\")."
	echo "$limit_note; $map_note."
	echo
	echo "| partitions | runs | create | produce records/s | RSS after produce | open (startup=) | RSS after open | fds after produce / open | mappings after produce / open |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for p in $PARTITIONS; do
		n=$(ok_runs "$p")
		if [ "$n" = 0 ]; then
			echo "| $p | 0 | failed: see below | | | | | | |"
			continue
		fi
		printf '| %s | %s | %s s | %s | %s MiB | %s s | %s MiB | %s / %s | %s / %s |\n' "$p" "$n" \
			"$(med "$p" create_seconds)" "$(fmt "$(med "$p" records_per_second)" '%.0f')" \
			"$(mib "$(med "$p" produce_rss_kib)")" "$(med "$p" open_seconds)" "$(mib "$(med "$p" open_rss_kib)")" \
			"$(med "$p" produce_fds)" "$(med "$p" open_fds)" "$(med "$p" produce_maps)" "$(med "$p" open_maps)"
	done
	echo
	echo "Every run. RSS is VmRSS, split into anonymous memory and mapped file pages (RssAnon + RssFile, from /proc/PID/status), then the peak (VmHWM) of that process; \"records per partition\" is min / median / max over the topic's partitions, from \`runnel topic describe\`; \"open wall\" is from starting the process to the \"runnel serving\" line appearing in its log (polled every 10 ms)."
	echo
	echo "| P | run | create s | records/s | MB/s | after produce: RSS (anon + file), peak MiB | partitions with records | records per partition | data on disk | SIGTERM stop s | open s (startup=) | open wall s | after open: RSS (anon + file), peak MiB | fds produce / open | mappings produce / open |"
	echo "|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|---:|---|---:|---:|"
	{ grep '"records":' "$JSON" || true; } | while read -r l; do
		g() { printf '%s' "$l" | field "$1"; }
		printf '| %s | %s | %s | %.0f | %.1f | %s (%s + %s), %s | %s | %s / %s / %s | %s MB | %s | %s | %s | %s (%s + %s), %s | %s / %s | %s / %s |\n' \
			"$(g partitions)" "$(g run)" "$(g create_seconds)" "$(g records_per_second)" "$(g mb_per_second)" \
			"$(mib "$(g produce_rss_kib)")" "$(mib "$(g produce_rss_anon_kib)")" "$(mib "$(g produce_rss_file_kib)")" "$(mib "$(g produce_hwm_kib)")" \
			"$(g partitions_with_records)" "$(g records_per_partition_min)" "$(g records_per_partition_median)" "$(g records_per_partition_max)" \
			"$(awk -v b="$(g data_bytes)" 'BEGIN {printf "%.0f", b / 1e6}')" "$(g stop_seconds)" "$(g open_seconds)" "$(g open_wall_seconds)" \
			"$(mib "$(g open_rss_kib)")" "$(mib "$(g open_rss_anon_kib)")" "$(mib "$(g open_rss_file_kib)")" "$(mib "$(g open_hwm_kib)")" \
			"$(g produce_fds)" "$(g open_fds)" "$(g produce_maps)" "$(g open_maps)"
	done
	last=$({ grep '"records":' "$JSON" || true; } | tail -1)
	if [ -n "$last" ]; then
		g() { printf '%s' "$last" | field "$1"; }
		lp=$(g partitions)
		echo
		echo "Reading the table, from the numbers of the largest P that completed (P = $lp, run $(g run)):"
		echo
		echo "- Descriptors and mappings: after opening, the broker held $(g open_fds) file descriptors, $(($(g open_fds) - lp)) besides one per partition: each segment file stays open (for fdatasync and sendfile) although the active segment is also mapped. It had $(g open_maps) memory mappings, one per active segment plus the runtime's (vm.max_map_count = $MAX_MAP_COUNT), and $(awk -v k="$(g open_vmsize_kib)" 'BEGIN {printf "%.0f GiB", k / 1048576}') of address space (VmSize): each active segment maps its full segment.bytes. The broker's open file limit was $(g open_files_limit | sed 's|/| soft, |') hard (the Go runtime raises its soft limit to the hard one at start)."
		echo "- RSS after produce is mostly RssFile: the pages of the segments the broker wrote through its mappings (about the bytes produced; page cache, which the kernel can reclaim) plus the binary's own text (RssFile after open, $(mib "$(g open_rss_file_kib)") MiB). RssAnon is the broker's own memory."
		echo "- Records per partition: \`runnel bench produce\` (franz-go's default partitioner, which moves to another partition after about 64 KiB) put records in $(g partitions_with_records) of the $lp partitions: min $(g records_per_partition_min), median $(g records_per_partition_median), max $(g records_per_partition_max) records ($RECORDS / $lp = $((RECORDS / lp)) on average)."
		if [ -n "$(g create_client_error)" ]; then
			echo "- \`runnel topic create\` gave up after $(g create_client_error); the broker went on and logged \"created topic\" $(g create_seconds) s after the request, which is the create time in the tables."
		fi
	fi
	if [ -s "$OUT/failures.txt" ]; then
		echo
		echo "Failures:"
		echo
		echo '```'
		cat "$OUT/failures.txt"
		echo '```'
	fi
	echo
	echo "The commands, for each P in \`$PARTITIONS\`, RUNS=$RUNS times, each time on a fresh data directory DATA:"
	echo
	echo '```sh'
	echo "go build -o $OUT/runnel ./cmd/runnel"
	echo "ulimit -n  # $(ulimit -Sn) soft, $(ulimit -Hn) hard here"
	echo "runnel serve --data-dir DATA ${SERVE_FLAGS[*]} &"
	echo "runnel topic create $TOPIC --brokers $BROKERS --partitions P --replication-factor 1             # timed"
	echo "runnel bench produce --brokers $BROKERS --topic $TOPIC --partitions P --records $RECORDS --record-size $RECORD_SIZE --json"
	echo "grep -E '^(VmRSS|VmHWM|RssAnon|RssFile):' /proc/PID/status; ls /proc/PID/fd | wc -l; wc -l < /proc/PID/maps"
	echo "runnel topic describe $TOPIC --brokers $BROKERS    # records per partition"
	echo "du -sb DATA"
	echo "kill -TERM PID; wait PID                                      # timed"
	echo "runnel serve --data-dir DATA ${SERVE_FLAGS[*]} &   # timed until it logs \"runnel serving\"; startup= of that line"
	echo "grep -E '^(VmRSS|VmHWM|RssAnon|RssFile):' /proc/PID/status; ls /proc/PID/fd | wc -l; wc -l < /proc/PID/maps"
	echo "kill -TERM PID; wait PID"
	echo '```'
	echo
	echo "Raw results: \`$JSON\`, one JSON object per run; broker logs: \`$OUT/broker-pP-rN.log\` (first start, create, produce) and \`broker-pP-rN-reopen.log\` (the timed start)."
} >"$REPORT"

echo >&2
cat "$REPORT"
