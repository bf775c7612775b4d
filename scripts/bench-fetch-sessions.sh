#!/usr/bin/env bash
# bench-fetch-sessions.sh — what incremental fetch sessions (KIP-227) save
# a consumer of many partitions: one broker, a topic of PARTITIONS
# partitions (1,000), one franz-go consumer of all of them with sessions
# and without (kgo.DisableFetchSessions), taking turns in each run, while a
# producer writes RATE records a second one partition after another; then
# the same with no producer (idle long-polls). Per fetch: request and
# response bytes, the broker's CPU time less its CPU time with the producer
# alone (measured before each run). Then the handler alone, in-process
# (BenchmarkFetchSession in server/).
#
#   scripts/bench-fetch-sessions.sh
#
# Environment: RUNS (5), DURATION (20s per mode and run), PARTITIONS
# (1000), RATE (200), OUT (default $TMPDIR/runnel-bench-fetch-sessions) for
# the broker's data and log and report.txt; PORT (19092) and METRICS_PORT
# (19644).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-20s}
PARTITIONS=${PARTITIONS:-1000}
RATE=${RATE:-200}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench-fetch-sessions}
PORT=${PORT:-19092}
METRICS_PORT=${METRICS_PORT:-19644}
BROKERS=127.0.0.1:$PORT

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
go build -o "$OUT/runnel" ./cmd/runnel
go build -o "$OUT/fetchsessions" ./scripts/fetchsessions
R="$OUT/runnel"
REPORT="$OUT/report.txt"

# shellcheck source=scripts/lib-broker.sh
source scripts/lib-broker.sh # the working directory is the repository

"$R" serve --data-dir "$OUT/data" --listen "$BROKERS" --metrics-listen "127.0.0.1:$METRICS_PORT" >>"$OUT/broker.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
	if "$R" topic list --brokers "$BROKERS" >/dev/null 2>&1; then
		break
	fi
	sleep 0.1
done

{
	echo "== $(date -u +%FT%TZ) $(git describe --always --dirty) $(go version | cut -d' ' -f3) $(uname -sr) $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); load: $(cut -d' ' -f1-3 /proc/loadavg)"
	for rate in "$RATE" 0; do
		# Idle long-polls wait their whole max wait: a shorter one makes
		# enough of them to measure.
		wait=500ms
		if [ "$rate" = 0 ]; then wait=100ms; fi
		cmd=("$OUT/fetchsessions" -brokers "$BROKERS" -pid "$pid" -partitions "$PARTITIONS" -runs "$RUNS" -duration "$DURATION" -rate "$rate" -max-wait "$wait")
		echo "\$ ${cmd[*]}"
		"${cmd[@]}"
		echo
	done
	echo "\$ go test -run '^\$' -bench BenchmarkFetchSession -benchtime 2000x -count $RUNS ./server/"
	go test -run '^$' -bench BenchmarkFetchSession -benchtime 2000x -count "$RUNS" ./server/ | grep -E '^(Benchmark|cpu:)'
} | tee "$REPORT"
echo "report: $REPORT" >&2
