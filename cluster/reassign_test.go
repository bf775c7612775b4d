package cluster

import (
	"bytes"
	"io"
	"slices"
	"testing"
)

func TestReassignPartition(t *testing.T) {
	l := buildState(t) // orders-0 {1,2,3} led by 1, orders-1 {2,3,1} led by 2, logs-0 {3}
	l.ok(CmdRegisterBroker, RegisterBroker{ID: 4, Addr: "127.0.0.1:9094", RaftAddr: "127.0.0.1:19094"})
	logs := TP{"logs", 0}
	type want struct {
		replicas, adding, removing, isr []int32
		leader                          int32
	}
	check := func(tp TP, w want) PartitionInfo {
		t.Helper()
		p := partitionOf(t, l.f, tp)
		if !slices.Equal(p.Replicas, w.replicas) || !slices.Equal(p.AddingReplicas, w.adding) ||
			!slices.Equal(p.RemovingReplicas, w.removing) || !slices.Equal(p.ISR, w.isr) || p.Leader != w.leader {
			t.Fatalf("%s: replicas %v adding %v removing %v isr %v leader %d, want %+v", tp, p.Replicas,
				p.AddingReplicas, p.RemovingReplicas, p.ISR, p.Leader, w)
		}
		return p
	}

	// Moving logs-0 from broker 3 to 4: 4 is added, 3 leads until 4 is in
	// sync.
	l.ok(CmdReassignPartition, ReassignPartition{TP: logs, Target: []int32{4}})
	p := check(logs, want{replicas: []int32{4, 3}, adding: []int32{4}, removing: []int32{3}, isr: []int32{3}, leader: 3})
	l.refused(CmdCompleteReassignment, CompleteReassignment{TP: logs, PartitionEpoch: p.PartitionEpoch}, ErrBadAssignment)
	l.ok(CmdChangeISR, ChangeISR{TP: logs, Leader: 3, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: []int32{3, 4}})
	p = check(logs, want{replicas: []int32{4, 3}, adding: []int32{4}, removing: []int32{3}, isr: []int32{3, 4}, leader: 3})
	l.refused(CmdCompleteReassignment, CompleteReassignment{TP: logs, PartitionEpoch: p.PartitionEpoch - 1}, ErrStaleLeaderEpoch)
	l.refused(CmdUnregisterBroker, UnregisterBroker{ID: 4}, ErrBrokerInUse)
	l.ok(CmdCompleteReassignment, CompleteReassignment{TP: logs, PartitionEpoch: p.PartitionEpoch})
	q := check(logs, want{replicas: []int32{4}, isr: []int32{4}, leader: 4})
	if q.LeaderEpoch != p.LeaderEpoch+1 {
		t.Fatalf("leader epoch %d after the leader left, want %d", q.LeaderEpoch, p.LeaderEpoch+1)
	}
	l.refused(CmdCompleteReassignment, CompleteReassignment{TP: logs, PartitionEpoch: q.PartitionEpoch}, ErrNoReassignment)
	l.refused(CmdReassignPartition, ReassignPartition{TP: logs, Cancel: true}, ErrNoReassignment)

	// Raising orders-1 to four replicas and then replacing the target:
	// the second target is computed over the original replicas.
	o1 := TP{"orders", 1}
	l.ok(CmdReassignPartition, ReassignPartition{TP: o1, Target: []int32{2, 3, 1, 4}})
	check(o1, want{replicas: []int32{2, 3, 1, 4}, adding: []int32{4}, isr: []int32{2, 3, 1}, leader: 2})
	l.ok(CmdReassignPartition, ReassignPartition{TP: o1, Target: []int32{4, 1}})
	check(o1, want{replicas: []int32{4, 1, 2, 3}, adding: []int32{4}, removing: []int32{2, 3}, isr: []int32{2, 3, 1}, leader: 2})
	l.ok(CmdReassignPartition, ReassignPartition{TP: o1, Cancel: true})
	check(o1, want{replicas: []int32{1, 2, 3}, isr: []int32{2, 3, 1}, leader: 2})

	// A reorder completes at once; the same replicas again change nothing.
	o0 := TP{"orders", 0}
	l.ok(CmdReassignPartition, ReassignPartition{TP: o0, Target: []int32{3, 2, 1}})
	p = check(o0, want{replicas: []int32{3, 2, 1}, isr: []int32{1, 2, 3}, leader: 1})
	l.ok(CmdReassignPartition, ReassignPartition{TP: o0, Target: []int32{3, 2, 1}})
	if q := check(o0, want{replicas: []int32{3, 2, 1}, isr: []int32{1, 2, 3}, leader: 1}); q.PartitionEpoch != p.PartitionEpoch {
		t.Fatalf("partition epoch moved from %d to %d on a no-op", p.PartitionEpoch, q.PartitionEpoch)
	}

	// A cancel that would leave no replica in sync is refused: logs-0
	// moves from 4 to 1, 1 joins the ISR and 4 leaves it.
	l.ok(CmdReassignPartition, ReassignPartition{TP: logs, Target: []int32{1}})
	p = check(logs, want{replicas: []int32{1, 4}, adding: []int32{1}, removing: []int32{4}, isr: []int32{4}, leader: 4})
	l.ok(CmdChangeISR, ChangeISR{TP: logs, Leader: 4, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: []int32{4, 1}})
	l.ok(CmdSetBrokerFenced, SetBrokerFenced{ID: 4, Fenced: true})
	check(logs, want{replicas: []int32{1, 4}, adding: []int32{1}, removing: []int32{4}, isr: []int32{1}, leader: 1})
	l.refused(CmdReassignPartition, ReassignPartition{TP: logs, Cancel: true}, ErrBadAssignment)

	for _, c := range []ReassignPartition{
		{TP: logs, Target: []int32{}},
		{TP: logs, Target: []int32{1, 1}},
		{TP: logs, Target: []int32{7}},
	} {
		res := l.apply(CmdReassignPartition, c)
		if _, isErr := res.(error); !isErr {
			t.Fatalf("%+v applied", c)
		}
	}
	l.refused(CmdReassignPartition, ReassignPartition{TP: TP{"nope", 0}, Target: []int32{1}}, ErrUnknownPartition)
}

