#!/usr/bin/env bash
# bench-restart.sh — how long a broker holding about 10 GiB of log takes to
# start again after kill -9. It starts `runnel serve --fsync never` on a
# fresh data directory (never: the fill is bound by the disk's write-back,
# not by fdatasync, so it is quick), fills BYTES of log across PARTITIONS
# partitions with large records, and then, RUNS times for each cache state,
# kills the broker with SIGKILL while `runnel bench produce` is writing to
# it and starts it again on the same data, timed until it logs "runnel
# serving" (that line's startup= field is the broker's own measure). The
# "recovered partition log" lines say how many bytes each partition had to
# scan. Warm: the page cache as the kill left it (a process restart). Cold:
# `sync; echo 3 > /proc/sys/vm/drop_caches` first (close to a reboot).
# The first restart after the fill is reported on its own: it recovers
# whatever the fill wrote since each partition's last checkpoint, later
# ones only what was written since the restart before.
#
#   scripts/bench-restart.sh
#   BYTES=1GiB RUNS=1 scripts/bench-restart.sh
#
# Environment: BYTES (default 10GiB; a number of bytes, or with K/M/G/T,
# KiB/MiB/GiB/TiB or KB/MB/GB/TB); PARTITIONS (default 8); RECORD_SIZE
# (default 10240) bytes per record; RUNS (default 3) restarts of each kind;
# PORT (default 19492) and METRICS_PORT (default 19944) for the broker; OUT
# (default $TMPDIR/runnel-bench-restart) for the binary, data, logs,
# restart.json (one JSON object per restart, and one for the fill) and
# report.md; the data is removed at the end. It needs 2 × BYTES free on
# OUT's file system and refuses to start with less. Every kill -9 adds what
# the producer wrote in its second, so the log grows with each restart (the
# report gives the size on disk before each). Cold restarts need root (a
# writable drop_caches).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
BYTES=${BYTES:-10GiB}
PARTITIONS=${PARTITIONS:-8}
RECORD_SIZE=${RECORD_SIZE:-10240}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench-restart}
PORT=${PORT:-19492}
METRICS_PORT=${METRICS_PORT:-19944}
BROKERS=127.0.0.1:$PORT
TOPIC=restart

# to_bytes SIZE: SIZE in bytes; fails on what it cannot read.
to_bytes() {
	awk -v s="$1" 'BEGIN {
		split("K M G T", p2); split("KB MB GB TB", p10)
		m[""] = 1; m["B"] = 1
		for (i = 1; i <= 4; i++) { m[p2[i]] = 1024 ^ i; m[p2[i] "iB"] = 1024 ^ i; m[p10[i]] = 1000 ^ i }
		if (!match(s, /^[0-9]+(\.[0-9]+)?/)) exit 1
		u = substr(s, RLENGTH + 1)
		if (!(u in m)) exit 1
		printf "%.0f\n", substr(s, 1, RLENGTH) * m[u]
	}'
}
if ! FILL_BYTES=$(to_bytes "$BYTES") || [ "$FILL_BYTES" -le 0 ]; then
	echo "BYTES=$BYTES: want a size such as 10GiB, 500MiB or 1073741824" >&2
	exit 1
fi
FILL_RECORDS=$(((FILL_BYTES + RECORD_SIZE - 1) / RECORD_SIZE))
gib() { awk -v b="$1" 'BEGIN {printf "%.2f GiB", b / 1073741824}'; }

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
avail=$(df -B1 --output=avail "$OUT" | tail -1 | tr -d ' ')
if [ "$avail" -lt $((2 * FILL_BYTES)) ]; then
	echo "refusing to start: $(gib "$avail") free on the file system of $OUT ($(df --output=target "$OUT" | tail -1)), and filling $BYTES needs 2 × $(gib "$FILL_BYTES") = $(gib $((2 * FILL_BYTES))) (the log, the segments' preallocation and what each kill -9 adds). Free space or set a smaller BYTES or another OUT." >&2
	exit 1
