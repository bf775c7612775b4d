#!/usr/bin/env bash
# bench-commits.sh — offset commits/s, all on this one machine: commits
# as records of __consumer_offsets (this checkout) against commits as
# Raft entries (the binary of OLD_REF, default 3ca176a, the last commit before offsets moved to __consumer_offsets), each on one broker
# and on three, with CLIENTS concurrent clients (one group each, one
# OffsetCommit of one partition at a time; runnel bench commit). The two
# binaries run interleaved: each run starts old then new on one broker,
# then old then new on three, so the same run's figures can be compared.
#
#   scripts/bench-commits.sh
#
# Every broker runs with --fsync F for each F of FSYNCS (default "always
# never"): the Raft log of the old path is fdatasync'd whatever --fsync
# says, while a commit on __consumer_offsets waits for the partition's
# fdatasync only under --fsync always (with never, for the followers' copy
# alone, as in Kafka, whose default never forces a flush).
#
# Environment: RUNS (default 3), CLIENTS (default "16 64 128"), DURATION
# (default 10s) per measurement, OLD_REF (default 3ca176a), OUT (default
# $TMPDIR/runnel-bench-commits), BIN_NEW and BIN_OLD (built binaries to use
# instead of building), PORT (default 29390: brokers listen on PORT..PORT+3,
# Raft on PORT+10.., metrics on PORT+20..), PPROF=1 (serve --pprof and save
# a CPU, block and mutex profile of broker 1 during the last new
# three-broker measurement of each run).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-16 64 128}
FSYNCS=${FSYNCS:-always never}
DURATION=${DURATION:-10s}
OLD_REF=${OLD_REF:-3ca176a}
PORT=${PORT:-29390}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench-commits}
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

NEW=${BIN_NEW:-}
if [[ -z "$NEW" ]]; then
	NEW="$OUT/runnel-new"
	go build -o "$NEW" ./cmd/runnel
fi
OLD=${BIN_OLD:-}
if [[ -z "$OLD" ]]; then
	OLD="$OUT/runnel-old"
	mkdir -p "$OUT/src-old"
	git archive "$OLD_REF" | tar -x -C "$OUT/src-old"
	(cd "$OUT/src-old" && go build -o "$OLD" ./cmd/runnel)
fi

VOTERS=1@127.0.0.1:$((PORT + 11)),2@127.0.0.1:$((PORT + 12)),3@127.0.0.1:$((PORT + 13))
declare -A pids=()

stop_all() {
	for i in "${!pids[@]}"; do
		kill -TERM "${pids[$i]}" 2>/dev/null || true
		wait "${pids[$i]}" 2>/dev/null || true
	done
	pids=()
}
trap stop_all EXIT

wait_ready() { # BINARY BROKERS
	for _ in $(seq 1 300); do
		if "$1" topic list --brokers "$2" >/dev/null 2>&1; then return; fi
		sleep 0.1
	done
	echo "brokers at $2 did not start; see $OUT/*.log" >&2
	exit 1
}

extra_flags() {
	echo --fsync "$FSYNC"
	if [[ "${PPROF:-}" == 1 ]]; then echo --pprof=true; fi
}

# start BINARY NAME NODES: one broker (NODES=1) or a three-node cluster.
start() {
	local bin=$1 name=$2 nodes=$3
	rm -rf "$OUT/data"
	if [[ "$nodes" == 1 ]]; then
		# shellcheck disable=SC2046
		"$bin" serve --data-dir "$OUT/data/0" --listen "127.0.0.1:$PORT" --metrics-listen "127.0.0.1:$((PORT + 20))" \
			$(extra_flags) >>"$OUT/$name-1.log" 2>&1 &
		pids[0]=$!
		wait_ready "$bin" "127.0.0.1:$PORT"
		BROKERS=127.0.0.1:$PORT
		return
	fi
	for i in 1 2 3; do
		# shellcheck disable=SC2046
		"$bin" serve --node-id "$i" --listen "127.0.0.1:$((PORT + i))" --raft-listen "127.0.0.1:$((PORT + 10 + i))" \
			--voters "$VOTERS" --data-dir "$OUT/data/$i" --metrics-listen "127.0.0.1:$((PORT + 20 + i))" \
			--default-replication-factor 3 $(extra_flags) >>"$OUT/$name-3.node$i.log" 2>&1 &
		pids[$i]=$!
	done
	BROKERS=127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2)),127.0.0.1:$((PORT + 3))
	wait_ready "$bin" "$BROKERS"
	# Every broker registered: a topic of replication factor 3 can be made.
	for _ in $(seq 1 100); do
		if "$bin" topic create commits --brokers "$BROKERS" --partitions 1 --replication-factor 3 >/dev/null 2>&1; then
			return
		fi
		sleep 0.2
	done
	echo "$name: three brokers did not register" >&2
	exit 1
}

# fsyncs NODES: the segment fdatasyncs of every broker so far (the Raft
# log's are not among them).
fsyncs() {
	local ports=$((PORT + 20))
	if [[ "$1" == 3 ]]; then ports="$((PORT + 21)) $((PORT + 22)) $((PORT + 23))"; fi
	for p in $ports; do
		curl -s "http://127.0.0.1:$p/metrics" | sed -n 's/^runnel_fsync_duration_seconds_count \([0-9]*\)$/\1/p'
	done | awk '{s += $1} END {print s + 0}'
}

