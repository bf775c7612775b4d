package cluster

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestElection: the election computed for each shape of a partition, and
// that what is computed applies.
func TestElection(t *testing.T) {
	l := buildState(t)
	l.ok(CmdCreateTopic, CreateTopic{Name: "pair", ID: uuid{3}, Assignment: [][]int32{{1, 2}}})
	l.ok(CmdCreateTopic, CreateTopic{Name: "moving", ID: uuid{4}, Assignment: [][]int32{{1, 2}}})
	part := func(tp TP) (p PartitionInfo) {
		l.f.Read(func(s *State) { p = *s.Partitions[tp.Topic][tp.Partition] })
		return p
	}
	elect := func(typ ElectionType, tp TP) (ChangeLeader, error) {
		var c ChangeLeader
		var err error
		l.f.Read(func(s *State) { c, err = s.election(typ, tp) })
		return c, err
	}
	orders0, pair, moving := TP{"orders", 0}, TP{"pair", 0}, TP{"moving", 0}
	move := func(tp TP, leader int32, isr ...int32) {
		l.ok(CmdChangeLeader, ChangeLeader{TP: tp, PrevEpoch: part(tp).LeaderEpoch, Leader: leader, ISR: isr})
	}
	fence := func(id int32, fenced bool) { l.ok(CmdSetBrokerFenced, SetBrokerFenced{ID: id, Fenced: fenced}) }

	steps := []struct {
		name   string
		before func()
		typ    ElectionType
		tp     TP
		want   error
		leader int32
		isr    []int32
	}{
		{"preferred leads", nil, ElectPreferred, orders0, ErrElectionNotNeeded, 0, nil},
		{"preferred back", func() { move(orders0, 2, 1, 2, 3) }, ElectPreferred, orders0, nil, 1, []int32{1, 2, 3}},
		// moving is reassigned to [3 1]: its replicas are [3 1 2], the
		// target first; 3, being added, is preferred once in sync.
		{"preferred being added", func() { l.ok(CmdReassignPartition, ReassignPartition{TP: moving, Target: []int32{3, 1}}) },
			ElectPreferred, moving, ErrPreferredLeaderNotAvailable, 0, nil},
		{"preferred added", func() { move(moving, 1, 1, 2, 3) }, ElectPreferred, moving, nil, 3, []int32{1, 2, 3}},
		{"preferred out of the ISR", func() { move(orders0, 2, 2, 3) }, ElectPreferred, orders0, ErrPreferredLeaderNotAvailable, 0, nil},
		{"preferred fenced", func() { move(orders0, 2, 1, 2, 3); fence(1, true) }, ElectPreferred, orders0, ErrPreferredLeaderNotAvailable, 0, nil},
		{"unclean with a leader", nil, ElectUnclean, orders0, ErrElectionNotNeeded, 0, nil},
		{"unknown topic", nil, ElectPreferred, TP{"nope", 0}, ErrUnknownTopic, 0, nil},
		{"unknown partition", nil, ElectUnclean, TP{"orders", 9}, ErrUnknownPartition, 0, nil},
		{"negative partition", nil, ElectPreferred, TP{"orders", -1}, ErrUnknownPartition, 0, nil},
		{"unknown type", nil, 7, orders0, ErrElectionType, 0, nil},
		// pair: broker 1 is its only in-sync replica, then is fenced; it
		// stays in the ISR and the partition has no leader.
		{"unclean, no live replica", func() {
			fence(1, false)
			move(pair, 1, 1)
			fence(1, true)
			fence(2, true)
		}, ElectUnclean, pair, ErrEligibleLeadersNotAvailable, 0, nil},
		{"unclean outside the ISR", func() {
			fence(2, false)
			if p := part(pair); p.Leader != -1 || !slices.Equal(p.ISR, []int32{1}) {
				t.Fatalf("pair after the fences: %+v", p)
			}
		}, ElectUnclean, pair, nil, 2, []int32{2}},
		{"unclean done", nil, ElectUnclean, pair, ErrElectionNotNeeded, 0, nil},
		{"preferred fenced, after unclean", nil, ElectPreferred, pair, ErrPreferredLeaderNotAvailable, 0, nil},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.before != nil {
				s.before()
			}
			c, err := elect(s.typ, s.tp)
			if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
				t.Fatalf("election: %v, want %v", err, s.want)
			}
			if err != nil {
				return
			}
			if c.Leader != s.leader || !slices.Equal(c.ISR, s.isr) {
				t.Fatalf("elected %d with ISR %v, want %d with %v", c.Leader, c.ISR, s.leader, s.isr)
			}
			epoch := part(s.tp).LeaderEpoch
			l.ok(CmdChangeLeader, c)
			if p := part(s.tp); p.Leader != s.leader || p.LeaderEpoch != epoch+1 {
				t.Fatalf("after the election: %+v", p)
			}
		})
	}
}

