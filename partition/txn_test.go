package partition

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

func abortedList(t *testing.T, p *Partition, from, upper int64) []AbortedTxn {
	t.Helper()
	list, err := p.AbortedTransactions(nil, from, upper)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// txnHistory appends, on a lone leader whose log ends at b: producer 1's
// transaction at b+0-1, a plain batch at b+2, producer 2's transaction at
// b+3, producer 1's commit at b+4, producer 2's batch at b+5 and its abort
// at b+6. It checks the LSO along the way.
func txnHistory(t *testing.T, p *Partition, b int64) {
	t.Helper()
	lso := func(want int64, after string) {
		t.Helper()
		if got := p.LastStableOffset(); got != want+b {
			t.Fatalf("after %s: LSO %d, want %d (high watermark %d)", after, got, want, p.HighWatermark())
		}
	}
	lso(0, "nothing")
	produce(t, p, transactional(1, 0, 0, 2), -1)
	lso(0, "producer 1's first batch")
	produce(t, p, plain(1), -1)
	lso(0, "a plain batch")
	produce(t, p, transactional(2, 0, 0, 1), -1)
	if first, ok := p.OpenTransaction(2); !ok || first != b+3 {
		t.Fatalf("producer 2's transaction: %d, %v; want %d", first, ok, b+3)
	}
	if r := writeMarker(t, p, 1, 0, 0, true); r.BaseOffset != b+4 || r.LastOffset != b+4 {
		t.Fatalf("commit marker at %+v, want 4", r)
	}
	lso(3, "producer 1's commit (producer 2's transaction is open)")
	produce(t, p, transactional(2, 0, 1, 1), -1)
	lso(3, "producer 2's second batch")
	writeMarker(t, p, 2, 0, 0, false)
	lso(7, "producer 2's abort")
	if p.HighWatermark() != b+7 {
		t.Fatalf("high watermark %d, want %d", p.HighWatermark(), b+7)
	}
}

// TestTransactionLSOAndAbortedIndex: the LSO stays at the first offset of
// the oldest open transaction and moves on its marker; an abort is listed
// for the fetches that overlap it and for no other; the markers are
// control batches in Kafka's schema.
func TestTransactionLSOAndAbortedIndex(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncNever)
	p := openReplica(t, m, testTopic(nil), leaderRole(1, 1, []int32{1}, 1))
	txnHistory(t, p, 0)
	want := []AbortedTxn{{ProducerID: 2, FirstOffset: 3, LastOffset: 6}}
	for _, c := range []struct {
		from, upper int64
		want        []AbortedTxn
	}{
		{0, 7, want}, {0, 4, want}, {3, 7, want}, {6, 7, want},
		{0, 3, nil}, // ends before the transaction began
		{7, 7, nil}, // past the marker
	} {
		if got := abortedList(t, p, c.from, c.upper); !reflect.DeepEqual(got, c.want) {
			t.Errorf("aborted in [%d, %d): %v, want %v", c.from, c.upper, got, c.want)
		}
	}
	// The markers as Kafka writes them: a control, transactional batch of
	// one record, key version 0 and type, value version 0 and the
	// coordinator epoch.
	var types []int16
	err := p.Log().WalkHeaders(0, func(h *segment.Header) bool {
		if h.IsControl() {
			if !h.IsTransactional() || h.RecordCount != 1 {
				t.Errorf("marker at %d: attributes %x, %d records", h.BaseOffset, h.Attributes, h.RecordCount)
			}
			b := readBatch(t, p, h.BaseOffset)
			typ, _, err := parseMarker(b, h)
			if err != nil {
				t.Error(err)
			}
			types = append(types, typ)
		}
		return true
	})
	if err != nil || !reflect.DeepEqual(types, []int16{ControlCommit, ControlAbort}) {
		t.Fatalf("markers %v, %v; want commit then abort", types, err)
	}
}

