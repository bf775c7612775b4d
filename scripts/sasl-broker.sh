#!/usr/bin/env bash
# sasl-broker.sh — one broker with a PLAINTEXT listener and a SASL_PLAINTEXT
# listener, for clients' own SASL tests: SCRAM-SHA-256, SCRAM-SHA-512 and
# PLAIN for the user franz (password franz-secret), data in $DATA_DIR
# (default ./data/sasl). It prints the environment franz-go's SCRAM tests
# (pkg/kgo TestSCRAMAuth, TestSCRAMAuthBadCredentials) read, e.g.
#
#   scripts/sasl-broker.sh &
#   cd franz-go/pkg/kgo && KGO_SEEDS=127.0.0.1:9092 \
#     KGO_TEST_SCRAM_SEEDS=127.0.0.1:9095 KGO_TEST_SCRAM=franz:franz-secret:512 \
#     go test -run 'TestSCRAM' .
#
# KAFKA_PORT and SASL_PORT move the listeners; other flags go to the broker.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-bin/runnel}
DATA_DIR=${DATA_DIR:-./data/sasl}
KAFKA_PORT=${KAFKA_PORT:-9092}
SASL_PORT=${SASL_PORT:-9095}

echo "KGO_SEEDS=127.0.0.1:$KAFKA_PORT KGO_TEST_SCRAM_SEEDS=127.0.0.1:$SASL_PORT KGO_TEST_SCRAM=franz:franz-secret:512" >&2
exec "$BIN" serve --data-dir "$DATA_DIR" \
	--listeners "PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT" \
	--sasl-enabled-mechanisms SCRAM-SHA-512,SCRAM-SHA-256,PLAIN \
	--scram-user franz:SCRAM-SHA-512:franz-secret --scram-user franz:SCRAM-SHA-256:franz-secret "$@"