func TestUnregisterBroker(t *testing.T) {
	l := buildState(t)
	l.ok(CmdRegisterBroker, RegisterBroker{ID: 4, Addr: "127.0.0.1:9094", RaftAddr: "127.0.0.1:19094"})
	l.ok(CmdSetBrokerConfigs, SetBrokerConfigs{Broker: 4, Configs: map[string]string{"log.level": "debug"}})
	l.refused(CmdUnregisterBroker, UnregisterBroker{ID: 3}, ErrBrokerInUse)
	l.refused(CmdUnregisterBroker, UnregisterBroker{ID: 9}, ErrUnknownBroker)
	l.refused(CmdUnregisterBroker, UnregisterBroker{ID: 4}, ErrBrokerInUse) // alive
	l.ok(CmdSetBrokerFenced, SetBrokerFenced{ID: 4, Fenced: true})
	l.ok(CmdUnregisterBroker, UnregisterBroker{ID: 4})
	l.f.Read(func(s *State) {
		if s.Brokers[4] != nil || s.BrokerConfigs[4] != nil {
			t.Fatalf("broker 4 still registered or configured: %+v %v", s.Brokers[4], s.BrokerConfigs[4])
		}
		if _, ok := s.Unregistered[4]; !ok {
			t.Fatal("broker 4 not among the unregistered")
		}
	})
	restored := NewFSM()
	if err := restored.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, l.f)))); err != nil {
		t.Fatal(err)
	}
	restored.Read(func(s *State) {
		if _, ok := s.Unregistered[4]; !ok {
			t.Fatal("the snapshot lost the unregistered broker")
		}
	})
	l.ok(CmdRegisterBroker, RegisterBroker{ID: 4, Addr: "127.0.0.1:9094", RaftAddr: "127.0.0.1:19094"})
	l.f.Read(func(s *State) {
		if _, ok := s.Unregistered[4]; ok {
			t.Fatal("broker 4 still unregistered after registering again")
		}
	})
}
