#!/usr/bin/env bash
# bench-broker.sh — the single-node broker benchmarks of docs/benchmarks.md:
# produce (100 B records, acks=all, --fsync always) to 1 and 8 partitions,
# consume, the broker's CPU per GB fetched with the sendfile path and with
# the copy path, measured in the same run, and consumer groups: offset
# commits per second and how fast a 3-member group over 12 partitions
# settles after a member leaves.
#
#   scripts/bench-broker.sh
#
# Environment: RUNS (default 3) runs of each measurement; RECORDS (default
# 5000000) records per produce run; CONSUME_RECORDS (default 20000000, 2 GB
# of values) in the topic the consume runs read; OUT (default
# $TMPDIR/runnel-bench-broker) for the broker's data, logs and raw JSON.
# Run it on a quiet machine. The broker and the clients share the machine.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-5000000}
CONSUME_RECORDS=${CONSUME_RECORDS:-20000000}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench-broker}
PORT=${PORT:-19092}
METRICS_PORT=${METRICS_PORT:-19644}
BROKERS=127.0.0.1:$PORT

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
go build -o "$OUT/runnel" ./cmd/runnel
R="$OUT/runnel"
TCK=$(getconf CLK_TCK)

# shellcheck source=scripts/lib-broker.sh
source scripts/lib-broker.sh # the working directory is the repository

# start_broker FETCH_PATH: a broker on $OUT/data, ready when it answers.
start_broker() {
	"$R" serve --data-dir "$OUT/data" --listen "$BROKERS" --metrics-listen "127.0.0.1:$METRICS_PORT" \
		--fsync always --fetch-path "$1" >>"$OUT/broker.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 200); do
		if "$R" topic list --brokers "$BROKERS" >/dev/null 2>&1; then
			return
		fi
		sleep 0.1
	done
	echo "broker did not start; see $OUT/broker.log" >&2
	exit 1
}

# cpu_ticks: user plus system CPU ticks the broker has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

bytes_out() {
	curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk '$1 == "runnel_bytes_out_total" {printf "%.0f\n", $2}'
}

field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }

median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD) $(go version | cut -d' ' -f3) $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

start_broker sendfile

# Produce: a fresh topic per run, so every run starts from an empty log.
for run in $(seq 1 "$RUNS"); do
	for p in 1 8; do
		"$R" bench produce --brokers "$BROKERS" --topic "produce-p$p-r$run" --partitions "$p" \
			--records "$RECORDS" --json | tail -1 | tee -a "$OUT/produce-p$p.json" >&2
	done
done

# The topic the consume runs read, 8 partitions.
"$R" bench produce --brokers "$BROKERS" --topic consume --partitions 8 \
	--records "$CONSUME_RECORDS" --json | tail -1 >&2

for run in $(seq 1 "$RUNS"); do
	"$R" bench consume --brokers "$BROKERS" --topic consume --json | tail -1 | tee -a "$OUT/consume.json" >&2
done

# CPU per GB fetched: the same topic read by one consumer from a broker
# with each fetch path in turn, alternating so drift affects both alike.
for run in $(seq 1 "$RUNS"); do
	for path in sendfile copy; do
		stop_broker
		start_broker "$path"
		b0=$(bytes_out)
		t0=$(cpu_ticks)
		"$R" bench consume --brokers "$BROKERS" --topic consume --json | tail -1 >"$OUT/cpu-$path-r$run.json"
		t1=$(cpu_ticks)
		b1=$(bytes_out)
		awk -v t="$((t1 - t0))" -v hz="$TCK" -v b="$((b1 - b0))" -v p="$path" \
			'BEGIN {printf "%s %.3f %.0f %.3f\n", p, t / hz, b, (t / hz) / (b / 1e9)}' | tee -a "$OUT/cpu-$path.txt" >&2
	done
done

# Consumer groups, on a broker with the default settings.
stop_broker
start_broker sendfile
for run in $(seq 1 "$RUNS"); do
	"$R" bench commit --brokers "$BROKERS" --topic commits --duration 10s --json | tail -1 | tee -a "$OUT/commit.json" >&2
	for hb in 3s 500ms; do
		"$R" bench rebalance --brokers "$BROKERS" --topic rebalance --members 3 --partitions 12 --rounds 3 \
			--heartbeat-interval "$hb" --json | tail -1 | tee -a "$OUT/rebalance-$hb.json" >&2
	done
done

echo
echo "medians over $RUNS runs ($(date -u +%FT%TZ)):"
for p in 1 8; do
	printf 'produce, %d partition(s):   %s records/s\n' "$p" "$(field records_per_second <"$OUT/produce-p$p.json" | median | xargs printf '%.0f')"
done
printf 'consume, 8 partitions, 1 client: %s records/s\n' "$(field records_per_second <"$OUT/consume.json" | median | xargs printf '%.0f')"
for path in sendfile copy; do
	printf 'broker CPU per GB fetched, %-8s %s s/GB\n' "$path:" "$(awk '{print $4}' "$OUT/cpu-$path.txt" | median)"
done
printf 'copy / sendfile CPU per GB, same run: %s\n' "$(paste "$OUT/cpu-copy.txt" "$OUT/cpu-sendfile.txt" | awk '{print $4 / $8}' | median)"
printf 'offset commits/s (16 clients, 1 partition each): %s\n' "$(field commits_per_second <"$OUT/commit.json" | median | xargs printf '%.0f')"
printf 'commit latency p99: %s ms\n' "$(field latency_p99_ms <"$OUT/commit.json" | median)"
for hb in 3s 500ms; do
	printf '3-member group, 12 partitions, heartbeat %s: settle after a clean leave %s ms, after a join %s ms (medians of every round)\n' "$hb" \
		"$(sed -n 's/.*"settle_after_leave_ms":\[\([^]]*\)\].*/\1/p' "$OUT/rebalance-$hb.json" | tr ',' '\n' | median)" \
		"$(sed -n 's/.*"settle_after_join_ms":\[\([^]]*\)\].*/\1/p' "$OUT/rebalance-$hb.json" | tr ',' '\n' | median)"
done