# measure BINARY NAME NODES: a warm-up (it creates __consumer_offsets and
# lets its coordinators load), then one measurement per client count.
measure() {
	local bin=$1 name=$2 nodes=$3 run=$4
	start "$bin" "$name" "$nodes"
	"$bin" bench commit --brokers "$BROKERS" --topic commits --clients 128 --duration 5s --json \
		>/dev/null 2>>"$OUT/warmup.log" || true
	local c last
	last=$(echo "$CLIENTS" | awk '{print $NF}')
	for c in $CLIENTS; do
		local prof=
		if [[ "${PPROF:-}" == 1 && "$name" == new && "$nodes" == 3 && "$c" == "$last" ]]; then
			local secs=${DURATION%s}
			prof=$((PORT + 21))
			curl -s -o "$OUT/$FSYNC-cpu-r$run.pprof" "http://127.0.0.1:$prof/debug/pprof/profile?seconds=$((secs - 2))" &
			cpu_pid=$!
			curl -s -o "$OUT/$FSYNC-block0-r$run.pprof" "http://127.0.0.1:$prof/debug/pprof/block"
			curl -s -o "$OUT/$FSYNC-mutex0-r$run.pprof" "http://127.0.0.1:$prof/debug/pprof/mutex"
		fi
		local f0 f1
		f0=$(fsyncs "$nodes")
		"$bin" bench commit --brokers "$BROKERS" --topic commits --clients "$c" --duration "$DURATION" --json \
			2>>"$OUT/bench.log" | tail -1 >"$OUT/last.json" || true
		f1=$(fsyncs "$nodes")
		sed "s/^{/{\"binary\":\"$name\",\"brokers\":$nodes,\"run\":$run,\"fsync\":\"$FSYNC\",\"segment_fsyncs\":$((f1 - f0)),/" \
			"$OUT/last.json" | tee -a "$OUT/$FSYNC-$name-$nodes-c$c.json" >&2
		if [[ -n "$prof" ]]; then
			wait "$cpu_pid" # not a bare wait: the brokers are children too
			curl -s -o "$OUT/$FSYNC-block-r$run.pprof" "http://127.0.0.1:$prof/debug/pprof/block"
			curl -s -o "$OUT/$FSYNC-mutex-r$run.pprof" "http://127.0.0.1:$prof/debug/pprof/mutex"
		fi
	done
	stop_all
	sleep 1 # the ports free
}

field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "== $(date -u +%FT%TZ) new $(git rev-parse --short HEAD), old $(git rev-parse --short "$OLD_REF"), $(go version | cut -d' ' -f3), $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

for run in $(seq 1 "$RUNS"); do
	for FSYNC in $FSYNCS; do
		for nodes in 1 3; do
			measure "$OLD" old "$nodes" "$run"
			measure "$NEW" new "$nodes" "$run"
		done
	done
done

echo
echo "medians over $RUNS runs of $DURATION ($(date -u +%FT%TZ); load: $(cut -d' ' -f1-3 /proc/loadavg)):"
for FSYNC in $FSYNCS; do
	echo "--fsync $FSYNC"
	printf '  %-8s %-8s %-10s %-10s %-12s %-10s %-10s\n' clients brokers "raft/s" "topic/s" "topic/raft" "raft p99" "topic p99"
	for nodes in 1 3; do
		for c in $CLIENTS; do
			o="$OUT/$FSYNC-old-$nodes-c$c.json" n="$OUT/$FSYNC-new-$nodes-c$c.json"
			printf '  %-8s %-8s %-10.0f %-10.0f %-12.2f %-10.1f %-10.1f\n' "$c" "$nodes" \
				"$(field commits_per_second <"$o" | median)" "$(field commits_per_second <"$n" | median)" \
				"$(paste <(field commits_per_second <"$n") <(field commits_per_second <"$o") | awk '{print $1 / $2}' | median)" \
				"$(field latency_p99_ms <"$o" | median)" "$(field latency_p99_ms <"$n" | median)"
		done
	done
	echo "  three brokers / one broker, same run, medians:"
	for c in $CLIENTS; do
		for b in old new; do
			printf '    %s, %s clients: %.2f\n' "$b" "$c" \
				"$(paste <(field commits_per_second <"$OUT/$FSYNC-$b-3-c$c.json") <(field commits_per_second <"$OUT/$FSYNC-$b-1-c$c.json") | awk '{print $1 / $2}' | median)"
		done
	done
	if [[ "$FSYNC" == always ]]; then
		echo "  segment fdatasyncs per commit of the new path (all brokers), medians:"
		for nodes in 1 3; do
			for c in $CLIENTS; do
				printf '    %s broker(s), %s clients: %.2f\n' "$nodes" "$c" \
					"$(paste <(field segment_fsyncs <"$OUT/$FSYNC-new-$nodes-c$c.json") <(field commits <"$OUT/$FSYNC-new-$nodes-c$c.json") | awk '{print $1 / $2}' | median)"
			done
		done
	fi
done
errs=$(cat "$OUT"/*-c*.json | field errors | awk '{s += $1} END {print s + 0}')
echo "failed commits over all measurements: $errs (warm-ups excluded)"