// TestElectLeadersOverQuorum: elections proposed from a follower, all
// partitions at once (only those elected reported), and one that loses a
// race with another leader change and is computed again.
func TestElectLeadersOverQuorum(t *testing.T) {
	q := newTestQuorum(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := registerVoters(t, ctx, q)
	m := NewMeta(f)
	if _, err := m.CreateTopic(Topic{Name: "orders", Partitions: 3, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	away := func(i int32) {
		p, _ := m.Partition("orders", i)
		if _, err := f.Propose(ctx, CmdChangeLeader, ChangeLeader{TP: TP{"orders", i}, PrevEpoch: p.LeaderEpoch,
			Leader: p.Replicas[1], ISR: p.ISR}); err != nil {
			t.Fatal(err)
		}
	}
	away(0)
	away(2)
	got, err := m.ElectLeaders(ctx, ElectPreferred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].TP != (TP{"orders", 0}) || got[1].TP != (TP{"orders", 2}) || got[0].Err != nil || got[1].Err != nil {
		t.Fatalf("all partitions: %+v", got)
	}
	for _, e := range got {
		if p, _ := m.Partition("orders", e.TP.Partition); p.Leader != p.Replicas[0] || e.Leader != p.Leader {
			t.Fatalf("%s after the election: %+v, reported %d", e.TP, p, e.Leader)
		}
	}
	// Named partitions are all reported, ELECTION_NOT_NEEDED included.
	got, _ = m.ElectLeaders(ctx, ElectPreferred, []TP{{"orders", 1}, {"orders", 5}})
	if len(got) != 2 || !errors.Is(got[0].Err, ErrElectionNotNeeded) || !errors.Is(got[1].Err, ErrUnknownPartition) {
		t.Fatalf("named partitions: %+v", got)
	}
	// Another leader change lands between the computation and the
	// proposal: refused at its stale epoch, computed again, elected.
	away(1)
	raced := false
	m.beforePropose = func(ct CommandType) {
		if ct == CmdChangeLeader && !raced {
			raced = true
			p, _ := m.Partition("orders", 1)
			if _, err := f.Propose(ctx, CmdChangeLeader, ChangeLeader{TP: TP{"orders", 1}, PrevEpoch: p.LeaderEpoch,
				Leader: p.Replicas[2], ISR: p.ISR}); err != nil {
				t.Error(err)
			}
		}
	}
	got, _ = m.ElectLeaders(ctx, ElectPreferred, []TP{{"orders", 1}})
	if !raced || len(got) != 1 || got[0].Err != nil {
		t.Fatalf("election that raced: %+v (raced %v)", got, raced)
	}
	if p, _ := m.Partition("orders", 1); p.Leader != p.Replicas[0] {
		t.Fatalf("after the race: %+v", p)
	}
	if _, err := m.ElectLeaders(ctx, 2, nil); !errors.Is(err, ErrElectionType) {
		t.Fatalf("election type 2: %v", err)
	}
}
