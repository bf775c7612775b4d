package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/replica"
	"github.com/runnel-io/runnel/segment"
	"github.com/runnel-io/runnel/server"
)

func serve(args []string, stderr io.Writer) error {
	v, err := parseSettings(args, serveSettings, stderr)
	if err != nil {
		return err
	}
	logger, err := newLogger(v["log-level"], v["log-format"], stderr)
	if err != nil {
		return err
	}
	fsync, err := segment.ParseFsyncPolicy(v["fsync"])
	if err != nil {
		return err
	}
	path, err := consumer.ParsePath(v["fetch-path"])
	if err != nil {
		return err
	}
	ints := map[string]int64{}
	for _, k := range []string{"node-id", "default-partitions", "default-replication-factor", "max-request-bytes", "max-connections"} {
		n, err := strconv.ParseInt(v[k], 10, 32)
		if err != nil || n <= 0 {
			return fmt.Errorf("--%s: want a positive integer, got %q", k, v[k])
		}
		ints[k] = n
	}
	durs := map[string]time.Duration{}
	for _, k := range []string{"idle-timeout", "retention-check-interval", "shutdown-timeout",
		"group-min-session-timeout", "group-max-session-timeout", "offsets-retention", "offsets-retention-check-interval",
		"broker-session-timeout", "broker-heartbeat-interval", "replica-lag-time-max", "raft-election-timeout"} {
		d, err := time.ParseDuration(v[k])
		if err != nil || d <= 0 {
			return fmt.Errorf("--%s: want a positive duration such as 30s, got %q", k, v[k])
		}
		durs[k] = d
	}
	rebalanceDelay, err := time.ParseDuration(v["group-initial-rebalance-delay"])
	if err != nil || rebalanceDelay < 0 {
		return fmt.Errorf("--group-initial-rebalance-delay: want a duration of 0s or more, got %q", v["group-initial-rebalance-delay"])
	}
	leaderRebalance, err := time.ParseDuration(v["leader-rebalance-interval"])
	if err != nil || leaderRebalance < 0 {
		return fmt.Errorf("--leader-rebalance-interval: want a duration of 0s or more, got %q", v["leader-rebalance-interval"])
	}
	if ints["default-replication-factor"] > 1<<15-1 {
		return fmt.Errorf("--default-replication-factor: %d is too large", ints["default-replication-factor"])
	}
	if durs["broker-heartbeat-interval"] >= durs["broker-session-timeout"] {
		return fmt.Errorf("--broker-heartbeat-interval %v must be below --broker-session-timeout %v",
			durs["broker-heartbeat-interval"], durs["broker-session-timeout"])
	}
	if durs["group-min-session-timeout"] > durs["group-max-session-timeout"] {
		return fmt.Errorf("--group-min-session-timeout %v is above --group-max-session-timeout %v",
			durs["group-min-session-timeout"], durs["group-max-session-timeout"])
	}
	autoCreate, err := strconv.ParseBool(v["auto-create-topics"])
	if err != nil {
		return fmt.Errorf("--auto-create-topics: want true or false, got %q", v["auto-create-topics"])
	}
	nodeID := int32(ints["node-id"])
	// Metadata always goes through Raft. Without --voters this broker is
	// the only voter, with no Raft listener: the single-node case of the
	// same code.
	nodeOpts := cluster.NodeOptions{ID: nodeID, Logger: logger, Listen: v["raft-listen"]}
	if v["voters"] == "" {
		nodeOpts.Local = true
		nodeOpts.Voters = []cluster.Voter{{ID: nodeID, Addr: "local"}}
	} else if nodeOpts.Voters, err = cluster.ParseVoters(v["voters"]); err != nil {
		return fmt.Errorf("--voters: %w", err)
	}
	if len(nodeOpts.Voters) > 1 {
		nodeOpts.HeartbeatTimeout = durs["raft-election-timeout"]
		nodeOpts.ElectionTimeout = durs["raft-election-timeout"]
	}
	raftAddr := nodeOpts.Voters[0].Addr
	for _, vt := range nodeOpts.Voters {
		if vt.ID == nodeID {
			raftAddr = vt.Addr
		}
	}

	dataDir := v["data-dir"]
	start := time.Now()
	nodeOpts.Dir = filepath.Join(dataDir, "meta")
	node, err := cluster.StartNode(nodeOpts)
	if err != nil {
		return err
	}
	defer node.Close()
	kafkaAddr := v["advertise"]
	if kafkaAddr == "" {
		kafkaAddr = v["listen"]
	}
	rctx, rcancel := context.WithTimeout(context.Background(), durs["shutdown-timeout"]+time.Minute)
	_, err = node.Propose(rctx, cluster.CmdRegisterBroker, cluster.RegisterBroker{ID: nodeID, Addr: kafkaAddr, RaftAddr: raftAddr})
	rcancel()
	if err != nil {
		return fmt.Errorf("registering broker %d with the Raft quorum: %w", nodeID, err)
	}
	meta := cluster.NewMeta(node)
	syncLatency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "runnel_fsync_duration_seconds", Help: "Time each fdatasync of a partition's log took.",
		Buckets: prometheus.ExponentialBuckets(20e-6, 2, 18)})
	parts, err := partition.OpenManager(partition.Options{DataDir: dataDir, Fsync: fsync, Logger: logger, NodeID: nodeID,
		ObserveSync: func(d time.Duration) { syncLatency.Observe(d.Seconds()) }})
	if err != nil {
		return err
	}
	defer parts.Close()
	replicas := replica.New(replica.Options{NodeID: nodeID, Parts: parts, Node: node, MaxLag: durs["replica-lag-time-max"], Logger: logger})
	defer replicas.Close()
	if err := replicas.Reconcile(); err != nil {
		return fmt.Errorf("opening this broker's replicas: %w", err)
	}

	groups, err := group.New(group.Config{
		MinSessionTimeout:      durs["group-min-session-timeout"],
		MaxSessionTimeout:      durs["group-max-session-timeout"],
		InitialRebalanceDelay:  rebalanceDelay,
		OffsetsRetention:       durs["offsets-retention"],
		RetentionCheckInterval: durs["offsets-retention-check-interval"],
		PartitionExists: func(topic string, p int32) bool {
			t, ok := meta.Topic(topic)
			return ok && p >= 0 && p < t.Partitions
		},
		Logger: logger,
	}, cluster.NewRaftOffsets(node))
	if err != nil {
		return err
	}
	defer groups.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := server.NewMetrics(reg)
	reg.MustRegister(newStorageCollector(parts), syncLatency)
	srv := server.New(server.Config{
		NodeID:            int32(ints["node-id"]),
		Advertise:         v["advertise"],
		MaxRequestBytes:   int32(ints["max-request-bytes"]),
		MaxConnections:    int(ints["max-connections"]),
		IdleTimeout:       durs["idle-timeout"],
		AutoCreateTopics:  autoCreate,
		DefaultPartitions: int32(ints["default-partitions"]),
		FetchPath:         path,
		Logger:            logger,
		Metrics:           metrics,

		DefaultReplicationFactor: int16(ints["default-replication-factor"]),
	}, parts, meta, groups, replicas)

	var ready atomic.Bool
	if addr := v["metrics-listen"]; addr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !ready.Load() {
				http.Error(w, "not ready\n", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ready\n")
		})
		mln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(mln)
		defer hs.Close()
	}

	// The Kafka port opens only now, with every partition recovered.
	ln, err := net.Listen("tcp", v["listen"])
	if err != nil {
		return fmt.Errorf("kafka listener: %w", err)
	}
	ready.Store(true)
	logger.Info("runnel serving", "listen", ln.Addr().String(), "data_dir", dataDir, "fsync", fsync.String(),
		"fetch_path", path.String(), "topics", len(meta.Topics()), "startup", time.Since(start))

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go parts.RunRetention(ctx, durs["retention-check-interval"])
	replicas.Start()
	go node.RunController(ctx, cluster.ControllerOptions{SessionTimeout: durs["broker-session-timeout"],
		HeartbeatInterval: durs["broker-heartbeat-interval"], LeaderRebalanceInterval: leaderRebalance})
	go followCoordinator(ctx, node, groups, logger)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case sig := <-sigs:
		logger.Info("shutting down", "signal", sig.String())
	case err := <-errc:
		if err != nil {
			logger.Error("listener failed", "err", err)
		}
	}
	ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), durs["shutdown-timeout"])
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("shutdown timed out; closing connections", "err", err)
	}
	// Hand the controller and the groups to another broker first, so
	// clients find them there at once instead of after an election.
	if err := node.TransferLeadership(); err != nil {
		logger.Warn("handing over the Raft leadership failed; the others will elect a leader", "err", err)
	}
	stop()
	groups.Close()
	replicas.Close()
	if err := node.Close(); err != nil {
		return fmt.Errorf("closing the Raft node: %w", err)
	}
	if err := parts.Close(); err != nil {
		return fmt.Errorf("closing partitions: %w", err)
	}
	logger.Info("stopped cleanly")
	return nil
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, errors.New("--log-format: want text or json")
}

