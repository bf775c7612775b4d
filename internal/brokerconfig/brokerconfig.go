// Package brokerconfig is the broker's settings as Kafka clients see them:
// broker configs, by Kafka's names where runnel has the same setting, each
// with its type, documentation, whether it is a secret, and whether it may
// change while the broker runs (a dynamic config).
//
// A setting's value comes from, in order of precedence: the dynamic config
// of this broker (DYNAMIC_BROKER_CONFIG), the cluster-wide dynamic default
// (DYNAMIC_DEFAULT_BROKER_CONFIG), both kept in the Raft state
// (cluster.SetBrokerConfigs); the broker's flag, environment variable or
// config-file line (STATIC_BROKER_CONFIG); and the built-in default
// (DEFAULT_CONFIG). Resolve gives each value with its source and the
// layers under it (synonyms).
package brokerconfig

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"

	"github.com/runnel-io/runnel/partition"
)

// ErrInvalid reports a broker config value runnel refuses (INVALID_CONFIG).
var ErrInvalid = errors.New("brokerconfig: invalid broker config")

// ErrUnknown reports a broker config name runnel does not have
// (INVALID_CONFIG).
var ErrUnknown = errors.New("brokerconfig: unknown broker config")

// ErrReadOnly reports a change of a config that is not dynamic: it is the
// broker's flag and needs a restart (INVALID_REQUEST, as Kafka answers).
var ErrReadOnly = errors.New("brokerconfig: broker config cannot change while the broker runs; set its flag and restart")

// Kafka's config sources, as DescribeConfigs reports them.
const (
	SourceDynamicBroker        int8 = 2
	SourceDynamicDefaultBroker int8 = 3
	SourceStaticBroker         int8 = 4
	SourceDefault              int8 = 5
)

// LogLevel is runnel's own broker config for the log level (Kafka sets its
// loggers' levels through another resource type): debug, info, warn or
// error.
const LogLevel = "log.level"

// CleanerIORate is the cleaner's I/O throttle.
const CleanerIORate = "log.cleaner.io.max.bytes.per.second"

// The replication throttles, Kafka's: bytes per second of throttled
// replication traffic a leader sends and a follower fetches.
const (
	LeaderReplicationRate   = "leader.replication.throttled.rate"
	FollowerReplicationRate = "follower.replication.throttled.rate"
)

// Def describes one broker config.
type Def struct {
	// Name is the config's name: Kafka's, or for runnel's own settings
	// one in Kafka's style.
	Name string
	// Flag is the `runnel serve` flag that sets it statically; empty for
	// a config with no flag (a default of a topic config).
	Flag string
	// Type is Kafka's config type (partition.TypeLong, ...).
	Type int8
	// Doc is the documentation DescribeConfigs v3+ gives.
	Doc string
	// Dynamic configs may be changed while the broker runs.
	Dynamic bool
	// Sensitive configs are secrets: their value is never shown.
	Sensitive bool
	// Topic is the topic config this is the broker-wide default of (its
	// value is then the topic config's default for every topic that sets
	// none); empty if none.
	Topic string
}

// topicDefault is a broker config that is the default of a topic config,
// dynamic, with the topic config's type and check.
func topicDefault(name, topic, doc string) Def {
	return Def{Name: name, Type: partition.ConfigType(topic), Doc: doc, Dynamic: true, Topic: topic}
}

