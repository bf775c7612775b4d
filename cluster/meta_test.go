package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

func TestAssign(t *testing.T) {
	brokers := []int32{1, 2, 3}
	a := Assign(brokers, "orders", 0, 6, 3)
	leads := map[int32]int{}
	for p, replicas := range a {
		seen := map[int32]bool{}
		for _, r := range replicas {
			if seen[r] {
				t.Fatalf("partition %d: %v repeats a broker", p, replicas)
			}
			seen[r] = true
		}
		leads[replicas[0]]++
	}
	for _, b := range brokers {
		if leads[b] != 2 {
			t.Fatalf("leaders %v: want 2 partitions led by each broker", leads)
		}
	}
	// Partitions added later continue the rotation.
	if more := Assign(brokers, "orders", 6, 3, 3); fmt.Sprint(more) != fmt.Sprint(Assign(brokers, "orders", 0, 9, 3)[6:]) {
		t.Fatalf("added partitions %v do not continue %v", more, Assign(brokers, "orders", 0, 9, 3))
	}
	if one := Assign([]int32{5}, "t", 0, 2, 1); fmt.Sprint(one) != "[[5] [5]]" {
		t.Fatalf("single broker: %v", one)
	}
}

func TestMetaOverQuorum(t *testing.T) {
	q := newTestQuorum(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := registerVoters(t, ctx, q)
	m := NewMeta(f)
	created, err := m.CreateTopic(Topic{Name: "orders", Partitions: 6, ReplicationFactor: 3, Configs: map[string]string{"retention.ms": "5"}})
	if err != nil || created.ID == (TopicID{}) {
		t.Fatalf("create: %+v %v", created, err)
	}
	if got, ok := m.Topic("orders"); !ok || got.ID != created.ID || got.Configs["retention.ms"] != "5" {
		t.Fatalf("topic %+v %v", got, ok)
	}
	if got, ok := m.TopicByID(created.ID); !ok || got.Name != "orders" {
		t.Fatalf("by id %+v %v", got, ok)
	}
	if p, ok := m.Partition("orders", 4); !ok || len(p.Replicas) != 3 || len(p.ISR) != 3 || p.Leader != p.Replicas[0] {
		t.Fatalf("partition 4: %+v %v", p, ok)
	}
	if _, err := m.CreateTopic(Topic{Name: "orders", Partitions: 1}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := m.CreateTopic(Topic{Name: "big", Partitions: 1, ReplicationFactor: 4}); !errors.Is(err, ErrNotEnoughBrokers) {
		t.Fatalf("replication factor 4 on 3 brokers: %v", err)
	}
	if _, err := m.CreateTopic(Topic{Name: "huge", Partitions: math.MaxInt32}); !errors.Is(err, ErrPartitions) {
		t.Fatalf("2^31-1 partitions: %v", err)
	}
	if err := m.SetPartitions("orders", 8); err != nil {
		t.Fatal(err)
	}
	if p, ok := m.Partition("orders", 7); !ok || len(p.Replicas) != 3 {
		t.Fatalf("new partition %+v %v", p, ok)
	}
	if err := m.SetPartitions("orders", 8); !errors.Is(err, ErrPartitions) {
		t.Fatalf("not raising the count: %v", err)
	}
	// Another node sees the same, once it has applied.
	other := NewMeta(q.nodes[q.leader()])
	if err := q.nodes[q.leader()].FSM().WaitApplied(ctx, f.FSM().AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	if ts := other.Topics(); len(ts) != 1 || ts[0].Partitions != 8 {
		t.Fatalf("leader's topics %+v", ts)
	}
	a, err := m.AllocateProducerIDs(10)
	b, err2 := other.AllocateProducerIDs(10)
	if err != nil || err2 != nil || b != a+10 {
		t.Fatalf("producer id blocks %d %d (%v %v)", a, b, err, err2)
	}
	if err := m.DeleteTopic("orders"); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Topic("orders"); ok {
		t.Fatal("deleted topic still there")
	}
	if len(m.Brokers()) != 3 {
		t.Fatalf("brokers %+v", m.Brokers())
	}
}

// registerVoters registers every voter of q as a broker, proposed from a
// follower, and returns that follower.
func registerVoters(t *testing.T, ctx context.Context, q *testQuorum) *Node {
	t.Helper()
	f := q.nodes[q.follower()]
	for _, v := range q.voters {
		if _, err := f.Propose(ctx, CmdRegisterBroker, RegisterBroker{ID: v.ID, Addr: fmt.Sprintf("h:%d", v.ID)}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// TestLegacyOffsets: offsets an older runnel committed through the Raft
// log are read on every node, and dropping a group's removes them
// everywhere, proposed from a follower.
func TestLegacyOffsets(t *testing.T) {
	q := newTestQuorum(t, 3)
	leader := q.nodes[q.leader()]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := CommitOffsets{Group: "g", Offsets: []OffsetCommit{{Topic: "t", Partition: 0, Offset: 42, LeaderEpoch: 3, Metadata: "meta", CommitMs: 1000}}}
	if _, err := leader.Propose(ctx, CmdCommitOffsets, c); err != nil {
		t.Fatal(err)
	}
	f := q.nodes[q.follower()]
	if err := f.FSM().WaitApplied(ctx, leader.FSM().AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	m := NewMeta(f)
	got := m.LegacyOffsets()["g"]
	if len(got) != 1 || got[0].Offset != 42 || got[0].LeaderEpoch != 3 || got[0].Metadata != "meta" || got[0].CommitTime.UnixMilli() != 1000 {
		t.Fatalf("legacy offsets on a follower: %+v", got)
	}
	if err := m.DropLegacyOffsets("g"); err != nil {
		t.Fatal(err)
	}
	if err := leader.FSM().WaitApplied(ctx, f.FSM().AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	if got := NewMeta(leader).LegacyOffsets(); len(got) != 0 {
		t.Fatalf("dropped offsets still there: %+v", got)
	}
}

func TestBrokerListenerAddr(t *testing.T) {
	named := BrokerInfo{ID: 1, Addr: "10.0.0.1:9094", Listeners: []BrokerListener{
		{Name: "CLIENTS", Addr: "b1.example.com:9092"}, {Name: "INTERNAL", Addr: "10.0.0.1:9094"}}}
	old := BrokerInfo{ID: 2, Addr: "10.0.0.2:9092"}
	for _, tc := range []struct {
		b         BrokerInfo
		name      string
		want      string
		wantFound bool
	}{
		{named, "CLIENTS", "b1.example.com:9092", true},
		{named, "INTERNAL", "10.0.0.1:9094", true},
		{named, "PLAINTEXT", "", false},
		{old, DefaultListener, "10.0.0.2:9092", true},
		{old, "SSL", "10.0.0.2:9092", false},
	} {
		got, ok := tc.b.ListenerAddr(tc.name)
		if ok != tc.wantFound || (ok && got != tc.want) {
			t.Errorf("broker %d listener %s: %q, %v; want %q, %v", tc.b.ID, tc.name, got, ok, tc.want, tc.wantFound)
		}
	}
}

// TestAssignRackAware: with racks, every partition's replicas span as many
// racks as the replication factor allows, leaders rotate over every
// broker, no broker is named twice, and adding partitions continues the
// same assignment; with one rack it is the plain one.
func TestAssignRackAware(t *testing.T) {
	brokers := []int32{1, 2, 3, 4, 5, 6}
	racks := map[int32]string{1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
	for _, rf := range []int{1, 2, 3, 4} {
		a := AssignRackAware(brokers, racks, "orders", 0, 12, rf)
		leaders := map[int32]int{}
		for p, replicas := range a {
			if len(replicas) != rf {
				t.Fatalf("rf %d: partition %d has %v", rf, p, replicas)
			}
			seen, rs := map[int32]bool{}, map[string]bool{}
			for _, r := range replicas {
				if seen[r] {
					t.Fatalf("rf %d: broker %d twice in partition %d: %v", rf, r, p, replicas)
				}
				seen[r] = true
				rs[racks[r]] = true
			}
			if want := min(rf, 3); len(rs) != want {
				t.Errorf("rf %d: partition %d %v spans %d racks, want %d", rf, p, replicas, len(rs), want)
			}
			leaders[replicas[0]]++
		}
		for _, b := range brokers {
			if leaders[b] != 2 {
				t.Errorf("rf %d: broker %d leads %d of 12 partitions, want 2 (%v)", rf, b, leaders[b], a)
			}
		}
		if more := AssignRackAware(brokers, racks, "orders", 12, 3, rf); fmt.Sprint(more) != fmt.Sprint(AssignRackAware(brokers, racks, "orders", 0, 15, rf)[12:]) {
			t.Fatalf("rf %d: added partitions %v do not continue the assignment", rf, more)
		}
	}
	// Uneven racks: 1, 2 in a, 3 in b: every partition of rf 2 has both.
	for p, replicas := range AssignRackAware([]int32{1, 2, 3}, map[int32]string{1: "a", 2: "a", 3: "b"}, "t", 0, 6, 2) {
		if !slices.Contains(replicas, 3) {
			t.Errorf("partition %d %v has no replica in rack b", p, replicas)
		}
	}
	one := map[int32]string{1: "x", 2: "x", 3: "x"}
	if got, want := fmt.Sprint(AssignRackAware([]int32{1, 2, 3}, one, "t", 0, 5, 2)), fmt.Sprint(Assign([]int32{1, 2, 3}, "t", 0, 5, 2)); got != want {
		t.Errorf("one rack: %s, want the plain assignment %s", got, want)
	}
}