// readBatch returns the bytes of the batch at offset.
func readBatch(t *testing.T, p *Partition, offset int64) []byte {
	t.Helper()
	r, err := p.ReadReplica(offset, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	b := make([]byte, r.Length)
	if _, err := r.ReadAt(b, r.Position); err != nil {
		t.Fatal(err)
	}
	h, err := segment.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return b[:h.Size()]
}

// TestTransactionRefusals: what producers and markers may not do, each
// with its Kafka error, and nothing appended for any.
func TestTransactionRefusals(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncNever)
	p := openReplica(t, m, testTopic(nil), leaderRole(1, 1, []int32{1}, 1))
	produce(t, p, transactional(1, 3, 0, 1), -1)
	writeMarker(t, p, 1, 3, 7, true)
	produce(t, p, transactional(1, 3, 1, 1), -1)
	control, err := markerBatch(9, 0, 0, true, 1000)
	if err != nil {
		t.Fatal(err)
	}
	end := p.LogEndOffset()
	for _, c := range []struct {
		name string
		do   func() error
		want error
	}{
		{"a transactional batch without a producer id", func() error {
			_, err := p.Append(testbatch.Make(testbatch.Spec{Timestamp: 1, Attributes: segment.AttrTransactional, Values: testbatch.Values(1, 8, 1)}), -1)
			return err
		}, ErrTransactional},
		{"a control batch from a client", func() error { _, err := p.Append(control, -1); return err }, ErrControlBatch},
		{"a batch outside the open transaction", func() error { _, err := p.Append(idempotent(1, 3, 2, 1), -1); return err }, ErrInvalidTxnState},
		{"a marker of an older producer epoch", func() error { _, err := p.WriteMarker(1, 2, 7, false); return err }, ErrProducerFenced},
		{"a marker of an older coordinator epoch", func() error { _, err := p.WriteMarker(1, 3, 6, false); return err }, ErrCoordinatorFenced},
		{"a marker without a producer", func() error { _, err := p.WriteMarker(-1, 0, 0, false); return err }, ErrInvalidTxnState},
	} {
		if err := c.do(); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if p.LogEndOffset() != end {
		t.Fatalf("log end %d after refusals, want %d", p.LogEndOffset(), end)
	}
	if first, ok := p.OpenTransaction(1); !ok || first != 2 {
		t.Fatalf("producer 1's transaction after refusals: %d, %v; want 2", first, ok)
	}
	want := []ProducerInfo{{ProducerID: 1, Epoch: 3, LastSequence: 1, CoordinatorEpoch: 7, TxnFirstOffset: 2}}
	if got := p.Producers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("producers %+v, want %+v", got, want)
	}
	// A follower writes no marker.
	if err := p.SetRole(followerRole(2, 2, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WriteMarker(1, 3, 7, true); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("marker on a follower: %v, want %v", err, ErrNotLeader)
	}
	// A marker from a newer producer epoch (the coordinator bumped it)
	// ends the transaction; the producer then starts at sequence 0.
	if err := p.SetRole(leaderRole(1, 3, []int32{1}, 1)); err != nil {
		t.Fatal(err)
	}
	writeMarker(t, p, 1, 4, 7, false)
	if _, ok := p.OpenTransaction(1); ok {
		t.Fatal("the transaction is open after the marker")
	}
	if _, err := p.Append(transactional(1, 4, 2, 1), -1); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("batch at sequence 2 of the bumped epoch: %v, want %v", err, ErrOutOfOrderSequence)
	}
	produce(t, p, transactional(1, 4, 0, 1), -1)
}

// TestLSOHeldUntilMarkerReplicated: with a follower in the ISR, the LSO
// stays at a transaction's first offset until the high watermark passes
// its marker, as Kafka's does, and long-poll waiters are woken when it
// moves.
func TestLSOHeldUntilMarkerReplicated(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncNever)
	p := openReplica(t, m, testTopic(nil), leaderRole(1, 1, []int32{1, 2}, 1, 2))
	produce(t, p, plain(1), -1)
	if err := p.FollowerFetched(2, 1, 1); err != nil {
		t.Fatal(err)
	}
	produce(t, p, transactional(1, 0, 0, 2), -1) // 1-2
	if err := p.FollowerFetched(2, 3, 1); err != nil {
		t.Fatal(err)
	}
	if hw, lso := p.HighWatermark(), p.LastStableOffset(); hw != 3 || lso != 1 {
		t.Fatalf("high watermark %d, LSO %d; want 3, 1", hw, lso)
	}
	r := writeMarker(t, p, 1, 0, 0, true) // 3
	wake := make(chan struct{}, 1)
	p.AddWaiter(wake)
	defer p.RemoveWaiter(wake)
	if lso := p.LastStableOffset(); lso != 1 {
		t.Fatalf("LSO %d before the marker is replicated, want 1", lso)
	}
	if err := p.FollowerFetched(2, r.LastOffset+1, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	default:
		t.Fatal("no waiter woken when the LSO moved")
	}
	if lso := p.LastStableOffset(); lso != 4 {
		t.Fatalf("LSO %d once the marker is replicated, want 4", lso)
	}
}

