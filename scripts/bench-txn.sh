#!/usr/bin/env bash
# bench-txn.sh — transactional produce against idempotent produce on one
# broker, in the same run: `runnel bench produce` of RECORDS records of
# 100 B to a new topic of 4 partitions, idempotent (acks=all, franz-go's
# default) and transactional with a commit every 10 ms, 100 ms and 1 s
# (--transactional-id, --commit-interval: each transaction collects records
# for the interval, then Flush and EndTransaction), the four taking turns
# in an order that rotates each run. Then BenchmarkFetchIsolation: the
# broker's CPU to serve a read_committed fetch against a read_uncommitted
# one over the same log.
#
#   scripts/bench-txn.sh
#
# Environment: RUNS (3), RECORDS (2000000), PORT (29620), OUT
# ($TMPDIR/runnel-bench-txn). Run it on a quiet machine.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-2000000}
PORT=${PORT:-29620}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench-txn}
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
go build -o "$OUT/runnel" ./cmd/runnel
R="$OUT/runnel"
BROKERS=127.0.0.1:$PORT

# shellcheck source=scripts/lib-broker.sh
source scripts/lib-broker.sh

"$R" serve --data-dir "$OUT/data" --listen "$BROKERS" --metrics-listen "" >>"$OUT/broker.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
	if "$R" topic list --brokers "$BROKERS" >/dev/null 2>&1; then break; fi
	sleep 0.1
done

field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "== $(date -u +%FT%TZ) $(git describe --always --dirty) $(go version | cut -d' ' -f3) $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
MODES=(idempotent 10ms 100ms 1s)
TSV="$OUT/produce.tsv" # run, mode, records/s
: >"$TSV"
for run in $(seq 1 "$RUNS"); do
	for i in "${!MODES[@]}"; do
		mode=${MODES[$(((i + run - 1) % ${#MODES[@]}))]}
		args=(bench produce --brokers "$BROKERS" --topic "t-$mode-$run" --partitions 4 --records "$RECORDS" --json)
		if [ "$mode" != idempotent ]; then args+=(--transactional-id "bench-$run-$mode" --commit-interval "$mode"); fi
		r=$("$R" "${args[@]}" 2>>"$OUT/bench.log" | tail -1)
		echo "$r" >>"$OUT/produce.json"
		rps=$(field records_per_second <<<"$r")
		printf '%d\t%s\t%s\n' "$run" "$mode" "$rps" >>"$TSV"
		printf 'run %d %-10s %12.0f records/s  %s transactions\n' "$run" "$mode" "$rps" "$(field transactions <<<"$r")" >&2
	done
done
stop_broker

go test -run '^$' -bench FetchIsolation -count="$RUNS" ./server/ | tee "$OUT/isolation.txt" >&2

echo
echo "Produce, medians of $RUNS runs of $RECORDS records (records/s; \"×\" the median of the same run's ratios to idempotent):"
echo
echo "| mode | records/s | × idempotent |"
echo "|---|---:|---:|"
for mode in "${MODES[@]}"; do
	printf '| %s | %.0f | %.2f |\n' "$mode" \
		"$(awk -F'\t' -v m="$mode" '$2 == m {print $3}' "$TSV" | median)" \
		"$(awk -F'\t' -v m="$mode" '$2 == "idempotent" {s[$1] = $3} $2 == m {v[$1] = $3} END {for (r in v) if (s[r] > 0) print v[r] / s[r]}' "$TSV" | median)"
done
