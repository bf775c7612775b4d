package index

import (
	"testing"

	"github.com/runnel-io/runnel/segment"
)

// TestReplaceRange: the entries of one segment's offset range are replaced
// by a rewritten segment's, in both indexes, and the entries around the
// range (with timestamps tied to the range's edges) stay; a synced replace
// with no entries leaves the range empty.
func TestReplaceRange(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	p := db.Partition("p-0")
	es := testEntries(30, 0, 10) // segments [0,256) [256,512) …; timestamps tie in threes
	addAll(t, p, es)
	from, to := int64(100), int64(200)
	if err := p.ReplaceRange(from, to, nil, true); err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		got, ok, err := p.Floor(e.Offset)
		if err != nil || !ok {
			t.Fatalf("Floor(%d): %v %v", e.Offset, ok, err)
		}
		want := e
		if e.Offset >= from && e.Offset < to {
			want = es[9] // the last entry before the range
		}
		if got != want {
			t.Fatalf("after dropping [%d, %d): Floor(%d) = %+v, want %+v", from, to, e.Offset, got, want)
		}
	}
	// The rewritten range: fewer entries, at other positions, with running
	// maxima between the neighbours'.
	repl := []segment.IndexEntry{
		{Offset: 100, Segment: 0, Position: 7, MaxTimestamp: es[9].MaxTimestamp},
		{Offset: 150, Segment: 0, Position: 77, MaxTimestamp: es[15].MaxTimestamp},
	}
	if err := p.ReplaceRange(from, to, repl, false); err != nil {
		t.Fatal(err)
	}
	for off, want := range map[int64]segment.IndexEntry{99: es[9], 100: repl[0], 149: repl[0], 150: repl[1], 199: repl[1], 200: es[20], 290: es[29]} {
		if got, ok, err := p.Floor(off); err != nil || !ok || got != want {
			t.Errorf("Floor(%d) = %+v %v %v, want %+v", off, got, ok, err, want)
		}
	}
	// The time index holds exactly the entries the offset index does.
	var want []segment.IndexEntry
	want = append(want, es[:10]...)
	want = append(want, repl...)
	want = append(want, es[20:]...)
	for _, e := range want {
		got, ok, err := p.TimeFloor(e.MaxTimestamp + 1)
		if err != nil || !ok {
			t.Fatalf("TimeFloor(%d): %v %v", e.MaxTimestamp+1, ok, err)
		}
		if got.MaxTimestamp != e.MaxTimestamp {
			t.Errorf("TimeFloor(%d) = %+v, want an entry of timestamp %d", e.MaxTimestamp+1, got, e.MaxTimestamp)
		}
		if got.Offset >= from && got.Offset < to && got != repl[0] && got != repl[1] {
			t.Errorf("TimeFloor(%d) = %+v: an entry of the replaced range", e.MaxTimestamp+1, got)
		}
	}
	if err := p.ReplaceRange(from, to, []segment.IndexEntry{{Offset: to}}, false); err == nil {
		t.Error("an entry outside the range was taken")
	}
}
