package partition

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
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

const maxInt64 = 1<<63 - 1

// ConfigDefs are the topic configs runnel knows, sorted by name.
var ConfigDefs = []ConfigDef{
	{"cleanup.policy", "delete", "what happens to old segments; only delete is supported", oneOf("delete")},
	{"index.interval.bytes", "4096", "log bytes between offset index entries", intRange(1, 1<<30)},
	{"max.message.bytes", "1048588", "largest record batch accepted, in bytes", intRange(0, 1<<30)},
	{"message.timestamp.type", "CreateTime", "only CreateTime is supported", oneOf("CreateTime")},
	{"min.insync.replicas", "1", "replicas that must have a write before acks=all succeeds", intRange(1, 1<<31-1)},
	{"retention.bytes", "-1", "partition size above which old segments go; -1: no limit", intRange(-1, maxInt64)},
	{"retention.ms", "604800000", "age past which old segments go; -1: forever", intRange(-1, maxInt64)},
	{"segment.bytes", "1073741824", "segment size at which the log rolls", intRange(14, 1<<31-1)},
	{"segment.ms", "604800000", "age at which a segment rolls", intRange(1, maxInt64)},
	{"unclean.leader.election.enable", "false", "allow a replica outside the ISR to lead", oneOf("true", "false")},
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
	return Config{
		RetentionBytes:  get("retention.bytes"),
		RetentionMs:     get("retention.ms"),
		SegmentBytes:    get("segment.bytes"),
		SegmentMs:       get("segment.ms"),
		MaxMessageBytes: int32(get("max.message.bytes")),
		MinInsyncRepl:   int32(get("min.insync.replicas")),
		IndexInterval:   int32(get("index.interval.bytes")),
	}, nil
}

// logOptions turns a topic config into segment options.
func (c Config) logOptions() segment.Options {
	o := segment.Options{
		SegmentBytes:   c.SegmentBytes,
		SegmentAge:     time.Duration(c.SegmentMs) * time.Millisecond,
		RetentionBytes: c.RetentionBytes,
		IndexInterval:  int(c.IndexInterval),
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