// Defs are runnel's broker configs, sorted by name.
var Defs = sortDefs([]Def{
	topicDefault("log.retention.ms", "retention.ms", "default retention.ms of topics: age past which old segments go; -1: forever"),
	topicDefault("log.retention.bytes", "retention.bytes", "default retention.bytes of topics: partition size above which old segments go; -1: no limit"),
	topicDefault("log.segment.bytes", "segment.bytes", "default segment.bytes of topics: segment size at which a log rolls (new segments take a change)"),
	topicDefault("log.roll.ms", "segment.ms", "default segment.ms of topics: age at which a segment rolls"),
	topicDefault("log.cleanup.policy", "cleanup.policy", "default cleanup.policy of topics: delete, compact or compact,delete"),
	topicDefault("log.index.interval.bytes", "index.interval.bytes", "default index.interval.bytes of topics: log bytes between offset index entries"),
	topicDefault("message.max.bytes", "max.message.bytes", "default max.message.bytes of topics: largest record batch accepted"),
	topicDefault("min.insync.replicas", "min.insync.replicas", "default min.insync.replicas of topics: replicas that must have a write before acks=all succeeds"),
	topicDefault("log.cleaner.delete.retention.ms", "delete.retention.ms", "default delete.retention.ms of topics: how long a tombstone stays after its segment was cleaned"),
	topicDefault("log.cleaner.min.cleanable.ratio", "min.cleanable.dirty.ratio", "default min.cleanable.dirty.ratio of topics: dirty share above which the cleaner cleans a log"),
	topicDefault("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms", "default min.compaction.lag.ms of topics: shortest time a record stays uncompacted"),
	topicDefault("log.cleaner.max.compaction.lag.ms", "max.compaction.lag.ms", "default max.compaction.lag.ms of topics: longest a record may stay uncompacted"),
	{Name: CleanerIORate, Flag: "log-cleaner-io-bytes-per-second", Type: partition.TypeLong, Dynamic: true,
		Doc: "most bytes the log cleaner reads and writes per second, all threads together; 0: unlimited"},
	{Name: LeaderReplicationRate, Flag: "leader-replication-throttled-rate", Type: partition.TypeLong, Dynamic: true,
		Doc: "most bytes per second a leader sends to the followers of throttled replicas (leader.replication.throttled.replicas and replicas being added by a reassignment)"},
	{Name: FollowerReplicationRate, Flag: "follower-replication-throttled-rate", Type: partition.TypeLong, Dynamic: true,
		Doc: "most bytes per second a follower fetches for throttled replicas (follower.replication.throttled.replicas and replicas being added by a reassignment)"},
	{Name: LogLevel, Flag: "log-level", Type: partition.TypeString, Dynamic: true, Doc: "the broker's log level: debug, info, warn or error"},

	{Name: "node.id", Flag: "node-id", Type: partition.TypeInt, Doc: "this broker's id"},
	{Name: "log.dirs", Flag: "data-dir", Type: partition.TypeString, Doc: "directory of the segments, the index and the metadata"},
	{Name: "listeners", Flag: "listeners", Type: partition.TypeList, Doc: "the Kafka listeners, NAME://host:port"},
	{Name: "advertised.listeners", Flag: "advertised-listeners", Type: partition.TypeList, Doc: "the addresses clients are told, NAME://host:port"},
	{Name: "listener.security.protocol.map", Flag: "listener-security-protocol-map", Type: partition.TypeList, Doc: "the security protocol of each listener"},
	{Name: "inter.broker.listener.name", Flag: "inter-broker-listener", Type: partition.TypeString, Doc: "the listener other brokers replicate from"},
	{Name: "num.partitions", Flag: "default-partitions", Type: partition.TypeInt, Doc: "partitions of auto-created topics"},
	{Name: "default.replication.factor", Flag: "default-replication-factor", Type: partition.TypeInt, Doc: "replicas of auto-created topics and of those created with replication factor -1"},
	{Name: "auto.create.topics.enable", Flag: "auto-create-topics", Type: partition.TypeBoolean, Doc: "create unknown topics when clients ask for their metadata"},
	{Name: "socket.request.max.bytes", Flag: "max-request-bytes", Type: partition.TypeInt, Doc: "largest request frame accepted"},
	{Name: "max.connections", Flag: "max-connections", Type: partition.TypeInt, Doc: "most open client connections"},
	{Name: "connections.max.idle.ms", Flag: "idle-timeout", Type: partition.TypeLong, Doc: "connections idle this long are closed"},
	{Name: "queued.max.request.bytes", Flag: "queued-max-request-bytes", Type: partition.TypeLong, Doc: "request bytes held across all connections; -1: unbounded"},
	{Name: "fetch.max.bytes", Flag: "fetch-max-bytes", Type: partition.TypeInt, Doc: "most record bytes in one fetch response"},
	{Name: "log.retention.check.interval.ms", Flag: "retention-check-interval", Type: partition.TypeLong, Doc: "how often retention runs"},
	{Name: "log.cleaner.threads", Flag: "log-cleaner-threads", Type: partition.TypeInt, Doc: "partitions of compacted topics cleaned at once"},
	{Name: "log.cleaner.dedupe.buffer.size", Flag: "log-cleaner-dedupe-buffer-bytes", Type: partition.TypeLong, Doc: "memory for the log cleaner's key maps, all threads together"},
	{Name: "log.cleaner.backoff.ms", Flag: "log-cleaner-backoff", Type: partition.TypeLong, Doc: "how long the cleaner waits when no partition needs cleaning"},
	{Name: "offsets.topic.num.partitions", Flag: "offsets-topic-partitions", Type: partition.TypeInt, Doc: "partitions of __consumer_offsets when it is created"},
	{Name: "offsets.topic.replication.factor", Flag: "offsets-topic-replication-factor", Type: partition.TypeInt, Doc: "replicas of __consumer_offsets when it is created"},
	{Name: "offsets.topic.segment.bytes", Flag: "offsets-topic-segment-bytes", Type: partition.TypeInt, Doc: "segment size of __consumer_offsets when it is created"},
	{Name: "offsets.commit.timeout.ms", Flag: "offsets-commit-timeout", Type: partition.TypeInt, Doc: "how long an offset commit waits for the in-sync replicas"},
	{Name: "offsets.retention.minutes", Flag: "offsets-retention", Type: partition.TypeInt, Doc: "committed offsets of a group without members expire this long after the later of their commit and the group emptying"},
	{Name: "offsets.retention.check.interval.ms", Flag: "offsets-retention-check-interval", Type: partition.TypeLong, Doc: "how often expired committed offsets are removed"},
	{Name: "group.min.session.timeout.ms", Flag: "group-min-session-timeout", Type: partition.TypeInt, Doc: "shortest session timeout a group member may ask for"},
	{Name: "group.max.session.timeout.ms", Flag: "group-max-session-timeout", Type: partition.TypeInt, Doc: "longest session timeout a group member may ask for"},
	{Name: "group.initial.rebalance.delay.ms", Flag: "group-initial-rebalance-delay", Type: partition.TypeInt, Doc: "how long a new group's first rebalance waits for more members"},
	{Name: "replica.lag.time.max.ms", Flag: "replica-lag-time-max", Type: partition.TypeLong, Doc: "a follower behind the leader this long leaves the ISR"},
	{Name: "broker.session.timeout.ms", Flag: "broker-session-timeout", Type: partition.TypeInt, Doc: "the controller fences a broker silent this long"},
	{Name: "broker.heartbeat.interval.ms", Flag: "broker-heartbeat-interval", Type: partition.TypeInt, Doc: "how often a broker sends the controller a heartbeat"},
	{Name: "leader.imbalance.check.interval.seconds", Flag: "leader-rebalance-interval", Type: partition.TypeLong, Doc: "how often leadership goes back to preferred replicas in sync; 0: never"},
	{Name: "super.users", Flag: "super-users", Type: partition.TypeList, Doc: "principals allowed everything under the authorizer"},
	{Name: "allow.everyone.if.no.acl.found", Flag: "allow-everyone-if-no-acl-found", Type: partition.TypeBoolean, Doc: "allow requests on resources no ACL names"},
	{Name: "sasl.enabled.mechanisms", Flag: "sasl-enabled-mechanisms", Type: partition.TypeList, Doc: "SASL mechanisms of SASL listeners"},
	{Name: "sasl.scram.users", Flag: "scram-user", Type: partition.TypePassword, Sensitive: true, Doc: "SCRAM users created at start, with their passwords"},
	{Name: "connections.max.reauth.ms", Flag: "connections-max-reauth", Type: partition.TypeLong, Doc: "longest SASL session before a client authenticates again; 0: off"},
	{Name: "ssl.keystore.location", Flag: "tls-cert-file", Type: partition.TypeString, Doc: "PEM certificate chain of SSL listeners"},
	{Name: "ssl.truststore.location", Flag: "tls-ca-file", Type: partition.TypeString, Doc: "PEM certificates of the CAs that sign client and broker certificates"},
	{Name: "ssl.client.auth", Flag: "tls-client-auth", Type: partition.TypeString, Doc: "client certificates on SSL listeners: none, requested or required"},
	{Name: "ssl.principal.mapping.rules", Flag: "ssl-principal-mapping-rules", Type: partition.TypeString, Doc: "how a client certificate's subject becomes its principal"},
})

