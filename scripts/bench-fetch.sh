#!/usr/bin/env bash
# bench-fetch.sh — the broker's three fetch paths side by side, the ones the
# zero-copy literature compares: sendfile (the default), mmap (write(2)
# straight from a mapping of the segment) and copy (pread(2) into a buffer,
# then write(2)); and a fourth, tls: the same broker (fetch path sendfile)
# read through an SSL listener, where record bytes are encrypted in user
# space by crypto/tls (consumer.SendBuffered; no kTLS). For each, with 1
# and 8 concurrent consumers: fetch
# throughput and the broker's CPU per GB fetched. Then the bare loops of
# consumer/sendfile_bench_test.go, the same three ways with no broker and no
# Kafka: the machine's ceiling for each.
#
#   scripts/bench-fetch.sh
#
# Environment: RUNS (default 3) runs; RECORDS (default 20000000 records of
# 100 bytes, about 2.2 GB of fetch responses per read) in the topic every
# read takes whole; OUT (default $TMPDIR/runnel-bench-fetch) for the
# broker's data and log, the raw results (fetch.json, one JSON object a
# line) and report.md; PORT (19092), TLS_PORT (19093, the SSL listener) and
# METRICS_PORT (19644) for the broker. The tls path needs openssl (for a
# throwaway CA and broker certificate under OUT).
#
# The topic, 8 partitions, is written once. The broker is then restarted on
# the same data with each fetch path in turn, so every path reads the same
# bytes. Nothing is dropped from the page cache: every read is served from
# memory (the topic must fit in RAM), which is what the CPU comparison
# wants. Within a run the paths take turns, in an order that rotates from
# run to run, and each ratio to sendfile is taken within one run. The broker
# and the clients share the machine: run it on a quiet one.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-20000000}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench-fetch}
PORT=${PORT:-19092}
METRICS_PORT=${METRICS_PORT:-19644}
TLS_PORT=${TLS_PORT:-19093}
BROKERS=127.0.0.1:$PORT
TOPIC=fetch
PATHS=(sendfile mmap copy tls)
CONSUMERS=(1 8)

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
go build -o "$OUT/runnel" ./cmd/runnel
R="$OUT/runnel"
TCK=$(getconf CLK_TCK)
JSON="$OUT/fetch.json"
TSV="$OUT/broker.tsv" # run, path, consumers, MB/s, CPU s/GB: for the medians
CMDS="$OUT/commands.sh"
: >"$JSON"
: >"$TSV"
: >"$CMDS"

# logged CMD...: note the command for report.md, exactly as it is run,
# quoted for sh where it needs to be.
logged() {
	local a q=\' words=()
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then
			words+=("$a")
		else
			words+=("$q${a//$q/$q\\$q$q}$q")
		fi
	done
	printf '%s\n' "${words[*]}" >>"$CMDS"
}

# shellcheck source=scripts/lib-broker.sh
source scripts/lib-broker.sh # the working directory is the repository

# A CA and a broker certificate for the tls path.
TLS_DIR="$OUT/tls"
mkdir -p "$TLS_DIR"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
	-keyout "$TLS_DIR/ca-key.pem" -out "$TLS_DIR/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=broker" \
	-keyout "$TLS_DIR/server-key.pem" -out "$TLS_DIR/server.csr" 2>/dev/null
openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca-key.pem" -days 2 \
	-out "$TLS_DIR/server.pem" -extfile <(printf "subjectAltName=IP:127.0.0.1") 2>/dev/null

# start_broker PATH: a broker on $OUT/data, ready when it answers. PATH tls
# is the sendfile broker with an SSL listener beside the plaintext one.
start_broker() {
	local cmd=("$R" serve --data-dir "$OUT/data" --metrics-listen "127.0.0.1:$METRICS_PORT" --fsync always)
	if [ "$1" = tls ]; then
		cmd+=(--listeners "PLAINTEXT://$BROKERS,SSL://127.0.0.1:$TLS_PORT" --fetch-path sendfile
			--tls-cert-file "$TLS_DIR/server.pem" --tls-key-file "$TLS_DIR/server-key.pem")
	else
		cmd+=(--listen "$BROKERS" --fetch-path "$1")
	fi
	logged "${cmd[@]}"
	"${cmd[@]}" >>"$OUT/broker.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 200); do
		if "$R" topic list --brokers "$BROKERS" >/dev/null 2>&1; then
			return
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	echo "broker did not start; see $OUT/broker.log" >&2
	exit 1
}

# cpu_ticks: user plus system CPU ticks the broker has used, all threads.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

