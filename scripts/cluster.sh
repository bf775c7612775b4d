#!/usr/bin/env bash
# cluster.sh — three brokers on this machine, as `make cluster` runs them:
# Kafka API on 127.0.0.1:9092, 9093 and 9094, Raft on 9192-9194, metrics on
# 9644-9646, data in $DATA_DIR/1, /2 and /3 (default ./data/cluster). New
# topics get three replicas. Ctrl-C stops all three cleanly.
#
# Any other flags are passed to every broker, e.g.
#   scripts/cluster.sh --broker-session-timeout 2s
# KAFKA_PORT, RAFT_PORT and METRICS_PORT move the first broker's ports (the
# others take the next two).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-bin/runnel}
DATA_DIR=${DATA_DIR:-./data/cluster}
KAFKA_PORT=${KAFKA_PORT:-9092}
RAFT_PORT=${RAFT_PORT:-9192}
METRICS_PORT=${METRICS_PORT:-9644}
VOTERS=1@127.0.0.1:$RAFT_PORT,2@127.0.0.1:$((RAFT_PORT + 1)),3@127.0.0.1:$((RAFT_PORT + 2))

pids=()
stop() {
	trap - INT TERM EXIT
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

for i in 1 2 3; do
	"$BIN" serve --node-id "$i" --listen "127.0.0.1:$((KAFKA_PORT + i - 1))" --raft-listen "127.0.0.1:$((RAFT_PORT + i - 1))" \
		--voters "$VOTERS" --metrics-listen "127.0.0.1:$((METRICS_PORT + i - 1))" --data-dir "$DATA_DIR/$i" \
		--default-replication-factor 3 "$@" > >(trap '' INT TERM; exec sed -u "s/^/[broker $i] /") 2>&1 &
	pids+=($!) # the broker's own pid: the prefixing sed outlives it to print its last lines
done
wait
