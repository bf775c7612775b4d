package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/runnel-io/runnel/broker"
)

// setting is one broker setting, settable as a flag, a RUNNEL_* environment
// variable or a line of the config file (precedence in that order). field
// binds it to its place in the options; the default shown in --help and
// the README is that place's value in defaultOptions.
type setting struct {
	name  string
	help  string
	field func(o *serveOptions) value
}

// serveOptions is what runnel serve runs with: the broker's Config and the
// settings of the front end itself.
type serveOptions struct {
	broker    broker.Config
	logLevel  string
	logFormat string
	config    string
}

func defaultOptions() serveOptions {
	return serveOptions{broker: broker.DefaultConfig(), logLevel: "info", logFormat: "text"}
}

// serveSettings lists every setting of runnel serve. A new setting of the
// broker or of one of its parts (server.Config, partition.Options, ...) is
// one line here, bound to its field in broker.Config.
var serveSettings = []setting{
	{"data-dir", "directory for segments, index and metadata", func(o *serveOptions) value { return stringVar(&o.broker.DataDir) }},
	{"listen", "address of the Kafka API", func(o *serveOptions) value { return stringVar(&o.broker.Listen) }},
	{"advertise", "host:port clients are told to connect to (default: the listen address)", func(o *serveOptions) value { return stringVar(&o.broker.Advertise) }},
	{"listeners", "named Kafka listeners as NAME://host:port,...; set, it replaces --listen and --advertise (each name's protocol is in --listener-security-protocol-map)", func(o *serveOptions) value { return listenersVar(&o.broker.Listeners) }},
	{"advertised-listeners", "addresses clients are told, as NAME://host:port,... (default: each listener's own)", func(o *serveOptions) value { return listenersVar(&o.broker.AdvertisedListeners) }},
	{"listener-security-protocol-map", "security protocol of each listener name, NAME:PROTOCOL,...; PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", func(o *serveOptions) value { return protocolMapVar(&o.broker.ListenerProtocols) }},
	{"inter-broker-listener", "listener other brokers connect to, for replication (default: the first of --listeners)", func(o *serveOptions) value { return stringVar(&o.broker.InterBrokerListener) }},
	{"tls-cert-file", "PEM certificate chain of SSL listeners, reloaded when it changes and on SIGHUP", func(o *serveOptions) value { return stringVar(&o.broker.TLS.CertFile) }},
	{"tls-key-file", "PEM private key of --tls-cert-file", func(o *serveOptions) value { return stringVar(&o.broker.TLS.KeyFile) }},
	{"tls-ca-file", "PEM certificates of the CAs that sign client certificates and other brokers'", func(o *serveOptions) value { return stringVar(&o.broker.TLS.CAFile) }},
	{"tls-client-auth", "client certificates on SSL listeners: none, request (verified if sent) or require; a client's principal is User: and its certificate's subject", func(o *serveOptions) value { return clientAuthVar(&o.broker.TLS.ClientAuth) }},
	{"ssl-principal-mapping-rules", "how a client certificate's subject becomes its principal, as Kafka's ssl.principal.mapping.rules: DEFAULT (the subject DN) or RULE:pattern/replacement/[LU], comma-separated, first match wins", func(o *serveOptions) value { return stringVar(&o.broker.TLS.PrincipalMappingRules) }},
	{"sasl-enabled-mechanisms", "SASL mechanisms SASL_PLAINTEXT and SASL_SSL listeners offer: SCRAM-SHA-512, SCRAM-SHA-256, PLAIN (sends the password itself: off unless named), OAUTHBEARER (needs --sasl-oauthbearer-jwks-file)", func(o *serveOptions) value { return mechanismsVar(&o.broker.SASL.Mechanisms) }},
	{"scram-user", "a SCRAM user created at start if it has no credential for that mechanism, NAME:MECHANISM:PASSWORD (repeatable); an existing credential is never replaced", func(o *serveOptions) value { return scramUsersVar(&o.broker.SASL.Users) }},
	{"scram-users-file", "file of more --scram-user entries, one NAME:MECHANISM:PASSWORD a line (# comments), to keep passwords off the command line", func(o *serveOptions) value { return stringVar(&o.broker.SASL.UsersFile) }},
	{"inter-broker-sasl-user", "the --scram-user this broker authenticates as when --inter-broker-listener is SASL (default: the first)", func(o *serveOptions) value { return stringVar(&o.broker.SASL.InterBrokerUser) }},
	{"sasl-oauthbearer-jwks-file", "JWK set (RFC 7517) whose keys sign OAUTHBEARER tokens (JWTs), read again when it changes", func(o *serveOptions) value { return stringVar(&o.broker.SASL.OAuth.JWKSFile) }},
	{"sasl-oauthbearer-expected-issuer", "iss an OAUTHBEARER token must carry (empty: any)", func(o *serveOptions) value { return stringVar(&o.broker.SASL.OAuth.Issuer) }},
	{"sasl-oauthbearer-expected-audience", "aud an OAUTHBEARER token must carry (empty: any)", func(o *serveOptions) value { return stringVar(&o.broker.SASL.OAuth.Audience) }},
	{"sasl-oauthbearer-sub-claim-name", "the OAUTHBEARER token claim that is the principal's name", func(o *serveOptions) value { return stringVar(&o.broker.SASL.OAuth.SubClaim) }},
	{"sasl-oauthbearer-clock-skew", "clock difference allowed on a token's exp, nbf and iat", func(o *serveOptions) value { return durationVar(&o.broker.SASL.OAuth.ClockSkew) }},
	{"connections-max-reauth", "longest SASL session (KIP-368): clients authenticate again on their connection before it ends, or are closed at their next request; a token's expiry ends it sooner (0s: off)", func(o *serveOptions) value { return delayVar(&o.broker.SASL.MaxReauth) }},
	{"authorizer", "check every request against the ACLs (runnel acl); PLAINTEXT clients are User:ANONYMOUS", func(o *serveOptions) value { return boolVar(&o.broker.Authorizer.Enabled) }},
	{"super-users", "principals allowed everything with --authorizer, as User:a;User:b (this broker's own inter-broker principal is one)", func(o *serveOptions) value { return stringVar(&o.broker.Authorizer.SuperUsers) }},
	{"allow-everyone-if-no-acl-found", "with --authorizer, allow requests on resources no ACL names", func(o *serveOptions) value { return boolVar(&o.broker.Authorizer.AllowEveryoneIfNoACL) }},
	{"metrics-listen", "address of /metrics, /healthz and /readyz (empty: off)", func(o *serveOptions) value { return stringVar(&o.broker.MetricsListen) }},
	{"pprof", "serve Go's CPU, heap, block and mutex profiles under /debug/pprof/ on the metrics listener, and sample blocking waits for them (costs time on every wait)", func(o *serveOptions) value { return boolVar(&o.broker.Pprof) }},
	{"node-id", "this broker's id", func(o *serveOptions) value { return int32Var(&o.broker.NodeID) }},
	{"rack", "rack or zone of this broker (Kafka's broker.rack), shown in Metadata; consumers with the same client.rack read from it (empty: none)", func(o *serveOptions) value { return stringVar(&o.broker.Rack) }},
	{"replica-selector", "how a partition's leader picks the replica a consumer reads from (KIP-392): rack-aware, an in-sync replica in the consumer's client.rack when the leader is not in it, or leader (Kafka's default)", func(o *serveOptions) value { return replicaSelectorVar(&o.broker.Server.ReplicaSelector) }},
	{"raft-listen", "address to listen on for Raft and forwarded proposals (default: this node's address in --voters; a broker not among them joins as an observer at this address)", func(o *serveOptions) value { return stringVar(&o.broker.RaftListen) }},
	{"raft-tls", "run Raft and forwarded proposals over TLS with --tls-cert-file; every peer must present a certificate --tls-ca-file verifies", func(o *serveOptions) value { return boolVar(&o.broker.RaftTLS) }},
	{"voters", "Raft voters as 1@host:port,2@host:port,...; empty: this broker alone, without a Raft listener; a --node-id not among them joins their quorum as a non-voting observer", func(o *serveOptions) value { return votersVar(&o.broker.Voters) }},
	{"fsync", "durability: always (ack after fdatasync, group commit), interval:DURATION, or never", func(o *serveOptions) value { return fsyncVar(&o.broker.Partitions.Fsync) }},
	{"fsync-syncfs-min-files", "with --fsync always: the flushes of this many partition files at one moment share one syncfs of the data file system instead of an fdatasync each (-1: never)", func(o *serveOptions) value { return intVar(&o.broker.Partitions.SyncGroupMinFiles) }},
	{"fetch-path", "how fetches send record bytes: sendfile (zero-copy), or for comparison mmap (write from a mapping of the segment) or copy (pread into a buffer, then write)", func(o *serveOptions) value { return fetchPathVar(&o.broker.Server.FetchPath) }},
	{"auto-create-topics", "create unknown topics when clients ask for their metadata", func(o *serveOptions) value { return boolVar(&o.broker.Server.AutoCreateTopics) }},
	{"default-partitions", "partitions of auto-created topics", func(o *serveOptions) value { return int32Var(&o.broker.Server.DefaultPartitions) }},
	{"default-replication-factor", "replicas of auto-created topics and of topics created with replication factor -1", func(o *serveOptions) value { return int16Var(&o.broker.Server.DefaultReplicationFactor) }},
	{"broker-session-timeout", "the controller fences a broker that sends no heartbeat for this long, and moves its leaderships", func(o *serveOptions) value { return durationVar(&o.broker.Controller.SessionTimeout) }},
	{"broker-heartbeat-interval", "how often a broker sends the controller a heartbeat", func(o *serveOptions) value { return durationVar(&o.broker.Controller.HeartbeatInterval) }},
	{"raft-election-timeout", "a Raft follower that hears nothing from the leader for this long starts an election (with other voters)", func(o *serveOptions) value { return durationVar(&o.broker.RaftElectionTimeout) }},
	{"replica-lag-time-max", "a follower that has not caught up with the leader for this long leaves the ISR", func(o *serveOptions) value { return durationVar(&o.broker.Replicas.MaxLag) }},
	{"leader-rebalance-interval", "how often the controller gives leadership back to preferred replicas that are in sync (0s: never)", func(o *serveOptions) value { return delayVar(&o.broker.Controller.LeaderRebalanceInterval) }},
	{"max-request-bytes", "largest request frame accepted", func(o *serveOptions) value { return int32Var(&o.broker.Server.MaxRequestBytes) }},
	{"max-connections", "most open client connections", func(o *serveOptions) value { return intVar(&o.broker.Server.MaxConnections) }},
	{"idle-timeout", "close connections idle this long", func(o *serveOptions) value { return durationVar(&o.broker.Server.IdleTimeout) }},
	{"write-timeout", "close a connection whose response is not written within this time", func(o *serveOptions) value { return durationVar(&o.broker.Server.WriteTimeout) }},
	{"max-fetch-wait", "cap on a fetch's MaxWaitMillis", func(o *serveOptions) value { return durationVar(&o.broker.Server.MaxFetchWait) }},
	{"queued-max-request-bytes", "request bytes held across all connections while they are read and handled (-1: unbounded)", func(o *serveOptions) value { return int64Var(&o.broker.Server.MaxQueuedRequestBytes) }},
	{"fetch-max-bytes", "most record bytes in one fetch response (the first batch of the first partition with data is sent whole)", func(o *serveOptions) value { return int32Var(&o.broker.Server.FetchMaxBytes) }},
	{"max-fetch-sessions", "most incremental fetch sessions held (KIP-227; Kafka's max.incremental.fetch.session.cache.slots)", func(o *serveOptions) value { return intVar(&o.broker.Server.MaxFetchSessions) }},
	{"max-partitions-per-topic", "most partitions a topic may have; more is refused with INVALID_PARTITIONS", func(o *serveOptions) value { return int32Var(&o.broker.Server.MaxPartitionsPerTopic) }},
	{"max-partitions-per-broker", "most partition replicas the cluster holds per registered broker; creating past it is refused with POLICY_VIOLATION", func(o *serveOptions) value { return int32Var(&o.broker.Server.MaxPartitionsPerBroker) }},
	{"max-decompressed-batch-bytes", "most bytes the records of one compressed batch from a producer may inflate to; a batch past it is refused with INVALID_RECORD", func(o *serveOptions) value { return int64Var(&o.broker.Partitions.MaxDecompressedBatchBytes) }},
	{"retention-check-interval", "how often retention runs", func(o *serveOptions) value { return durationVar(&o.broker.RetentionCheckInterval) }},
	{"log-cleaner-threads", "partitions of compacted topics cleaned at once", func(o *serveOptions) value { return intVar(&o.broker.Cleaner.Threads) }},
	{"log-cleaner-dedupe-buffer-bytes", "memory for the log cleaner's key maps, all threads together (48 bytes a key); a partition with more keys to clean is cleaned in passes", func(o *serveOptions) value { return int64Var(&o.broker.Cleaner.DedupeBufferBytes) }},
	{"log-cleaner-io-bytes-per-second", "most bytes the log cleaner reads and writes per second (0: unlimited)", func(o *serveOptions) value { return int64Var(&o.broker.Cleaner.IOBytesPerSecond) }},
	{"leader-replication-throttled-rate", "most bytes per second a leader sends to followers of throttled replicas (leader.replication.throttled.replicas, and replicas a reassignment adds)", func(o *serveOptions) value { return int64Var(&o.broker.ReplicationThrottle.Leader) }},
	{"follower-replication-throttled-rate", "most bytes per second this broker fetches as a follower of throttled replicas (follower.replication.throttled.replicas, and replicas a reassignment adds)", func(o *serveOptions) value { return int64Var(&o.broker.ReplicationThrottle.Follower) }},
	{"log-cleaner-backoff", "how long the log cleaner waits before looking again when no partition needs cleaning", func(o *serveOptions) value { return durationVar(&o.broker.Cleaner.Backoff) }},
	{"quota-window-num", "samples a client quota's rate is measured over (Kafka's quota.window.num)", func(o *serveOptions) value { return intVar(&o.broker.Quotas.Samples) }},
	{"quota-window-size", "time each sample of a client quota's rate covers (Kafka's quota.window.size.seconds)", func(o *serveOptions) value { return durationVar(&o.broker.Quotas.SampleSpan) }},
	{"group-initial-rebalance-delay", "how long a new group's first rebalance waits for more members (0s: none)", func(o *serveOptions) value { return delayVar(&o.broker.Groups.InitialRebalanceDelay) }},
	{"group-min-session-timeout", "shortest session timeout a group member may ask for", func(o *serveOptions) value { return durationVar(&o.broker.Groups.MinSessionTimeout) }},
	{"group-max-session-timeout", "longest session timeout a group member may ask for", func(o *serveOptions) value { return durationVar(&o.broker.Groups.MaxSessionTimeout) }},
	{"offsets-retention", "committed offsets of a group without members expire this long after the later of their commit and the group emptying", func(o *serveOptions) value { return durationVar(&o.broker.Groups.OffsetsRetention) }},
	{"offsets-retention-check-interval", "how often expired committed offsets are removed", func(o *serveOptions) value { return durationVar(&o.broker.Groups.RetentionCheckInterval) }},
	{"consumer-lag-refresh-interval", "how often the high watermarks of partitions led by other brokers are asked for, for the consumer lag of the groups this broker coordinates", func(o *serveOptions) value { return durationVar(&o.broker.ConsumerLag.Interval) }},
	{"consumer-lag-max-series", "most group partitions whose consumer lag is exported (the others are counted in runnel_consumer_group_lag_dropped_series_total)", func(o *serveOptions) value { return intVar(&o.broker.ConsumerLag.MaxSeries) }},
	{"offsets-topic-partitions", "partitions of __consumer_offsets when it is created; a group's coordinator is the leader of one of them", func(o *serveOptions) value { return int32Var(&o.broker.OffsetsTopic.Partitions) }},
	{"offsets-topic-replication-factor", "replicas of __consumer_offsets when it is created, at most the brokers registered then", func(o *serveOptions) value { return int16Var(&o.broker.OffsetsTopic.ReplicationFactor) }},
	{"offsets-topic-segment-bytes", "segment size of __consumer_offsets when it is created", func(o *serveOptions) value { return int64Var(&o.broker.OffsetsTopic.SegmentBytes) }},
	{"transaction-state-partitions", "partitions of __transaction_state when it is created; a transactional id's coordinator is the leader of one of them", func(o *serveOptions) value { return int32Var(&o.broker.Transactions.Partitions) }},
	{"transaction-state-replication-factor", "replicas of __transaction_state when it is created, at most the brokers registered then", func(o *serveOptions) value { return int16Var(&o.broker.Transactions.ReplicationFactor) }},
	{"transaction-max-timeout", "the longest transaction timeout a producer may ask for; a longer one is refused with INVALID_TRANSACTION_TIMEOUT", func(o *serveOptions) value { return durationVar(&o.broker.Transactions.MaxTimeout) }},
	{"transactional-id-expiration", "how long a transactional id without a transaction is kept before its coordinator forgets it", func(o *serveOptions) value { return durationVar(&o.broker.Transactions.IDExpiration) }},
	{"offsets-commit-timeout", "how long an offset commit waits for the in-sync replicas of its partition of __consumer_offsets", func(o *serveOptions) value { return durationVar(&o.broker.OffsetsTopic.CommitTimeout) }},
	{"shutdown-timeout", "how long SIGTERM waits for in-flight requests", func(o *serveOptions) value { return durationVar(&o.broker.ShutdownTimeout) }},
	{"log-level", "debug, info, warn or error", func(o *serveOptions) value { return stringVar(&o.logLevel) }},
	{"log-format", "text or json", func(o *serveOptions) value { return stringVar(&o.logFormat) }},
	{"config", "config file of name = value lines (names as the flags)", func(o *serveOptions) value { return stringVar(&o.config) }},
}