fi
go build -o "$OUT/runnel" ./cmd/runnel
R="$OUT/runnel"
DATA="$OUT/data"
JSON="$OUT/restart.json"
REPORT="$OUT/report.md"
: >"$JSON"

now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b - a) / 1e9}'; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
field() { sed -n -e "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p;t" -e "s/.*\"$1\":\([^,}]*\).*/\1/p"; }

pid=
producer=
stop_all() {
	if [ -n "$producer" ]; then
		kill -KILL "$producer" 2>/dev/null || true
		wait "$producer" 2>/dev/null || true
		producer=
	fi
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 600); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=
	fi
}
trap stop_all EXIT

SERVE_FLAGS=(--data-dir "$DATA" --listen "$BROKERS" --metrics-listen "127.0.0.1:$METRICS_PORT" --fsync never --log-format json)

# start_broker LOG: start a broker on $DATA and wait until it logs "runnel
# serving". Sets pid, open_wall (seconds from exec to that line appearing,
# polled every 10 ms) and open_logged (its startup= field). Exits the
# script if the broker exits or takes more than 30 minutes.
start_broker() {
	local t0 line
	t0=$(now)
	"$R" serve "${SERVE_FLAGS[@]}" >>"$1" 2>&1 &
	pid=$!
	for _ in $(seq 1 180000); do
		line=$(grep -m1 '"msg":"runnel serving"' "$1" || true)
		if [ -n "$line" ]; then
			open_wall=$(secs "$t0" "$(now)")
			open_logged=$(awk -v ns="$(printf '%s' "$line" | field startup)" 'BEGIN {printf "%.3f", ns / 1e9}')
			return
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" || echo "the broker exited with status $?; the end of $1:" >&2
			tail -20 "$1" >&2
			pid=
			exit 1
		fi
		sleep 0.01
	done
	echo "the broker did not start within 30 minutes; see $1" >&2
	exit 1
}

# kill_mid_production RESTART: produce in the background, SIGKILL the
# broker a second later, then stop the producer.
kill_mid_production() {
	"$R" bench produce --brokers "$BROKERS" --topic "$TOPIC" --record-size "$RECORD_SIZE" \
		--records 1000000000 --json >"$OUT/produce-before-$1.txt" 2>&1 &
	producer=$!
	sleep 1
	if ! kill -0 "$producer" 2>/dev/null; then
		echo "the producer had stopped before the kill; see $OUT/produce-before-$1.txt" >&2
		exit 1
	fi
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
	# The producer cannot finish now: its client may not fail records whose
	# request was sent and never answered (idempotent producing), so it
	# would wait for the broker to return. Kill it too.
	kill -KILL "$producer"
	wait "$producer" 2>/dev/null || true
	producer=
}

DROP_CACHES=yes
if ! { [ -w /proc/sys/vm/drop_caches ] && sync && echo 3 2>/dev/null >/proc/sys/vm/drop_caches; }; then
	DROP_CACHES="no: /proc/sys/vm/drop_caches is not writable here (needs root outside a read-only /proc), so no cold restarts were run"
fi