# metric NAME: the value of an unlabelled counter of the broker.
metric() {
	curl -fs "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v n="$1" '$1 == n {printf "%.0f\n", $2; found = 1} END {if (!found) print 0}'
}

field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "== $(date -u +%FT%TZ) $(git describe --always --dirty) $(go version | cut -d' ' -f3) $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
header="$(date -u '+%F %H:%M UTC'), \`$(git describe --always --dirty)\`, $(go version | cut -d' ' -f3), $(uname -sr), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg) at the start; RUNS=$RUNS, RECORDS=$RECORDS"

# Fill the topic once.
start_broker sendfile
cmd=("$R" bench produce --brokers "$BROKERS" --topic "$TOPIC" --partitions 8 --records "$RECORDS" --json)
logged "${cmd[@]}"
"${cmd[@]}" | tail -1 | sed 's/^/{"kind":"fill","client":/; s/$/}/' | tee -a "$JSON" >&2

for run in $(seq 1 "$RUNS"); do
	# Rotate the order: sendfile first in run 1, mmap first in run 2, ...
	for i in "${!PATHS[@]}"; do
		path=${PATHS[$(((i + run - 1) % ${#PATHS[@]}))]}
		stop_broker
		start_broker "$path"
		for c in "${CONSUMERS[@]}"; do
			cmd=("$R" bench consume --brokers "$BROKERS" --topic "$TOPIC" --consumers "$c" --json)
			if [ "$path" = tls ]; then
				cmd=("$R" bench consume --brokers "127.0.0.1:$TLS_PORT" --tls-ca-file "$TLS_DIR/ca.pem"
					--topic "$TOPIC" --consumers "$c" --json)
			fi
			logged "${cmd[@]}"
			b0=$(metric runnel_bytes_out_total)
			s0=$(metric runnel_fetch_sendfile_bytes_total)
			k0=$(metric runnel_fetch_copied_bytes_total)
			e0=$(metric runnel_fetch_tls_bytes_total)
			t0=$(cpu_ticks)
			client=$("${cmd[@]}" 2>>"$OUT/consume.log" | tail -1)
			t1=$(cpu_ticks)
			b1=$(metric runnel_bytes_out_total)
			s1=$(metric runnel_fetch_sendfile_bytes_total)
			k1=$(metric runnel_fetch_copied_bytes_total)
			e1=$(metric runnel_fetch_tls_bytes_total)
			# The mmap path has no counter of its own on /metrics: it shows
			# as neither of the other two moving.
			sent=$((s1 - s0))
			copied=$((k1 - k0))
			sealed=$((e1 - e0))
			case $path in
			sendfile) ok=$((sent > 0 && copied == 0 && sealed == 0)) ;;
			mmap) ok=$((sent == 0 && copied == 0 && sealed == 0)) ;;
			copy) ok=$((copied > 0 && sent == 0 && sealed == 0)) ;;
			tls) ok=$((sealed > 0 && sent == 0)) ;;
			esac
			if [ "$ok" != 1 ]; then
				echo "fetch path $path: $sent record bytes by sendfile, $copied copied, $sealed through TLS: not the path asked for" >&2
				exit 1
			fi
			dur=$(field duration_seconds <<<"$client")
			read -r cpu mbs gb < <(awk -v t="$((t1 - t0))" -v hz="$TCK" -v b="$((b1 - b0))" -v d="$dur" \
				'BEGIN {cpu = t / hz; printf "%.2f %.1f %.4f\n", cpu, b / 1e6 / d, cpu / (b / 1e9)}')
			printf '%d\t%s\t%d\t%s\t%s\n' "$run" "$path" "$c" "$mbs" "$gb" >>"$TSV"
			printf '{"kind":"broker","run":%d,"path":"%s","consumers":%d,"response_bytes":%d,"broker_cpu_seconds":%s,"cpu_seconds_per_gb":%s,"mb_per_second":%s,"sendfile_bytes":%d,"copied_bytes":%d,"client":%s}\n' \
				"$run" "$path" "$c" "$((b1 - b0))" "$cpu" "$gb" "$mbs" "$sent" "$copied" "$client" >>"$JSON"
			printf 'run %d  %-8s %d consumer(s): %8s MB/s  %s broker CPU s/GB\n' "$run" "$path" "$c" "$mbs" "$gb" >&2
		done
	done
done
stop_broker

# Produce over TLS against plaintext, on the tls broker: PRODUCE_RECORDS
# records of 1 KiB to a topic of 8 partitions from 4 producers, plaintext
# and SSL taking turns, a new topic each time.
PRODUCE_RECORDS=${PRODUCE_RECORDS:-$((RECORDS / 20))}
PTSV="$OUT/produce.tsv" # run, listener, MB/s, CPU s/GB
: >"$PTSV"
start_broker tls
for run in $(seq 1 "$RUNS"); do
	for l in plaintext tls; do
		conn=(--brokers "$BROKERS")
		if [ "$l" = tls ]; then conn=(--brokers "127.0.0.1:$TLS_PORT" --tls-ca-file "$TLS_DIR/ca.pem"); fi
		cmd=("$R" bench produce "${conn[@]}" --topic "produce-$l-$run" --partitions 8 --producers 4
			--record-size 1024 --records "$PRODUCE_RECORDS" --json)
		logged "${cmd[@]}"
		b0=$(metric runnel_bytes_in_total)
		t0=$(cpu_ticks)
		client=$("${cmd[@]}" 2>>"$OUT/produce.log" | tail -1)
		t1=$(cpu_ticks)
		b1=$(metric runnel_bytes_in_total)
		dur=$(field duration_seconds <<<"$client")
		read -r cpu mbs gb < <(awk -v t="$((t1 - t0))" -v hz="$TCK" -v b="$((b1 - b0))" -v d="$dur" \
			'BEGIN {cpu = t / hz; printf "%.2f %.1f %.4f\n", cpu, b / 1e6 / d, cpu / (b / 1e9)}')
		printf '%d\t%s\t%s\t%s\n' "$run" "$l" "$mbs" "$gb" >>"$PTSV"
		printf '{"kind":"produce","run":%d,"listener":"%s","request_bytes":%d,"broker_cpu_seconds":%s,"cpu_seconds_per_gb":%s,"mb_per_second":%s,"client":%s}\n' \
			"$run" "$l" "$((b1 - b0))" "$cpu" "$gb" "$mbs" "$client" >>"$JSON"
		printf 'run %d  produce over %-9s %8s MB/s  %s broker CPU s/GB\n' "$run" "$l" "$mbs" "$gb" >&2
	done
done
stop_broker

# The bare loops: no broker running.
cmd=(go test -run '^$' -bench 'BareSendfile|BareReadWrite|BareMmapWrite' -count="$RUNS" ./consumer/)
logged "${cmd[@]}"
"${cmd[@]}" | tee "$OUT/bare.txt" >&2
awk '/^BenchmarkBare/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	n[name]++
	printf "{\"kind\":\"bare\",\"bench\":\"%s\",\"count\":%d,\"iterations\":%d", name, n[name], $2
	for (i = 3; i < NF; i += 2) {
		u = $(i + 1)
		if (u == "ns/op") u = "ns_per_op"
		else if (u == "MB/s") u = "mb_per_second"
		else {sub(/-cpu-s\/GB$/, "_cpu_seconds_per_gb", u); gsub(/[^A-Za-z0-9]+/, "_", u)}
		printf ",\"%s\":%s", u, $i
	}
	print "}"
}' "$OUT/bare.txt" >>"$JSON"

