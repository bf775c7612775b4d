package broker

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/brokerconfig"
	"github.com/runnel-io/runnel/internal/throttle"
)

// staticSettings gives, for each broker config that is a flag, its value
// in a Config as Kafka writes it (durations in the config's unit, lists
// comma-separated).
var staticSettings = map[string]func(c Config) string{
	"node.id":  func(c Config) string { return itoa(c.NodeID) },
	"log.dirs": func(c Config) string { return c.DataDir },
	"listeners": func(c Config) string {
		if len(c.Listeners) == 0 {
			return "PLAINTEXT://" + c.Listen
		}
		return joinList(c.Listeners)
	},
	"advertised.listeners": func(c Config) string {
		if len(c.AdvertisedListeners) == 0 && len(c.Listeners) == 0 && c.Advertise != "" {
			return "PLAINTEXT://" + c.Advertise
		}
		return joinList(c.AdvertisedListeners)
	},
	"listener.security.protocol.map": func(c Config) string {
		var out []string
		for _, p := range c.ListenerProtocols {
			out = append(out, p.Name+":"+fmt.Sprint(p.Protocol))
		}
		return strings.Join(out, ",")
	},
	"inter.broker.listener.name":          func(c Config) string { return c.InterBrokerListener },
	"num.partitions":                      func(c Config) string { return itoa(c.Server.DefaultPartitions) },
	"default.replication.factor":          func(c Config) string { return itoa(c.Server.DefaultReplicationFactor) },
	"auto.create.topics.enable":           func(c Config) string { return strconv.FormatBool(c.Server.AutoCreateTopics) },
	"socket.request.max.bytes":            func(c Config) string { return itoa(c.Server.MaxRequestBytes) },
	"max.connections":                     func(c Config) string { return itoa(c.Server.MaxConnections) },
	"connections.max.idle.ms":             func(c Config) string { return ms(c.Server.IdleTimeout) },
	"queued.max.request.bytes":            func(c Config) string { return itoa(c.Server.MaxQueuedRequestBytes) },
	"fetch.max.bytes":                     func(c Config) string { return itoa(c.Server.FetchMaxBytes) },
	"log.retention.check.interval.ms":     func(c Config) string { return ms(c.RetentionCheckInterval) },
	"log.cleaner.threads":                 func(c Config) string { return itoa(c.Cleaner.Threads) },
	"log.cleaner.dedupe.buffer.size":      func(c Config) string { return itoa(c.Cleaner.DedupeBufferBytes) },
	"log.cleaner.backoff.ms":              func(c Config) string { return ms(c.Cleaner.Backoff) },
	brokerconfig.CleanerIORate:            func(c Config) string { return itoa(c.Cleaner.IOBytesPerSecond) },
	brokerconfig.LeaderReplicationRate:    func(c Config) string { return itoa(c.ReplicationThrottle.Leader) },
	brokerconfig.FollowerReplicationRate:  func(c Config) string { return itoa(c.ReplicationThrottle.Follower) },
	"offsets.topic.num.partitions":        func(c Config) string { return itoa(c.OffsetsTopic.Partitions) },
	"offsets.topic.replication.factor":    func(c Config) string { return itoa(c.OffsetsTopic.ReplicationFactor) },
	"offsets.topic.segment.bytes":         func(c Config) string { return itoa(c.OffsetsTopic.SegmentBytes) },
	"offsets.commit.timeout.ms":           func(c Config) string { return ms(c.OffsetsTopic.CommitTimeout) },
	"offsets.retention.minutes":           func(c Config) string { return itoa(int64(c.Groups.OffsetsRetention / time.Minute)) },
	"offsets.retention.check.interval.ms": func(c Config) string { return ms(c.Groups.RetentionCheckInterval) },
	"group.min.session.timeout.ms":        func(c Config) string { return ms(c.Groups.MinSessionTimeout) },
	"group.max.session.timeout.ms":        func(c Config) string { return ms(c.Groups.MaxSessionTimeout) },
	"group.initial.rebalance.delay.ms":    func(c Config) string { return ms(c.Groups.InitialRebalanceDelay) },
	"replica.lag.time.max.ms":             func(c Config) string { return ms(c.Replicas.MaxLag) },
	"broker.session.timeout.ms":           func(c Config) string { return ms(c.Controller.SessionTimeout) },
	"broker.heartbeat.interval.ms":        func(c Config) string { return ms(c.Controller.HeartbeatInterval) },
	"leader.imbalance.check.interval.seconds": func(c Config) string {
		return itoa(int64(c.Controller.LeaderRebalanceInterval / time.Second))
	},
	"super.users":                    func(c Config) string { return strings.ReplaceAll(c.Authorizer.SuperUsers, ";", ",") },
	"allow.everyone.if.no.acl.found": func(c Config) string { return strconv.FormatBool(c.Authorizer.AllowEveryoneIfNoACL) },
	"sasl.enabled.mechanisms":        func(c Config) string { return strings.Join(c.SASL.Mechanisms, ",") },
	"sasl.scram.users":               func(c Config) string { return fmt.Sprint(c.SASL.Users, c.SASL.UsersFile) },
	"connections.max.reauth.ms":      func(c Config) string { return ms(c.SASL.MaxReauth) },
	"ssl.keystore.location":          func(c Config) string { return c.TLS.CertFile },
	"ssl.truststore.location":        func(c Config) string { return c.TLS.CAFile },
	"ssl.client.auth":                func(c Config) string { return c.TLS.ClientAuth.String() },
	"ssl.principal.mapping.rules":    func(c Config) string { return c.TLS.PrincipalMappingRules },
	brokerconfig.LogLevel: func(c Config) string {
		if c.LogLevel == nil {
			return "info"
		}
		return strings.ToLower(c.LogLevel.Level().String())
	},
}