# restart NAME MODE RUN: kill mid-production, drop the caches for cold,
# start again; appends a JSON line to restart.json.
restart() {
	local name=$1 mode=$2 run=$3 log="$OUT/broker-$1.log" bytes t0 sync_secs=0 rec
	kill_mid_production "$name"
	bytes=$(du -sb "$DATA" | cut -f1)
	if [ "$mode" = cold ]; then
		t0=$(now)
		sync
		echo 3 >/proc/sys/vm/drop_caches
		sync_secs=$(secs "$t0" "$(now)")
	fi
	start_broker "$log"
	rec=$(grep '"msg":"recovered partition log"' "$log" || true)
	printf '{"mode":"%s","run":%d,"bytes_on_disk":%s,"sync_and_drop_seconds":%s,"open_seconds":%s,"open_wall_seconds":%s,"recovered_partitions":%d,"unclean_partitions":%d,"scanned_bytes":%.0f,"scanned_bytes_max":%.0f,"recovery_max_seconds":%s,"recovery_sum_seconds":%s,"rss_kib":%s,"rss_anon_kib":%s}\n' \
		"$mode" "$run" "$bytes" "$sync_secs" "$open_logged" "$open_wall" \
		"$(printf '%s' "$rec" | grep -c . || true)" "$(printf '%s' "$rec" | grep -c '"clean_shutdown":false' || true)" \
		"$(printf '%s\n' "$rec" | field scanned_bytes | awk '{s += $1} END {print s + 0}')" \
		"$(printf '%s\n' "$rec" | field scanned_bytes | sort -g | tail -1 | awk '{print $1 + 0}')" \
		"$(printf '%s\n' "$rec" | field took | sort -g | tail -1 | awk '{printf "%.3f", $1 / 1e9}')" \
		"$(printf '%s\n' "$rec" | field took | awk '{s += $1} END {printf "%.3f", s / 1e9}')" \
		"$(awk '$1 == "VmRSS:" {print $2}' "/proc/$pid/status")" "$(awk '$1 == "RssAnon:" {print $2}' "/proc/$pid/status")" |
		tee -a "$JSON" >&2
}

echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD) $(go version | cut -d' ' -f3) $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg); $(gib "$avail") free" >&2
started=$(date -u +%FT%TZ)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
fs=$(df --output=source,fstype "$OUT" | tail -1 | awk '{print $2 " on " $1}')

start_broker "$OUT/broker-fill.log"
t0=$(now)
if ! fill=$("$R" bench produce --brokers "$BROKERS" --topic "$TOPIC" --partitions "$PARTITIONS" \
	--record-size "$RECORD_SIZE" --records "$FILL_RECORDS" --json 2>"$OUT/fill.err" | tail -1); then
	echo "the fill failed: $fill" >&2
	tail -5 "$OUT/fill.err" >&2
	exit 1
fi
fill_secs=$(secs "$t0" "$(now)")
fill_disk=$(du -sb "$DATA" | cut -f1)
printf '{"fill":true,"partitions":%d,"record_size":%d,"records":%d,"bytes":%s,"seconds":%s,"mb_per_second":%s,"bytes_on_disk":%s}\n' \
	"$PARTITIONS" "$RECORD_SIZE" "$FILL_RECORDS" "$(printf '%s' "$fill" | field bytes)" "$fill_secs" \
	"$(printf '%s' "$fill" | field mb_per_second)" "$fill_disk" | tee -a "$JSON" >&2

restart first first 1
for run in $(seq 1 "$RUNS"); do
	restart "warm-r$run" warm "$run"
	if [ "$DROP_CACHES" = yes ]; then
		restart "cold-r$run" cold "$run"
	fi
done
stop_all
rm -rf "$DATA"

# ---- report ----

