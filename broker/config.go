package broker

import (
	"errors"
	"fmt"
	"github.com/runnel-io/runnel/cleaner"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/internal/certstore"
	"github.com/runnel-io/runnel/internal/quota"
	"github.com/runnel-io/runnel/internal/sasl"
	"github.com/runnel-io/runnel/internal/throttle"
	"github.com/runnel-io/runnel/lag"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/replica"
	"github.com/runnel-io/runnel/segment"
	"github.com/runnel-io/runnel/server"
)

// Config is everything a broker is started with. Start from DefaultConfig:
// the zero value is not valid (Validate says which field is missing).
//
// The settings of each subsystem sit in that subsystem's own options
// struct (Server, Partitions, Replicas, Groups, Controller), so a setting
// added to one of those is a broker setting at once. New fills the fields
// that tie the subsystems together (node id, logger, metrics, data
// directory, the handles they share) and ignores what the caller put there;
// each struct's comment below names them.
//
// Errors from Validate name settings as operators know them, by the
// `runnel serve` flag (`--node-id`), which is also the environment variable
// and config-file name.
type Config struct {
	// NodeID is this broker's id (--node-id). Positive.
	NodeID int32
	// DataDir holds the partitions, the index and the metadata
	// (--data-dir).
	DataDir string
	// Rack is the rack or zone of this broker (--rack, Kafka's
	// broker.rack), registered in the metadata: Metadata answers carry
	// it, and consumers in the same rack read from this broker when it
	// holds an in-sync replica (Server.ReplicaSelector). Empty: none.
	Rack string
	// Listen is the address of the Kafka API (--listen). With port 0 the
	// port is chosen by the kernel and the listener is bound at the start
	// of New, so that the broker registers the port it got; otherwise it
	// is bound only after every partition is recovered.
	Listen string
	// Advertise is the host:port clients are told to connect to
	// (--advertise). Empty: the Kafka listener's address.
	Advertise string
	// Listeners are the named Kafka listeners (--listeners), each
	// NAME://host:port; when set, Listen and Advertise are not used. Each
	// listener's protocol is its entry in ListenerProtocols. A port 0 is
	// chosen by the kernel and bound at the start of New, as for Listen.
	Listeners []ListenerAddr
	// AdvertisedListeners are the addresses clients are told, by listener
	// name (--advertised-listeners). A listener not named here advertises
	// its own address.
	AdvertisedListeners []ListenerAddr
	// ListenerProtocols maps listener names to security protocols
	// (--listener-security-protocol-map).
	ListenerProtocols []ListenerProtocol
	// InterBrokerListener names the listener other brokers use: replica
	// fetchers dial the leader's address on it, and it is the address
	// registered as the broker's own (--inter-broker-listener). Empty:
	// the first listener.
	InterBrokerListener string
	// TLS names the certificate files of SSL listeners.
	TLS TLSConfig
	// SASL configures the SASL_PLAINTEXT and SASL_SSL listeners.
	SASL SASLConfig
	// Authorizer configures ACL authorization (--authorizer).
	Authorizer AuthorizerConfig
	// MetricsListen is the address of /metrics, /healthz and /readyz
	// (--metrics-listen). Empty: no metrics listener.
	MetricsListen string
	// Pprof serves Go's profiles under /debug/pprof/ on the metrics
	// listener and turns on the block and mutex profiles (--pprof). Off by
	// default: the block profile costs time on every channel and lock
	// wait, and the profiles show the broker's internals to whoever
	// reaches the listener.
	Pprof bool

	// RaftListen is where Raft and forwarded proposals are served
	// (--raft-listen). Empty: this node's address in Voters.
	RaftListen string
	// RaftTLS runs Raft and forwarded proposals over TLS (--raft-tls), with
	// the certificate of --tls-cert-file; every peer must present one the
	// CAs of --tls-ca-file verify.
	RaftTLS bool
	// raftListener, if set, is a Raft listener the caller bound already
	// (tests of several brokers in one process); RaftListen is ignored.
	raftListener net.Listener
	// Voters is the Raft quorum (--voters). Empty: this broker alone, on
	// Raft's in-memory transport, without a Raft listener. A broker whose
	// NodeID is not among them joins their quorum as a non-voting
	// observer at RaftListen.
	Voters []cluster.Voter
	// RaftElectionTimeout is Raft's heartbeat and election timeout when
	// there are other voters (--raft-election-timeout).
	RaftElectionTimeout time.Duration

	// RetentionCheckInterval is how often retention runs
	// (--retention-check-interval).
	RetentionCheckInterval time.Duration
	// ShutdownTimeout bounds how long Run waits for in-flight requests
	// once its context ends (--shutdown-timeout).
	ShutdownTimeout time.Duration

	// Logger: nil means slog.Default().
	Logger *slog.Logger
	// LogLevel, if set, is Logger's level: the dynamic broker config
	// log.level changes it. Nil: the level cannot change while running.
	LogLevel *slog.LevelVar

	// Server is the Kafka listener's configuration. New sets its NodeID,
	// Advertise, Logger and Metrics.
	Server server.Config
	// Partitions configures the partition manager; Fsync is --fsync. New
	// sets its DataDir, NodeID, Logger and ObserveSync.
	Partitions partition.Options
	// Replicas configures replication; MaxLag is --replica-lag-time-max.
	// New sets its NodeID, Parts, Node and Logger.
	Replicas replica.Options
	// Groups configures the group coordinators. New sets its
	// PartitionExists and Logger.
	Groups group.Config
	// ConsumerLag configures the consumer lag metrics: Interval is
	// --consumer-lag-refresh-interval, MaxSeries --consumer-lag-max-series.
	// New sets the rest.
	ConsumerLag lag.Options
	// OffsetsTopic configures __consumer_offsets, where the group
	// coordinators keep committed offsets.
	OffsetsTopic OffsetsTopicConfig
	// Transactions configures the transaction coordinators and their
	// topic, __transaction_state.
	Transactions TransactionsConfig
	// Cleaner configures the log cleaner of compacted topics: Threads is
	// --log-cleaner-threads, DedupeBufferBytes
	// --log-cleaner-dedupe-buffer-bytes, IOBytesPerSecond
	// --log-cleaner-io-bytes-per-second (0: unlimited), Backoff
	// --log-cleaner-backoff. New sets its Logger and
	// MaxDecompressedBatchBytes.
	Cleaner cleaner.Options
	// ReplicationThrottle holds the rates of throttled replication
	// traffic, bytes per second: Leader is
	// --leader-replication-throttled-rate, Follower
	// --follower-replication-throttled-rate (throttle.Unlimited: none).
	// Dynamic broker configs change them while the broker runs.
	ReplicationThrottle struct{ Leader, Follower int64 }
	// Quotas configures the measuring of client quotas: Samples is
	// --quota-window-num, SampleSpan --quota-window-size (Kafka's
	// quota.window.num and quota.window.size.seconds). New sets its
	// Metrics.
	Quotas quota.Options
	// Controller configures the heartbeats and, on the Raft leader, the
	// fencing of silent brokers and leader rebalancing.
	Controller cluster.ControllerOptions
}

