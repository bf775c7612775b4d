#!/usr/bin/env bash
# bench-produce-peer.sh — produce throughput of one broker against franz-go's
# kfake (bench/kfakepeer) as a same-run peer: the same client
# (runnel bench produce, franz-go: acks=all, idempotent, linger 5 ms,
# 1 MiB batches) drives runnel serve --fsync always, runnel serve
# --fsync never and kfake keeping its log in a directory without fsync, one
# after another, the order rotated each run. Four loads each time:
#
#   100B-p3   RECORDS records of 100 B, 3 partitions, 1 producer connection
#   1KiB-p3   KIB_RECORDS records of 1 KiB, 3 partitions, 1 connection
#   100B-p8   RECORDS records of 100 B, 8 partitions, 8 connections
#   1KiB-p8   KIB_RECORDS records of 1 KiB, 8 partitions, 8 connections
#
# Each run also measures the disk's sequential write + fdatasync ceiling
# (dd of CEILING_MIB MiB in 1 MiB writes with O_DSYNC, in the data folder).
# Every broker starts on a fresh data directory after a sync, alone while
# measured; its CPU time (user + system) over each load is recorded.
#
#   scripts/bench-produce-peer.sh
#   RECORDS=200000 RUNS=2 scripts/bench-produce-peer.sh     # a short try
#
# Environment:
#   RUNS          runs of each measurement (default 3)
#   RECORDS       100 B records per run (default 2000000)
#   KIB_RECORDS   1 KiB records per run (default RECORDS / 5)
#   LOADS         the loads to run (default "100B-p3 1KiB-p3 100B-p8 1KiB-p8")
#   SYSTEMS       the brokers (default "always never kfake")
#   CEILING_MIB   size of the dd ceiling run (default 512)
#   RUNNEL_FLAGS  more flags for runnel serve (default none)
#   OUT           binaries, data, logs and results (default
#                 $TMPDIR/runnel-bench-produce-peer)
#   PORT          the brokers' Kafka port (default 19592)
#
# It writes one JSON line per measurement to $OUT/peer.json (the client's
# summary under "result", labelled with system, load and run, and the
# broker's CPU seconds) and a markdown fragment to $OUT/report.md: medians
# over the runs, and ratios taken within each run, then their median.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=lib-broker.sh
. scripts/lib-broker.sh
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-2000000}
KIB_RECORDS=${KIB_RECORDS:-$((RECORDS / 5))}
LOADS=${LOADS:-100B-p3 1KiB-p3 100B-p8 1KiB-p8}
SYSTEMS=${SYSTEMS:-always never kfake}
CEILING_MIB=${CEILING_MIB:-512}
RUNNEL_FLAGS=${RUNNEL_FLAGS:-}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench-produce-peer}
PORT=${PORT:-19592}
BROKERS=127.0.0.1:$PORT

rm -rf "$OUT"
mkdir -p "$OUT/bin"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/commands.sh"
: >"$OUT/peer.json"

note() {
	{
		printf '%q' "$1"
		printf ' %q' "${@:2}"
		printf '\n'
	} >>"$OUT/commands.sh"
}

note go build -o "$OUT/bin/runnel" ./cmd/runnel
go build -o "$OUT/bin/runnel" ./cmd/runnel
echo "(cd bench/kfakepeer && go build -o $(printf '%q' "$OUT/bin/kfakepeer") .)" >>"$OUT/commands.sh"
(cd bench/kfakepeer && go build -o "$OUT/bin/kfakepeer" .)
R=$OUT/bin/runnel
KFAKE=$OUT/bin/kfakepeer
KFAKE_VERSION=$(cd bench/kfakepeer && go list -m -f '{{.Version}}' github.com/twmb/franz-go/pkg/kfake)
TCK=$(getconf CLK_TCK)
DATA=$OUT/data

# start SYSTEM: that broker on a fresh data directory, ready when it
# answers; its process is $pid (scripts/lib-broker.sh stops it on exit).
start() {
	rm -rf "$DATA"
	sync
	local cmd
	case $1 in
	always | never)
		# shellcheck disable=SC2206
		cmd=("$R" serve --data-dir "$DATA" --listen "$BROKERS" --metrics-listen '' --fsync "$1" $RUNNEL_FLAGS)
		;;
	kfake) cmd=("$KFAKE" --addr "$BROKERS" --data-dir "$DATA") ;;
	esac
	[ "$run" -gt 1 ] || note "${cmd[@]}"
	"${cmd[@]}" >>"$OUT/$1.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 200); do
		if "$R" topic list --brokers "$BROKERS" >/dev/null 2>&1; then
			return
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "$1 did not start; see $OUT/$1.log" >&2
	exit 1
}

# cpu: the broker's user + system CPU time so far, in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

# measure SYSTEM LOAD: one produce run, kept in peer.json.
measure() {
	local system=$1 load=$2 size parts producers n out before after
	case $load in
	100B-*) size=100 n=$RECORDS ;;
	1KiB-*) size=1024 n=$KIB_RECORDS ;;
	esac
	case $load in
	*-p3) parts=3 producers=1 ;;
	*-p8) parts=8 producers=8 ;;
	esac
	local cmd=("$R" bench produce --brokers "$BROKERS" --topic "$load" --partitions "$parts" --producers "$producers"
		--records "$n" --record-size "$size" --acks all --linger 5ms --batch-bytes 1048576 --json)
	[ "$run" -gt 1 ] || note "${cmd[@]}"
	before=$(cpu)
	if ! out=$("${cmd[@]}" 2>>"$OUT/clients.log" | tail -1); then
		echo "$system $load failed (run $run): ${cmd[*]}" >&2
		tail -5 "$OUT/clients.log" >&2
		exit 1
	fi
	after=$(cpu)
	printf '{"system":"%s","load":"%s","run":%d,"cpu_seconds":%s,"result":%s}\n' "$system" "$load" "$run" \
		"$(awk -v a="$before" -v b="$after" -v t="$TCK" 'BEGIN {print (b - a) / t}')" "$out" |
		tee -a "$OUT/peer.json" >&2
}

