package partition

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-io/runnel/segment"
)

// ErrInvalidConfig reports a topic config name or value runnel refuses.
var ErrInvalidConfig = errors.New("partition: invalid topic config")

// ConfigDef describes one topic config: its Kafka name, default and check.
type ConfigDef struct {
	Name    string
	Default string
	Doc     string
	check   func(string) error
}

func intRange(lo, hi int64) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < lo || v > hi {
			return fmt.Errorf("want an integer in [%d, %d]", lo, hi)
		}
		return nil
	}
}

func oneOf(vals ...string) func(string) error {
	return func(s string) error {
		for _, v := range vals {
			if s == v {
				return nil
			}
		}
		return fmt.Errorf("want one of %q", vals)
	}
}

func floatRange(lo, hi float64) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || !(v >= lo && v <= hi) {
			return fmt.Errorf("want a number in [%g, %g]", lo, hi)
		}
		return nil
	}
}

// parsePolicy reads cleanup.policy: "delete", "compact", or both in either
// order ("compact,delete", "delete,compact"), spaces around names ignored,
// as Kafka's list configs read.
func parsePolicy(s string) (compact, del bool, err error) {
	for _, name := range strings.Split(s, ",") {
		switch strings.TrimSpace(name) {
		case "compact":
			if compact {
				return false, false, errors.New("compact named twice")
			}
			compact = true
		case "delete":
			if del {
				return false, false, errors.New("delete named twice")
			}
			del = true
		default:
			return false, false, fmt.Errorf("want delete, compact or compact,delete; %q is neither", name)
		}
	}
	return compact, del, nil
}

func policy(s string) error { _, _, err := parsePolicy(s); return err }

const maxInt64 = 1<<63 - 1

// ConfigDefs are the topic configs runnel knows, sorted by name.
var ConfigDefs = []ConfigDef{
	{"cleanup.policy", "delete", "what happens to old segments: delete (retention), compact (keep each key's latest record), or compact,delete (both)", policy},
	{"delete.retention.ms", "86400000", "how long a tombstone stays in a compacted log after its segment was cleaned", intRange(0, maxInt64)},
	{"follower.replication.throttled.replicas", "", "replicas whose fetches as followers are held to the broker's follower.replication.throttled.rate: * or partition:broker pairs", throttledList},
	{"index.interval.bytes", "4096", "log bytes between offset index entries", intRange(1, 1<<30)},
	{"leader.replication.throttled.replicas", "", "replicas that, leading, hold their followers' fetches to the broker's leader.replication.throttled.rate: * or partition:broker pairs", throttledList},
	{"max.compaction.lag.ms", "9223372036854775807", "longest a record may stay uncompacted: a partition holding older dirty records is cleaned whatever its dirty ratio", intRange(1, maxInt64)},
	{"max.message.bytes", "1048588", "largest record batch accepted, in bytes", intRange(0, 1<<30)},
	{"message.timestamp.type", "CreateTime", "only CreateTime is supported", oneOf("CreateTime")},
	{"min.cleanable.dirty.ratio", "0.5", "share of a compacted log not yet cleaned above which the cleaner cleans it", floatRange(0, 1)},
	{"min.compaction.lag.ms", "0", "shortest time a record stays uncompacted", intRange(0, maxInt64)},
	{"min.insync.replicas", "1", "replicas that must have a write before acks=all succeeds", intRange(1, 1<<31-1)},
	{"retention.bytes", "-1", "partition size above which old segments go; -1: no limit", intRange(-1, maxInt64)},
	{"retention.ms", "604800000", "age past which old segments go; -1: forever", intRange(-1, maxInt64)},
	{"segment.bytes", "1073741824", "segment size at which the log rolls", intRange(14, 1<<31-1)},
	{"segment.ms", "604800000", "age at which a segment rolls", intRange(1, maxInt64)},
	{"unclean.leader.election.enable", "false", "allow a replica outside the ISR to lead", oneOf("true", "false")},
}

// Kafka's config types, as DescribeConfigs v3+ reports them.
const (
	TypeBoolean  int8 = 1
	TypeString   int8 = 2
	TypeInt      int8 = 3
	TypeLong     int8 = 5
	TypeDouble   int8 = 6
	TypeList     int8 = 7
	TypePassword int8 = 9
)

// configTypes are the topic configs' types, as Kafka's.
var configTypes = map[string]int8{
	"cleanup.policy": TypeList, "delete.retention.ms": TypeLong, "index.interval.bytes": TypeInt,
	"max.compaction.lag.ms": TypeLong, "max.message.bytes": TypeInt, "message.timestamp.type": TypeString,
	"min.cleanable.dirty.ratio": TypeDouble, "min.compaction.lag.ms": TypeLong, "min.insync.replicas": TypeInt,
	"retention.bytes": TypeLong, "retention.ms": TypeLong, "segment.bytes": TypeInt, "segment.ms": TypeLong,
	"unclean.leader.election.enable": TypeBoolean, "leader.replication.throttled.replicas": TypeList,
	"follower.replication.throttled.replicas": TypeList,
}