// repeatable settings may be given more than once (flags, or lines of the
// config file); the values are joined by newlines, in order. An
// environment variable holds them one a line.
var repeatable = map[string]bool{"scram-user": true}

// bare settings are booleans given as Kafka's operators type them, with no
// value (--authorizer); --authorizer=false turns one off.
var bare = map[string]bool{"authorizer": true, "allow-everyone-if-no-acl-found": true, "pprof": true, "raft-tls": true}

// bareFlag is a bare setting's flag: set to "true" when named alone.
type bareFlag struct{ p *string }

func (f bareFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}
func (f bareFlag) Set(s string) error { *f.p = s; return nil }
func (f bareFlag) IsBoolFlag() bool   { return true }

// def returns the setting's default as written on the command line.
func (s setting) def() string {
	o := defaultOptions()
	return s.field(&o).String()
}

// options applies resolved settings over the defaults. The values are
// checked for syntax here and for range by broker.Config.Validate.
func (v values) options(defs []setting) (serveOptions, error) {
	o := defaultOptions()
	for _, d := range defs {
		s, ok := v[d.name]
		if !ok {
			continue
		}
		if err := d.field(&o).Set(s); err != nil {
			return o, fmt.Errorf("--%s: %w", d.name, err)
		}
	}
	return o, nil
}

