package group

import (
	"errors"
	"testing"
)

// txnStore is a memStore that takes transactional commits: it keeps them
// aside (the coordinator decides what they become) and hands a preset
// TxnLoad to the coordinator's load.
type txnStore struct {
	*memStore
	txnCommits int
	load       TxnLoad
	refuse     error
}

func (s *txnStore) CommitTxn(string, int64, int16, []Offset) (func() error, error) {
	if s.refuse != nil {
		return nil, s.refuse
	}
	s.txnCommits++
	return noWait, nil
}

func (s *txnStore) LoadTxn() TxnLoad {
	out := s.load
	s.load = TxnLoad{}
	return out
}

func newTxnHarness(t *testing.T, load TxnLoad) (*harness, *txnStore) {
	t.Helper()
	st := &txnStore{memStore: newMemStore(), load: load}
	h := &harness{t: t, clock: newManualClock(), store: st.memStore}
	c, err := New(Config{Clock: h.clock, Logger: discardLogger()}, st)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	t.Cleanup(c.Close)
	return h, st
}

func (h *harness) commitTxn(g string, pid int64, offs ...Offset) {
	h.t.Helper()
	errs, wait := h.c.CommitTxn(TxnCommitRequest{Group: g, ProducerID: pid, Generation: -1, Offsets: offs})
	wantErrs(h.t, "CommitTxn", errs, make([]error, len(offs))...)
	if err := wait(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) commit(g string, offs ...Offset) {
	h.t.Helper()
	errs, wait := h.c.Commit(CommitRequest{Group: g, Generation: -1, Offsets: offs})
	wantErrs(h.t, "Commit", errs, make([]error, len(offs))...)
	if err := wait(); err != nil {
		h.t.Fatal(err)
	}
}

// fetched returns the group's visible offsets, partition → offset.
func (h *harness) fetched(g string) map[TopicPartition]int64 {
	h.t.Helper()
	got, err := h.c.FetchOffsets(g, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[TopicPartition]int64{}
	for k, o := range got {
		out[k] = o.Offset
	}
	return out
}

func wantFetched(t *testing.T, what string, got, want map[TopicPartition]int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: fetched %v, want %v", what, got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Fatalf("%s: fetched %v, want %v", what, got, want)
		}
	}
}

// TestTxnOffsetsPendingUntilMarker: offsets committed in a transaction
// are invisible (and reported pending) until a commit marker of their
// producer, which makes them visible; an abort drops them and leaves the
// offsets committed before; another producer's marker changes nothing.
func TestTxnOffsetsPendingUntilMarker(t *testing.T) {
	h, st := newTxnHarness(t, TxnLoad{})
	h.commit("g", off("t", 0, 1))
	h.commitTxn("g", 7, off("t", 0, 10), off("t", 1, 11))
	h.commitTxn("g", 8, off("t", 2, 12))
	if st.txnCommits != 2 || len(st.get("g")) != 1 {
		t.Fatalf("%d transactional writes, %v written as plain commits", st.txnCommits, st.get("g"))
	}
	wantFetched(t, "pending", h.fetched("g"), map[TopicPartition]int64{tp("t", 0): 1})
	if p := h.c.PendingTxn("g", nil); len(p) != 3 || !p[tp("t", 0)] || !p[tp("t", 2)] {
		t.Fatalf("pending %v", p)
	}
	if p := h.c.PendingTxn("g", []TopicPartition{tp("t", 1), tp("t", 5)}); len(p) != 1 || !p[tp("t", 1)] {
		t.Fatalf("pending of two partitions asked: %v", p)
	}
	if n := h.c.CompleteTxn(9, true); n != 0 {
		t.Fatalf("a marker of producer 9 committed %d offsets", n)
	}
	if n := h.c.CompleteTxn(7, true); n != 2 {
		t.Fatalf("commit of producer 7: %d offsets, want 2", n)
	}
	wantFetched(t, "after 7 commits", h.fetched("g"), map[TopicPartition]int64{tp("t", 0): 10, tp("t", 1): 11})
	h.c.CompleteTxn(8, false)
	wantFetched(t, "after 8 aborts", h.fetched("g"), map[TopicPartition]int64{tp("t", 0): 10, tp("t", 1): 11})
	if p := h.c.PendingTxn("g", nil); len(p) != 0 {
		t.Fatalf("pending after both markers: %v", p)
	}
	if got := h.c.PendingProducers(); len(got) != 0 {
		t.Fatalf("producers pending: %v", got)
	}
}

