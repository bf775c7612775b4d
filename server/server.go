// Package server is runnel's Kafka protocol front end: the TCP listener,
// request framing, header decoding and dispatch to one handler per API. It
// stays thin: handlers decode with kmsg, call partition/, consumer/ and
// cluster/, and encode the answer.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/internal/authz"
	"github.com/runnel-io/runnel/internal/brokerconfig"
	"github.com/runnel-io/runnel/internal/quota"
	"github.com/runnel-io/runnel/internal/throttle"
	"github.com/runnel-io/runnel/partition"
)

// Config configures a Server. Zero values take the defaults.
type Config struct {
	// NodeID is this broker's id. Default 1.
	NodeID int32
	// Advertise is the host:port clients are told to connect to. Default:
	// the listener's address.
	Advertise string
	// ClusterID is reported in Metadata and DescribeCluster.
	ClusterID string
	// MaxRequestBytes bounds one request frame. Default 100 MiB.
	MaxRequestBytes int32
	// MaxConnections bounds open client connections; more are closed at
	// once. Default 10,000.
	MaxConnections int
	// IdleTimeout closes a connection that sends nothing for this long.
	// Default 10 minutes (Kafka's connections.max.idle.ms).
	IdleTimeout time.Duration
	// WriteTimeout bounds the writing of one response: a client that stops
	// reading is disconnected once a response has waited this long on its
	// socket. Default 30 seconds.
	WriteTimeout time.Duration
	// MaxFetchWait caps a fetch's MaxWaitMillis, so a long-poll never
	// parks longer than this whatever the client asks. Default 30 seconds,
	// the default request.timeout.ms of Kafka's clients, which give up on
	// a longer wait anyway; the Kafka broker itself sets no cap.
	MaxFetchWait time.Duration
	// MaxQueuedRequestBytes bounds the bytes of request frames held by the
	// server at once, over all connections (Kafka's
	// queued.max.request.bytes): a connection reserves a frame's size
	// before reading it and waits while the budget is spent. A frame
	// larger than the whole budget is refused as one larger than
	// MaxRequestBytes is. Default 512 MiB, or MaxRequestBytes if that is
	// larger; -1 means unbounded (Kafka's default).
	MaxQueuedRequestBytes int64
	// AutoCreateTopics creates unknown topics on Metadata and Produce.
	AutoCreateTopics bool
	// DefaultPartitions is the partition count of auto-created topics and
	// of CreateTopics with -1. Default 1.
	DefaultPartitions int32
	// DefaultReplicationFactor is the replica count of auto-created topics
	// and of CreateTopics with -1. Default 1.
	DefaultReplicationFactor int16
	// MaxPartitionsPerTopic bounds a topic's partition count when it is
	// created or grown; more is refused with INVALID_PARTITIONS. Default
	// 100,000.
	MaxPartitionsPerTopic int32
	// MaxPartitionsPerBroker bounds the partition replicas the cluster
	// holds, per registered broker: a CreateTopics or CreatePartitions
	// that would take the replicas of all topics above this many times the
	// number of brokers is refused with POLICY_VIOLATION. Default 20,000.
	MaxPartitionsPerBroker int32
	// FetchMaxBytes bounds the record bytes of one fetch response, below
	// the request's own MaxBytes (Kafka's fetch.max.bytes). As in Kafka,
	// the first batch of the first partition with data is sent whole even
	// when it alone is larger. Default 55 MiB.
	FetchMaxBytes int32
	// MaxFetchSessions bounds the incremental fetch sessions (KIP-227)
	// the broker holds (Kafka's max.incremental.fetch.session.cache.slots).
	// Default 1000.
	MaxFetchSessions int
	// FetchPath chooses sendfile (default) or the copy path for fetches.
	FetchPath consumer.Path
	// Rack is this broker's rack (broker.rack); empty: none.
	Rack string
	// ReplicaSelector is how this broker, leading a partition, picks the
	// replica a consumer reads from (KIP-392). Default RackAwareSelector.
	ReplicaSelector ReplicaSelector
	// PrincipalMapping turns a TLS client certificate's subject into the
	// connection's principal; a certificate it has no rule for is refused.
	// Nil: the subject as it is (DEFAULT).
	PrincipalMapping *PrincipalMapper
	// BrokerConfigs are the broker's settings as it was started, by
	// broker config name, for DescribeConfigs (internal/brokerconfig).
	BrokerConfigs map[string]brokerconfig.Static
	// Authorizer checks every request against the ACLs; nil: none, every
	// request is allowed and the ACL APIs answer SECURITY_DISABLED.
	Authorizer *authz.Authorizer
	// Quotas holds the client quotas in force and measures clients'
	// use, shared by the servers of every listener. Nil: a manager of
	// its own, with no quotas unless given some (SetConfig).
	Quotas *quota.Manager
	// Transactions is the transaction coordinator; nil: none, and
	// FindCoordinator for a transactional id and InitProducerId with one
	// answer UNSUPPORTED_VERSION, which clients do not retry.
	Transactions Transactions
	// LeaderThrottle holds the fetches of followers of throttled replicas
	// (partition.Partition.LeaderThrottled) to the leader replication
	// rate; nil: none.
	LeaderThrottle *throttle.Rate
	// LogLevel, if set, is the broker's log level, which BROKER_LOGGER
	// configs read and change (the "root" logger).
	LogLevel *slog.LevelVar
	// Logger: nil means slog.Default().
	Logger *slog.Logger
	// Metrics: nil means none.
	Metrics *Metrics
}

