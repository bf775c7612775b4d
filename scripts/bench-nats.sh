#!/usr/bin/env bash
# bench-nats.sh — NATS JetStream as a peer of the single-node broker
# benchmarks: produce (100 B records, every acknowledgement awaited) to 1
# and 8 partitions, then consume the 8-partition topic with one client,
# against runnel serve and against nats-server with JetStream, alternating
# within each run, at two durability levels compared like with like:
#
#   always   runnel --fsync always   / JetStream sync_interval: always
#   default  runnel --fsync never    / JetStream's default sync_interval (2m)
#
# A topic of P partitions is P JetStream streams of one subject each, file
# storage, one replica (see bench/natspeer). Each server starts on a fresh
# data directory for each run, after a sync so that it does not pay for the
# other's write-back, and is stopped before the other starts; odd runs
# measure runnel first, even runs JetStream first. The consume runs read
# the 8-partition topic just produced.
#
#   scripts/bench-nats.sh
#
# Environment:
#   RUNS            runs of each measurement (default 3)
#   RECORDS         records per produce run at the default level (default
#                   1000000)
#   SYNC_RECORDS    records per produce run at the always level (default
#                   RECORDS / 10: JetStream syncs every message on its own)
#   RECORD_SIZE     value size in bytes (default 100)
#   WINDOW          JetStream PubAcks outstanding (default 0: as many records
#                   as runnel bench produce keeps in flight)
#   NATS_VERSION    nats-server module version (default v2.12.15)
#   OUT             binaries, data, logs and results (default
#                   $TMPDIR/runnel-bench-nats)
#   PORT            runnel's Kafka port (default 19292)
#   NATS_PORT, NATS_HTTP_PORT  nats-server's client and monitoring ports
#                   (default 14222, 18222)
#
# It writes one JSON line per measurement to $OUT/nats.json (the client's
# summary under "result", labelled with system, level, run and measure)
# and a markdown fragment to $OUT/report.md. Run it on a quiet machine: the
# servers and the clients share it.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
RECORDS=${RECORDS:-1000000}
SYNC_RECORDS=${SYNC_RECORDS:-$((RECORDS / 10))}
RECORD_SIZE=${RECORD_SIZE:-100}
WINDOW=${WINDOW:-0}
NATS_VERSION=${NATS_VERSION:-v2.12.15}
OUT=${OUT:-${TMPDIR:-/tmp}/runnel-bench-nats}
PORT=${PORT:-19292}
NATS_PORT=${NATS_PORT:-14222}
NATS_HTTP_PORT=${NATS_HTTP_PORT:-18222}
BROKERS=127.0.0.1:$PORT
NATS_URL=nats://127.0.0.1:$NATS_PORT

rm -rf "$OUT"
mkdir -p "$OUT/bin"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/commands.sh"
: >"$OUT/nats.json"

# note ARGS...: write the command to commands.sh, for the report.
note() {
	{
		printf '%q' "$1"
		printf ' %q' "${@:2}"
		printf '\n'
	} >>"$OUT/commands.sh"
}

note env GOBIN="$OUT/bin" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
GOBIN="$OUT/bin" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
note go build -o "$OUT/bin/runnel" ./cmd/runnel
go build -o "$OUT/bin/runnel" ./cmd/runnel
echo "(cd bench/natspeer && go build -o $(printf '%q' "$OUT/bin/natspeer") .)" >>"$OUT/commands.sh"
(cd bench/natspeer && go build -o "$OUT/bin/natspeer" .)
R=$OUT/bin/runnel
NATS=$OUT/bin/nats-server
PEER=$OUT/bin/natspeer
NATS_RELEASE=$("$NATS" --version)

# The JetStream configurations, one per level. Only sync_interval differs.
# max_pending (default 64 MiB) bounds what the server buffers for one client
# connection; the consume run's 8 consumers share one connection and may each
# have --pull-max-bytes (8 MiB) pulled, which at the default limit made the
# server cut the client off as a slow consumer in one run. 256 MiB leaves
# room for all of them.
for level in always default; do
	if [ "$level" = always ]; then
		sync_line='sync_interval: always  # fsync after every message written'
	else
		sync_line='# sync_interval not set: the default, an fsync every 2m'
	fi
	cat >"$OUT/nats-$level.conf" <<-EOF
		listen: 127.0.0.1:$NATS_PORT
		http: 127.0.0.1:$NATS_HTTP_PORT
		max_pending: 256MB
		jetstream {
		  store_dir: "$OUT/data-nats"
		  $sync_line
		}
	EOF
