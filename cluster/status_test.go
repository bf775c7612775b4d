package cluster

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestNodeStatus: every node of a three-voter quorum reports its own role,
// the leader, the voters and indexes that cover what it has applied. An
// election in between (timeouts are short) makes the views disagree; they
// are read again until they agree.
func TestNodeStatus(t *testing.T) {
	q := newTestQuorum(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fid := q.follower()
	if _, err := q.nodes[fid].Propose(ctx, CmdRegisterBroker, RegisterBroker{ID: fid, Addr: "127.0.0.1:9092"}); err != nil {
		t.Fatal(err)
	}
	check := func() error {
		lid := q.leader()
		for id, n := range q.nodes {
			applied := n.FSM().AppliedIndex()
			st := n.Status()
			wantState := "Follower"
			if id == lid {
				wantState = "Leader"
			}
			switch {
			case st.ID != id:
				return fmt.Errorf("node %d: ID %d", id, st.ID)
			case st.State != wantState:
				return fmt.Errorf("node %d: state %q, want %q", id, st.State, wantState)
			case st.Leader != lid:
				return fmt.Errorf("node %d: leader %d, want %d", id, st.Leader, lid)
			case st.Term == 0:
				return fmt.Errorf("node %d: term 0", id)
			case st.LastContact.IsZero():
				return fmt.Errorf("node %d: never heard from the leader", id)
			case !reflect.DeepEqual(st.Voters, q.voters):
				return fmt.Errorf("node %d: voters %v, want %v", id, st.Voters, q.voters)
			case id == fid && applied == 0:
				return fmt.Errorf("node %d applied nothing after its own proposal", id)
			case !(applied <= st.AppliedIndex && st.AppliedIndex <= st.CommitIndex && st.CommitIndex <= st.LastIndex):
				return fmt.Errorf("node %d: FSM applied %d, status applied %d, commit %d, last %d: out of order",
					id, applied, st.AppliedIndex, st.CommitIndex, st.LastIndex)
			}
		}
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for err := check(); err != nil; err = check() {
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNodeStatusAfterClose: a closed node says so and keeps its voters.
func TestNodeStatusAfterClose(t *testing.T) {
	q := newTestQuorum(t, 1)
	n := q.nodes[q.leader()]
	if st := n.Status(); st.State != "Leader" || st.Leader != 1 || len(st.Voters) != 1 {
		t.Fatalf("lone voter: %+v", st)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if st := n.Status(); st.State != raft.Shutdown.String() || len(st.Voters) != 1 {
		t.Fatalf("after close: %+v", st)
	}
}

func TestVotersOf(t *testing.T) {
	c := raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: "3", Address: "c:3"},
		{Suffrage: raft.Nonvoter, ID: "4", Address: "d:4"},
		{Suffrage: raft.Voter, ID: "not-a-number", Address: "e:5"},
		{Suffrage: raft.Voter, ID: "1", Address: "a:1"},
	}}
	want := []Voter{{1, "a:1"}, {3, "c:3"}}
	if got := votersOf(c); !reflect.DeepEqual(got, want) {
		t.Fatalf("voters %v, want %v", got, want)
	}
}
