package replica

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// TestFollowerLogStartWithoutReconcile: a leader's log start move reaches
// a follower's replica through the boundary hook, with no wake of the
// topology watchers (no reconciliation of every partition).
func TestFollowerLogStartWithoutReconcile(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	node, err := cluster.StartNode(cluster.NodeOptions{ID: 2, Dir: t.TempDir(), Voters: []cluster.Voter{{ID: 2, Addr: "127.0.0.1:19999"}},
		Local: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, b := range []cluster.RegisterBroker{{ID: 1, Addr: "127.0.0.1:1"}, {ID: 2, Addr: "127.0.0.1:2"}} {
		if _, err := node.Propose(ctx, cluster.CmdRegisterBroker, b); err != nil {
			t.Fatal(err)
		}
	}
	meta := cluster.NewMeta(node)
	if _, err := meta.CreateTopic(cluster.Topic{Name: "t", Partitions: 1, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	parts, err := partition.OpenManager(partition.Options{DataDir: t.TempDir(), NodeID: 2, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer parts.Close()
	m := New(Options{NodeID: 2, Parts: parts, Node: node, Logger: logger})
	defer m.Close()
	if err := m.Reconcile(); err != nil {
		t.Fatal(err)
	}
	p, err := parts.Get("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := meta.Partition("t", 0)
	for _, base := range []int64{0, 10} {
		b := testbatch.Make(testbatch.Spec{BaseOffset: base, Timestamp: 1000, Values: testbatch.Values(10, 16, byte(base))})
		segment.SetPartitionLeaderEpoch(b, info.LeaderEpoch)
		if _, err := p.AppendReplica(b); err != nil {
			t.Fatal(err)
		}
	}
	m.Start()

	topology := node.FSM().TopologyChanged()
	if _, err := node.Propose(ctx, cluster.CmdSegmentsDeleted, cluster.SegmentsDeleted{TP: cluster.TP{Topic: "t"}, LogStart: 10}); err != nil {
		t.Fatal(err)
	}
	for p.LogStartOffset() != 10 {
		if ctx.Err() != nil {
			t.Fatalf("the follower's log start stayed at %d", p.LogStartOffset())
		}
		time.Sleep(5 * time.Millisecond) // the follower applies it on its own goroutine
	}
	select {
	case <-topology:
		t.Fatal("a log start move woke the topology watchers")
	default:
	}
}
