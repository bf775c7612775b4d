#!/usr/bin/env bash
# bench-latency.sh — end-to-end latency of a single broker at fixed rates:
# runnel bench latency (records produced on a fixed schedule and read back
# by the same process, latency timed from when each record was due) at a
# ladder of offered rates against `runnel serve --fsync always`, plus the
# produce throughput to 1 and 8 partitions; then a markdown fragment with
# the medians and the commands, and a chart of both.
#
#   scripts/bench-latency.sh
#
# Environment:
#   RUNS            runs of each measurement (default 3)
#   RATES           offered rates, records/s (default "1000 10000 50000 100000 200000")
#   PARTITIONS      partitions of each latency topic (default 8)
#   RECORD_SIZE     value size in bytes (default 100)
#   ACKS            all, 1 or 0 (default all)
#   DURATION        length of each latency run (default 30s)
#   WARMUP          first part of each run not timed (default 5s)
#   PRODUCE_RECORDS records per produce run (default 5000000; 0: none)
#   PRODUCE_JSON    chart these `runnel bench produce --json` files instead
#                   of measuring produce here (e.g. the produce-p*.json that
#                   scripts/bench-broker.sh leaves in its OUT)
#   OUT             broker data, logs and results (default
#                   $TMPDIR/runnel-bench-latency)
#   PORT, METRICS_PORT  the broker's Kafka and metrics ports (19192, 19744)
#
# It writes $OUT/latency.json (one JSON object per latency run),
# $OUT/produce-p1.json and $OUT/produce-p8.json, $OUT/report.md and
# $OUT/latency.svg. Run it on a quiet machine: the broker and the clients
# share it.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
RATES=${RATES:-1000 10000 50000 100000 200000}
PARTITIONS=${PARTITIONS:-8}
RECORD_SIZE=${RECORD_SIZE:-100}
ACKS=${ACKS:-all}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-5s}
PRODUCE_RECORDS=${PRODUCE_RECORDS:-5000000}
PRODUCE_JSON=${PRODUCE_JSON:-}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench-latency}
PORT=${PORT:-19192}
METRICS_PORT=${METRICS_PORT:-19744}
BROKERS=127.0.0.1:$PORT

# Files to chart, resolved before OUT is emptied.
produce_files=()
for f in $PRODUCE_JSON; do
	produce_files+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")")
done

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
go build -o "$OUT/runnel" ./cmd/runnel
R="$OUT/runnel"
: >"$OUT/commands.sh"

# quote ARGS...: the arguments as a shell would read them back, quoted
# only where needed.
quote() {
	local a sep=
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=,@+-]+$ ]]; then
			printf '%s%s' "$sep" "$a"
		else
			printf "%s'%s'" "$sep" "${a//\'/\'\\\'\'}"
		fi
		sep=' '
	done
	printf '\n'
}

# note ARGS...: write `runnel ARGS` to commands.sh, for the report.
note() { quote runnel "$@" >>"$OUT/commands.sh"; }

# logged ARGS...: note them, then run runnel with them.
logged() {
	note "$@"
	"$R" "$@"
}

# shellcheck source=scripts/lib-broker.sh
source scripts/lib-broker.sh # the working directory is the repository

COMMIT=$(git rev-parse --short HEAD)
started="$(date -u +%FT%TZ) $COMMIT $(go version | cut -d' ' -f3) $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $started" >&2

serve=(serve --data-dir "$OUT/data" --listen "$BROKERS" --metrics-listen "127.0.0.1:$METRICS_PORT" --fsync always)
note "${serve[@]}"
"$R" "${serve[@]}" >>"$OUT/broker.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
	if "$R" topic list --brokers "$BROKERS" >/dev/null 2>&1; then
		break
	fi
	sleep 0.1
done
"$R" topic list --brokers "$BROKERS" >/dev/null || {
	echo "broker did not start; see $OUT/broker.log" >&2
	exit 1
}

# Latency: a fresh topic per run and rate, so every run starts from an
# empty log. A run that fails (records lost, broker errors) is reported and
# the ladder goes on; its JSON line is kept, and its counts (errors,
# received against sent) say what went wrong.
for run in $(seq 1 "$RUNS"); do
	for rate in $RATES; do
		out=$(logged bench latency --brokers "$BROKERS" --topic "latency-$rate-r$run" --partitions "$PARTITIONS" \
			--rate "$rate" --duration "$DURATION" --warmup "$WARMUP" --record-size "$RECORD_SIZE" \
			--acks "$ACKS" --json) || echo "bench latency at $rate records/s, run $run, failed (exit $?)" >&2
		if [ -n "$out" ]; then
			printf '%s\n' "$out" | tail -1 | tee -a "$OUT/latency.json" >&2
		fi
	done