// OffsetsTopicConfig configures the internal topic __consumer_offsets.
// The first three apply when a broker creates the topic.
type OffsetsTopicConfig struct {
	// Partitions is --offsets-topic-partitions (Kafka's
	// offsets.topic.num.partitions).
	Partitions int32
	// ReplicationFactor is --offsets-topic-replication-factor, capped at
	// the brokers registered when the topic is created.
	ReplicationFactor int16
	// SegmentBytes is --offsets-topic-segment-bytes.
	SegmentBytes int64
	// CommitTimeout is --offsets-commit-timeout: how long a commit waits
	// for the in-sync replicas (offsets.commit.timeout.ms).
	CommitTimeout time.Duration
}

// TransactionsConfig configures the transaction coordinators. Partitions
// and ReplicationFactor apply when a broker creates __transaction_state.
type TransactionsConfig struct {
	// Partitions is --transaction-state-partitions (Kafka's
	// transaction.state.log.num.partitions).
	Partitions int32
	// ReplicationFactor is --transaction-state-replication-factor, capped
	// at the brokers registered when the topic is created.
	ReplicationFactor int16
	// MaxTimeout is --transaction-max-timeout (transaction.max.timeout.ms):
	// a producer asking for a longer transaction timeout is refused.
	MaxTimeout time.Duration
	// IDExpiration is --transactional-id-expiration
	// (transactional.id.expiration.ms).
	IDExpiration time.Duration
}