func sortDefs(d []Def) []Def {
	sort.Slice(d, func(i, j int) bool { return d[i].Name < d[j].Name })
	return d
}

// Lookup returns the definition of a broker config.
func Lookup(name string) (Def, bool) {
	i := sort.Search(len(Defs), func(i int) bool { return Defs[i].Name >= name })
	if i < len(Defs) && Defs[i].Name == name {
		return Defs[i], true
	}
	return Def{}, false
}

// Check validates a dynamic config's value: unknown and read-only names
// and bad values are refused.
func Check(name, value string) error {
	d, ok := Lookup(name)
	switch {
	case !ok:
		return fmt.Errorf("%w: %q", ErrUnknown, name)
	case !d.Dynamic:
		return fmt.Errorf("%w: %s (--%s)", ErrReadOnly, name, d.Flag)
	case d.Topic != "":
		if err := partition.ValidateConfigs(map[string]string{d.Topic: value}); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalid, name, err)
		}
	case name == LogLevel:
		var l slog.Level
		if err := l.UnmarshalText([]byte(value)); err != nil {
			return fmt.Errorf("%w: %s=%q: want debug, info, warn or error", ErrInvalid, name, value)
		}
	case name == LeaderReplicationRate, name == FollowerReplicationRate:
		if n, err := strconv.ParseInt(value, 10, 64); err != nil || n < 0 {
			return fmt.Errorf("%w: %s=%q: want a rate of 0 or more bytes per second", ErrInvalid, name, value)
		}
	case name == CleanerIORate:
		if n, err := strconv.ParseInt(value, 10, 64); err != nil || n < 0 {
			return fmt.Errorf("%w: %s=%q: want 0 (unlimited) or a rate in bytes per second", ErrInvalid, name, value)
		}
	}
	return nil
}

