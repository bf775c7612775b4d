package replica

import (
	"sort"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/partition"
)

// named lists the partitions a fetch names, as "topic/partition".
func named(req *kmsg.FetchRequest) (fetched, forgotten []string) {
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			fetched = append(fetched, tpName(rt.Topic, rp.Partition))
		}
	}
	for _, ft := range req.ForgottenTopics {
		for _, p := range ft.Partitions {
			forgotten = append(forgotten, tpName(ft.Topic, p))
		}
	}
	sort.Strings(fetched)
	sort.Strings(forgotten)
	return fetched, forgotten
}

func tpName(topic string, p int32) string { return partition.Name(topic, p) }

func same(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFollowerFetchSession: the first fetch is full and opens the
// session; later ones name only the partitions whose position, log start
// or leader epoch moved, and forget the ones no longer fetched; a lost
// session makes the next fetch full, naming the old session so the leader
// closes it.
func TestFollowerFetchSession(t *testing.T) {
	a0 := &partition.Partition{Topic: "a", Index: 0}
	a1 := &partition.Partition{Topic: "a", Index: 1}
	b0 := &partition.Partition{Topic: "b", Index: 0}
	at := func(p *partition.Partition, offset int64) wantPartition {
		return wantPartition{p: p, sentPartition: sentPartition{offset: offset, logStart: 0, epoch: 3}}
	}
	var s fetchSession
	round := func(want []wantPartition, answer int32, wantID, wantEpoch int32, fetched, forgotten []string) {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		next := s.fill(req, want, 1<<20)
		if req.SessionID != wantID || req.SessionEpoch != wantEpoch {
			t.Fatalf("fetch names session %d epoch %d, want %d epoch %d", req.SessionID, req.SessionEpoch, wantID, wantEpoch)
		}
		f, g := named(req)
		if !same(f, fetched) || !same(g, forgotten) {
			t.Fatalf("fetch names %v and forgets %v, want %v and %v", f, g, fetched, forgotten)
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.SessionID = answer
		s.done(resp, next)
	}
	round([]wantPartition{at(a0, 5), at(a1, 7), at(b0, 0)}, 42, 0, 0, []string{"a-0", "a-1", "b-0"}, nil)
	round([]wantPartition{at(a0, 5), at(a1, 7), at(b0, 0)}, 42, 42, 1, nil, nil)
	round([]wantPartition{at(a0, 6), at(a1, 7), at(b0, 0)}, 42, 42, 2, []string{"a-0"}, nil)
	// A reopened replica (another *Partition) at the same position is the
	// same partition to the session; b-0 is no longer fetched.
	a1again := &partition.Partition{Topic: "a", Index: 1}
	round([]wantPartition{at(a0, 6), at(a1again, 7)}, 42, 42, 3, nil, []string{"b-0"})
	// A new leader epoch is sent.
	moved := at(a0, 6)
	moved.epoch = 4
	round([]wantPartition{moved, at(a1, 7)}, 42, 42, 4, []string{"a-0"}, nil)

	s.reset()
	round([]wantPartition{moved, at(a1, 7)}, 0, 42, 0, []string{"a-0", "a-1"}, nil)
	// The leader had no room: every fetch is full until it has.
	round([]wantPartition{moved, at(a1, 7)}, 9, 0, 0, []string{"a-0", "a-1"}, nil)
	round([]wantPartition{moved, at(a1, 8)}, 9, 9, 1, []string{"a-1"}, nil)

	for _, e := range []*kerr.Error{kerr.FetchSessionIDNotFound, kerr.InvalidFetchSessionEpoch, kerr.FetchSessionTopicIDError} {
		if !sessionError(e.Code) {
			t.Errorf("%s is not taken for a lost session", e.Message)
		}
	}
	if sessionError(kerr.NotLeaderForPartition.Code) {
		t.Error("NOT_LEADER_OR_FOLLOWER taken for a lost session")
	}
}