// DefaultConfig returns the defaults of `runnel serve`: a single broker
// with id 1, data in ./data, the Kafka API on 127.0.0.1:9092 and metrics on
// 127.0.0.1:9644.
func DefaultConfig() Config {
	return Config{
		NodeID:                 1,
		DataDir:                "./data",
		Listen:                 "127.0.0.1:9092",
		MetricsListen:          "127.0.0.1:9644",
		ListenerProtocols:      DefaultProtocolMap,
		TLS:                    TLSConfig{PrincipalMappingRules: "DEFAULT"},
		SASL:                   SASLConfig{Mechanisms: DefaultSASLMechanisms, OAuth: DefaultOAuth},
		RaftElectionTimeout:    time.Second,
		RetentionCheckInterval: 5 * time.Minute,
		ShutdownTimeout:        30 * time.Second,
		Server: server.Config{
			MaxRequestBytes:          100 << 20,
			MaxConnections:           10000,
			IdleTimeout:              10 * time.Minute,
			WriteTimeout:             30 * time.Second,
			MaxFetchWait:             30 * time.Second,
			MaxQueuedRequestBytes:    512 << 20,
			FetchMaxBytes:            55 << 20,
			MaxFetchSessions:         1000,
			MaxPartitionsPerTopic:    100_000,
			MaxPartitionsPerBroker:   20_000,
			AutoCreateTopics:         true,
			DefaultPartitions:        1,
			DefaultReplicationFactor: 1,
		},
		Partitions: partition.Options{Fsync: segment.FsyncPolicy{Mode: segment.FsyncAlways},
			MaxDecompressedBatchBytes: partition.DefaultMaxDecompressedBatchBytes, SyncGroupMinFiles: segment.DefaultSyncGroupMinFiles},
		Replicas:            replica.Options{MaxLag: replica.DefaultMaxLag},
		ReplicationThrottle: struct{ Leader, Follower int64 }{throttle.Unlimited, throttle.Unlimited},
		Cleaner: cleaner.Options{Threads: cleaner.DefaultThreads, DedupeBufferBytes: cleaner.DefaultDedupeBufferBytes,
			Backoff: cleaner.DefaultBackoff},
		Quotas: quota.Options{Samples: quota.DefaultSamples, SampleSpan: quota.DefaultSampleSpan},
		Groups: group.Config{
			MinSessionTimeout:      6 * time.Second,
			MaxSessionTimeout:      30 * time.Minute,
			InitialRebalanceDelay:  3 * time.Second,
			OffsetsRetention:       7 * 24 * time.Hour,
			RetentionCheckInterval: 10 * time.Minute,
		},
		ConsumerLag: lag.Options{Interval: lag.DefaultInterval, MaxSeries: lag.DefaultMaxSeries},
		OffsetsTopic: OffsetsTopicConfig{Partitions: 50, ReplicationFactor: 3, SegmentBytes: 100 << 20,
			CommitTimeout: 5 * time.Second},
		Transactions: TransactionsConfig{Partitions: 50, ReplicationFactor: 3, MaxTimeout: 15 * time.Minute,
			IDExpiration: 7 * 24 * time.Hour},
		Controller: cluster.ControllerOptions{
			SessionTimeout:          cluster.DefaultSessionTimeout,
			HeartbeatInterval:       time.Second,
			LeaderRebalanceInterval: 30 * time.Second,
		},
	}
}

