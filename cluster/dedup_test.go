package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// applyBytes applies b as the next log entry.
func (l *fsmLog) applyBytes(b []byte) any {
	l.index++
	l.all = append(l.all, b)
	return l.f.Apply(&raft.Log{Index: l.index, Type: raft.LogCommand, Data: b})
}

// TestCommandAppliedOnce applies every command twice, as a proposer that
// sent it again does (its first reply lost, or the leader's leadership
// lost after appending it): the second gives the first result and changes
// nothing, also after a snapshot.
func TestCommandAppliedOnce(t *testing.T) {
	cases := []struct {
		ct      CommandType
		payload any
	}{
		{CmdRegisterBroker, RegisterBroker{ID: 2, Addr: "h:2", RaftAddr: "h:12"}},
		{CmdSetBrokerFenced, SetBrokerFenced{ID: 3, Fenced: true}},
		{CmdCreateTopic, CreateTopic{Name: "new", ID: uuid{8}, Assignment: [][]int32{{1}}}},
		{CmdDeleteTopic, DeleteTopic{Name: "logs", ID: uuid{2}}},
		{CmdCreatePartitions, CreatePartitions{Name: "logs", Total: 3, Assignment: [][]int32{{1}, {2}}}},
		{CmdSetConfigs, SetConfigs{Name: "logs", Configs: map[string]string{"retention.ms": "1"}}},
		{CmdChangeLeader, ChangeLeader{TP: TP{"orders", 0}, PrevEpoch: 0, Leader: 2, ISR: []int32{2, 3}}},
		{CmdChangeISR, ChangeISR{TP: TP{"orders", 0}, Leader: 1, LeaderEpoch: 0, PartitionEpoch: 0, ISR: []int32{1}}},
		{CmdSegmentRolled, SegmentRolled{TP: TP{"orders", 0}, Base: 100}},
		{CmdSegmentsDeleted, SegmentsDeleted{TP: TP{"orders", 0}, LogStart: 50}},
		{CmdCommitOffsets, CommitOffsets{Group: "g", Offsets: []OffsetCommit{{Topic: "orders", Offset: 4, CommitMs: 9}}}},
		{CmdDeleteOffsets, DeleteOffsets{Group: "g0", Partitions: []TP{{"orders", 0}}}},
		{CmdDeleteGroup, DeleteGroup{Group: "g0"}},
		{CmdAllocateProducerID, AllocateProducerIDs{N: 1000}},
	}
	for _, tc := range cases {
		t.Run(tc.ct.String(), func(t *testing.T) {
			l := buildState(t)
			l.ok(CmdCommitOffsets, CommitOffsets{Group: "g0", Offsets: []OffsetCommit{{Topic: "orders", Offset: 1}}})
			l.ok(CmdSegmentRolled, SegmentRolled{TP: TP{"orders", 0}, Base: 0})
			var id ProposalID
			if deduplicated(tc.ct) {
				id = newProposalID()
			}
			b, err := encodeCommand(tc.ct, id, tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			first := l.applyBytes(b)
			if err, refused := first.(error); refused {
				t.Fatalf("first apply refused: %v", err)
			}
			once := stripIndex(snapshotBytes(t, l.f))
			snap := snapshotBytes(t, l.f)

			if again := l.applyBytes(b); fmt.Sprint(again) != fmt.Sprint(first) {
				t.Fatalf("sent again: result %v, first %v", again, first)
			}
			if twice := stripIndex(snapshotBytes(t, l.f)); !bytes.Equal(twice, once) {
				t.Fatalf("sent again, it applied again:\n%s\nafter once:\n%s", twice, once)
			}

			// A node restored from a snapshot taken in between knows it too.
			r := &fsmLog{t: t, f: NewFSM(), index: l.index}
			if err := r.f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
				t.Fatal(err)
			}
			if again := r.applyBytes(b); fmt.Sprint(again) != fmt.Sprint(first) {
				t.Fatalf("sent again after a snapshot: result %v, first %v", again, first)
			}
			if twice := stripIndex(snapshotBytes(t, r.f)); !bytes.Equal(twice, once) {
				t.Fatalf("sent again after a snapshot, it applied again:\n%s\nafter once:\n%s", twice, once)
			}
		})
	}
}

// TestRefusalAppliedOnce: a refused proposal sent again gives the same
// refusal, its sentinel intact, even once a later command would let it
// apply.
func TestRefusalAppliedOnce(t *testing.T) {
	l := buildState(t)
	id := newProposalID()
	b, _ := encodeCommand(CmdSetConfigs, id, SetConfigs{Name: "later", Configs: map[string]string{"a": "b"}})
	if res, _ := l.applyBytes(b).(error); !errors.Is(res, ErrUnknownTopic) {
		t.Fatalf("first: %v", res)
	}
	l.ok(CmdCreateTopic, CreateTopic{Name: "later", ID: uuid{5}, Assignment: [][]int32{{1}}})
	if res, _ := l.applyBytes(b).(error); !errors.Is(res, ErrUnknownTopic) {
		t.Fatalf("sent again: %v, want the first refusal", res)
	}
	l.f.Read(func(s *State) {
		if len(s.Topics["later"].Configs) != 0 {
			t.Fatalf("the refused proposal applied when sent again: %v", s.Topics["later"].Configs)
		}
	})
}