// TestTxnOffsetsLaterCommitWins: when the transaction commits, a
// partition whose offset was committed outside it after the
// transactional commit keeps that offset; one committed before takes the
// transaction's, as Kafka has it.
func TestTxnOffsetsLaterCommitWins(t *testing.T) {
	h, _ := newTxnHarness(t, TxnLoad{})
	h.commit("g", off("t", 0, 5))
	h.commitTxn("g", 7, off("t", 0, 10), off("t", 1, 11))
	h.commit("g", off("t", 1, 20))
	h.c.CompleteTxn(7, true)
	wantFetched(t, "after the commit", h.fetched("g"), map[TopicPartition]int64{tp("t", 0): 10, tp("t", 1): 20})
	// A later transaction beats the offset its own commit replaced.
	h.commitTxn("g", 7, off("t", 1, 30))
	h.c.CompleteTxn(7, true)
	wantFetched(t, "second transaction", h.fetched("g"), map[TopicPartition]int64{tp("t", 0): 10, tp("t", 1): 30})
}

// TestTxnOffsetsLoaded: pending offsets and the places of committed ones
// come back from the store; a marker after the load applies the same
// rule, and new commits are placed after everything loaded.
func TestTxnOffsetsLoaded(t *testing.T) {
	load := TxnLoad{
		Order: map[string]map[TopicPartition]int64{"g": {tp("t", 0): 40, tp("t", 1): 10}},
		Pending: []PendingOffset{
			{Group: "g", ProducerID: 7, Offset: off("t", 0, 100), Order: 30}, // older than t-0's commit
			{Group: "g", ProducerID: 7, Offset: off("t", 1, 101), Order: 31},
			{Group: "h", ProducerID: 8, Offset: off("u", 0, 102), Order: 50}, // h has nothing else
		},
	}
	st := &txnStore{memStore: newMemStore(), load: load}
	st.groups["g"] = map[TopicPartition]Offset{tp("t", 0): off("t", 0, 1), tp("t", 1): off("t", 1, 2)}
	h := &harness{t: t, clock: newManualClock(), store: st.memStore}
	c, err := New(Config{Clock: h.clock, Logger: discardLogger()}, st)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	t.Cleanup(c.Close)
	if p := c.PendingTxn("h", nil); !p[tp("u", 0)] {
		t.Fatalf("h's pending offset not loaded: %v", p)
	}
	if got := c.PendingProducers(); len(got) != 2 || got[0] != 7 || got[1] != 8 {
		t.Fatalf("producers pending %v", got)
	}
	h.commitTxn("g", 9, off("t", 0, 200)) // placed after t-0's commit at 40
	c.CompleteTxn(7, true)
	wantFetched(t, "after 7 commits", h.fetched("g"), map[TopicPartition]int64{tp("t", 0): 1, tp("t", 1): 101})
	c.CompleteTxn(9, true)
	wantFetched(t, "after 9 commits", h.fetched("g"), map[TopicPartition]int64{tp("t", 0): 200, tp("t", 1): 101})
	c.ExpireOffsets()
	if _, ok := c.Describe("h"); !ok {
		t.Fatal("a group with only pending offsets was forgotten")
	}
	c.CompleteTxn(8, true)
	wantFetched(t, "h after 8 commits", h.fetched("h"), map[TopicPartition]int64{tp("u", 0): 102})
}

