package brokerconfig

import (
	"errors"
	"maps"
	"testing"

	"github.com/runnel-io/runnel/partition"
)

// TestDefs: names are unique and sorted (Lookup searches them), every
// topic default names a topic config, every flag-less config is a topic
// default, and only dynamic ones take changes.
func TestDefs(t *testing.T) {
	for i, d := range Defs {
		if i > 0 && Defs[i-1].Name >= d.Name {
			t.Errorf("%s after %s", d.Name, Defs[i-1].Name)
		}
		if got, ok := Lookup(d.Name); !ok || got.Name != d.Name {
			t.Errorf("Lookup(%s) = %v, %v", d.Name, got, ok)
		}
		if d.Topic != "" {
			if _, ok := partition.LookupConfig(d.Topic); !ok || !d.Dynamic {
				t.Errorf("%s: default of %q, dynamic %v", d.Name, d.Topic, d.Dynamic)
			}
		} else if d.Flag == "" {
			t.Errorf("%s has neither a flag nor a topic config", d.Name)
		}
		if d.Doc == "" {
			t.Errorf("%s has no documentation", d.Name)
		}
	}
	for name, want := range map[string]error{"log.retention.ms": nil, "num.partitions": ErrReadOnly, "no.such": ErrUnknown} {
		if err := Check(name, "1000"); !errors.Is(err, want) {
			t.Errorf("Check(%s): %v, want %v", name, err, want)
		}
	}
}

// TestResolve: a broker's own dynamic value wins over the cluster-wide
// one, which wins over the flag, which wins over the default; the topic
// defaults follow the same order.
func TestResolve(t *testing.T) {
	static := map[string]Static{LogLevel: {Value: "warn", Default: "info", Set: true}}
	own := map[string]string{"log.retention.ms": "1"}
	defaults := map[string]string{"log.retention.ms": "2", "log.roll.ms": "3", LogLevel: "error"}
	got := map[string]string{}
	for _, e := range Resolve(static, own, defaults) {
		got[e.Name] = e.Value
		if len(e.Synonyms) == 0 || e.Synonyms[0].Source != e.Source || e.Synonyms[len(e.Synonyms)-1].Source != SourceDefault {
			t.Errorf("%s: synonyms %+v", e.Name, e.Synonyms)
		}
	}
	for k, want := range map[string]string{"log.retention.ms": "1", "log.roll.ms": "3", LogLevel: "error", "log.segment.bytes": "1073741824"} {
		if got[k] != want {
			t.Errorf("%s = %s, want %s", k, got[k], want)
		}
	}
	if td := TopicDefaults(own, defaults); !maps.Equal(td, map[string]string{"retention.ms": "1", "segment.ms": "3"}) {
		t.Errorf("topic defaults %v", td)
	}
}
