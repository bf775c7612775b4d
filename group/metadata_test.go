package group

import (
	"sync"
	"testing"
)

// groupMemStore is a memStore that keeps group metadata too.
type groupMemStore struct {
	*memStore
	gmu    sync.Mutex
	groups map[string]GroupRecord
	writes int
}

func newGroupMemStore() *groupMemStore {
	return &groupMemStore{memStore: newMemStore(), groups: map[string]GroupRecord{}}
}

func (s *groupMemStore) StoreGroup(rec GroupRecord) (func() error, error) {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	s.groups[rec.Group] = rec
	s.writes++
	return noWait, nil
}

func (s *groupMemStore) DeleteGroup(g string, tps []TopicPartition) (func() error, error) {
	s.gmu.Lock()
	delete(s.groups, g)
	s.gmu.Unlock()
	return s.memStore.DeleteGroup(g, tps)
}

func (s *groupMemStore) LoadGroups() map[string]GroupRecord {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	out := map[string]GroupRecord{}
	for k, v := range s.groups {
		out[k] = v
	}
	return out
}

func (s *groupMemStore) get(g string) (GroupRecord, bool) {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	r, ok := s.groups[g]
	return r, ok
}

// TestGroupMetadataRecords: a stable generation is recorded with its
// members and assignments, an empty group with none; a coordinator that
// loads the metadata goes on from the recorded generation; a group
// forgotten (empty, no offsets) loses its metadata.
func TestGroupMetadataRecords(t *testing.T) {
	store := newGroupMemStore()
	h := &harness{t: t, clock: newManualClock(), store: store.memStore}
	c, err := New(Config{Clock: h.clock, Logger: discardLogger()}, store)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	t.Cleanup(c.Close)

	res := h.stable(memberReq("g", 0), memberReq("g", 1))
	rec, ok := store.get("g")
	if !ok || rec.Generation != res[0].Generation || len(rec.Members) != 2 || rec.Leader != res[0].Leader ||
		rec.Protocol != res[0].Protocol || rec.ProtocolType != res[0].ProtocolType {
		t.Fatalf("stable generation recorded as %+v (join %+v)", rec, res[0])
	}
	for _, m := range rec.Members {
		if string(m.Assignment) != string(assignment(m.MemberID)) || m.SessionTimeout != sessionTimeout || m.Subscription == nil {
			t.Fatalf("member recorded as %+v", m)
		}
	}
	gen := rec.Generation

	// Another coordinator loads the groups: members rejoin into a newer
	// generation than any before.
	c2, err := New(Config{Clock: h.clock, Logger: discardLogger()}, store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Close)
	h2 := &harness{t: t, clock: h.clock, store: store.memStore, c: c2}
	if d := h2.describe("g"); d.State != Empty || d.Generation != gen {
		t.Fatalf("loaded group %+v, want Empty at generation %d", d, gen)
	}
	again := h2.stable(memberReq("g", 0))
	if again[0].Generation <= gen {
		t.Fatalf("rejoined at generation %d, not after the recorded %d", again[0].Generation, gen)
	}

	// The last member leaves: the empty group is recorded, then
	// forgotten with its metadata (it has no offsets).
	if errs := c2.Leave("g", []Leaving{{MemberID: again[0].MemberID}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if _, ok := store.get("g"); ok {
		t.Fatal("a forgotten group's metadata is still recorded")
	}
}