func itoa[T int | int16 | int32 | int64](n T) string { return strconv.FormatInt(int64(n), 10) }

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

func joinList[T fmt.Stringer](l []T) string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = v.String()
	}
	return strings.Join(out, ",")
}

// staticBrokerConfigs returns the broker configs c sets, each marked Set
// where it differs from DefaultConfig's (a flag given its default value is
// reported as the default).
func staticBrokerConfigs(c Config) map[string]brokerconfig.Static {
	def := DefaultConfig()
	out := map[string]brokerconfig.Static{}
	for name, f := range staticSettings {
		v, d := f(c), f(def)
		out[name] = brokerconfig.Static{Value: v, Default: d, Set: v != d}
	}
	return out
}

// dynamicConfigs applies the dynamic broker configs of the Raft state to
// this broker: its own over the cluster-wide defaults, over its flags.
type dynamicConfigs struct {
	static map[string]brokerconfig.Static // set in New, then only read

	mu   sync.Mutex
	last map[int32]map[string]string // as the state machine last gave them
}

// brokerConfigsChanged is the state machine's watcher: it runs under the
// state machine's lock, and only sets values the broker reads atomically.
func (b *Broker) brokerConfigsChanged(all map[int32]map[string]string) {
	b.dyn.mu.Lock()
	b.dyn.last = all
	b.dyn.mu.Unlock()
	b.applyBrokerConfigs()
}

// applyBrokerConfigs applies the last dynamic configs seen: the topic
// defaults to the partition manager (the replicas' reconciliation, which
// the same change wakes, gives them to open partitions), the cleaner's
// I/O rate, the log level. A value the state holds that this broker does
// not take (checked when it was proposed, so from a newer broker) is
// logged and skipped.
func (b *Broker) applyBrokerConfigs() {
	b.dyn.mu.Lock()
	defer b.dyn.mu.Unlock()
	own, defaults := b.dyn.last[b.cfg.NodeID], b.dyn.last[cluster.DefaultBrokerConfigs]
	for _, m := range []map[string]string{own, defaults} {
		for k, v := range m {
			if err := brokerconfig.Check(k, v); err != nil {
				b.log.Warn("a dynamic broker config in the metadata does not apply here", "config", k, "err", err)
				delete(m, k)
			}
		}
	}
	if b.parts != nil {
		if err := b.parts.SetTopicDefaults(brokerconfig.TopicDefaults(own, defaults)); err != nil {
			b.log.Warn("dynamic topic defaults do not apply", "err", err)
		}
	}
	static := b.dyn.static
	if e, ok := brokerconfig.Effective(brokerconfig.CleanerIORate, static, own, defaults); ok && b.cleaner != nil {
		n, _ := strconv.ParseInt(e.Value, 10, 64)
		b.cleaner.SetIOBytesPerSecond(n)
	}
	for name, t := range map[string]*throttle.Rate{brokerconfig.LeaderReplicationRate: b.leaderThrottle,
		brokerconfig.FollowerReplicationRate: b.followerThrottle} {
		if e, ok := brokerconfig.Effective(name, static, own, defaults); ok && t != nil {
			if n, err := strconv.ParseInt(e.Value, 10, 64); err == nil && n != t.Limit() {
				t.SetRate(n)
				b.log.Info("replication throttle changed", "config", name, "bytes_per_second", n, "source", e.Source)
			}
		}
	}
	if e, ok := brokerconfig.Effective(brokerconfig.LogLevel, static, own, defaults); ok && b.cfg.LogLevel != nil {
		var l slog.Level
		if l.UnmarshalText([]byte(e.Value)) == nil && l != b.cfg.LogLevel.Level() {
			b.cfg.LogLevel.Set(l)
			b.log.Info("log level changed", "level", l.String(), "source", e.Source)
		}
	}
}