// Static is a config's value as the broker was started with it.
type Static struct {
	Value   string
	Default string // the built-in default
	// Set says it was given (a flag, a variable or the config file) and
	// differs from the built-in default: STATIC_BROKER_CONFIG, not
	// DEFAULT_CONFIG.
	Set bool
}

// Synonym is one layer of a config's value.
type Synonym struct {
	Name   string
	Value  string
	Source int8
}

// Entry is a config's effective value on one broker.
type Entry struct {
	Def
	Value  string
	Source int8
	// Synonyms are the layers that set it, the one in effect first, down
	// to the built-in default.
	Synonyms []Synonym
}

// Resolve returns every config's effective value on a broker started with
// static (by name; a config missing from it has its built-in default, a
// topic config's default for the topic defaults), whose own dynamic
// configs are broker and the cluster-wide ones defaults.
func Resolve(static map[string]Static, broker, defaults map[string]string) []Entry {
	out := make([]Entry, 0, len(Defs))
	for _, d := range Defs {
		out = append(out, resolve(d, static, broker, defaults))
	}
	return out
}

func resolve(d Def, static map[string]Static, broker, defaults map[string]string) Entry {
	var syn []Synonym
	if v, ok := broker[d.Name]; ok && d.Dynamic {
		syn = append(syn, Synonym{d.Name, v, SourceDynamicBroker})
	}
	if v, ok := defaults[d.Name]; ok && d.Dynamic {
		syn = append(syn, Synonym{d.Name, v, SourceDynamicDefaultBroker})
	}
	st, ok := static[d.Name]
	if ok && st.Set {
		syn = append(syn, Synonym{d.Name, st.Value, SourceStaticBroker})
	}
	def := st.Default
	if d.Topic != "" {
		def, _ = partition.Value(nil, d.Topic)
	}
	syn = append(syn, Synonym{d.Name, def, SourceDefault})
	return Entry{Def: d, Value: syn[0].Value, Source: syn[0].Source, Synonyms: syn}
}

// Effective returns the value of one config on a broker, as Resolve.
func Effective(name string, static map[string]Static, broker, defaults map[string]string) (Entry, bool) {
	d, ok := Lookup(name)
	if !ok {
		return Entry{}, false
	}
	return resolve(d, static, broker, defaults), true
}

// TopicDefaults returns the topic configs a broker's dynamic configs set
// for every topic without its own: topic config name to value.
func TopicDefaults(broker, defaults map[string]string) map[string]string {
	out := map[string]string{}
	for _, d := range Defs {
		if d.Topic == "" {
			continue
		}
		if v, ok := broker[d.Name]; ok {
			out[d.Topic] = v
		} else if v, ok := defaults[d.Name]; ok {
			out[d.Topic] = v
		}
	}
	return out
}

// ForTopic returns the broker config that is the default of a topic
// config.
func ForTopic(topic string) (Def, bool) {
	for _, d := range Defs {
		if d.Topic == topic {
			return d, true
		}
	}
	return Def{}, false
}
