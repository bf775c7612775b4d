#!/usr/bin/env bash
# secure-cluster.sh — three brokers on this machine, as `make secure-cluster`
# runs them, with everything on TLS: clients on SASL_SSL (SCRAM-SHA-512) at
# 127.0.0.1:9092, 9093 and 9094; replication on SSL with the brokers'
# certificate at 9292-9294; Raft over TLS (--raft-tls) at 9192-9194;
# metrics at 9644-9646; ACLs on (--authorizer), with the SCRAM user admin
# a super user. Data in $DATA_DIR/1, /2 and /3 (default
# ./data/secure-cluster); on first start a CA, the brokers' certificate and
# a client certificate are made with openssl in $DATA_DIR/tls (ca.pem,
# broker.pem, broker-key.pem, client.pem, client-key.pem). Ctrl-C stops
# all three cleanly.
#
# ADMIN_PASSWORD (default admin-secret) is admin's password; any other
# flags are passed to every broker. KAFKA_PORT, BROKER_PORT, RAFT_PORT and
# METRICS_PORT move the first broker's ports (the others take the next two).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-bin/runnel}
DATA_DIR=${DATA_DIR:-./data/secure-cluster}
KAFKA_PORT=${KAFKA_PORT:-9092}
BROKER_PORT=${BROKER_PORT:-9292}
RAFT_PORT=${RAFT_PORT:-9192}
METRICS_PORT=${METRICS_PORT:-9644}
ADMIN_PASSWORD=${ADMIN_PASSWORD:-admin-secret}
VOTERS=1@127.0.0.1:$RAFT_PORT,2@127.0.0.1:$((RAFT_PORT + 1)),3@127.0.0.1:$((RAFT_PORT + 2))
TLS=$DATA_DIR/tls

if [ ! -f "$TLS/broker.pem" ]; then
	mkdir -p "$TLS"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
		-subj "/CN=runnel cluster CA" -keyout "$TLS/ca-key.pem" -out "$TLS/ca.pem" 2>/dev/null
	for who in broker client; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$who" \
			-keyout "$TLS/$who-key.pem" -out "$TLS/$who.csr" 2>/dev/null
		openssl x509 -req -in "$TLS/$who.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca-key.pem" -days 365 \
			-out "$TLS/$who.pem" -extfile <(printf "subjectAltName=DNS:localhost,IP:127.0.0.1") 2>/dev/null
		rm "$TLS/$who.csr"
	done
	chmod 600 "$TLS"/*-key.pem
fi

pids=()
stop() {
	trap - INT TERM EXIT
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

for i in 1 2 3; do
	"$BIN" serve --node-id "$i" --data-dir "$DATA_DIR/$i" --metrics-listen "127.0.0.1:$((METRICS_PORT + i - 1))" \
		--listeners "CLIENTS://127.0.0.1:$((KAFKA_PORT + i - 1)),BROKERS://127.0.0.1:$((BROKER_PORT + i - 1))" \
		--listener-security-protocol-map CLIENTS:SASL_SSL,BROKERS:SSL --inter-broker-listener BROKERS \
		--tls-cert-file "$TLS/broker.pem" --tls-key-file "$TLS/broker-key.pem" --tls-ca-file "$TLS/ca.pem" \
		--tls-client-auth request --sasl-enabled-mechanisms SCRAM-SHA-512 \
		--scram-user "admin:SCRAM-SHA-512:$ADMIN_PASSWORD" --authorizer --super-users User:admin \
		--raft-listen "127.0.0.1:$((RAFT_PORT + i - 1))" --voters "$VOTERS" --raft-tls \
		--default-replication-factor 3 "$@" > >(trap '' INT TERM; exec sed -u "s/^/[broker $i] /") 2>&1 &
	pids+=($!)
done
wait