// storageCollector reports per-partition log figures at scrape time.
type storageCollector struct {
	parts      *partition.Manager
	leo, hw    *prometheus.Desc
	size, segs *prometheus.Desc
	partitions *prometheus.Desc
	sent, cp   *prometheus.Desc
	mapped     *prometheus.Desc
}

func newStorageCollector(parts *partition.Manager) *storageCollector {
	l := []string{"topic", "partition"}
	return &storageCollector{parts: parts,
		leo:        prometheus.NewDesc("runnel_log_end_offset", "Next offset to be assigned.", l, nil),
		hw:         prometheus.NewDesc("runnel_high_watermark", "Offset below which consumers may read.", l, nil),
		size:       prometheus.NewDesc("runnel_log_size_bytes", "Bytes held by the partition's segments.", l, nil),
		segs:       prometheus.NewDesc("runnel_log_segments", "Segments of the partition.", l, nil),
		partitions: prometheus.NewDesc("runnel_partitions", "Partitions hosted.", nil, nil),
		sent:       prometheus.NewDesc("runnel_fetch_sendfile_bytes_total", "Record bytes sent to consumers with sendfile.", nil, nil),
		cp:         prometheus.NewDesc("runnel_fetch_copied_bytes_total", "Record bytes sent to consumers through the copy path.", nil, nil),
		mapped:     prometheus.NewDesc("runnel_fetch_mapped_bytes_total", "Record bytes sent to consumers by writing from a mapping of the segment (fetch path mmap).", nil, nil),
	}
}

