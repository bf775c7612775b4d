package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// freeAddr returns a loopback address for a voter, its port held bound
// until the node of that address takes the listener (heldListener) or the
// test ends, so that no other test can take it in between.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	heldMu.Lock()
	held[addr] = ln
	heldMu.Unlock()
	t.Cleanup(func() {
		if ln := heldListener(addr); ln != nil {
			ln.Close()
		}
	})
	return addr
}

var (
	heldMu sync.Mutex
	held   = map[string]net.Listener{}
)

// heldListener returns the listener freeAddr bound for addr, once.
func heldListener(addr string) net.Listener {
	heldMu.Lock()
	defer heldMu.Unlock()
	ln := held[addr]
	delete(held, addr)
	return ln
}

func TestParseVoters(t *testing.T) {
	v, err := ParseVoters("1@127.0.0.1:9093, 2@host:9094,3@[::1]:9095")
	if err != nil || len(v) != 3 || v[1] != (Voter{2, "host:9094"}) || v[2].Addr != "[::1]:9095" {
		t.Fatalf("%+v %v", v, err)
	}
	for _, bad := range []string{"", "1@", "x@h:1", "0@h:1", "-1@h:1", "1@h", "1@h:1,1@h:2", "h:1"} {
		if _, err := ParseVoters(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

type testQuorum struct {
	t      *testing.T
	tls    *PeerTLS // nil: plain TCP
	voters []Voter
	dirs   map[int32]string
	nodes  map[int32]*Node
}

func newTestQuorum(t *testing.T, size int) *testQuorum { return newTestQuorumTLS(t, size, nil) }

func newTestQuorumTLS(t *testing.T, size int, pt *PeerTLS) *testQuorum {
	q := &testQuorum{t: t, tls: pt, dirs: map[int32]string{}, nodes: map[int32]*Node{}}
	for i := int32(1); i <= int32(size); i++ {
		q.voters = append(q.voters, Voter{ID: i, Addr: freeAddr(t)})
		q.dirs[i] = t.TempDir()
	}
	for _, v := range q.voters {
		q.start(v.ID)
	}
	t.Cleanup(func() {
		for _, n := range q.nodes {
			n.Close()
		}
	})
	return q
}

func (q *testQuorum) start(id int32) {
	q.t.Helper()
	var ln net.Listener
	for _, v := range q.voters {
		if v.ID == id {
			ln = heldListener(v.Addr) // nil on a restart: the node binds again
		}
	}
	n, err := StartNode(NodeOptions{ID: id, Dir: q.dirs[id], Voters: q.voters, Listener: ln, TLS: q.tls,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		q.t.Fatal(err)
	}
	q.nodes[id] = n
}

func (q *testQuorum) stop(id int32) {
	q.t.Helper()
	if err := q.nodes[id].Close(); err != nil {
		q.t.Fatalf("close node %d: %v", id, err)
	}
	delete(q.nodes, id)
}

func (q *testQuorum) leader() int32 {
	q.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for id, n := range q.nodes {
			if n.IsLeader() {
				return id
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	q.t.Fatal("no leader elected")
	return 0
}

func (q *testQuorum) follower() int32 {
	q.t.Helper()
	l := q.leader()
	for id := range q.nodes {
		if id != l {
			return id
		}
	}
	q.t.Fatal("no follower")
	return 0
}

// TestNodeQuorum runs three nodes over loopback TCP: proposals from a
// follower are forwarded to the leader and visible locally when Propose
// returns; refusals keep their sentinel across the forward; the quorum
// survives losing its leader; a restarted node catches up to the same
// state.
func TestNodeQuorum(t *testing.T) {
	q := newTestQuorum(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := q.nodes[q.follower()]
	for _, v := range q.voters {
		if _, err := f.Propose(ctx, CmdRegisterBroker, RegisterBroker{ID: v.ID, Addr: fmt.Sprintf("127.0.0.1:%d", 9090+v.ID), RaftAddr: v.Addr}); err != nil {
			t.Fatal(err)
		}
	}
	create := CreateTopic{Name: "orders", ID: uuid{7}, Assignment: [][]int32{{1, 2, 3}, {2, 3, 1}, {3, 1, 2}}}
	if _, err := f.Propose(ctx, CmdCreateTopic, create); err != nil {
		t.Fatal(err)
	}
	f.FSM().Read(func(s *State) {
		if len(s.Partitions["orders"]) != 3 || len(s.Brokers) != 3 {
			t.Fatalf("the proposer does not see its own commands yet: %+v", s.Topics)
		}
	})
	if _, err := f.Propose(ctx, CmdCreateTopic, create); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("a refusal forwarded from the leader: %v, want ErrTopicExists", err)
	}
	first, err := f.Propose(ctx, CmdAllocateProducerID, AllocateProducerIDs{N: 100})
	if err != nil || first != 0 {
		t.Fatalf("producer ids %d %v", first, err)
	}

	old := q.leader()
	q.stop(old)
	survivor := q.nodes[q.follower()]
	if survivor == nil {
		survivor = q.nodes[q.leader()]
	}
	next, err := survivor.Propose(ctx, CmdAllocateProducerID, AllocateProducerIDs{N: 100})
	if err != nil || next != 100 {
		t.Fatalf("producer ids after losing the leader: %d %v, want 100", next, err)
	}
	if _, err := survivor.Propose(ctx, CmdChangeLeader, ChangeLeader{TP: TP{"orders", 0}, PrevEpoch: 0, Leader: 2, ISR: []int32{2, 3}}); err != nil {
		t.Fatal(err)
	}

	q.start(old)
	want := snapshotBytes(t, q.nodes[q.leader()].FSM())
	deadline := time.Now().Add(30 * time.Second)
	for id, n := range q.nodes {
		for !bytes.Equal(snapshotBytes(t, n.FSM()), want) {
			if time.Now().After(deadline) {
				t.Fatalf("node %d did not converge:\n%s\n%s", id, snapshotBytes(t, n.FSM()), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestNodeSingleVoter: one voter is the single-node case, same code.
func TestNodeSingleVoter(t *testing.T) {
	q := newTestQuorum(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := q.nodes[1]
	if _, err := n.Propose(ctx, CmdRegisterBroker, RegisterBroker{ID: 1, Addr: "a:1"}); err != nil {
		t.Fatal(err)
	}
	if n.Leader() != 1 || !n.IsLeader() {
		t.Fatalf("leader %d", n.Leader())
	}
	q.stop(1)
	q.start(1)
	if err := q.nodes[1].FSM().WaitApplied(ctx, 2); err != nil {
		t.Fatal(err)
	}
	q.nodes[1].FSM().Read(func(s *State) {
		if s.Brokers[1] == nil || s.Brokers[1].Addr != "a:1" {
			t.Fatalf("state after restart: %+v", s.Brokers)
		}
	})
}

// TestStartNodeFailsCleanly starts a node whose Raft address is taken:
// StartNode must return the error, having closed the store it opened, and
// the directory must open again.
func TestStartNodeFailsCleanly(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	opts := NodeOptions{ID: 1, Dir: dir, Voters: []Voter{{ID: 1, Addr: l.Addr().String()}, {ID: 2, Addr: "127.0.0.1:1"}}}
	n, err := StartNode(opts)
	if err == nil {
		n.Close()
		t.Fatal("started on a taken address")
	}
	l.Close()
	n, err = StartNode(opts)
	if err != nil {
		t.Fatalf("starting again once the address is free: %v", err)
	}
	n.Close()
}
