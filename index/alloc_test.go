//go:build !race

// The race detector makes sync.Pool drop what it is given at random, so
// allocation counts are checked without it.

package index

import "testing"

// TestFloorAllocations: Floor builds no keys or options per lookup. The
// two allocations left are Pebble's, in making the iterator and seeking it
// backwards; a Pebble iterator sees the database as of its making, so it
// cannot be kept from one lookup to the next.
func TestFloorAllocations(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	p := db.Partition("allocs-0")
	addAll(t, p, testEntries(1000, 0, 16))
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(100, func() {
		if _, ok, err := p.Floor(5000); err != nil || !ok {
			t.Fatalf("Floor: %v %v", ok, err)
		}
	})
	if n > 2 {
		t.Fatalf("%v allocations per Floor, want at most Pebble's 2", n)
	}
}
