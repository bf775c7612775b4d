//go:build !race

// The race detector makes sync.Pool drop what it is given at random, so
// allocation counts are checked without it.

package segment

import (
	"testing"
)

// TestForEachRecordAllocations: walking an uncompressed batch allocates
// nothing, whatever its number of records or headers.
func TestForEachRecordAllocations(t *testing.T) {
	for _, n := range []int{1, 500} {
		offsets := make([]int64, n)
		for i := range offsets {
			offsets[i] = int64(i)
		}
		b, err := BuildBatch(nil, BatchSpec{LastOffsetDelta: int32(n - 1), ProducerID: -1}, sampleRecords(0, offsets...))
		if err != nil {
			t.Fatal(err)
		}
		h, err := Validate(b)
		if err != nil {
			t.Fatal(err)
		}
		var bytes int
		count := func(r *Record) error {
			bytes += len(r.Key) + len(r.Value) + len(r.Headers)
			return nil
		}
		if err := ForEachRecord(b, &h, testLimit, count); err != nil { // fills the pool
			t.Fatal(err)
		}
		if a := testing.AllocsPerRun(100, func() {
			if err := ForEachRecord(b, &h, testLimit, count); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%d records: %v allocations per walk, want 0", n, a)
		}
	}
}
