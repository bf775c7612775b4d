package cleaner

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/runnel-io/runnel/segment"
)

// produceTxn appends one transactional batch of producer pid.
func (b *testBroker) produceTxn(pid int64, seq int32, recs []rec) {
	b.t.Helper()
	var rs []segment.Record
	for i, r := range recs {
		rs = append(rs, segment.Record{Offset: int64(i), Timestamp: 1000 + int64(i), Key: r.key, Value: r.value})
	}
	batch, err := segment.BuildBatch(nil, segment.BatchSpec{Attributes: segment.AttrTransactional,
		LastOffsetDelta: int32(len(recs) - 1), ProducerID: pid, BaseSequence: seq}, rs)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.p.Append(batch, 1); err != nil {
		b.t.Fatalf("transactional produce: %v", err)
	}
}

// TestCleanerKeepsTransactions: a clean keeps every control batch, leaves
// the records of an open transaction (and what follows it) alone, does
// not let an aborted record of a key remove the committed record it would
// have replaced, and removes the aborted records.
func TestCleanerKeepsTransactions(t *testing.T) {
	b := openBroker(t, t.TempDir(), compactedTopic(nil))
	defer b.close()
	b.produce(0, -1, -1, []rec{{key: []byte("k"), value: []byte("committed")}})
	b.produceTxn(5, 0, []rec{{key: []byte("k"), value: []byte("aborted")}})
	if _, err := b.p.WriteMarker(5, 0, 0, false); err != nil {
		t.Fatal(err)
	}
	b.produceTxn(6, 0, []rec{{key: []byte("j"), value: []byte("old")}})
	if _, err := b.p.WriteMarker(6, 0, 0, true); err != nil {
		t.Fatal(err)
	}
	b.produce(0, -1, -1, []rec{{key: []byte("j"), value: []byte("new")}})
	if err := b.p.Log().Roll(); err != nil {
		t.Fatal(err)
	}
	open := b.p.LogEndOffset()
	b.produceTxn(7, 0, []rec{{key: []byte("m"), value: []byte("open")}})
	b.produce(0, -1, -1, []rec{{key: []byte("m"), value: []byte("after")}})
	b.sealAll()
	if lso := b.p.LastStableOffset(); lso != open {
		t.Fatalf("LSO %d, want %d", lso, open)
	}
	cl, err := New(b.m, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.CleanAll(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if cl.Stats().RecordsRemoved.Load() != 2 {
		t.Fatalf("%d records removed, want 2 (j=old, k=aborted)", cl.Stats().RecordsRemoved.Load())
	}
	markers := 0
	if err := b.p.Log().WalkHeaders(0, func(h *segment.Header) bool {
		if h.IsControl() {
			markers++
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if markers != 2 {
		t.Fatalf("%d markers after the clean, want 2", markers)
	}
	have := map[string]bool{}
	for _, r := range readLog(t, b.p.Log()) {
		have[string(r.key)+"="+string(r.value)] = true
	}
	for _, want := range []string{"k=committed", "j=new", "m=open", "m=after"} {
		if !have[want] {
			t.Errorf("%s gone after the clean", want)
		}
	}
	if have["j=old"] {
		t.Error("j=old, replaced by a committed record, outlived the clean")
	}
	if have["k=aborted"] {
		t.Error("the aborted record outlived the clean")
	}
}

// markers returns the base offsets of the log's control batches.
func (b *testBroker) markers() []int64 {
	b.t.Helper()
	var out []int64
	if err := b.p.Log().WalkHeaders(0, func(h *segment.Header) bool {
		if h.IsControl() {
			out = append(out, h.BaseOffset)
		}
		return true
	}); err != nil {
		b.t.Fatal(err)
	}
	return out
}

func (b *testBroker) marker(pid int64, commit bool) int64 {
	b.t.Helper()
	res, err := b.p.WriteMarker(pid, 0, 0, commit)
	if err != nil {
		b.t.Fatal(err)
	}
	return res.BaseOffset
}

// TestCleanerRemovesMarkers: a marker whose transaction has no batch left
// goes in the first pass after delete.retention.ms has passed since its
// segment's first clean, as Kafka's cleaner removes it, and an abort
// marker leaves the aborted-transaction index with it; a marker whose
// transaction still has a batch (the last of its producer, kept empty or
// not) stays. The partition reopens with no transaction open.
func TestCleanerRemovesMarkers(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir, compactedTopic(nil))
	b.produce(0, -1, -1, []rec{{key: []byte("k"), value: []byte("committed")}})
	b.produceTxn(5, 0, []rec{{key: []byte("a1"), value: []byte("aborted")}})
	abort1 := b.marker(5, false)
	b.produceTxn(6, 0, []rec{{key: []byte("j"), value: []byte("old")}})
	commit1 := b.marker(6, true)
	b.produce(0, -1, -1, []rec{{key: []byte("j"), value: []byte("new")}})
	b.produceTxn(5, 1, []rec{{key: []byte("a2"), value: []byte("kept")}})
	commit2 := b.marker(5, true)
	b.produceTxn(6, 1, []rec{{key: []byte("j2"), value: []byte("kept")}})
	commit3 := b.marker(6, true)
	b.produce(0, -1, -1, []rec{{key: []byte("tail"), value: []byte("x")}})
	b.sealAll()
	if a, err := b.p.AbortedTransactions(nil, 0, b.p.LastStableOffset()); err != nil || len(a) != 1 || a[0].LastOffset != abort1 {
		t.Fatalf("aborted before the clean: %v, %v", a, err)
	}
	clock := &fakeClock{now: time.UnixMilli(4_000_000_000)}
	cl, err := New(b.m, Options{Now: clock.Now, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.CleanAll(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if got := b.markers(); !slices.Equal(got, []int64{abort1, commit1, commit2, commit3}) {
		t.Fatalf("markers after the first clean: %v, want all four (their records were there)", got)
	}
	clock.Add(30 * time.Second) // within delete.retention.ms
	if err := cl.CleanAll(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if got := b.markers(); len(got) != 4 {
		t.Fatalf("markers within delete.retention.ms: %v", got)
	}
	clock.Add(31 * time.Second)
	if err := cl.CleanAll(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if got := b.markers(); !slices.Equal(got, []int64{commit2, commit3}) {
		t.Fatalf("markers after delete.retention.ms: %v, want %d and %d", got, commit2, commit3)
	}
	if n := cl.Stats().MarkersRemoved.Load(); n != 2 {
		t.Fatalf("%d markers removed, want 2", n)
	}
	if a, err := b.p.AbortedTransactions(nil, 0, b.p.LastStableOffset()); err != nil || len(a) != 0 {
		t.Fatalf("aborted after the marker went: %v, %v", a, err)
	}
	have := map[string]bool{}
	for _, r := range readLog(t, b.p.Log()) {
		if len(r.key) == 4 && r.key[0] == 0 {
			continue // a marker's control record
		}
		have[string(r.key)+"="+string(r.value)] = true
	}
	if len(have) != 5 || !have["k=committed"] || !have["a2=kept"] || !have["j=new"] || !have["j2=kept"] || !have["tail=x"] {
		t.Fatalf("records after the cleans: %v", have)
	}
	b.close()
	b = openBroker(t, dir, compactedTopic(nil))
	defer b.close()
	for _, pid := range []int64{5, 6} {
		if first, open := b.p.OpenTransaction(pid); open {
			t.Fatalf("producer %d has a transaction open at %d after the reopen", pid, first)
		}
	}
	if lso, hw := b.p.LastStableOffset(), b.p.HighWatermark(); lso != hw {
		t.Fatalf("LSO %d, high watermark %d after the reopen", lso, hw)
	}
	if a, err := b.p.AbortedTransactions(nil, 0, b.p.LastStableOffset()); err != nil || len(a) != 0 {
		t.Fatalf("aborted after the reopen: %v, %v", a, err)
	}
}