done

rpid=
npid=
stop_runnel() {
	if [ -n "$rpid" ]; then
		kill -TERM "$rpid" 2>/dev/null || true
		wait "$rpid" 2>/dev/null || true
		rpid=
	fi
}
stop_nats() {
	if [ -n "$npid" ]; then
		kill -TERM "$npid" 2>/dev/null || true
		wait "$npid" 2>/dev/null || true
		npid=
	fi
}
trap 'stop_runnel; stop_nats' EXIT

# start_runnel FSYNC: runnel serve on a fresh data directory, ready when it
# answers.
start_runnel() {
	rm -rf "$OUT/data-runnel"
	sync
	serve=(serve --data-dir "$OUT/data-runnel" --listen "$BROKERS" --metrics-listen '' --fsync "$1")
	[ "$run" -gt 1 ] || note "$R" "${serve[@]}"
	"$R" "${serve[@]}" >>"$OUT/runnel.log" 2>&1 &
	rpid=$!
	for _ in $(seq 1 200); do
		if "$R" topic list --brokers "$BROKERS" >/dev/null 2>&1; then
			return
		fi
		sleep 0.1
	done
	echo "runnel did not start; see $OUT/runnel.log" >&2
	exit 1
}

# start_nats LEVEL: nats-server with the LEVEL configuration on a fresh
# store, ready when JetStream answers its health check.
start_nats() {
	rm -rf "$OUT/data-nats"
	sync
	[ "$run" -gt 1 ] || note "$NATS" -c "$OUT/nats-$1.conf"
	"$NATS" -c "$OUT/nats-$1.conf" >>"$OUT/nats-server.log" 2>&1 &
	npid=$!
	for _ in $(seq 1 200); do
		if curl -sf "http://127.0.0.1:$NATS_HTTP_PORT/healthz?js-enabled-only=true" >/dev/null 2>&1; then
			return
		fi
		sleep 0.1
	done
	echo "nats-server did not start; see $OUT/nats-server.log" >&2
	exit 1
}

# measure SYSTEM MEASURE COMMAND...: run a client (noted on the first run),
# keep its summary in nats.json, labelled with the level and the run.
measure() {
	local system=$1 what=$2 out
	shift 2
	[ "$run" -gt 1 ] || note "$@"
	if ! out=$("$@" 2>>"$OUT/clients.log" | tail -1); then
		echo "$system $what failed ($level, run $run): $*" >&2
		tail -5 "$OUT/clients.log" >&2
		exit 1
	fi
	printf '{"system":"%s","level":"%s","run":%d,"measure":"%s","result":%s}\n' \
		"$system" "$level" "$run" "$what" "$out" | tee -a "$OUT/nats.json" >&2
}

bench_runnel() {
	if [ "$level" = always ]; then start_runnel always; else start_runnel never; fi
	for p in 1 8; do
		measure runnel "produce-p$p" "$R" bench produce --brokers "$BROKERS" --topic "produce-p$p" --partitions "$p" \
			--records "$n" --record-size "$RECORD_SIZE" --json
	done
	measure runnel consume-p8 "$R" bench consume --brokers "$BROKERS" --topic produce-p8 --json
	stop_runnel
}

window=()
[ "$WINDOW" -eq 0 ] || window=(--window "$WINDOW")

bench_nats() {
	start_nats "$level"
	for p in 1 8; do
		measure jetstream "produce-p$p" "$PEER" produce --server "$NATS_URL" --stream "produce-p$p" --partitions "$p" \
			--records "$n" --record-size "$RECORD_SIZE" "${window[@]}" --json
	done
	measure jetstream consume-p8 "$PEER" consume --server "$NATS_URL" --stream produce-p8 --json
	stop_nats
}

started="$(date -u +%FT%TZ) $(git rev-parse --short HEAD) $(go version | cut -d' ' -f3) $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $started; $NATS_RELEASE" >&2

