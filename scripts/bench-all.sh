#!/usr/bin/env bash
# bench-all.sh — every benchmark script behind docs/benchmarks.md, one after
# another on this machine, then the generated part of that page rewritten
# from this run (scripts/benchdoc) and the chart drawn
# (docs/benchmarks.svg). `make bench` runs it.
#
#   scripts/bench-all.sh                 # the whole run (hours on 2 vCPUs)
#   ONLY="fetch latency" scripts/bench-all.sh
#   QUICK=1 scripts/bench-all.sh         # tiny counts, to check the pipeline
#
# Environment: RUNS (default 3) runs of each measurement, OUT (default
# $TMPDIR/runnel-bench-all) for every script's data, output and report,
# ONLY (default: all of storage broker fetch latency nats produce-peer
# scale restart cluster; parts named here and run into an earlier run's OUT replace just
# those parts), QUICK (default 0). Run it on a quiet machine: each script
# reports medians and ratios measured within its own run.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
QUICK=${QUICK:-0}
some=${ONLY:+yes}
ONLY=${ONLY:-storage broker fetch latency nats produce-peer scale restart cluster}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench-all}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# Some parts run again into an earlier run's OUT keep that run's start and
# code; each part records its own code too (benchdoc names a part's if it
# differs).
if [ -z "$some" ] || [ ! -s "$OUT/code" ]; then
	date -u +%FT%TZ >"$OUT/started"
	git describe --always --dirty >"$OUT/code"
fi

# bench NAME ENV... SCRIPT: runs SCRIPT with OUT=$OUT/NAME and the
# variables given, keeping its output (NAME.stdout.txt and NAME.stderr.txt
# beside that folder, which most scripts empty when they start), exit
# status and time.
bench() {
	local name=$1
	shift
	[[ " $ONLY " == *" $name "* ]] || return 0
	rm -rf "${OUT:?}/$name"
	mkdir -p "$OUT/$name"
	echo "== $(date -u +%TZ) $name" >&2
	local start status=0
	start=$(date +%s)
	env OUT="$OUT/$name" RUNS="$RUNS" "$@" >"$OUT/$name.stdout.txt" 2>"$OUT/$name.stderr.txt" || status=$?
	echo $(($(date +%s) - start)) >"$OUT/$name/seconds"
	echo "$status" >"$OUT/$name/status"
	git describe --always --dirty >"$OUT/$name/code"
	if [ "$status" != 0 ]; then
		echo "   $name failed with status $status; the last lines of its stderr:" >&2
		tail -5 "$OUT/$name.stderr.txt" >&2
	fi
}

if [ "$QUICK" = 1 ]; then
	RUNS=1
	bench storage COUNT=1 LARGE=0 BENCH='^Benchmark(Append|BaselineWrite|BaselineWriteSync|BaselineMmapCopy)$' scripts/bench-storage.sh
	bench broker RECORDS=200000 CONSUME_RECORDS=500000 scripts/bench-broker.sh
	bench fetch RECORDS=300000 scripts/bench-fetch.sh
	bench latency RATES="1000 10000" DURATION=3s WARMUP=1s PRODUCE_RECORDS=200000 scripts/bench-latency.sh
	bench nats RECORDS=20000 scripts/bench-nats.sh
	bench produce-peer RECORDS=100000 CEILING_MIB=64 scripts/bench-produce-peer.sh
	bench scale PARTITIONS="1 100" RECORDS=100000 scripts/bench-scale.sh
	bench restart BYTES=$((256 << 20)) scripts/bench-restart.sh
	bench cluster RECORDS=200000 PARTS=failover FAILOVERS=default scripts/bench-cluster.sh
else
	bench storage COUNT="$RUNS" LARGE_COUNT="$RUNS" scripts/bench-storage.sh
	bench broker scripts/bench-broker.sh
	bench fetch scripts/bench-fetch.sh
	bench latency scripts/bench-latency.sh
	bench nats scripts/bench-nats.sh
	bench produce-peer scripts/bench-produce-peer.sh
	bench scale scripts/bench-scale.sh
	bench restart scripts/bench-restart.sh
	bench cluster scripts/bench-cluster.sh
fi
date -u +%FT%TZ >"$OUT/finished"

quick=false
[ "$QUICK" = 1 ] && quick=true
go run ./scripts/benchdoc -in "$OUT" -doc docs/benchmarks.md -quick="$quick"
if [ -s "$OUT/latency/latency.json" ]; then
	produce=()
	for f in "$OUT"/latency/produce-p*.json; do
		[ -s "$f" ] && produce+=(--produce "$f")
	done
	go run ./scripts/chart --latency "$OUT/latency/latency.json" "${produce[@]}" --out docs/benchmarks.svg \
		--title "runnel, one broker, --fsync always ($(cat "$OUT/latency/code" 2>/dev/null || cat "$OUT/code"))"
fi
echo "docs/benchmarks.md rewritten from $OUT" >&2