done

# Produce throughput, as in scripts/bench-broker.sh.
if [ ${#produce_files[@]} -eq 0 ] && [ "$PRODUCE_RECORDS" -gt 0 ]; then
	for run in $(seq 1 "$RUNS"); do
		for p in 1 8; do
			logged bench produce --brokers "$BROKERS" --topic "produce-p$p-r$run" --partitions "$p" \
				--records "$PRODUCE_RECORDS" --record-size "$RECORD_SIZE" --acks "$ACKS" --json |
				tail -1 | tee -a "$OUT/produce-p$p.json" >&2
		done
	done
	produce_files=("$OUT/produce-p1.json" "$OUT/produce-p8.json")
fi
stop_broker

field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }

median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# commas 1234567: 1,234,567
commas() { sed ':a; s/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/; ta'; }

# rate_median RATE FIELD: the median of FIELD over the runs at RATE.
rate_median() { grep "\"rate\":$1," "$OUT/latency.json" | field "$2" | median; }

chart=(go run ./scripts/chart --latency "$OUT/latency.json" --out "$OUT/latency.svg"
	--note "runnel serve --fsync always, $(nproc) CPUs, $COMMIT; latency: $PARTITIONS partitions, $RECORD_SIZE B, acks=$ACKS, $DURATION runs ($WARMUP warm-up)")
for f in "${produce_files[@]}"; do
	chart+=(--produce "$f")
done
"${chart[@]}"
if command -v rsvg-convert >/dev/null; then
	rsvg-convert -o "$OUT/latency.png" "$OUT/latency.svg"
fi

{
	echo "End-to-end latency at fixed offered rates: \`runnel bench latency\`, $PARTITIONS partitions,"
	echo "$RECORD_SIZE B records, acks=$ACKS, against \`runnel serve --fsync always\`; each run $DURATION,"
	if [ "$RUNS" -eq 1 ]; then
		echo "the first $WARMUP not timed; one run per rate. Latency is from when a record was"
	else
		echo "the first $WARMUP not timed; median of $RUNS runs per rate. Latency is from when a record was"
	fi
	echo "due on the schedule to when the consumer received it, in ms. Started $started."
	echo
	echo "| offered (records/s) | p50 | p99 | p99.9 | max | achieved (records/s) | producer behind schedule |"
	echo "|---:|---:|---:|---:|---:|---:|---|"
	for rate in $RATES; do
		runs=$(grep -c "\"rate\":$rate," "$OUT/latency.json" || true)
		behind=$(grep "\"rate\":$rate," "$OUT/latency.json" | grep -c '"fell_behind":true' || true)
		if [ "$behind" -gt 0 ]; then
			worst=$(grep "\"rate\":$rate," "$OUT/latency.json" | field max_behind_ms | sort -g | tail -1)
			behind=$(printf '%d of %d runs, up to %.0f ms' "$behind" "$runs" "$worst")
		else
			behind="no"
		fi
		printf '| %s | %.2f | %.2f | %.2f | %.2f | %s | %s |\n' "$(echo "$rate" | commas)" \
			"$(rate_median "$rate" e2e_p50_ms)" "$(rate_median "$rate" e2e_p99_ms)" \
			"$(rate_median "$rate" e2e_p99_9_ms)" "$(rate_median "$rate" e2e_max_ms)" \
			"$(rate_median "$rate" achieved_rate | xargs printf '%.0f' | commas)" "$behind"
	done
	if [ ${#produce_files[@]} -gt 0 ]; then
		echo
		echo "Produce throughput, median of the runs in each file:"
		echo
		for f in "${produce_files[@]}"; do
			printf -- '- %s partition(s): %s records/s\n' "$(field partitions <"$f" | head -1)" \
				"$(field records_per_second <"$f" | median | xargs printf '%.0f' | commas)"
		done
	fi
	echo
	echo '```sh'
	cat "$OUT/commands.sh"
	quote "${chart[@]}"
	echo '```'
} >"$OUT/report.md"

cat "$OUT/report.md"
