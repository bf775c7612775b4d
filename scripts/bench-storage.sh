#!/usr/bin/env bash
# bench-storage.sh — run the storage engine benchmarks (segment/bench_test.go)
# and print medians per benchmark, benchstat style. See docs/benchmarks.md.
#
#   scripts/bench-storage.sh            regular benchmarks, then the large ones
#   LARGE=0 scripts/bench-storage.sh    skip the 1 GiB / 10,000-partition ones
#   REGULAR=0 scripts/bench-storage.sh  only the large ones
#   BENCH='ReadRandom' LARGE=0 ...      only benchmarks matching a regexp
#
# Environment: COUNT (default 5) and LARGE_COUNT (default 3) runs per
# benchmark; OUT (default $TMPDIR/runnel-bench) keeps the raw output for benchstat
# comparisons. Run it on a quiet machine: nothing else on the CPUs or disk.
set -euo pipefail

cd "$(dirname "$0")/.."
COUNT=${COUNT:-5}
LARGE_COUNT=${LARGE_COUNT:-3}
LARGE=${LARGE:-1}
REGULAR=${REGULAR:-1}
BENCH=${BENCH:-'^Benchmark(Append|AppendRolling|Baseline.*|ReadRandomOffset)$'}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# One binary for every run, so the runs do not pay for compiling.
go test -c -o "$OUT/segment.test" ./segment/
cd segment

echo "== $(date -u +%FT%TZ) $(go version) $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
files=()
if [ "$REGULAR" = 1 ]; then
	"$OUT/segment.test" -test.run='^$' -test.bench="$BENCH" -test.benchmem \
		-test.count="$COUNT" -test.timeout=60m | tee "$OUT/storage.txt" >&2
	files+=("$OUT/storage.txt")
fi

if [ "$LARGE" = 1 ]; then
	# One timed iteration per run: each writes 1 GiB or opens 10,000 logs.
	RUNNEL_BENCH_LARGE=1 "$OUT/segment.test" -test.run='^$' -test.bench='Large$' \
		-test.benchmem -test.benchtime=1x -test.count="$LARGE_COUNT" -test.timeout=60m |
		tee "$OUT/storage-large.txt" >&2
	files+=("$OUT/storage-large.txt")
fi

if [ ${#files[@]} -eq 0 ]; then
	exit 0
fi

# Medians of every metric per benchmark, in go test's own units (MB/s is
# 10^6 bytes per second).
echo
echo "medians over the runs:"
cat "${files[@]}" | awk '
/^Benchmark/ {
	name = $1
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
	for (i = 3; i < NF; i += 2) {
		key = name SUBSEP $(i+1)
		if (!(key in cnt)) { units[name] = units[name] SUBSEP $(i+1) }
		vals[key, ++cnt[key]] = $i
	}
}
END {
	for (k = 1; k <= n; k++) {
		name = order[k]; line = sprintf("%-80s", name)
		m = split(substr(units[name], 2), us, SUBSEP)
		for (j = 1; j <= m; j++) {
			key = name SUBSEP us[j]; c = cnt[key]
			for (a = 1; a <= c; a++) v[a] = vals[key, a] + 0
			for (a = 2; a <= c; a++) for (b = a; b > 1 && v[b-1] > v[b]; b--) { t = v[b]; v[b] = v[b-1]; v[b-1] = t }
			med = (c % 2) ? v[(c+1)/2] : (v[c/2] + v[c/2+1]) / 2
			line = line sprintf((med >= 1000 || med == int(med)) ? "  %.0f %s" : "  %.4g %s", med, us[j])
		}
		print line
	}
}'

# benchstat's view (binary units, B/s as MiB/GiB), when it is installed:
# go install golang.org/x/perf/cmd/benchstat@latest
benchstat=$(command -v benchstat || true)
if [ -z "$benchstat" ] && [ -x "$(go env GOPATH)/bin/benchstat" ]; then
	benchstat="$(go env GOPATH)/bin/benchstat"
fi
if [ -n "$benchstat" ]; then
	for f in "${files[@]}"; do echo; "$benchstat" "$f"; done
fi
