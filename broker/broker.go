// Package broker assembles one runnel broker from its parts: the Raft node
// that replicates cluster metadata, the partition manager, the replica
// manager, the group coordinator, the Kafka listeners and the metrics and
// health endpoints. It owns their start-up order, the background loops that
// tie them together, and the orderly shutdown; `runnel serve` is a thin
// front end that turns flags, RUNNEL_* variables and a config file into a
// Config. Tests run brokers in-process with it.
//
// # Life cycle
//
// New validates the Config and opens everything, in this order:
//
//  1. raise the soft RLIMIT_NOFILE to the hard limit, so that a broker can
//     always reopen the partitions it already holds;
//  2. open the TLS certificate store (when TLS files are given) and bind
//     the Kafka listeners whose port is 0;
//  3. start the Raft node over DataDir/meta and register this broker with
//     the quorum under every listener's advertised address;
//  4. open and recover every partition under DataDir (partition.Manager);
//  5. open this broker's replicas as the metadata assigns them
//     (replica.Manager.Reconcile);
//  6. create the group coordinator and the Kafka server;
//  7. bind and serve the metrics listener (/readyz answers 503 until Run);
//  8. bind the other Kafka listeners, now that every partition is
//     recovered.
//
// Any error releases what the earlier steps opened, in reverse order.
//
// Run starts retention, the log cleaner, replication, the controller loop (heartbeats, and
// on the Raft leader, fencing and leader rebalancing) and the loop that
// keeps the group coordinator on the Raft leader, then accepts Kafka
// connections until its context ends or the listener fails. It then shuts
// down: stops accepting, waits up to ShutdownTimeout for in-flight
// requests, hands the Raft leadership to another voter, stops the loops
// and closes the groups, replicas, Raft node and partitions in that order.
//
// Close releases everything; while Run is running it ends Run and waits
// for its shutdown. It is idempotent.
package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/runnel-io/runnel/cleaner"
	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/coordinator/groups"
	"github.com/runnel-io/runnel/coordinator/txns"
	"github.com/runnel-io/runnel/internal/certstore"
	"github.com/runnel-io/runnel/internal/quota"
	"github.com/runnel-io/runnel/internal/sasl"
	"github.com/runnel-io/runnel/internal/throttle"
	"github.com/runnel-io/runnel/lag"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/replica"
	"github.com/runnel-io/runnel/server"
)

// Errors of the life cycle.
var (
	// ErrClosed is returned by Run after Close or after an earlier Run
	// has returned: a broker runs once.
	ErrClosed = errors.New("broker: closed")
	// ErrRunning is returned by a second Run.
	ErrRunning = errors.New("broker: already running")
)

// Broker is one running broker. Its methods are safe for concurrent use.
type Broker struct {
	cfg   Config
	log   *slog.Logger
	start time.Time

	node     *cluster.Node
	meta     *cluster.Meta
	parts    *partition.Manager
	replicas *replica.Manager
	groups   *groups.Service
	txns     *txns.Service
	cleaner  *cleaner.Cleaner
	// leaderThrottle and followerThrottle hold throttled replication
	// traffic to the replication rates.
	leaderThrottle, followerThrottle *throttle.Rate
	dyn                              dynamicConfigs
	lag                              *lag.Refresher
	isrs                             *isrWatch
	srv                              *server.Server
	lns                              []*boundListener   // the Kafka API, in the order of cfg.Listeners
	inter                            string             // the inter-broker listener's name
	certs                            *certstore.Store   // nil without TLS files
	oauth                            *sasl.JWTValidator // nil unless OAUTHBEARER is enabled
	mln                              net.Listener       // metrics; nil when off
	hs                               *http.Server
	httpDone                         chan struct{} // closed when hs.Serve returns
	ready                            atomic.Bool

	mu struct {
		sync.Mutex
		running bool
		closed  bool
		stopRun context.CancelFunc
		runDone chan struct{} // closed when Run returns
	}
	releaseOnce sync.Once
	releaseErr  error
}