// TestProposalWindowBounded: the state machine remembers the last
// proposalWindow proposals, no more.
func TestProposalWindowBounded(t *testing.T) {
	l := buildState(t)
	oldest, _ := encodeCommand(CmdAllocateProducerID, newProposalID(), AllocateProducerIDs{N: 1})
	l.applyBytes(oldest)
	for range proposalWindow {
		b, _ := encodeCommand(CmdAllocateProducerID, newProposalID(), AllocateProducerIDs{N: 1})
		l.applyBytes(b)
	}
	l.f.Read(func(s *State) {
		if n := len(s.proposals.ring); n != proposalWindow || len(s.proposals.byID) != proposalWindow {
			t.Fatalf("%d proposals remembered (%d by id), want %d", n, len(s.proposals.byID), proposalWindow)
		}
	})
	if first := l.applyBytes(oldest); first != int64(proposalWindow+1) {
		t.Fatalf("a proposal past the window: %v, want a new block at %d", first, proposalWindow+1)
	}
	// The snapshot keeps them oldest first, and restores to the same.
	snap := snapshotBytes(t, l.f)
	r := NewFSM()
	if err := r.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if got := snapshotBytes(t, r); !bytes.Equal(got, snap) {
		t.Fatal("restored proposals differ")
	}
}

// TestCreatePartitionsRace: two brokers raise a topic to the same total
// at once, both having read the old count. One succeeds; the other is
// told, as Kafka says it, that the topic already has that many.
func TestCreatePartitionsRace(t *testing.T) {
	q := newTestQuorum(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := q.leader()
	for _, v := range q.voters {
		if _, err := q.nodes[leader].Propose(ctx, CmdRegisterBroker, RegisterBroker{ID: v.ID, Addr: fmt.Sprintf("h:%d", v.ID)}); err != nil {
			t.Fatal(err)
		}
	}
	var a, b *Meta
	for id, n := range q.nodes {
		if err := n.FSM().WaitApplied(ctx, q.nodes[leader].FSM().AppliedIndex()); err != nil {
			t.Fatal(err)
		}
		if id == leader {
			a = NewMeta(n)
		} else if b == nil {
			b = NewMeta(n)
		}
	}
	if _, err := a.CreateTopic(Topic{Name: "orders", Partitions: 3, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	if err := b.node.FSM().WaitApplied(ctx, a.node.FSM().AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	// Both have read the count before either proposes.
	var read sync.WaitGroup
	read.Add(2)
	hook := func(ct CommandType) {
		if ct == CmdCreatePartitions {
			read.Done()
			read.Wait()
		}
	}
	a.beforePropose, b.beforePropose = hook, hook
	errs := make([]error, 2)
	var done sync.WaitGroup
	for i, m := range []*Meta{a, b} {
		done.Add(1)
		go func() {
			defer done.Done()
			errs[i] = m.SetPartitions("orders", 6)
		}()
	}
	done.Wait()
	ok, refused := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrPartitions) && strings.Contains(err.Error(), "already has 6 partitions"):
			refused++
		default:
			t.Fatalf("unexpected: %v", err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Fatalf("%d succeeded, %d refused (%v); want one each", ok, refused, errs)
	}
	for id, n := range q.nodes {
		if err := n.FSM().WaitApplied(ctx, a.node.FSM().AppliedIndex()); err != nil {
			t.Fatal(err)
		}
		if got, _ := NewMeta(n).Topic("orders"); got.Partitions != 6 {
			t.Fatalf("node %d: orders has %d partitions, want 6", id, got.Partitions)
		}
		n.FSM().Read(func(s *State) {
			if len(s.Partitions["orders"]) != 6 {
				t.Fatalf("node %d: %d partitions in the state", id, len(s.Partitions["orders"]))
			}
		})
	}
}

// TestForwardReplyLost: the leader applies a forwarded proposal but its
// reply never reaches the follower, which sends it again: it applies once,
// and the follower gets the first result.
func TestForwardReplyLost(t *testing.T) {
	q := newTestQuorum(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := q.nodes[q.leader()]
	f := q.nodes[q.follower()]
	if _, err := f.Propose(ctx, CmdAllocateProducerID, AllocateProducerIDs{N: 10}); err != nil {
		t.Fatal(err)
	}
	leader.faults.dropReplies.Store(1)
	first, err := f.Propose(ctx, CmdAllocateProducerID, AllocateProducerIDs{N: 10})
	if err != nil {
		t.Fatal(err)
	}
	if n := leader.faults.dropReplies.Load(); n != 0 {
		t.Fatalf("the leader's reply was not dropped (%d left)", n)
	}
	if first != 10 {
		t.Fatalf("first id %d, want 10", first)
	}
	f.FSM().Read(func(s *State) {
		if s.NextProducerID != 20 {
			t.Fatalf("next producer id %d: the proposal applied twice", s.NextProducerID)
		}
	})
}
