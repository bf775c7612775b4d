package cleaner

import (
	"context"
	"testing"

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
