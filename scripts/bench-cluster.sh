#!/usr/bin/env bash
# bench-cluster.sh — the cluster benchmarks of docs/benchmarks.md, all on
# this one machine:
#  1. produce throughput, 100 B records, acks=all, --fsync always, 8
#     partitions: one broker (replication factor 1) against three brokers
#     (replication factor 3), alternating, with the ratio of each pair;
#  2. failover: a producer sends one record every 10 ms with acks=all to a
#     replication-factor-3 partition; its leader is killed with SIGKILL and
#     the longest time without an acknowledgement is the time from the kill
#     to producing again. With the default timeouts (the client refreshing
#     metadata every 100 ms, then at franz-go's default 5 s floor), and
#     with tuned broker timeouts.
#
#   scripts/bench-cluster.sh
#
# Environment: RUNS (default 3), RECORDS (default 3000000) per produce
# run, OUT (default $TMPDIR/runnel-bench-cluster), PARTS (default
# "throughput failover": which of the two to run), FAILOVERS (default
# "default default-kgo tuned": which failover settings).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-3000000}
PARTS=${PARTS:-throughput failover}
FAILOVERS=${FAILOVERS:-default default-kgo tuned}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench-cluster}
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
go build -o "$OUT/runnel" ./cmd/runnel
R="$OUT/runnel"
VOTERS=1@127.0.0.1:29301,2@127.0.0.1:29302,3@127.0.0.1:29303
declare -A pids=()

stop_all() {
	for i in "${!pids[@]}"; do
		kill -TERM "${pids[$i]}" 2>/dev/null || true
		wait "${pids[$i]}" 2>/dev/null || true
	done
	pids=()
}
trap stop_all EXIT

wait_ready() { # BROKERS
	for _ in $(seq 1 300); do
		if "$R" topic list --brokers "$1" >/dev/null 2>&1; then return; fi
		sleep 0.1
	done
	echo "brokers at $1 did not start; see $OUT/*.log" >&2
	exit 1
}

# start_node I EXTRA...: broker I of the three-node cluster.
start_node() {
	local i=$1
	shift
	"$R" serve --node-id "$i" --listen "127.0.0.1:2929$i" --raft-listen "127.0.0.1:2930$i" --voters "$VOTERS" \
		--data-dir "$OUT/cluster/$i" --metrics-listen "" --default-replication-factor 3 --fsync always "$@" \
		>>"$OUT/node$i.log" 2>&1 &
	pids[$i]=$!
}

start_cluster() { # EXTRA...
	rm -rf "$OUT/cluster"
	for i in 1 2 3; do start_node "$i" "$@"; done
	wait_ready 127.0.0.1:29291
	sleep 2 # every broker registered
}

start_single() {
	rm -rf "$OUT/single"
	"$R" serve --data-dir "$OUT/single" --listen 127.0.0.1:29290 --metrics-listen "" --fsync always \
		>>"$OUT/single.log" 2>&1 &
	pids[0]=$!
	wait_ready 127.0.0.1:29290
}

field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD) $(go version | cut -d' ' -f3) $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# 1. Throughput, one broker then three, alternating.
[[ " $PARTS " == *" throughput "* ]] || RUNS_THROUGHPUT=0
for run in $(seq 1 "${RUNS_THROUGHPUT:-$RUNS}"); do
	start_single
	"$R" bench produce --brokers 127.0.0.1:29290 --topic "p8-r$run" --partitions 8 --records "$RECORDS" --json |
		tail -1 | tee -a "$OUT/single.json" >&2
	stop_all
	start_cluster
	"$R" bench produce --brokers 127.0.0.1:29291 --topic "p8-r$run" --partitions 8 --records "$RECORDS" --json |
		tail -1 | tee -a "$OUT/rf3.json" >&2
	stop_all
done

# 2. Failover: kill the leader of partition 0 five seconds into a run.
leader_of() { # BROKERS TOPIC
	"$R" topic describe "$2" --brokers "$1" | awk '$1 == "0" && NF >= 4 {print $2; exit}'
}
failover() { # NAME CLIENT_FLAGS -- SERVE_FLAGS...
	local name=$1 client=$2
	shift 2
	start_cluster "$@"
	for run in $(seq 1 "$RUNS"); do
		local topic="avail-$name-$run"
		# The broker killed in the last run may still be registering.
		for _ in $(seq 1 60); do
			if "$R" topic create "$topic" --brokers 127.0.0.1:29291 --partitions 1 --replication-factor 3 >/dev/null 2>&1; then
				break
			fi
			sleep 0.5
		done
		sleep 1
		# shellcheck disable=SC2086
		"$R" bench availability --brokers 127.0.0.1:29291,127.0.0.1:29292,127.0.0.1:29293 --topic "$topic" \
			--duration 25s --json $client >"$OUT/avail-$name-$run.json" 2>>"$OUT/avail.log" &
		local bench=$!
		sleep 5
		local leader
		leader=$(leader_of 127.0.0.1:29291,127.0.0.1:29292,127.0.0.1:29293 "$topic")
		kill -KILL "${pids[$leader]}"
		wait "${pids[$leader]}" 2>/dev/null || true
		wait "$bench"
		tee -a "$OUT/avail-$name.json" <"$OUT/avail-$name-$run.json" >&2
		start_node "$leader" "$@"
		sleep 3
	done
	stop_all
}
# runnel's defaults; the client refreshes metadata at most every 100 ms (the
# Java client's retry.backoff.ms), then with franz-go's own 5 s floor.
if [[ " $PARTS " == *" failover "* ]]; then
	for f in $FAILOVERS; do
		case $f in
		default) failover default "--metadata-min-age 100ms" ;;
		default-kgo) failover default-kgo "" ;;
		tuned)
			failover tuned "--metadata-min-age 100ms" --broker-session-timeout 1500ms --broker-heartbeat-interval 250ms \
				--raft-election-timeout 500ms
			;;
		esac
	done
fi

echo
echo "medians over $RUNS runs ($(date -u +%FT%TZ)):"
if [[ -s "$OUT/single.json" ]]; then
	printf 'produce, 8 partitions, 1 broker, RF=1:    %s records/s\n' "$(field records_per_second <"$OUT/single.json" | median | xargs printf '%.0f')"
	printf 'produce, 8 partitions, 3 brokers, RF=3:   %s records/s\n' "$(field records_per_second <"$OUT/rf3.json" | median | xargs printf '%.0f')"
	printf 'RF=3 / RF=1, pairs of the same run:       %s\n' "$(paste <(field records_per_second <"$OUT/rf3.json") <(field records_per_second <"$OUT/single.json") | awk '{print $1 / $2}' | median)"
fi
for name in default default-kgo tuned; do
	[[ -s "$OUT/avail-$name.json" ]] || continue
	printf 'failover (%s): longest time without an acknowledgement %s ms; errors %s\n' "$name" \
		"$(field max_gap_ms <"$OUT/avail-$name.json" | median)" "$(field errors <"$OUT/avail-$name.json" | median)"
done
