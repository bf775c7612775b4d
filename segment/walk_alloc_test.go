//go:build !race

// The race detector makes sync.Pool drop what it is given at random, so
// allocation counts are checked without it.

package segment_test

import (
	"testing"

	"github.com/runnel-io/runnel/segment"
)

// TestReadWalkAllocations: a read that walks 500 batch headers does not
// allocate per header: it allocates what one that walks one header does
// (the index lookup's own allocations are in both). Pebble's background
// work may add an allocation or two to a lookup now and then, so each is
// the least of three measurements, and a walk may differ by two at most:
// an allocation per header would be 500.
func TestReadWalkAllocations(t *testing.T) {
	e := newBenchEnv(t)
	l := e.open("walk-0", segment.Options{SegmentBytes: 1 << 20, IndexInterval: 64 << 20,
		Fsync: segment.FsyncPolicy{Mode: segment.FsyncNever}})
	defer l.Close()
	batch := appendShapes[0].batch(1)
	per := int64(appendShapes[0].records)
	for i := 0; i < 500; i++ {
		if _, err := l.Append(batch, 1); err != nil {
			t.Fatal(err)
		}
	}
	mid := l.LogEndOffset()
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		if _, err := l.Append(batch, 1); err != nil {
			t.Fatal(err)
		}
	}
	leo := l.LogEndOffset()
	allocs := func(offset int64) float64 {
		return testing.AllocsPerRun(50, func() {
			r, err := l.Read(offset, 1, leo)
			if err != nil || r.Length == 0 {
				t.Fatalf("read %d: %v, %d bytes", offset, err, r.Length)
			}
			r.Release()
		})
	}
	least := func(offset int64) float64 {
		return min(allocs(offset), allocs(offset), allocs(offset))
	}
	for _, seg := range []struct {
		name        string
		first, last int64
	}{{"sealed", 0, mid - per}, {"active", mid, leo - per}} {
		if one, many := least(seg.first), least(seg.last); many > one+2 {
			t.Errorf("%s segment: %v allocations walking one header, %v walking 500", seg.name, one, many)
		}
	}
}