# ---- report ----

# broker_median COLUMN PATH CONSUMERS: median over the runs.
broker_median() { awk -F'\t' -v col="$1" -v p="$2" -v c="$3" '$2 == p && $3 == c {print $col}' "$TSV" | median; }
# broker_ratio COLUMN PATH CONSUMERS: median of the per-run ratios to sendfile.
broker_ratio() {
	awk -F'\t' -v col="$1" -v p="$2" -v c="$3" '
		$3 == c && $2 == "sendfile" {s[$1] = $col}
		$3 == c && $2 == p {v[$1] = $col}
		END {for (r in v) if ((r in s) && s[r] > 0) print v[r] / s[r]}' "$TSV" | median
}
# bare_median BENCH UNIT: median of a bare loop's figure.
bare_median() { awk -v b="Benchmark$1" -v u="$2" 'index($1, b "-") == 1 {for (i = 3; i < NF; i++) if ($(i + 1) == u) print $i}' "$OUT/bare.txt" | median; }

# cpu_ticks_range: the fewest and most CPU ticks the broker spent on one read.
cpu_ticks_range() {
	awk -F'"broker_cpu_seconds":' -v hz="$TCK" 'NF > 1 {split($2, a, ","); t = a[1] * hz
		if (n++ == 0 || t < lo) lo = t; if (t > hi) hi = t} END {printf "%.0f–%.0f", lo, hi}' "$JSON"
}
bytes_per_read=$(awk -F'"response_bytes":' 'NF > 1 {split($2, a, ","); print a[1]}' "$JSON" | median)
{
	echo "### Fetch paths: \`scripts/bench-fetch.sh\`"
	echo
	echo "$header."
	echo
	echo "Broker: \`runnel serve --fetch-path PATH\`, one topic of 8 partitions written once and read whole"
	echo "by every measurement ($(awk -v b="$bytes_per_read" 'BEGIN {printf "%.2f", b / 1e9}') GB of fetch responses per read), from the page cache"
	echo "(nothing dropped). Medians of $RUNS run(s); \"× sendfile\" is the median of the per-run ratios to"
	echo "sendfile with the same number of consumers in the same run. MB/s: fetch-response bytes (10^6)"
	echo "the broker wrote per second of the client's read. CPU: the broker's user+system time"
	echo "(\`/proc/PID/stat\`, all threads) over the whole \`bench consume\` command, per 10^9 response bytes;"
	echo "it is read in clock ticks of 1/$TCK s, $(cpu_ticks_range) ticks per read here."
	echo
	echo "| path | consumers | MB/s | × sendfile | broker CPU s/GB | × sendfile |"
	echo "|---|---:|---:|---:|---:|---:|"
	for c in "${CONSUMERS[@]}"; do
		for path in "${PATHS[@]}"; do
			printf '| %s | %d | %.0f | %.2f | %.3f | %.2f |\n' "$path" "$c" \
				"$(broker_median 4 "$path" "$c")" "$(broker_ratio 4 "$path" "$c")" \
				"$(broker_median 5 "$path" "$c")" "$(broker_ratio 5 "$path" "$c")"
		done
	done
	echo
	echo "Produce on the tls broker: \`bench produce\` of $PRODUCE_RECORDS records of 1 KiB to a new topic of 8 partitions"
	echo "from 4 producers, over the plaintext listener and over the SSL one in turn. MB/s: request bytes (10^6)"
	echo "the broker read per second of the client's run; CPU as above, per 10^9 request bytes; \"× plaintext\""
	echo "is the median of the per-run ratios."
	echo
	echo "| listener | MB/s | × plaintext | broker CPU s/GB | × plaintext |"
	echo "|---|---:|---:|---:|---:|"
	for l in plaintext tls; do
		pm() { awk -F'\t' -v col="$1" -v l="$l" '$2 == l {print $col}' "$PTSV" | median; }
		pr() {
			awk -F'\t' -v col="$1" -v l="$l" '$2 == "plaintext" {s[$1] = $col} $2 == l {v[$1] = $col}
				END {for (r in v) if ((r in s) && s[r] > 0) print v[r] / s[r]}' "$PTSV" | median
		}
		printf '| %s | %.0f | %.2f | %.3f | %.2f |\n' "$l" "$(pm 3)" "$(pr 3)" "$(pm 4)" "$(pr 4)"
	done
	echo
	echo "Bare loops, no broker (\`consumer/sendfile_bench_test.go\`): a 64 MiB file in the page cache sent"
	echo "over and over to a blocking loopback TCP socket whose reader discards. Medians of $RUNS count(s);"
	echo "\"×\" is the ratio of medians (go test runs each benchmark's counts one after another)."
	echo "Sender CPU: the sending thread alone (RUSAGE_THREAD), the figure to set beside the broker's;"
	echo "process CPU: sender, reader and Go runtime together (RUSAGE_SELF)."
	echo
	echo "| way | MB/s | × sendfile | sender CPU s/GB | × sendfile | process CPU s/GB |"
	echo "|---|---:|---:|---:|---:|---:|"
	s_mbs=$(bare_median BareSendfileLoopback MB/s)
	s_cpu=$(bare_median BareSendfileLoopback sender-cpu-s/GB)
	for way in "sendfile BareSendfileLoopback" "mmap+write BareMmapWriteLoopback" "read+write BareReadWriteLoopback"; do
		read -r name bench <<<"$way"
		mbs=$(bare_median "$bench" MB/s)
		cpu=$(bare_median "$bench" sender-cpu-s/GB)
		printf '| %s | %.0f | %.2f | %.3f | %.2f | %.3f |\n' "$name" "$mbs" \
			"$(awk -v a="$mbs" -v b="$s_mbs" 'BEGIN {print a / b}')" "$cpu" \
			"$(awk -v a="$cpu" -v b="$s_cpu" 'BEGIN {print a / b}')" "$(bare_median "$bench" process-cpu-s/GB)"
	done
	echo
	echo "Commands, each distinct one once, in the order first run (serve and consume ran once per path in every run):"
	echo
	echo '```sh'
	echo "RUNS=$RUNS RECORDS=$RECORDS OUT=$OUT scripts/bench-fetch.sh"
	awk '!seen[$0]++' "$CMDS"
	echo '```'
} >"$OUT/report.md"

echo >&2
cat "$OUT/report.md"