func (c Config) withDefaults() Config {
	if c.NodeID == 0 {
		c.NodeID = 1
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 100 << 20
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = 10000
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MaxFetchWait <= 0 {
		c.MaxFetchWait = 30 * time.Second
	}
	if c.MaxQueuedRequestBytes == 0 {
		c.MaxQueuedRequestBytes = max(512<<20, int64(c.MaxRequestBytes))
	}
	if c.DefaultPartitions == 0 {
		c.DefaultPartitions = 1
	}
	if c.DefaultReplicationFactor == 0 {
		c.DefaultReplicationFactor = 1
	}
	if c.MaxPartitionsPerTopic <= 0 {
		c.MaxPartitionsPerTopic = 100_000
	}
	if c.MaxPartitionsPerBroker <= 0 {
		c.MaxPartitionsPerBroker = 20_000
	}
	if c.MaxFetchSessions <= 0 {
		c.MaxFetchSessions = defaultMaxFetchSessions
	}
	if c.FetchMaxBytes <= 0 {
		c.FetchMaxBytes = 55 << 20
	}
	if c.ClusterID == "" {
		c.ClusterID = "runnel"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Quotas == nil {
		c.Quotas = quota.NewManager(quota.Options{})
	}
	return c
}

// Cluster is what the server reads of the cluster metadata, beyond the
// topics.
type Cluster interface {
	cluster.Store
	// Brokers returns every registered broker, by id.
	Brokers() []cluster.BrokerInfo
	// Partition returns one partition's replication state.
	Partition(topic string, partition int32) (cluster.PartitionInfo, bool)
	// Controller returns the controller's broker id (the Raft leader), or
	// -1 while there is none.
	Controller() int32
	// RaftStatus returns this broker's view of the Raft quorum that
	// replicates the metadata, for DescribeQuorum.
	RaftStatus() cluster.RaftStatus
	// ScramCredential returns a user's SCRAM credential for a mechanism
	// (1 SCRAM-SHA-256, 2 SCRAM-SHA-512); ScramCredentials every one.
	ScramCredential(user string, mechanism int8) (cluster.ScramCredential, bool)
	ScramCredentials() []cluster.ScramCredential
	// ScramSecret returns the cluster's SCRAM secret, nil until one is set.
	ScramSecret() []byte
	// AlterScramCredentials commits a change of SCRAM credentials.
	AlterScramCredentials(cluster.AlterScramCredentials) error
	// Acls returns every ACL binding; AlterAcls commits a change of them.
	Acls() []cluster.AclBinding
	AlterAcls(cluster.AlterAcls) error
	// ClientQuotas returns the client quotas; AlterClientQuotas commits a
	// change of them.
	ClientQuotas() *quota.Config
	AlterClientQuotas(cluster.AlterClientQuotas) error
	// SetConfigsIf replaces a topic's explicit configs if they are still
	// prev (cluster.ErrConfigsChanged if not).
	SetConfigsIf(name string, prev, configs map[string]string) error
	// BrokerConfigs returns a broker's dynamic configs, or with
	// cluster.DefaultBrokerConfigs the cluster-wide ones;
	// SetBrokerConfigsIf replaces them if they are still prev.
	BrokerConfigs(broker int32) map[string]string
	SetBrokerConfigsIf(broker int32, prev, configs map[string]string) error
}

// Groups finds the coordinators of consumer groups: each group's state is
// kept by the leader of one partition of __consumer_offsets (package
// coordinator/groups).
type Groups interface {
	// Coordinator returns this broker's coordinator of the group, or an
	// error wrapping coordinator.ErrNotCoordinator (another broker has
	// it) or coordinator.ErrLoadInProgress (it is being loaded here).
	Coordinator(groupID string) (*group.Coordinator, error)
	// Coordinators returns every group coordinator serving on this broker.
	Coordinators() []*group.Coordinator
	// Locate returns the id of the broker that coordinates the group, or
	// an error wrapping coordinator.ErrNotAvailable while there is none
	// (its partition has no leader, or the topic is being created).
	Locate(groupID string) (int32, error)
}

// Replicas is this broker's replica manager (package replica).
type Replicas interface {
	// Reconcile opens, sets the roles of, and removes local replicas as
	// the metadata says, once.
	Reconcile() error
	// FollowerFetched reports a follower's fetch from a partition this
	// broker leads.
	FollowerFetched(p *partition.Partition, id int32, offset int64, epoch int32) error
}

// Server answers Kafka requests on one listener.
type Server struct {
	cfg      Config
	log      *slog.Logger
	parts    *partition.Manager
	meta     Cluster
	groups   Groups
	txns     Transactions
	replicas Replicas
	m        *Metrics

	host string
	port int32

	ctx    context.Context // ends when Shutdown starts
	cancel context.CancelFunc

	pids producerIDs

	// sessions holds the incremental fetch sessions (KIP-227).
	sessions *fetchSessionCache

	// budget bounds the request bytes being read, over all connections.
	budget *requestBudget
	// clientLog bounds the warnings logged about one client address (bad
	// requests, refused connections); acceptLog the accept failures.
	clientLog *logLimiter
	acceptLog *logLimiter

	// topics holds the partition replicas this broker has asked the
	// metadata store to add and not yet seen applied, so the capacity
	// check counts creates in flight. The lock is never held across a
	// proposal: a create forwarded to the Raft leader waits without it.
	topics struct {
		sync.Mutex
		reserved int64
	}

	mu struct {
		sync.Mutex
		lns   []net.Listener
		conns map[*conn]struct{}
	}
	// now is the clock of SASL sessions; tests replace it.
	now func() time.Time

	nconns   atomic.Int64
	wg       sync.WaitGroup
	shutting atomic.Bool
}

// New returns a server over an opened partition manager, metadata store and
// group coordinators. The caller opens the partitions of every known topic
// before serving.
func New(cfg Config, parts *partition.Manager, meta Cluster, groups Groups, replicas Replicas) *Server {
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, parts: parts, meta: meta, groups: groups, replicas: replicas, m: cfg.Metrics, now: time.Now}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.conns = map[*conn]struct{}{}
	s.pids.meta = meta
	s.txns = cfg.Transactions
	if s.txns == nil {
		s.txns = noTransactions{}
	}
	s.sessions = newFetchSessionCache(cfg.MaxFetchSessions, time.Now, cfg.Metrics.fetchSessions())
	s.budget = newRequestBudget(cfg.MaxQueuedRequestBytes, cfg.Metrics)
	s.clientLog = newLogLimiter(clientLogLimit, time.Minute, func(host string, n int, w time.Duration) {
		s.log.Warn("suppressed warnings about a client", "remote_host", host, "suppressed", n, "window", w)
	})
	s.acceptLog = newLogLimiter(1, 10*time.Second, func(_ string, n int, w time.Duration) {
		s.log.Error("suppressed accept failures", "suppressed", n, "window", w)
	})
	return s
}

// clientLogLimit is the number of warnings logged about one client address
// per minute; the rest are counted in one summary line.
const clientLogLimit = 100

// Accept failures back off as net/http does: from minAcceptDelay, doubling
// to maxAcceptDelay, reset by the next accept that succeeds.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// Serve accepts connections on ln until Shutdown, as the one plaintext
// listener named cluster.DefaultListener. It returns nil after a
// Shutdown, and the accept error if ln is closed otherwise. Any other
// accept failure (out of file descriptors or memory, a connection aborted
// before it was accepted) is logged, counted, and retried after a pause
// that doubles from 5 ms to 1 s while the failures go on: the connections
// already open keep being served meanwhile.
func (s *Server) Serve(ln net.Listener) error {
	adv := s.cfg.Advertise
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		return fmt.Errorf("server: advertised address %q: %w", adv, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("server: advertised port %q: %w", port, err)
	}
	s.host, s.port = host, int32(p)
	return s.ServeListener(ln, Listener{})
}

func (s *Server) accept(ln net.Listener, l Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
			s.m.acceptError()
			if s.acceptLog.allow("") {
				s.log.Error("accepting a connection failed; retrying", "err", err, "retry_in", delay)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
			}
			continue
		}
		delay = 0
		if s.nconns.Load() >= int64(s.cfg.MaxConnections) {
			remote := c.RemoteAddr().String()
			if s.clientLog.allow(remoteHost(remote)) {
				s.log.Warn("closing connection: too many connections", "remote", remote, "max", s.cfg.MaxConnections)
			}
			s.m.connRejected()
			c.Close()
			continue
		}
		s.startConn(c, l)
	}
}

