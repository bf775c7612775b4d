package cluster

import (
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// RaftStatus is one node's view of the Raft quorum that replicates the
// cluster metadata: what DescribeQuorum answers and `runnel cluster status`
// prints.
//
// Raft indexes start at 1, so LastIndex is also the number of entries in
// the log: read as Kafka offsets (entry i at offset i-1), LastIndex is the
// log end offset and CommitIndex the high watermark, both exclusive.
type RaftStatus struct {
	// ID is this node's id.
	ID int32
	// State is this node's Raft role: "Leader", "Follower", "Candidate",
	// or "Shutdown" once the node is closed.
	State string
	// Term is the current Raft term, the controller's epoch.
	Term uint64
	// LastIndex is the index of the last entry in this node's log, or of
	// its last snapshot if the log after it is empty.
	LastIndex uint64
	// CommitIndex is the highest index this node knows to be committed.
	CommitIndex uint64
	// AppliedIndex is the highest index Raft has handed to this node's
	// state machine (including entries that carry no command).
	AppliedIndex uint64
	// LastContact is when this node last heard from the leader: the time
	// of the call on the leader itself, zero if never.
	LastContact time.Time
	// Leader is the leader's id, or -1 while none is known.
	Leader int32
	// Voters are the voters of the latest Raft configuration (which may
	// not be committed yet), by id.
	Voters []Voter
	// Observers are the non-voting members (brokers that joined a
	// quorum they were not started in), by id.
	Observers []Voter
}

// Status returns this node's view of the quorum. It does not wait for the
// Raft loop. The figures are read one after another, not as one snapshot:
// applied, then commit, then last index, so that
// AppliedIndex <= CommitIndex <= LastIndex holds in what is returned as it
// does in Raft at every moment (each only grows, apart from a follower's
// log being cut back by a new leader).
func (n *Node) Status() RaftStatus {
	st := RaftStatus{
		ID:     n.opts.ID,
		State:  n.raft.State().String(),
		Term:   n.raft.CurrentTerm(),
		Leader: n.Leader(),
	}
	st.AppliedIndex = n.raft.AppliedIndex()
	st.CommitIndex = n.raft.CommitIndex()
	st.LastIndex = n.raft.LastIndex()
	if st.State == raft.Leader.String() {
		st.LastContact = time.Now()
	} else {
		st.LastContact = n.raft.LastContact()
	}
	// GetConfiguration answers from a copy Raft keeps outside its loop.
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		st.Voters = votersOf(f.Configuration())
		st.Observers = membersOf(f.Configuration(), raft.Nonvoter)
	}
	return st
}

// votersOf returns the voters of a Raft configuration, sorted by id.
// Servers are named by their decimal node id (see StartNode); one with any
// other name was not added by runnel and is left out.
func votersOf(c raft.Configuration) []Voter { return membersOf(c, raft.Voter) }

// membersOf returns the members of a Raft configuration of one suffrage,
// as votersOf.
func membersOf(c raft.Configuration, suffrage raft.ServerSuffrage) []Voter {
	var out []Voter
	for _, s := range c.Servers {
		if s.Suffrage != suffrage {
			continue
		}
		id, err := strconv.ParseInt(string(s.ID), 10, 32)
		if err != nil || id <= 0 {
			continue
		}
		out = append(out, Voter{ID: int32(id), Addr: string(s.Address)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