for level in always default; do
	if [ "$level" = always ]; then n=$SYNC_RECORDS; else n=$RECORDS; fi
	for run in $(seq 1 "$RUNS"); do
		if [ $((run % 2)) -eq 1 ]; then
			bench_runnel
			bench_nats
		else
			bench_nats
			bench_runnel
		fi
	done
done

field() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }

median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# commas 1234567: 1,234,567
commas() { sed ':a; s/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/; ta'; }

# rates SYSTEM LEVEL MEASURE: records/s of each run, in run order.
rates() {
	grep -F "\"system\":\"$1\",\"level\":\"$2\"," "$OUT/nats.json" | grep -F "\"measure\":\"$3\"," |
		field records_per_second
}

# ratio: the first column over the second, per line.
ratio() { awk '{print $1 / $2}'; }

# sig3: a number to about three significant digits, with a ×.
sig3() { awk '{printf ($1 >= 100 ? "%.0f×\n" : $1 >= 10 ? "%.1f×\n" : "%.2f×\n"), $1}'; }

outstanding=$(grep -F '"system":"jetstream"' "$OUT/nats.json" | field window | head -1)
{
	echo "NATS JetStream ($NATS_RELEASE) beside \`runnel serve\`, measured in the same run,"
	echo "alternating (odd runs runnel first), each server on a fresh data directory"
	echo "and alone while measured; median of $RUNS run(s). runnel's clients are"
	echo "\`runnel bench\` (franz-go); JetStream's are \`bench/natspeer\` (nats.go): a"
	echo "topic of P partitions is P streams of one subject each, file storage, one"
	echo "replica; async publishes with at most $outstanding PubAcks outstanding, every"
	echo "PubAck awaited; consume with one ordered consumer per stream on one"
	echo "connection. $RECORD_SIZE B values. With \`sync_interval: always\` JetStream"
	echo "fsyncs after every message it writes, so that level runs fewer records"
	echo "(SYNC_RECORDS). Started $started."
	echo
	echo "| measure | durability | records | runnel (records/s) | JetStream (records/s) | runnel / JetStream |"
	echo "|---|---|---:|---:|---:|---:|"
	for level in always default; do
		if [ "$level" = always ]; then
			n=$SYNC_RECORDS
			label="runnel \`--fsync always\`, JetStream \`sync_interval: always\`"
		else
			n=$RECORDS
			label="runnel \`--fsync never\`, JetStream default (\`sync_interval\` 2m)"
		fi
		for m in produce-p1 produce-p8 consume-p8; do
			case $m in
			produce-p1) what='produce, 1 partition (1 stream)' ;;
			produce-p8) what='produce, 8 partitions (8 streams)' ;;
			consume-p8) what='consume, 8 partitions (8 streams), 1 client' ;;
			esac
			printf '| %s | %s | %s | %s | %s | %s |\n' "$what" "$label" "$(echo "$n" | commas)" \
				"$(rates runnel "$level" "$m" | median | xargs printf '%.0f' | commas)" \
				"$(rates jetstream "$level" "$m" | median | xargs printf '%.0f' | commas)" \
				"$(paste <(rates runnel "$level" "$m") <(rates jetstream "$level" "$m") | ratio | median | sig3)"
		done
	done
	echo
	echo "Ratios are runnel / JetStream per run, then the median. Every run, records/s, runnel / JetStream:"
	echo
	echo "| durability | run | produce, 1 partition | produce, 8 partitions | consume, 8 partitions |"
	echo "|---|---:|---:|---:|---:|"
	for level in always default; do
		for run in $(seq 1 "$RUNS"); do
			printf '| %s | %d' "$level" "$run"
			for m in produce-p1 produce-p8 consume-p8; do
				printf ' | %s / %s' \
					"$(rates runnel "$level" "$m" | sed -n "${run}p" | xargs printf '%.0f' | commas)" \
					"$(rates jetstream "$level" "$m" | sed -n "${run}p" | xargs printf '%.0f' | commas)"
			done
			printf ' |\n'
		done
	done
	for level in always default; do
		echo
		echo "nats-server configuration, $level:"
		echo
		echo '```'
		cat "$OUT/nats-$level.conf"
		echo '```'
	done
	echo
	echo "Commands (run 1; later runs the same, the order of the two servers swapped on even runs):"
	echo
	echo '```sh'
	cat "$OUT/commands.sh"
	echo '```'
} >"$OUT/report.md"

cat "$OUT/report.md"