// TestTransactionsRebuiltAtOpen: after a clean close, without the producer
// snapshot, with a snapshot from before the transactions (a kill -9 after
// a roll) or without the index at all, the partition opens with the same
// open transaction, LSO and aborted transactions.
func TestTransactionsRebuiltAtOpen(t *testing.T) {
	for _, name := range []string{"clean close", "no snapshot", "snapshot before the transactions", "no index", "no aborted index"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			topic := testTopic(nil)
			m := newManager(t, dir, 1, fsyncNever)
			p := openReplica(t, m, topic, leaderRole(1, 1, []int32{1}, 1))
			produce(t, p, idempotent(4, 0, 0, 1), -1)
			p.mu.Lock()
			early, err := encodeProducers(p.LogEndOffset(), p.mu.producers, nil)
			p.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			txnHistory(t, p, 1)                          // offsets 1-7
			produce(t, p, transactional(3, 0, 0, 1), -1) // 8, left open
			produce(t, p, transactional(4, 0, 1, 1), -1) // producer 4 joins the transactions at 9
			folder := p.Log().Dir()
			wantAborted := abortedList(t, p, 0, 100)
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			switch name {
			case "no snapshot":
				os.Remove(filepath.Join(folder, producerSnapshotFile))
			case "snapshot before the transactions":
				if err := os.WriteFile(filepath.Join(folder, producerSnapshotFile), early, 0o644); err != nil {
					t.Fatal(err)
				}
			case "no index":
				if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
					t.Fatal(err)
				}
			case "no aborted index":
				m := newManager(t, dir, 1, fsyncNever)
				if err := m.idx.Partition(Name(topic.Name, 0)).DeleteAbortedFrom(0); err != nil {
					t.Fatal(err)
				}
				m.Close()
			}
			m = newManager(t, dir, 1, fsyncNever)
			p = openReplica(t, m, topic, leaderRole(1, 2, []int32{1}, 1))
			if lso := p.LastStableOffset(); lso != 8 {
				t.Fatalf("LSO %d after the open, want 8", lso)
			}
			for pid, want := range map[int64]int64{3: 8, 4: 9} {
				if first, ok := p.OpenTransaction(pid); !ok || first != want {
					t.Fatalf("producer %d's transaction: %d, %v; want %d", pid, first, ok, want)
				}
			}
			if got := abortedList(t, p, 0, 100); !reflect.DeepEqual(got, wantAborted) {
				t.Fatalf("aborted transactions %v, want %v", got, wantAborted)
			}
			writeMarker(t, p, 3, 0, 0, false)
			writeMarker(t, p, 4, 0, 0, true)
			if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != hw || hw != 12 {
				t.Fatalf("LSO %d, high watermark %d after the markers; want 12", lso, hw)
			}
		})
	}
}