func (c *storageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leo, c.hw, c.size, c.segs, c.partitions, c.sent, c.cp, c.mapped} {
		ch <- d
	}
}

func (c *storageCollector) Collect(ch chan<- prometheus.Metric) {
	ps := c.parts.Partitions()
	ch <- prometheus.MustNewConstMetric(c.partitions, prometheus.GaugeValue, float64(len(ps)))
	ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(consumer.SentfileBytes.Load()))
	ch <- prometheus.MustNewConstMetric(c.cp, prometheus.CounterValue, float64(consumer.CopiedBytes.Load()))
	ch <- prometheus.MustNewConstMetric(c.mapped, prometheus.CounterValue, float64(consumer.MappedBytes.Load()))
	for _, p := range ps {
		lv := []string{p.Topic, strconv.Itoa(int(p.Index))}
		ch <- prometheus.MustNewConstMetric(c.leo, prometheus.GaugeValue, float64(p.LogEndOffset()), lv...)
		ch <- prometheus.MustNewConstMetric(c.hw, prometheus.GaugeValue, float64(p.HighWatermark()), lv...)
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(p.Log().Size()), lv...)
		ch <- prometheus.MustNewConstMetric(c.segs, prometheus.GaugeValue, float64(len(p.Log().Segments())), lv...)
	}
}

// followCoordinator keeps the group coordinator on the controller (the
// Raft leader): it leads the groups, reloading their committed offsets,
// while this node leads the quorum, and resigns them when it stops.
func followCoordinator(ctx context.Context, node *cluster.Node, groups *group.Coordinator, logger *slog.Logger) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		leading := node.IsLeader()
		if leading != groups.Coordinating() {
			if !leading {
				groups.Resign()
			} else if err := node.Barrier(ctx); err != nil {
				logger.Warn("catching up the Raft log before coordinating groups", "err", err)
			} else if err := groups.Lead(); err != nil {
				logger.Error("taking over the group coordinator", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