// Validate checks c as New will use it: every count and timeout in range
// and the cluster timings consistent with each other. It returns every
// problem found, joined.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DataDir == "" {
		bad("--data-dir: want a directory")
	}
	for _, a := range []struct {
		name, v  string
		optional bool
	}{
		{"listen", c.Listen, len(c.Listeners) > 0},
		{"advertise", c.Advertise, true},
		{"metrics-listen", c.MetricsListen, true},
		{"raft-listen", c.RaftListen, true},
	} {
		if a.v == "" && a.optional {
			continue
		}
		if _, port, err := net.SplitHostPort(a.v); err != nil || !validPort(port) {
			bad("--%s: want host:port such as 127.0.0.1:9092, got %q", a.name, a.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"node-id", int64(c.NodeID)},
		{"default-partitions", int64(c.Server.DefaultPartitions)},
		{"default-replication-factor", int64(c.Server.DefaultReplicationFactor)},
		{"max-request-bytes", int64(c.Server.MaxRequestBytes)},
		{"max-connections", int64(c.Server.MaxConnections)},
		{"fetch-max-bytes", int64(c.Server.FetchMaxBytes)},
		{"max-fetch-sessions", int64(c.Server.MaxFetchSessions)},
		{"max-partitions-per-topic", int64(c.Server.MaxPartitionsPerTopic)},
		{"max-partitions-per-broker", int64(c.Server.MaxPartitionsPerBroker)},
		{"max-decompressed-batch-bytes", c.Partitions.MaxDecompressedBatchBytes},
		{"offsets-topic-partitions", int64(c.OffsetsTopic.Partitions)},
		{"offsets-topic-replication-factor", int64(c.OffsetsTopic.ReplicationFactor)},
		{"offsets-topic-segment-bytes", c.OffsetsTopic.SegmentBytes},
		{"transaction-state-partitions", int64(c.Transactions.Partitions)},
		{"transaction-state-replication-factor", int64(c.Transactions.ReplicationFactor)},
		{"log-cleaner-threads", int64(c.Cleaner.Threads)},
		{"log-cleaner-dedupe-buffer-bytes", c.Cleaner.DedupeBufferBytes},
		{"consumer-lag-max-series", int64(c.ConsumerLag.MaxSeries)},
	} {
		if n.v <= 0 {
			bad("--%s: want a positive integer, got %d", n.name, n.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"idle-timeout", c.Server.IdleTimeout},
		{"write-timeout", c.Server.WriteTimeout},
		{"max-fetch-wait", c.Server.MaxFetchWait},
		{"retention-check-interval", c.RetentionCheckInterval},
		{"shutdown-timeout", c.ShutdownTimeout},
		{"group-min-session-timeout", c.Groups.MinSessionTimeout},
		{"group-max-session-timeout", c.Groups.MaxSessionTimeout},
		{"offsets-retention", c.Groups.OffsetsRetention},
		{"offsets-retention-check-interval", c.Groups.RetentionCheckInterval},
		{"offsets-commit-timeout", c.OffsetsTopic.CommitTimeout},
		{"transaction-max-timeout", c.Transactions.MaxTimeout},
		{"transactional-id-expiration", c.Transactions.IDExpiration},
		{"broker-session-timeout", c.Controller.SessionTimeout},
		{"broker-heartbeat-interval", c.Controller.HeartbeatInterval},
		{"replica-lag-time-max", c.Replicas.MaxLag},
		{"raft-election-timeout", c.RaftElectionTimeout},
		{"log-cleaner-backoff", c.Cleaner.Backoff},
		{"quota-window-size", c.Quotas.SampleSpan},
		{"consumer-lag-refresh-interval", c.ConsumerLag.Interval},
	} {
		if d.v <= 0 {
			bad("--%s: want a positive duration such as 30s, got %v", d.name, d.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"group-initial-rebalance-delay", c.Groups.InitialRebalanceDelay},
		{"leader-rebalance-interval", c.Controller.LeaderRebalanceInterval},
		{"connections-max-reauth", c.SASL.MaxReauth},
	} {
		if d.v < 0 {
			bad("--%s: want a duration of 0s or more, got %v", d.name, d.v)
		}
	}
	if c.Quotas.Samples < 2 {
		bad("--quota-window-num: want 2 or more samples, got %d", c.Quotas.Samples)
	}
	if c.ReplicationThrottle.Leader < 0 || c.ReplicationThrottle.Follower < 0 {
		bad("--leader-replication-throttled-rate, --follower-replication-throttled-rate: want a rate of 0 or more bytes per second")
	}
	if c.Cleaner.IOBytesPerSecond < 0 {
		bad("--log-cleaner-io-bytes-per-second: want 0 (unlimited) or a positive rate, got %d", c.Cleaner.IOBytesPerSecond)
	}
	if p := c.Partitions.Fsync; p.Mode == segment.FsyncInterval && p.Interval <= 0 {
		bad("--fsync: interval:%v: want a positive interval", p.Interval)
	}
	if hb, st := c.Controller.HeartbeatInterval, c.Controller.SessionTimeout; hb > 0 && st > 0 && hb >= st {
		bad("--broker-heartbeat-interval %v must be below --broker-session-timeout %v", hb, st)
	}
	if lo, hi := c.Groups.MinSessionTimeout, c.Groups.MaxSessionTimeout; lo > hi {
		bad("--group-min-session-timeout %v is above --group-max-session-timeout %v", lo, hi)
	}
	plans, inter, err := c.listenerPlans()
	if err != nil {
		errs = append(errs, err)
	}
	if err := c.validateSASL(plans, inter); err != nil {
		errs = append(errs, err)
	}
	if err := c.Authorizer.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.TLS.ClientAuth != certstore.ClientAuthNone && c.TLS.CAFile == "" {
		bad("--tls-client-auth %s: needs --tls-ca-file, the CAs that sign client certificates", c.TLS.ClientAuth)
	}
	if _, err := server.ParsePrincipalRules(c.TLS.PrincipalMappingRules); err != nil {
		bad("--ssl-principal-mapping-rules: %v", err)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("--tls-cert-file and --tls-key-file: give both or neither")
	}
	if c.RaftTLS && (c.TLS.CertFile == "" || c.TLS.CAFile == "") {
		bad("--raft-tls: needs --tls-cert-file, --tls-key-file and --tls-ca-file (the CAs that sign the other brokers' certificates)")
	}
	if c.RaftTLS && len(c.Voters) == 0 {
		bad("--raft-tls: needs --voters (a lone broker has no Raft listener)")
	}
	if len(c.Voters) > 0 {
		found := false
		seen := map[int32]bool{}
		for _, v := range c.Voters {
			if seen[v.ID] {
				bad("--voters: node %d is listed twice", v.ID)
			}
			seen[v.ID] = true
			found = found || v.ID == c.NodeID
		}
		if !found && c.RaftListen == "" && c.raftListener == nil {
			bad("--voters: this broker's --node-id %d is not one of the voters, so it joins them as an observer: it needs --raft-listen, the address the others reach its Raft at", c.NodeID)
		}
	}
	return errors.Join(errs...)
}

// validateSASL checks the SASL settings where a listener is SASL.
func (c Config) validateSASL(plans []listenerPlan, inter string) error {
	var errs []error
	users, err := c.SASL.scramUsers()
	if err != nil {
		errs = append(errs, err)
	}
	for _, p := range plans {
		if !p.protocol.isSASL() {
			continue
		}
		if len(c.SASL.Mechanisms) == 0 {
			errs = append(errs, fmt.Errorf("--listeners: SASL listener %s: --sasl-enabled-mechanisms is empty", p.name))
		}
		if slices.Contains(c.SASL.Mechanisms, sasl.OAuthBearer) && c.SASL.OAuth.JWKSFile == "" {
			errs = append(errs, errors.New("--sasl-enabled-mechanisms OAUTHBEARER: needs --sasl-oauthbearer-jwks-file"))
		}
		if p.name == inter && err == nil {
			if _, err := c.SASL.interBrokerMechanism(users); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func validPort(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n <= 65535
}