// TestFollowerTransactions: a follower copying the leader's log knows its
// transactions as the leader does, and as leader ends them; a truncation
// below an abort marker forgets the abort and opens the transaction again.
func TestFollowerTransactions(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncNever)
	leader := openReplica(t, m, testTopic(nil), leaderRole(1, 1, []int32{1}, 1))
	txnHistory(t, leader, 0)
	produce(t, leader, transactional(3, 0, 0, 1), -1) // 7, open
	r, err := leader.ReadReplica(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	all := make([]byte, r.Length)
	if _, err := r.ReadAt(all, r.Position); err != nil {
		t.Fatal(err)
	}
	r.Release()

	fm := newManager(t, t.TempDir(), 2, fsyncNever)
	f := openReplica(t, fm, testTopic(nil), followerRole(1, 1, 1, 2))
	appendReplica(t, f, all)
	f.SetFollowerHW(leader.HighWatermark())
	if got, want := f.LastStableOffset(), leader.LastStableOffset(); got != want || got != 7 {
		t.Fatalf("follower LSO %d, leader %d; want 7", got, want)
	}
	if got, want := abortedList(t, f, 0, 100), abortedList(t, leader, 0, 100); !reflect.DeepEqual(got, want) {
		t.Fatalf("follower aborted %v, leader %v", got, want)
	}
	// The follower takes over: the open transaction still holds its LSO,
	// and the new leader's marker ends it.
	if err := f.SetRole(leaderRole(2, 2, []int32{2}, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if lso := f.LastStableOffset(); lso != 7 {
		t.Fatalf("LSO %d on the new leader, want 7", lso)
	}
	writeMarker(t, f, 3, 0, 0, true)
	if lso := f.LastStableOffset(); lso != 9 {
		t.Fatalf("LSO %d after the new leader's commit, want 9", lso)
	}
	if err := f.SetRole(followerRole(1, 3, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := f.TruncateTo(6); err != nil { // the abort marker goes
		t.Fatal(err)
	}
	if got := abortedList(t, f, 0, 100); len(got) != 0 {
		t.Fatalf("aborted after the truncation: %v", got)
	}
	if first, ok := f.OpenTransaction(2); !ok || first != 3 {
		t.Fatalf("producer 2's transaction after the truncation: %d, %v; want 3", first, ok)
	}
	if _, ok := f.OpenTransaction(3); ok {
		t.Fatal("producer 3's transaction outlived the truncation")
	}
}

// FuzzParseMarker: no control batch makes the marker parser panic, and a
// marker it accepts is a commit or an abort.
func FuzzParseMarker(f *testing.F) {
	for _, commit := range []bool{false, true} {
		b, err := markerBatch(7, 1, 3, commit, 1000)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := segment.ParseHeader(b)
		if err != nil || h.Size() != len(b) {
			return
		}
		typ, _, err := parseMarker(b, &h)
		if err == nil && typ != ControlAbort && typ != ControlCommit {
			t.Fatalf("marker of type %d accepted", typ)
		}
		if err != nil && !errors.Is(err, ErrControlRecord) {
			t.Fatalf("error %v is not ErrControlRecord", err)
		}
	})
}

// TestLSOUnderConcurrentAppends: with fsync=always the high watermark
// moves on the syncer's goroutine while transactions begin and end on
// another; a reader meanwhile never sees the LSO go back, pass the high
// watermark, or pass the first offset of a transaction that was open
// both before and after its reading.
func TestLSOUnderConcurrentAppends(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncAlways)
	p := openReplica(t, m, testTopic(nil), leaderRole(1, 1, []int32{1}, 1))
	done := make(chan struct{})
	go func() {
		defer close(done)
		seqs := map[int64]int32{}
		for i := 0; i < 300; i++ {
			pid := int64(1 + i%3)
			if _, err := p.Append(transactional(pid, 0, seqs[pid], 1), 1); err != nil {
				t.Error(err)
				return
			}
			seqs[pid]++
			if i%2 == 1 {
				if _, err := p.WriteMarker(pid, 0, 0, i%4 == 1); err != nil {
					t.Error(err)
					return
				}
			}
			p.RequestSync()
		}
	}()
	prev := int64(0)
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		before := map[int64]int64{}
		for pid := int64(1); pid <= 3; pid++ {
			if first, ok := p.OpenTransaction(pid); ok {
				before[pid] = first
			}
		}
		lso := p.LastStableOffset()
		hw := p.HighWatermark()
		if lso < prev || lso > hw {
			t.Fatalf("LSO %d after %d, high watermark %d", lso, prev, hw)
		}
		for pid, first := range before {
			if now, ok := p.OpenTransaction(pid); ok && now == first && lso > first {
				t.Fatalf("LSO %d past producer %d's open transaction at %d", lso, pid, first)
			}
		}
		prev = lso
	}
	if err := p.WaitDurable(context.Background(), p.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
}