# ceiling: sequential 1 MiB writes with O_DSYNC (a write then an fdatasync
# each) into the data folder's file system; MB/s (2^20 bytes).
ceiling() {
	rm -rf "$DATA"
	mkdir -p "$DATA"
	sync
	local t0 t1
	t0=$(date +%s.%N)
	dd if=/dev/zero of="$DATA/ceiling" bs=1M count="$CEILING_MIB" oflag=dsync status=none
	t1=$(date +%s.%N)
	rm -rf "$DATA"
	printf '{"system":"ceiling","load":"dd-dsync","run":%d,"result":{"mb_per_second":%s}}\n' "$run" \
		"$(awk -v a="$t0" -v b="$t1" -v n="$CEILING_MIB" 'BEGIN {print n / (b - a)}')" | tee -a "$OUT/peer.json" >&2
}

started="$(date -u +%FT%TZ) $(git rev-parse --short HEAD) $(go version | cut -d' ' -f3) $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $started; kfake $KFAKE_VERSION" >&2
note dd if=/dev/zero of="$DATA/ceiling" bs=1M count="$CEILING_MIB" oflag=dsync

read -r -a systems <<<"$SYSTEMS"
for run in $(seq 1 "$RUNS"); do
	ceiling
	# Rotate the order: run 1 starts with the first system, run 2 with the
	# second, and so on.
	k=${#systems[@]}
	for i in $(seq 0 $((k - 1))); do
		system=${systems[$(((i + run - 1) % k))]}
		start "$system"
		for load in $LOADS; do
			measure "$system" "$load"
		done
		stop_broker
	done
done

field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
commas() { sed ':a; s/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/; ta'; }
# values SYSTEM LOAD FIELD: FIELD of each run, in run order.
values() { grep -F "\"system\":\"$1\",\"load\":\"$2\"," "$OUT/peer.json" | field "$3"; }
ratio() { awk '{printf "%.3f\n", $1 / $2}'; }
x2() { awk '{printf "%.2f×\n", $1}'; }

label() {
	case $1 in
	always) echo "runnel \`--fsync always\`" ;;
	never) echo "runnel \`--fsync never\`" ;;
	kfake) echo "kfake (directory, no fsync)" ;;
	esac
}

{
	echo "runnel serve beside franz-go's kfake ($KFAKE_VERSION, bench/kfakepeer, its log in a"
	echo "directory without fsync), the same client for both (\`runnel bench produce\`:"
	echo "acks=all, idempotent, linger 5 ms, 1 MiB batches), each broker alone on a fresh"
	echo "data directory, the order rotated each run; median of $RUNS run(s). Ratios are"
	echo "taken within each run, then the median. CPU is the broker's user + system"
	echo "seconds per GiB produced. Started $started."
	echo
	echo "| load | broker | records/s | MB/s | CPU s/GiB | × kfake (same run) |"
	echo "|---|---|---:|---:|---:|---:|"
	for load in $LOADS; do
		for s in "${systems[@]}"; do
			cpugib=$(paste <(values "$s" "$load" cpu_seconds) <(values "$s" "$load" bytes) |
				awk '{printf "%.2f\n", $1 / ($2 / 2^30)}' | median)
			vs=—
			if [ "$s" != kfake ]; then
				vs=$(paste <(values "$s" "$load" records_per_second) <(values kfake "$load" records_per_second) | ratio | median | x2)
			fi
			printf '| %s | %s | %s | %.0f | %s | %s |\n' "$load" "$(label "$s")" \
				"$(values "$s" "$load" records_per_second | median | xargs printf '%.0f' | commas)" \
				"$(values "$s" "$load" mb_per_second | median)" "$cpugib" "$vs"
		done
	done
	echo
	ceil=$(values ceiling dd-dsync mb_per_second | median)
	printf 'Sequential write + fdatasync ceiling (dd, 1 MiB O_DSYNC writes): %.0f MB/s (median).\n' "$ceil"
	for load in $LOADS; do
		case $load in 1KiB-*) ;; *) continue ;; esac
		printf '%s, `--fsync always` / same run ceiling: %s.\n' "$load" \
			"$(paste <(values always "$load" mb_per_second) <(values ceiling dd-dsync mb_per_second) | ratio | median | x2)"
	done
	echo
	echo "Every run, records/s (p99 ack latency ms):"
	echo
	echo "| run | load | $(for s in "${systems[@]}"; do printf '%s | ' "$s"; done | sed 's/ | $//') |"
	echo "|---:|---|$(for _ in "${systems[@]}"; do printf -- '---:|'; done)"
	for run in $(seq 1 "$RUNS"); do
		for load in $LOADS; do
			printf '| %d | %s' "$run" "$load"
			for s in "${systems[@]}"; do
				printf ' | %s (%s)' "$(values "$s" "$load" records_per_second | sed -n "${run}p" | xargs printf '%.0f' | commas)" \
					"$(values "$s" "$load" latency_p99_ms | sed -n "${run}p" | xargs printf '%.1f')"
			done
			printf ' |\n'
		done
	done
	echo
	echo "Commands (run 1; later runs the same in another order):"
	echo
	echo '```sh'
	cat "$OUT/commands.sh"
	echo '```'
} >"$OUT/report.md"

cat "$OUT/report.md"
