# lib-broker.sh — sourced by the benchmark scripts that run one broker at a
# time: $pid is that broker's process, stopped when the script exits.
# shellcheck shell=bash

pid=

# stop_broker sends the broker SIGTERM, gives it a minute to shut down
# cleanly, then SIGKILL.
stop_broker() {
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
trap stop_broker EXIT