func envName(name string) string {
	return "RUNNEL_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// values resolves every setting.
type values map[string]string

func parseSettings(args []string, defs []setting, stderr io.Writer) (values, error) {
	fs := flag.NewFlagSet("runnel serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	set := map[string]*string{}
	for _, d := range defs {
		help := fmt.Sprintf("%s (env %s)", d.help, envName(d.name))
		if repeatable[d.name] {
			p, n := new(string), 0
			*p = d.def()
			fs.Func(d.name, help, func(s string) error {
				if n++; n == 1 {
					*p = s
				} else {
					*p += "\n" + s
				}
				return nil
			})
			set[d.name] = p
			continue
		}
		if bare[d.name] {
			p := new(string)
			*p = d.def()
			fs.Var(bareFlag{p}, d.name, help)
			set[d.name] = p
			continue
		}
		set[d.name] = fs.String(d.name, d.def(), help)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: runnel serve [flags]\n\nEvery setting can also be given as an environment variable or in the\nconfig file; flags win over the environment, which wins over the file.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	v := values{}
	for _, d := range defs {
		v[d.name] = d.def()
	}
	cfgPath := *set["config"]
	if !given["config"] {
		if e, ok := os.LookupEnv(envName("config")); ok {
			cfgPath = e
		}
	}
	if cfgPath != "" {
		file, err := readConfigFile(cfgPath, defs)
		if err != nil {
			return nil, err
		}
		for k, val := range file {
			v[k] = val
		}
	}
	for _, d := range defs {
		if e, ok := os.LookupEnv(envName(d.name)); ok {
			v[d.name] = e
		}
		if given[d.name] {
			v[d.name] = *set[d.name]
		}
	}
	v["config"] = cfgPath
	return v, nil
}

func readConfigFile(path string, defs []setting) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	known := map[string]bool{}
	for _, d := range defs {
		known[d.name] = true
	}
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		k, val, ok := strings.Cut(t, "=")
		if !ok {
			return nil, fmt.Errorf("config file %s:%d: want name = value", path, line)
		}
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !known[k] || k == "config" {
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("config file %s:%d: unknown setting %q (known: %s)", path, line, k, strings.Join(names, ", "))
		}
		val = strings.Trim(val, `"`)
		if prev, ok := out[k]; ok && repeatable[k] {
			val = prev + "\n" + val
		}
		out[k] = val
	}
	return out, sc.Err()
}