med() { grep "\"mode\":\"$1\"" "$JSON" | field "$2" | median; }
{
	echo "### Restart after kill -9, one broker"
	echo
	echo "$started to $(date -u +%FT%TZ), code at \`$(git rev-parse --short HEAD)\`$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)'), $(go version | cut -d' ' -f3), $(nproc) CPUs, load at the start $load0; data on $fs."
	echo "Filled with \`runnel serve --fsync never\` (so the fill is not bound by fdatasync): $FILL_RECORDS records of $RECORD_SIZE B in $PARTITIONS partitions, $(gib "$(printf '%s' "$fill" | field bytes)") of values in $fill_secs s ($(printf '%s' "$fill" | field mb_per_second | xargs printf '%.0f') MB/s); $(gib "$fill_disk") on disk after the fill (\`du -sb\`)."
	echo "Before every restart the broker is killed with SIGKILL one second into a \`runnel bench produce\` run. Cold restarts: $DROP_CACHES."
	echo
	echo "| restart | runs | open (startup=), median | open wall, median | scanned by recovery, median | on disk before the restart |"
	echo "|---|---:|---:|---:|---:|---:|"
	for mode in first warm cold; do
		n=$(grep -c "\"mode\":\"$mode\"" "$JSON" || true)
		[ "$n" -gt 0 ] || continue
		printf '| %s | %s | %s s | %s s | %s | %s |\n' "$mode" "$n" "$(med "$mode" open_seconds)" "$(med "$mode" open_wall_seconds)" \
			"$(gib "$(med "$mode" scanned_bytes)")" "$(gib "$(med "$mode" bytes_on_disk)")"
	done
	echo
	echo "Every restart (\"first\": the first after the fill, warm). \"open wall\": from starting the process to the \"runnel serving\" line appearing in its log (polled every 10 ms). \"scanned\": the sum of scanned_bytes over the \"recovered partition log\" lines, and the most one partition scanned; \"recovery, slowest / sum\": the largest took= of those lines and their sum (partitions are opened one after another). RSS: VmRSS right after \"runnel serving\", with RssAnon in brackets; the rest is mapped segment pages that recovery read."
	echo
	echo "| restart | run | on disk | sync + drop_caches s | open s (startup=) | open wall s | partitions recovered (unclean) | scanned (most in one partition) | recovery, slowest / sum s | RSS (anon) MiB |"
	echo "|---|---:|---:|---:|---:|---:|---:|---|---|---|"
	grep '"mode":' "$JSON" | while read -r l; do
		g() { printf '%s' "$l" | field "$1"; }
		printf '| %s | %s | %s | %s | %s | %s | %s (%s) | %s (%s) | %s / %s | %.0f (%.0f) |\n' "$(g mode)" "$(g run)" "$(gib "$(g bytes_on_disk)")" \
			"$(g sync_and_drop_seconds)" "$(g open_seconds)" "$(g open_wall_seconds)" "$(g recovered_partitions)" "$(g unclean_partitions)" \
			"$(gib "$(g scanned_bytes)")" "$(gib "$(g scanned_bytes_max)")" "$(g recovery_max_seconds)" "$(g recovery_sum_seconds)" \
			"$(awk -v k="$(g rss_kib)" 'BEGIN {print k / 1024}')" "$(awk -v k="$(g rss_anon_kib)" 'BEGIN {print k / 1024}')"
	done
	echo
	echo "The commands:"
	echo
	echo '```sh'
	echo "go build -o $OUT/runnel ./cmd/runnel"
	echo "df -B1 --output=avail $OUT    # needs 2 × $FILL_BYTES"
	echo "runnel serve ${SERVE_FLAGS[*]} &"
	echo "runnel bench produce --brokers $BROKERS --topic $TOPIC --partitions $PARTITIONS --record-size $RECORD_SIZE --records $FILL_RECORDS --json"
	echo "# then, for the first restart and RUNS=$RUNS times each warm and cold, alternating:"
	echo "runnel bench produce --brokers $BROKERS --topic $TOPIC --record-size $RECORD_SIZE --records 1000000000 --json &"
	echo "sleep 1; kill -KILL BROKER; kill -KILL PRODUCER"
	echo "du -sb $DATA"
	echo "sync; echo 3 > /proc/sys/vm/drop_caches             # cold only"
	echo "runnel serve ${SERVE_FLAGS[*]} &   # timed until it logs \"runnel serving\"; startup= of that line"
	echo "grep '\"recovered partition log\"' BROKER_LOG           # scanned_bytes, took"
	echo '```'
	echo
	echo "Raw results: \`$JSON\`; broker logs: \`$OUT/broker-*.log\`. The cold restarts read the same files each time; on a virtual machine the host's own cache may keep blocks that the guest dropped, so they can read faster than a first read after a reboot would."
} >"$REPORT"

echo >&2
cat "$REPORT"
