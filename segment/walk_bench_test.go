package segment_test

import (
	"testing"

	"github.com/runnel-io/runnel/segment"
)

// BenchmarkReadWalk measures Log.Read of an offset whose index entry is
// far behind it, so each read walks the headers of many batches: through
// the mapping of the active segment, and with preads in a sealed one. One
// op is one Read; batches/op says how many headers it walked, and
// allocs/op must not grow with it.
func BenchmarkReadWalk(b *testing.B) {
	const batches = 500 // 1 KiB each
	e := newBenchEnv(b)
	// An index interval larger than the segment: one entry per segment,
	// at its start.
	l := e.open("walk-0", segment.Options{SegmentBytes: 1 << 20, IndexInterval: 64 << 20,
		Fsync: segment.FsyncPolicy{Mode: segment.FsyncNever}})
	b.Cleanup(func() { l.Close() })
	batch := appendShapes[0].batch(1)
	per := int64(appendShapes[0].records)
	for i := 0; i < batches; i++ {
		if _, err := l.Append(batch, 1); err != nil {
			b.Fatal(err)
		}
	}
	sealedLast := l.LogEndOffset() - per // the last batch of what becomes sealed
	if err := l.Roll(); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < batches; i++ {
		if _, err := l.Append(batch, 1); err != nil {
			b.Fatal(err)
		}
	}
	leo := l.LogEndOffset()
	for _, tc := range []struct {
		name   string
		offset int64
	}{{"segment=sealed", sealedLast}, {"segment=active", leo - per}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, err := l.Read(tc.offset, 1, leo)
				if err != nil || r.Length == 0 {
					b.Fatalf("read %d: %v, %d bytes", tc.offset, err, r.Length)
				}
				r.Release()
			}
			b.ReportMetric(batches, "batches/op")
		})
	}
}
