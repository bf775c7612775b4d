# runnel — build, run and test. `make help` lists the targets.

SHELL         := /bin/bash
GO            ?= go
BIN           ?= bin/runnel
DATA_DIR      ?= ./data
STATICCHECK   ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME      ?= 30s
CHAOS_LOG     ?= chaos.log
BENCH_COUNT   ?= 5
# Packages with fuzz targets, as package:target pairs.
FUZZ_TARGETS  ?= ./segment:FuzzParseHeader ./segment:FuzzValidate ./segment:FuzzValidateRecords ./segment:FuzzRecoverSegment ./server:FuzzParseHeader ./server:FuzzDispatchDecode ./protocol:FuzzCheck ./compression:FuzzReader ./partition:FuzzFirstRecordAtOrAfter ./group:FuzzSubscribedTopics ./cluster:FuzzDecodeRaftLog ./cluster:FuzzFSMApply ./index:FuzzDecode ./partition:FuzzDecodeSideFiles ./segment:FuzzParseLogStart ./group/offsetsfmt:FuzzDecodeKey ./group/offsetsfmt:FuzzDecodeOffsetValue ./group/offsetsfmt:FuzzDecodeGroupValue ./coordinator/groups:FuzzLoaderReplay

.PHONY: help build run cluster secure-cluster powerloss bench-go bench-cluster bench-fetch bench-scale bench-restart bench-latency bench-nats bench-produce-peer bench-commits bench-txn bench-cleaner-p99 chaos compaction-soak test test-short bench bench-large bench-broker fuzz lint fmt vet staticcheck clean dashboards-check bench-fetch-sessions

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build the runnel binary into bin/
	$(GO) build -o $(BIN) ./cmd/runnel

run: build ## start a single-node broker (data in ./data, Kafka API on 127.0.0.1:9092)
	./$(BIN) serve --data-dir $(DATA_DIR)

cluster: build ## start three brokers on this machine (Kafka API on 127.0.0.1:9092-9094, data in ./data/cluster)
	DATA_DIR=$(DATA_DIR)/cluster BIN=$(BIN) scripts/cluster.sh

secure-cluster: build ## start three brokers with TLS everywhere: SASL_SSL clients on 127.0.0.1:9092-9094, SSL replication, Raft over TLS, ACLs (scripts/secure-cluster.sh)
	DATA_DIR=$(DATA_DIR)/secure-cluster BIN=$(BIN) scripts/secure-cluster.sh

test: ## run every test with the race detector
	$(GO) test -race -count=1 -timeout 15m ./...

powerloss: ## the full power-loss tests: a crash at every sync point, on the crash-simulating file system (internal/vfs)
	RUNNEL_POWERLOSS=full $(GO) test -race -count=1 -timeout 30m -run '^TestPowerLoss|^TestSyncFailure' -v ./segment/ ./partition/ 2>&1 | \
		grep --line-buffered -E '^\s*(--- |ok|FAIL|panic)|POWERLOSS|sync points failed'

dashboards-check: ## promtool check rules on ops/prometheus/alerts.yml, then every Grafana panel query and alert rule against a real Prometheus scraping a broker
	promtool check rules ops/prometheus/alerts.yml
	$(GO) test -race -count=1 -run '^TestDashboardsAndAlerts$$' -v ./test/

test-short: ## quick run without the race detector
	$(GO) test -count=1 -short ./...

bench: ## every benchmark script, then docs/benchmarks.md rewritten from the run (scripts/bench-all.sh; hours)
	scripts/bench-all.sh

bench-go: ## the Go benchmarks of every package (medians over BENCH_COUNT runs)
	$(GO) test -run='^$$' -bench=. -benchmem -count=$(BENCH_COUNT) -timeout 60m ./...

bench-large: ## the 1 GiB recovery and 10,000-partition benchmarks
	RUNNEL_BENCH_LARGE=1 $(GO) test -run='^$$' -bench='Large' -benchmem -count=3 -timeout 60m ./segment/

bench-broker: ## produce/consume/CPU-per-GB broker benchmarks (scripts/bench-broker.sh)
	scripts/bench-broker.sh

bench-cluster: ## replication throughput and failover benchmarks (scripts/bench-cluster.sh)
	scripts/bench-cluster.sh

bench-fetch: ## the three fetch paths and TLS with 1 and 8 consumers, produce over TLS against plaintext, and bare loops over loopback (scripts/bench-fetch.sh)
	scripts/bench-fetch.sh

bench-fetch-sessions: ## request bytes and broker CPU per fetch at 1,000 partitions, fetch sessions against none (scripts/bench-fetch-sessions.sh)
	scripts/bench-fetch-sessions.sh

bench-scale: ## one broker with 1 to 10,000 partitions: create, produce, RSS, open time (scripts/bench-scale.sh)
	scripts/bench-scale.sh

bench-restart: ## restart time after kill -9 with 10 GiB of log, warm and cold (scripts/bench-restart.sh)
	scripts/bench-restart.sh

bench-latency: ## end-to-end latency percentiles at fixed rates, and the chart (scripts/bench-latency.sh)
	scripts/bench-latency.sh

bench-nats: ## NATS JetStream as a peer, same loads (scripts/bench-nats.sh)
	scripts/bench-nats.sh

bench-txn: ## transactional produce at commit intervals of 10 ms, 100 ms and 1 s against idempotent, and read_committed fetch CPU (scripts/bench-txn.sh)
	scripts/bench-txn.sh

bench-commits: ## offset commits/s on __consumer_offsets against the Raft path of 3ca176a (before the move), one broker and three, 16 to 128 clients (scripts/bench-commits.sh)
	scripts/bench-commits.sh

bench-cleaner-p99: ## produce p99 while the log cleaner compacts a filled topic, against the same data left alone (scripts/bench-cleaner-p99.sh; about 5 minutes)
	scripts/bench-cleaner-p99.sh

bench-produce-peer: ## produce against franz-go's kfake as a same-run peer, runnel --fsync always and never (scripts/bench-produce-peer.sh; RECORDS scales it)
	scripts/bench-produce-peer.sh

chaos: ## the long fault campaign (kill -9 loops, cut and slow links, damaged and full disks); see docs/reliability.md
	set -o pipefail; RUNNEL_CHAOS=full $(GO) test -count=1 -timeout 120m -run '^TestChaos' -v ./test/ 2>&1 | \
		tee $(CHAOS_LOG) | grep --line-buffered -E '^\s*(--- |ok|FAIL|panic)|CHAOS |RUNNEL_CHAOS_SEED'

compaction-soak: ## the long log-compaction tests: the cleaner's model test over 40 seeds, and 40 kill -9 cycles while it cleans
	set -o pipefail; RUNNEL_COMPACTION_SOAK=1 $(GO) test -race -count=1 -timeout 30m -run '^TestCleanerModel$$' -v ./cleaner/ 2>&1 | \
		grep --line-buffered -E '^\s*(--- |ok|FAIL|panic)'
	set -o pipefail; RUNNEL_CHAOS=full $(GO) test -race -count=1 -timeout 60m -run '^TestChaosCompactionKill$$' -v ./test/ 2>&1 | \
		grep --line-buffered -E '^\s*(--- |ok|FAIL|panic)|CHAOS |RUNNEL_CHAOS_SEED'

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

lint: fmt vet staticcheck ## gofmt check, go vet, staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	cd bench/natspeer && $(GO) vet ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...

clean: ## remove build output (not ./data)
	rm -rf bin
