package index

import (
	"reflect"
	"testing"
)

// TestAbortedIndex: Aborted returns the entries that may overlap a range,
// in marker order, and stops at the first whose last stable offset
// reaches the range's end; the deletions keep what they should; Reset
// removes the aborted index and its end with the rest.
func TestAbortedIndex(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	p := db.Partition("t-0")
	other := db.Partition("t-1")
	// Producer 1's transaction spans 10-40, while 2's (20-25) and 3's
	// (30-35) begin and end inside it; 4's (50-60) comes after.
	entries := []AbortedTxn{
		{ProducerID: 2, FirstOffset: 20, LastOffset: 25, LastStableOffset: 10},
		{ProducerID: 3, FirstOffset: 30, LastOffset: 35, LastStableOffset: 10},
		{ProducerID: 1, FirstOffset: 10, LastOffset: 40, LastStableOffset: 41},
		{ProducerID: 4, FirstOffset: 50, LastOffset: 60, LastStableOffset: 61},
	}
	for _, a := range entries {
		if err := p.AddAborted(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.AddAborted(AbortedTxn{ProducerID: 9, FirstOffset: 0, LastOffset: 1, LastStableOffset: 2}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from, upper int64
		want        []AbortedTxn
	}{
		{0, 100, entries},
		{0, 15, entries[2:3]},     // only 1's began below 15; the walk stops at its entry
		{26, 32, entries[1:3]},    // 3's and 1's
		{36, 45, entries[2:3]},    // 1's (its marker at 40); 4's begins after
		{41, 100, entries[3:4]},   // 4's
		{61, 100, nil},            // past every marker
		{0, 5, []AbortedTxn(nil)}, // before every transaction
	} {
		got, err := p.Aborted(nil, c.from, c.upper)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Aborted(%d, %d) = %v, want %v", c.from, c.upper, got, c.want)
		}
	}
	if last, ok, err := p.LastAborted(); err != nil || !ok || last != 60 {
		t.Fatalf("LastAborted = %d, %v, %v; want 60", last, ok, err)
	}
	if err := p.SetTxnIndexEnd(70, false); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteAbortedFrom(40); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteAbortedBefore(30); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Aborted(nil, 0, 100); !reflect.DeepEqual(got, entries[1:2]) {
		t.Fatalf("after the deletions: %v, want %v", got, entries[1:2])
	}
	if end, ok, err := p.TxnIndexEnd(); err != nil || !ok || end != 40 {
		t.Fatalf("TxnIndexEnd after a cut at 40: %d, %v, %v; want 40", end, ok, err)
	}
	if err := p.Reset(); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Aborted(nil, 0, 100); len(got) != 0 {
		t.Fatalf("after Reset: %v", got)
	}
	if _, ok, _ := p.TxnIndexEnd(); ok {
		t.Fatal("the aborted-index end outlived Reset")
	}
	if got, _ := other.Aborted(nil, 0, 100); len(got) != 1 {
		t.Fatalf("another partition's aborts after a Reset: %v", got)
	}
}
