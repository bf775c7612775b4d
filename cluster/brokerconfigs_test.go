package cluster

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"testing"

	"github.com/hashicorp/raft"
)

// TestSetBrokerConfigs: a broker's dynamic configs and the cluster-wide
// defaults are replaced whole, removed by an empty set, given to the
// watcher at each change and at a restore, wake the reconciliation, and
// survive a snapshot; a broker id of 0 is refused.
func TestSetBrokerConfigs(t *testing.T) {
	f := NewFSM()
	var seen []map[int32]map[string]string
	f.OnBrokerConfigsChanged(func(c map[int32]map[string]string) { seen = append(seen, c) })
	index := uint64(0)
	apply := func(c SetBrokerConfigs) any {
		b, err := encodeCommand(CmdSetBrokerConfigs, newProposalID(), c)
		if err != nil {
			t.Fatal(err)
		}
		index++
		return f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b})
	}
	topology := f.TopologyChanged()
	if res := apply(SetBrokerConfigs{Broker: DefaultBrokerConfigs, Configs: map[string]string{"log.retention.ms": "1000"}}); res != nil {
		t.Fatalf("defaults: %v", res)
	}
	select {
	case <-topology:
	default:
		t.Error("a change of broker configs did not wake the reconciliation")
	}
	apply(SetBrokerConfigs{Broker: 2, Configs: map[string]string{"log.level": "debug", "log.segment.bytes": "1024"}})
	apply(SetBrokerConfigs{Broker: 2, Configs: map[string]string{"log.level": "warn"}})
	if res, _ := apply(SetBrokerConfigs{Broker: 0, Configs: map[string]string{"log.level": "warn"}}).(error); !errors.Is(res, ErrMalformedCommand) {
		t.Errorf("broker 0: %v", res)
	}
	want := map[int32]map[string]string{-1: {"log.retention.ms": "1000"}, 2: {"log.level": "warn"}}
	if got := seen[len(seen)-1]; len(seen) != 4 || !maps.EqualFunc(got, want, maps.Equal) {
		t.Fatalf("watcher saw %v, last want %v", seen, want)
	}
	snap := snapshotBytes(t, f)
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	var restored map[int32]map[string]string
	g.OnBrokerConfigsChanged(func(c map[int32]map[string]string) { restored = c })
	if !maps.EqualFunc(restored, want, maps.Equal) {
		t.Errorf("restored %v, want %v", restored, want)
	}
	// A change computed from configs that have changed since is refused.
	if res, _ := apply(SetBrokerConfigs{Broker: 2, Configs: map[string]string{"log.level": "error"},
		Prev: &map[string]string{"log.level": "debug"}}).(error); !errors.Is(res, ErrConfigsChanged) {
		t.Errorf("a stale change: %v", res)
	}
	if res := apply(SetBrokerConfigs{Broker: 3, Configs: map[string]string{"log.level": "error"}, Prev: &map[string]string{}}); res != nil {
		t.Errorf("a change over no configs: %v", res)
	}
	apply(SetBrokerConfigs{Broker: 3})
	apply(SetBrokerConfigs{Broker: 2})
	delete(want, 2)
	if got := seen[len(seen)-1]; !maps.EqualFunc(got, want, maps.Equal) {
		t.Errorf("after removing broker 2's: %v, want %v", got, want)
	}
}
