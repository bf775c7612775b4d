#!/usr/bin/env bash
# cluster.sh — three brokers on this machine, as `make cluster` runs them:
# Kafka API on 127.0.0.1:9092, 9093 and 9094, Raft on 9192-9194, metrics on
# 9644-9646, data in $DATA_DIR/1, /2 and /3 (default ./data/cluster). New
# topics get three replicas. Ctrl-C stops all three cleanly.
#
# Any other flags are passed to every broker, e.g.
#   scripts/cluster.sh --broker-session-timeout 2s
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-bin/runnel}
DATA_DIR=${DATA_DIR:-./data/cluster}
VOTERS=1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194

pids=()
stop() {
	trap - INT TERM EXIT
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

for i in 1 2 3; do
	"$BIN" serve --node-id "$i" --listen "127.0.0.1:909$((i + 1))" --raft-listen "127.0.0.1:919$((i + 1))" \
		--voters "$VOTERS" --metrics-listen "127.0.0.1:964$((i + 3))" --data-dir "$DATA_DIR/$i" \
		--default-replication-factor 3 "$@" 2>&1 | sed -u "s/^/[broker $i] /" &
	pids+=($!)
done
wait
