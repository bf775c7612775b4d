package segment_test

import (
	"context"
	"sync"
	"testing"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/segment"
)

// TestObserveGroupCommit: each flush reports the batches it made durable
// that no flush before it had, so the reports add up to the batches
// appended, whatever the number of flushes; a flush with nothing new (a
// roll's) reports nothing.
func TestObserveGroupCommit(t *testing.T) {
	fs := vfs.NewMemFS()
	var mu sync.Mutex
	var reports []int64
	l, err := segment.Open(plDir, segment.Options{
		Index: newCrashIndex(fs), FS: fs, SegmentBytes: 16 << 10, Logger: quietLogger(),
		Fsync: segment.FsyncPolicy{Mode: segment.FsyncAlways},
		ObserveGroupCommit: func(n int64) {
			mu.Lock()
			reports = append(reports, n)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	batch := testbatch.Make(testbatch.Spec{Timestamp: 1, Values: testbatch.Values(4, 200, 1)})
	sum := func() (total int64, n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range reports {
			if r <= 0 {
				t.Fatalf("a report of %d batches", r)
			}
			total += r
		}
		return total, len(reports)
	}
	ctx := context.Background()
	appended := int64(0)
	for round, batches := range []int{1, 3, 40} {
		var last segment.AppendResult
		for range batches {
			if last, err = l.Append(batch, testEpoch); err != nil {
				t.Fatal(err)
			}
		}
		appended += int64(batches)
		if err := l.WaitDurable(ctx, last.LastOffset+1); err != nil {
			t.Fatal(err)
		}
		if total, n := sum(); total != appended {
			t.Fatalf("round %d: %d reports add up to %d batches, want %d", round, n, total, appended)
		}
	}
	if len(l.Segments()) < 2 {
		t.Fatal("no roll: the test wants a flush of sealed segments")
	}
}