// remoteHost returns the IP address of a host:port.
func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func (s *Server) startConn(nc net.Conn, l Listener) {
	if l.TLS != nil {
		nc = tls.Server(nc, l.TLS)
	}
	c := newConn(s, nc)
	c.listener, c.tls = l.Name, l.TLS != nil
	if l.SASL != nil {
		c.sasl = saslConn{cfg: l.SASL, stage: saslHandshake}
		c.authed.Store(false)
	}
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.mu.conns[c] = struct{}{}
	s.mu.Unlock()
	s.nconns.Add(1)
	s.m.connOpened()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.mu.conns, c)
		s.mu.Unlock()
		// Count the connection gone before the client can see it close, so
		// a client that reconnects at once is not refused for a slot that
		// is already free.
		s.nconns.Add(-1)
		s.m.connClosed()
		nc.Close()
	}()
}

// Shutdown stops accepting, lets every connection finish the requests it
// has read (answering them), and closes the connections. Long-polling
// fetches return at once. If ctx ends first, connections are closed
// forcibly.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.cancel()
	// JoinGroup and SyncGroup answers may wait for minutes; they are
	// answered now with COORDINATOR_NOT_AVAILABLE.
	for _, g := range s.groups.Coordinators() {
		g.Close()
	}
	s.mu.Lock()
	for _, ln := range s.mu.lns {
		ln.Close()
	}
	for c := range s.mu.conns {
		c.stopReading()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.mu.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