// ConfigType returns a topic config's Kafka type; TypeList configs take
// IncrementalAlterConfigs' APPEND and SUBTRACT.
func ConfigType(name string) int8 {
	if t, ok := configTypes[name]; ok {
		return t
	}
	return TypeString
}

// LookupConfig returns the definition of a config name.
func LookupConfig(name string) (ConfigDef, bool) {
	i := sort.Search(len(ConfigDefs), func(i int) bool { return ConfigDefs[i].Name >= name })
	if i < len(ConfigDefs) && ConfigDefs[i].Name == name {
		return ConfigDefs[i], true
	}
	return ConfigDef{}, false
}

// ValidateConfigs checks explicit topic configs.
func ValidateConfigs(cfg map[string]string) error {
	for k, v := range cfg {
		d, ok := LookupConfig(k)
		if !ok {
			return fmt.Errorf("%w: unknown config %q", ErrInvalidConfig, k)
		}
		if err := d.check(v); err != nil {
			return fmt.Errorf("%w: %s=%q: %v", ErrInvalidConfig, k, v, err)
		}
	}
	return nil
}

// Config is a topic's effective configuration.
type Config struct {
	RetentionBytes  int64
	RetentionMs     int64
	SegmentBytes    int64
	SegmentMs       int64
	MaxMessageBytes int32
	MinInsyncRepl   int32
	IndexInterval   int32
	// Compact and Delete are cleanup.policy: at least one is set.
	Compact, Delete bool
	// DeleteRetentionMs is delete.retention.ms.
	DeleteRetentionMs int64
	// MinCleanableDirtyRatio is min.cleanable.dirty.ratio.
	MinCleanableDirtyRatio float64
	// MinCompactionLagMs and MaxCompactionLagMs are min.compaction.lag.ms
	// and max.compaction.lag.ms.
	MinCompactionLagMs, MaxCompactionLagMs int64
	// LeaderThrottled and FollowerThrottled are
	// leader.replication.throttled.replicas and
	// follower.replication.throttled.replicas.
	LeaderThrottled, FollowerThrottled Throttled
}

// Value returns the effective value of a config: explicit if set, else the
// default.
func Value(explicit map[string]string, name string) (value string, isDefault bool) {
	if v, ok := explicit[name]; ok {
		return v, false
	}
	d, _ := LookupConfig(name)
	return d.Default, true
}

// ResolveConfig validates explicit configs and fills in the defaults.
func ResolveConfig(explicit map[string]string) (Config, error) {
	if err := ValidateConfigs(explicit); err != nil {
		return Config{}, err
	}
	get := func(name string) int64 {
		v, _ := Value(explicit, name)
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	pv, _ := Value(explicit, "cleanup.policy")
	compact, del, _ := parsePolicy(pv) // validated above
	rv, _ := Value(explicit, "min.cleanable.dirty.ratio")
	ratio, _ := strconv.ParseFloat(rv, 64)
	lt, _ := ParseThrottled(explicit["leader.replication.throttled.replicas"])
	ft, _ := ParseThrottled(explicit["follower.replication.throttled.replicas"])
	return Config{
		LeaderThrottled:        lt,
		FollowerThrottled:      ft,
		Compact:                compact,
		Delete:                 del,
		DeleteRetentionMs:      get("delete.retention.ms"),
		MinCleanableDirtyRatio: ratio,
		MinCompactionLagMs:     get("min.compaction.lag.ms"),
		MaxCompactionLagMs:     get("max.compaction.lag.ms"),
		RetentionBytes:         get("retention.bytes"),
		RetentionMs:            get("retention.ms"),
		SegmentBytes:           get("segment.bytes"),
		SegmentMs:              get("segment.ms"),
		MaxMessageBytes:        int32(get("max.message.bytes")),
		MinInsyncRepl:          int32(get("min.insync.replicas")),
		IndexInterval:          int32(get("index.interval.bytes")),
	}, nil
}

// logOptions turns a topic config into segment options.
func (c Config) logOptions() segment.Options {
	o := segment.Options{
		SegmentBytes:   c.SegmentBytes,
		SegmentAge:     time.Duration(c.SegmentMs) * time.Millisecond,
		RetentionBytes: c.RetentionBytes,
		IndexInterval:  int(c.IndexInterval),
		Compacted:      c.Compact,
	}
	if !c.Delete {
		// compact alone: retention deletes nothing; the cleaner keeps
		// each key's latest record instead.
		o.RetentionAge, o.RetentionBytes = -1, -1
		return o
	}
	if c.RetentionMs < 0 {
		o.RetentionAge = -1
	} else {
		o.RetentionAge = time.Duration(c.RetentionMs) * time.Millisecond
	}
	if o.RetentionBytes == 0 {
		// Kafka's 0 keeps no sealed segment; segment.Options reads 0 as
		// unset, and a 1-byte limit removes the same segments.
		o.RetentionBytes = 1
	}
	return o
}
