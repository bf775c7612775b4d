package segment_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

// BenchmarkSyncGroup: L logs on the real file system, each with one
// appender that appends a small batch (4 records of 100 B, an offset
// commit's size) and waits for it to be durable under FsyncAlways, all L
// at once; one op is one such round of every log. "group" shares the
// flushes through a SyncGroup (MinFiles 1: every round one syncfs),
// "fdatasync" lets each log sync its own file, and "group-small" (one log)
// goes through a SyncGroup of the default MinFiles, which gives the lone
// flush back to its log to fdatasync: what the group costs a flush it
// cannot help. syncs/op counts the fdatasyncs or syncfs calls a round
// cost.
//
//	go test -run '^$' -bench SyncGroup -benchtime 200x -count 5 ./segment/
func BenchmarkSyncGroup(b *testing.B) {
	batch := testbatch.Make(testbatch.Spec{Timestamp: 1, Values: testbatch.Values(4, 100, 1)})
	for _, logs := range []int{1, 4, 8, 50} {
		modes := []string{"fdatasync", "group"}
		if logs == 1 {
			modes = append(modes, "group-small")
		}
		for _, name := range modes {
			shared := name != "fdatasync"
			minFiles := 1
			if name == "group-small" {
				minFiles = segment.DefaultSyncGroupMinFiles
			}
			b.Run(fmt.Sprintf("logs=%d/%s", logs, name), func(b *testing.B) {
				e := newBenchEnv(b)
				if err := os.MkdirAll(e.logDir(""), 0o755); err != nil {
					b.Fatal(err)
				}
				var syncs sync.Mutex
				nsyncs := 0
				count := func(time.Duration) { syncs.Lock(); nsyncs++; syncs.Unlock() }
				o := segment.Options{Fsync: segment.FsyncPolicy{Mode: segment.FsyncAlways}, ObserveSync: count}
				if shared {
					g, err := segment.NewSyncGroup(nil, e.logDir(""), segment.SyncGroupOptions{MinFiles: minFiles, ObserveSync: count})
					if err != nil {
						b.Fatal(err)
					}
					defer g.Close()
					o.SyncGroup = g
				}
				ls := make([]*segment.Log, logs)
				for i := range ls {
					ls[i] = e.open(fmt.Sprintf("p-%d", i), o)
					defer ls[i].Close()
				}
				ctx := context.Background()
				round := func() {
					var wg sync.WaitGroup
					for _, l := range ls {
						wg.Go(func() {
							r, err := l.Append(batch, 1)
							if err == nil {
								err = l.WaitDurable(ctx, r.LastOffset+1)
							}
							if err != nil {
								b.Error(err)
							}
						})
					}
					wg.Wait()
				}
				round() // the files exist and hold a page
				syncs.Lock()
				nsyncs = 0
				syncs.Unlock()
				b.ResetTimer()
				for range b.N {
					round()
				}
				b.StopTimer()
				syncs.Lock()
				b.ReportMetric(float64(nsyncs)/float64(b.N), "syncs/op")
				syncs.Unlock()
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(logs), "µs/log")
			})
		}
	}
}
