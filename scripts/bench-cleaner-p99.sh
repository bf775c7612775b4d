#!/usr/bin/env bash
# bench-cleaner-p99.sh — what the log cleaner costs produce latency. A
# broker (--fsync always) holds a topic filled with keyed overwrites; while
# `runnel bench latency` produces and reads back RATE records/s on another
# topic, the cleaner compacts the filled one (mode "cleaning": the topic is
# cleanup.policy=compact) or has nothing to do (mode "idle": the same data,
# cleanup.policy=delete). Each run starts a fresh broker per mode, the
# order of the modes rotated run by run, so the ratio of p99s is taken
# within a run.
#
#   scripts/bench-cleaner-p99.sh
#   RUNS=1 FILL_RECORDS=500000 DURATION=10s scripts/bench-cleaner-p99.sh   # a short try
#
# Environment:
#   RUNS          runs of each mode (default 3)
#   RATE          records/s of the latency run (default 100000)
#   DURATION      length of each latency run (default 30s; 5s of warm-up)
#   FILL_RECORDS  keyed 200 B records written to the compacted topic (default 2000000)
#   KEYS          distinct keys among them (default 10000)
#   SEGMENT_BYTES segment.bytes of the filled topic (default 16777216)
#   CLEANER_FLAGS more flags for runnel serve (default none; e.g.
#                 --log-cleaner-io-bytes-per-second 50000000)
#   OUT           data, logs and results (default $TMPDIR/runnel-bench-cleaner-p99)
#   PORT, METRICS_PORT  the broker's ports (default 19292, 19844)
#
# It writes one JSON line per latency run to $OUT/cleaner-p99.json (the
# client's summary, with the mode, the run and the bytes the cleaner
# cleaned during it, from /metrics) and $OUT/report.md with the medians and
# the same-run ratio of p99s.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
RATE=${RATE:-100000}
DURATION=${DURATION:-30s}
FILL_RECORDS=${FILL_RECORDS:-2000000}
KEYS=${KEYS:-10000}
SEGMENT_BYTES=${SEGMENT_BYTES:-16777216}
CLEANER_FLAGS=${CLEANER_FLAGS:-}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench-cleaner-p99}
PORT=${PORT:-19292}
METRICS_PORT=${METRICS_PORT:-19844}
BROKERS=127.0.0.1:$PORT

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
go build -o "$OUT/runnel" ./cmd/runnel
R="$OUT/runnel"
source scripts/lib-broker.sh # the working directory is the repository
: >"$OUT/cleaner-p99.json"
: >"$OUT/commands.sh"

cleaned() {
	curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^runnel_log_cleaner_cleaned_bytes_total /{print $2}' | tail -1
}

# start BACKOFF LOG: a broker on $OUT/data whose cleaner looks for work
# every BACKOFF.
start() {
	# shellcheck disable=SC2086
	"$R" serve --data-dir "$OUT/data" --listen "$BROKERS" --metrics-listen "127.0.0.1:$METRICS_PORT" \
		--fsync always --log-cleaner-backoff "$1" $CLEANER_FLAGS >>"$2" 2>&1 &
	pid=$!
	for _ in $(seq 1 200); do
		"$R" topic list --brokers "$BROKERS" >/dev/null 2>&1 && return
		sleep 0.1
	done
	echo "broker did not start; see $2" >&2
	exit 1
}

# measure MODE RUN: a fresh broker fills the topic with its cleaner asleep
# (a look at start, then an hour's backoff, so nothing is cleaned while it
# fills); a broker restarted on that data with a 1 s backoff then serves
# the latency run, its cleaner compacting the topic meanwhile in mode
# cleaning.
measure() {
	local mode=$1 run=$2 policy=delete log="$OUT/broker-$1-$2.log"
	[ "$mode" = cleaning ] && policy=compact
	rm -rf "$OUT/data"
	start 1h "$log"
	"$R" topic create filled --brokers "$BROKERS" --partitions 1 --config "cleanup.policy=$policy" \
		--config "segment.bytes=$SEGMENT_BYTES" >/dev/null
	"$R" bench produce --brokers "$BROKERS" --topic filled --records "$FILL_RECORDS" --record-size 200 \
		--keys "$KEYS" --json >/dev/null
	echo "runnel bench produce --topic filled --records $FILL_RECORDS --record-size 200 --keys $KEYS  # cleanup.policy=$policy" >>"$OUT/commands.sh"
	stop_broker
	start 1s "$log"
	local before after out
	before=$(cleaned)
	out=$("$R" bench latency --brokers "$BROKERS" --topic "latency" --partitions 8 --rate "$RATE" \
		--duration "$DURATION" --warmup 5s --record-size 100 --json | tail -1)
	after=$(cleaned)
	echo "runnel bench latency --topic latency --partitions 8 --rate $RATE --duration $DURATION --warmup 5s --record-size 100  # $mode" >>"$OUT/commands.sh"
	stop_broker
	printf '{"mode":"%s","run":%d,"cleaned_bytes":%s,"result":%s}\n' "$mode" "$run" \
		"$(awk -v a="${after:-0}" -v b="${before:-0}" 'BEGIN {printf "%.0f", a - b}')" "$out" | tee -a "$OUT/cleaner-p99.json" >&2
}

for run in $(seq 1 "$RUNS"); do
	if [ $((run % 2)) -eq 1 ]; then
		measure cleaning "$run"
		measure idle "$run"
	else
		measure idle "$run"
		measure cleaning "$run"
	fi
done

field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
{
	echo "| mode | e2e p50 ms | e2e p99 ms | cleaned during the run, MB |"
	echo "|---|---:|---:|---:|"
	for mode in idle cleaning; do
		rows=$(grep "\"mode\":\"$mode\"" "$OUT/cleaner-p99.json")
		p50=$(printf '%s\n' "$rows" | field e2e_p50_ms | median)
		p99=$(printf '%s\n' "$rows" | field e2e_p99_ms | median)
		mb=$(printf '%s\n' "$rows" | field cleaned_bytes | median | awk '{printf "%.0f", $1 / 1e6}')
		echo "| $mode | $p50 | $p99 | $mb |"
	done
	ratios=$(for run in $(seq 1 "$RUNS"); do
		c=$(grep "\"mode\":\"cleaning\",\"run\":$run," "$OUT/cleaner-p99.json" | field e2e_p99_ms)
		i=$(grep "\"mode\":\"idle\",\"run\":$run," "$OUT/cleaner-p99.json" | field e2e_p99_ms)
		awk -v c="$c" -v i="$i" 'BEGIN {if (i > 0) printf "%.2f\n", c / i}'
	done)
	echo
	echo "p99 cleaning / idle, same run: $(printf '%s\n' "$ratios" | paste -sd' ') (median $(printf '%s\n' "$ratios" | median))"
} | tee "$OUT/report.md"