// TestTxnOffsetsDeleted: removing a partition's offsets (OffsetDelete)
// writes its tombstone and drops its pending transactional offsets with
// it, as the load does when it meets the tombstone; deleting the group
// drops them all.
func TestTxnOffsetsDeleted(t *testing.T) {
	h, _ := newTxnHarness(t, TxnLoad{})
	h.commitTxn("g", 7, off("t", 0, 10), off("t", 1, 11))
	errs, err := h.c.DeleteOffsets("g", []TopicPartition{tp("t", 0)})
	if err != nil || errs[0] != nil {
		t.Fatal(errs, err)
	}
	h.c.CompleteTxn(7, true)
	wantFetched(t, "after the delete and the commit", h.fetched("g"), map[TopicPartition]int64{tp("t", 1): 11})

	h.commitTxn("d", 8, off("t", 0, 1))
	if errs := h.c.DeleteGroups([]string{"d"}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	h.c.CompleteTxn(8, true)
	if _, ok := h.c.Describe("d"); ok {
		t.Fatalf("deleted group came back with %v", h.fetched("d"))
	}
}

// TestTxnCommitChecks: a TxnOffsetCommit naming a member, generation or
// instance id is checked against the group as Kafka checks it; one naming
// none is taken for any group, and a group that does not exist is
// created (generation 0).
func TestTxnCommitChecks(t *testing.T) {
	h, _ := newTxnHarness(t, TxnLoad{})
	res := h.stable(staticReq("g", 1))
	m := res[0]
	for _, tc := range []struct {
		name string
		req  TxnCommitRequest
		want error
	}{
		{"no membership", TxnCommitRequest{Group: "g", Generation: -1}, nil},
		{"member and generation", TxnCommitRequest{Group: "g", MemberID: m.MemberID, Generation: m.Generation, InstanceID: "i1"}, nil},
		{"generation only", TxnCommitRequest{Group: "g", Generation: m.Generation}, nil},
		{"old generation", TxnCommitRequest{Group: "g", MemberID: m.MemberID, Generation: m.Generation - 1}, ErrIllegalGeneration},
		{"unknown member", TxnCommitRequest{Group: "g", MemberID: "someone", Generation: m.Generation}, ErrUnknownMember},
		{"fenced instance", TxnCommitRequest{Group: "g", MemberID: "someone", InstanceID: "i1", Generation: -1}, ErrFencedInstanceID},
		{"instance of another member", TxnCommitRequest{Group: "g", MemberID: m.MemberID, InstanceID: "i2", Generation: -1}, ErrFencedInstanceID},
		{"new group, generation 0", TxnCommitRequest{Group: "new0", Generation: 0}, nil},
		{"new group, generation 1", TxnCommitRequest{Group: "new1", Generation: 1}, ErrIllegalGeneration},
		{"new group, a member", TxnCommitRequest{Group: "new2", MemberID: "m", Generation: -1}, ErrUnknownMember},
		{"no group id", TxnCommitRequest{Generation: -1}, ErrInvalidGroupID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.ProducerID = 3
			tc.req.Offsets = []Offset{off("t", 0, 1)}
			errs, _ := h.c.CommitTxn(tc.req)
			if !errors.Is(errs[0], tc.want) {
				t.Fatalf("got %v, want %v", errs[0], tc.want)
			}
		})
	}
	if _, ok := h.c.Describe("new1"); ok {
		t.Fatal("a refused commit created its group")
	}
}

// TestTxnCommitRefusedByStore: a transactional write the store refuses
// (an older producer epoch) leaves nothing pending; a store without
// transactions refuses every transactional commit.
func TestTxnCommitRefusedByStore(t *testing.T) {
	h, st := newTxnHarness(t, TxnLoad{})
	st.refuse = errBoom("fenced")
	errs, _ := h.c.CommitTxn(TxnCommitRequest{Group: "g", ProducerID: 1, Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
	if !errors.Is(errs[0], st.refuse) {
		t.Fatalf("got %v", errs[0])
	}
	if p := h.c.PendingTxn("g", nil); len(p) != 0 {
		t.Fatalf("pending after a refused write: %v", p)
	}
	if _, ok := h.c.Describe("g"); ok {
		t.Fatal("a refused commit created its group")
	}
	plain := newHarness(t, Config{})
	errs, _ = plain.c.CommitTxn(TxnCommitRequest{Group: "g", ProducerID: 1, Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
	if !errors.Is(errs[0], ErrTxnNotSupported) {
		t.Fatalf("store without transactions: %v", errs[0])
	}
}