// New validates cfg and opens a broker (see the package comment for the
// order). It never changes cfg. On error everything it opened is closed.
func New(cfg Config) (_ *Broker, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	logger := cfg.Logger
	b := &Broker{cfg: cfg, log: logger, start: time.Now()}
	defer func() {
		if err != nil {
			b.release()
		}
	}()
	raiseFileLimit(logger)

	plans, inter, err := cfg.listenerPlans()
	if err != nil {
		return nil, err
	}
	b.inter = inter
	if cfg.TLS.CertFile != "" {
		if b.certs, err = certstore.Open(certstore.Options{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile,
			CAFile: cfg.TLS.CAFile, ClientAuth: cfg.TLS.ClientAuth, Logger: logger}); err != nil {
			return nil, err
		}
	}
	if b.hasSASLPlan(plans) {
		if b.oauth, err = cfg.SASL.jwtValidator(); err != nil {
			return nil, err
		}
	}
	for _, p := range plans {
		l := &boundListener{listenerPlan: p}
		b.lns = append(b.lns, l)
		if _, port, perr := net.SplitHostPort(p.addr); perr == nil && port == "0" {
			if err = l.bind(); err != nil {
				return nil, err
			}
		}
	}

	// Metadata always goes through Raft. Without Voters this broker is
	// the only voter, with no Raft listener: the single-node case of the
	// same code.
	nodeOpts := cluster.NodeOptions{ID: cfg.NodeID, Logger: logger, Listen: cfg.RaftListen, Listener: cfg.raftListener,
		Dir: filepath.Join(cfg.DataDir, "meta"), Voters: slices.Clone(cfg.Voters)}
	if cfg.RaftTLS {
		nodeOpts.TLS = &cluster.PeerTLS{Server: b.certs.PeerServerConfig(), Client: b.certs.ClientConfig}
	}
	if len(cfg.Voters) == 0 {
		nodeOpts.Local = true
		nodeOpts.Voters = []cluster.Voter{{ID: cfg.NodeID, Addr: "local"}}
	}
	if len(nodeOpts.Voters) > 1 {
		nodeOpts.HeartbeatTimeout = cfg.RaftElectionTimeout
		nodeOpts.ElectionTimeout = cfg.RaftElectionTimeout
	}
	raftAddr := cfg.RaftListen // an observer's: it is not among the voters
	if cfg.raftListener != nil {
		raftAddr = cfg.raftListener.Addr().String()
	}
	for _, vt := range nodeOpts.Voters {
		if vt.ID == cfg.NodeID {
			raftAddr = vt.Addr
		}
	}
	if b.node, err = cluster.StartNode(nodeOpts); err != nil {
		return nil, err
	}
	reg := cluster.RegisterBroker{ID: cfg.NodeID, RaftAddr: raftAddr, Rack: cfg.Rack}
	for _, l := range b.lns {
		adv := l.advertise
		if adv == "" {
			adv = l.addr // bound after recovery, at the address given
		}
		reg.Listeners = append(reg.Listeners, cluster.BrokerListener{Name: l.name, Addr: adv})
		if l.name == inter {
			reg.Addr = adv
		}
	}
	rctx, rcancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout+time.Minute)
	_, err = b.node.Propose(rctx, cluster.CmdRegisterBroker, reg)
	rcancel()
	if err != nil {
		return nil, fmt.Errorf("registering broker %d with the Raft quorum: %w", cfg.NodeID, err)
	}
	b.meta = cluster.NewMeta(b.node)
	if b.hasSASL() {
		// The users named at start exist before any client can connect.
		users, err := cfg.SASL.scramUsers()
		if err != nil {
			return nil, err
		}
		sctx, scancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout+time.Minute)
		err = createScramUsers(sctx, b.node, b.meta, users)
		scancel()
		if err != nil {
			return nil, fmt.Errorf("creating the --scram-user credentials: %w", err)
		}
	}

	syncLatency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "runnel_fsync_duration_seconds", Help: "Time each fdatasync of a partition's log took.",
		Buckets: prometheus.ExponentialBuckets(20e-6, 2, 18)})
	po := cfg.Partitions
	po.DataDir, po.NodeID, po.Logger = cfg.DataDir, cfg.NodeID, logger
	po.ObserveSync = func(d time.Duration) { syncLatency.Observe(d.Seconds()) }
	commitBatches := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "runnel_fsync_batches", Help: "Batches each flush of a partition's log made durable (group commit).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10)})
	po.ObserveGroupCommit = func(n int64) { commitBatches.Observe(float64(n)) }
	volumeSyncs := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "runnel_fsync_volume_duration_seconds", Help: "Time each sync of the whole data file system (syncfs), shared by the flushes of many partitions, took.",
		Buckets: prometheus.ExponentialBuckets(20e-6, 2, 18)})
	po.ObserveVolumeSync = func(d time.Duration) { volumeSyncs.Observe(d.Seconds()) }
	volumeFiles := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "runnel_fsync_volume_files", Help: "Partition files each shared sync of the data file system made durable.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10)})
	po.ObserveVolumeSyncFiles = func(n int) { volumeFiles.Observe(float64(n)) }
	if b.parts, err = partition.OpenManager(po); err != nil {
		return nil, err
	}

	b.groups = groups.New(groups.Options{Meta: b.meta, Parts: b.parts, Group: cfg.Groups, Logger: logger,
		Partitions: cfg.OffsetsTopic.Partitions, ReplicationFactor: cfg.OffsetsTopic.ReplicationFactor,
		SegmentBytes: cfg.OffsetsTopic.SegmentBytes, WriteTimeout: cfg.OffsetsTopic.CommitTimeout})

	ro := cfg.Replicas
	ro.NodeID, ro.Parts, ro.Node, ro.Logger = cfg.NodeID, b.parts, b.node, logger
	b.isrs = newISRWatch()
	if ib := b.listener(inter).protocol; ib.isTLS() || ib.isSASL() {
		dial := func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
		if ib.isTLS() {
			dial = tlsDialer(b.certs)
		}
		if ib.isSASL() {
			users, err := cfg.SASL.scramUsers()
			if err != nil {
				return nil, err
			}
			mech, err := cfg.SASL.interBrokerMechanism(users)
			if err != nil {
				return nil, err
			}
			dial = saslDialer(dial, mech)
		}
		ro.Dial = dial
	}
	// The transaction coordinators hand out producer ids from the
	// server's allocator, which exists once the server does, before any
	// request; they dial other brokers as the replicas do.
	b.txns = txns.New(txns.Options{Meta: b.meta, Parts: b.parts, NodeID: cfg.NodeID, Logger: logger,
		Partitions: cfg.Transactions.Partitions, ReplicationFactor: cfg.Transactions.ReplicationFactor,
		MaxTimeout: cfg.Transactions.MaxTimeout, IDExpiration: cfg.Transactions.IDExpiration,
		Dial: ro.Dial, AllocateProducerID: func() (int64, error) { return b.srv.AllocateProducerID() }})
	ro.Reconciled = func() {
		b.groups.Reconciled()
		b.txns.Reconciled()
		b.isrs.observe(b.parts.Partitions())
	}
	b.leaderThrottle = throttle.New(cfg.ReplicationThrottle.Leader)
	b.followerThrottle = throttle.New(cfg.ReplicationThrottle.Follower)
	ro.Throttle = b.followerThrottle
	b.replicas = replica.New(ro)
	b.dyn.static = staticBrokerConfigs(cfg)
	b.node.FSM().OnBrokerConfigsChanged(b.brokerConfigsChanged)
	if err = b.replicas.Reconcile(); err != nil {
		return nil, fmt.Errorf("opening this broker's replicas: %w", err)
	}
	co := cfg.Cleaner
	co.Logger, co.MaxDecompressedBatchBytes = logger, cfg.Partitions.MaxDecompressedBatchBytes
	if b.cleaner, err = cleaner.New(b.parts, co); err != nil {
		return nil, err
	}
	b.applyBrokerConfigs() // the cleaner's dynamic settings

	preg := prometheus.NewRegistry()
	preg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sc := cfg.Server
	sc.NodeID, sc.Advertise, sc.Logger, sc.Metrics = cfg.NodeID, cfg.Advertise, logger, server.NewMetrics(preg)
	sc.Rack = cfg.Rack
	sc.BrokerConfigs = b.dyn.static
	if sc.PrincipalMapping, err = server.ParsePrincipalRules(cfg.TLS.PrincipalMappingRules); err != nil {
		return nil, err
	}
	preg.MustRegister(newStorageCollector(b.parts), syncLatency, commitBatches, volumeSyncs, volumeFiles, newCoordinatorCollector(b.groups, b.txns), b.cleaner.Collector())
	b.lag = b.newLagRefresher(cfg.ConsumerLag)
	preg.MustRegister(b.lag, b.isrs.shrinks, b.isrs.expands, newClusterCollector(b), newDiskCollector(cfg.DataDir),
		newMovementCollector(b.parts, b.leaderThrottle, b.followerThrottle))
	if b.certs != nil {
		registerCertMetrics(preg, b.certs)
	}
	if sc.Authorizer, err = b.startAuthorizer(); err != nil {
		return nil, err
	}
	qo := cfg.Quotas
	qo.Metrics = quota.NewMetrics(preg)
	sc.Quotas = quota.NewManager(qo)
	b.node.FSM().OnClientQuotasChanged(sc.Quotas.SetConfig)
	sc.Transactions = b.txns
	sc.LeaderThrottle = b.leaderThrottle
	sc.LogLevel = cfg.LogLevel
	b.srv = server.New(sc, b.parts, b.meta, b.groups, b.replicas)

	if cfg.MetricsListen != "" {
		if b.mln, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
		mux := b.healthMux(preg)
		if cfg.Pprof {
			servePprof(mux)
		}
		b.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		b.httpDone = make(chan struct{})
		go func() {
			defer close(b.httpDone)
			b.hs.Serve(b.mln)
		}()
	}

	// The Kafka ports open only now, with every partition recovered.
	for _, l := range b.lns {
		if l.ln == nil {
			if err = l.bind(); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

// hasSASLPlan says whether any planned listener is SASL.
func (b *Broker) hasSASLPlan(plans []listenerPlan) bool {
	for _, p := range plans {
		if p.protocol.isSASL() {
			return true
		}
	}
	return false
}

// hasSASL says whether any listener is SASL_PLAINTEXT or SASL_SSL.
func (b *Broker) hasSASL() bool {
	for _, l := range b.lns {
		if l.protocol.isSASL() {
			return true
		}
	}
	return false
}

// listener returns the listener of that name; it exists.
func (b *Broker) listener(name string) *boundListener {
	for _, l := range b.lns {
		if l.name == name {
			return l
		}
	}
	panic("broker: no listener " + name)
}

// serverListener is the server's view of a listener.
func (b *Broker) serverListener(l *boundListener) server.Listener {
	sl := server.Listener{Name: l.name}
	if l.protocol.isTLS() {
		sl.TLS = b.certs.ServerConfig()
	}
	if l.protocol.isSASL() {
		sl.SASL = &server.SASL{Mechanisms: slices.Clone(b.cfg.SASL.Mechanisms), MaxReauth: b.cfg.SASL.MaxReauth}
		if b.oauth != nil {
			sl.SASL.OAuth = b.oauth
		}
	}
	return sl
}

func (b *Broker) healthMux(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !b.ready.Load() {
			http.Error(w, "not ready\n", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}

// servePprof adds Go's profiles to mux under /debug/pprof/ and starts
// sampling blocking waits (one event per microsecond waited, on average)
// and contended mutexes (one in ten), which the block and mutex profiles
// report.
func servePprof(mux *http.ServeMux) {
	runtime.SetBlockProfileRate(int(time.Microsecond))
	runtime.SetMutexProfileFraction(10)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// Addr returns the bound address of the first Kafka listener.
func (b *Broker) Addr() string { return b.lns[0].ln.Addr().String() }

// ListenerAddr returns the bound address of the Kafka listener of that
// name, or "" if there is none.
func (b *Broker) ListenerAddr(name string) string {
	for _, l := range b.lns {
		if l.name == name {
			return l.ln.Addr().String()
		}
	}
	return ""
}

// ReloadCertificates loads the TLS certificate, key and CA files again if
// they changed (SIGHUP); SSL listeners also notice a change at the next
// handshake. Without TLS files it does nothing.
func (b *Broker) ReloadCertificates() error {
	if b.certs == nil {
		return nil
	}
	return b.certs.Reload()
}

// MetricsAddr returns the address of the metrics listener, or "" when it
// is off.
func (b *Broker) MetricsAddr() string {
	if b.mln == nil {
		return ""
	}
	return b.mln.Addr().String()
}

// Run serves until ctx ends or a Kafka listener fails, then shuts the
// broker down (see the package comment) and releases it, as Close does.
// It returns the listener's error, or the first error of closing.
func (b *Broker) Run(ctx context.Context) error {
	b.mu.Lock()
	switch {
	case b.mu.closed:
		b.mu.Unlock()
		return ErrClosed
	case b.mu.running:
		b.mu.Unlock()
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.mu.running = true
	b.mu.stopRun = cancel
	done := make(chan struct{})
	b.mu.runDone = done
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.mu.closed = true
		b.mu.Unlock()
		close(done)
	}()

	cfg, logger := b.cfg, b.log
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { b.parts.RunRetention(bg, cfg.RetentionCheckInterval) })
	wg.Go(func() { b.cleaner.Run(bg) })
	b.replicas.Start()
	wg.Go(func() { b.node.RunController(bg, cfg.Controller) })
	wg.Go(func() { b.migrateOffsets(bg) })
	wg.Go(func() { b.lag.Run(bg) })

	errc := make(chan error, len(b.lns))
	var names []string
	for _, l := range b.lns {
		sl := b.serverListener(l)
		go func() { errc <- b.srv.ServeListener(l.ln, sl) }()
		names = append(names, l.name+"://"+l.ln.Addr().String()+" ("+string(l.protocol)+")")
	}
	b.ready.Store(true)
	logger.Info("runnel serving", "listeners", names, "inter_broker_listener", b.inter, "data_dir", cfg.DataDir,
		"fsync", cfg.Partitions.Fsync.String(), "fetch_path", cfg.Server.FetchPath.String(),
		"topics", len(b.meta.Topics()), "startup", time.Since(b.start))

	var runErr error
	served := 0 // listeners whose Serve has returned
	select {
	case <-ctx.Done():
	case err := <-errc:
		served++
		if err != nil {
			logger.Error("listener failed", "err", err)
			runErr = fmt.Errorf("kafka listener: %w", err)
		}
	}
	b.ready.Store(false)
	sctx, scancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	if err := b.srv.Shutdown(sctx); err != nil {
		logger.Warn("shutdown timed out; closing connections", "err", err)
	}
	scancel()
	// Shutdown closes a listener only once Serve has taken it.
	for _, l := range b.lns {
		l.ln.Close()
	}
	for ; served < len(b.lns); served++ {
		<-errc
	}
	// Hand the controller to another broker first, so the cluster has one
	// at once instead of after an election. The group coordinators move
	// with the leaders of __consumer_offsets, which the controller
	// reassigns once this broker stops sending heartbeats.
	if err := b.node.TransferLeadership(); err != nil {
		logger.Warn("handing over the Raft leadership failed; the others will elect a leader", "err", err)
	}
	stopBG()
	wg.Wait()
	b.releaseOnce.Do(b.releaseNow)
	if b.releaseErr != nil {
		return b.releaseErr
	}
	if runErr == nil {
		logger.Info("stopped cleanly")
	}
	return runErr
}

// Close releases the broker. While Run is running it ends Run and waits
// for its shutdown. It returns the first error of closing, every time.
func (b *Broker) Close() error {
	b.mu.Lock()
	b.mu.closed = true
	running, stop, done := b.mu.running, b.mu.stopRun, b.mu.runDone
	b.mu.Unlock()
	if running {
		stop()
		<-done
	}
	b.release()
	return b.releaseErr
}

func (b *Broker) release() { b.releaseOnce.Do(b.releaseNow) }

// releaseNow closes what New opened, in reverse order. Fields still nil
// were never opened.
func (b *Broker) releaseNow() {
	var errs []error
	for _, l := range b.lns {
		if l.ln != nil {
			l.ln.Close()
		}
	}
	if b.hs != nil {
		b.hs.Close()
		<-b.httpDone
	} else if b.mln != nil {
		b.mln.Close()
	}
	if b.txns != nil {
		b.txns.Close()
	}
	if b.groups != nil {
		b.groups.Close()
	}
	if b.replicas != nil {
		b.replicas.Close()
	}
	if b.node != nil {
		if err := b.node.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the Raft node: %w", err))
		}
	}
	if b.parts != nil {
		if err := b.parts.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing partitions: %w", err))
		}
	}
	b.releaseErr = errors.Join(errs...)
}

// migrateOffsets creates __consumer_offsets at start when the Raft state
// holds offsets an older runnel committed there, retrying until the
// metadata takes it; the coordinators of the topic's partitions then move
// the offsets into it.
func (b *Broker) migrateOffsets(ctx context.Context) {
	for {
		err := b.groups.MigrateLegacy()
		if err == nil {
			return
		}
		b.log.Warn("creating __consumer_offsets for the offsets in the Raft state; trying again", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
