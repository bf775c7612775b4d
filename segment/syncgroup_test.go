package segment_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/segment"
)

// sgLogs opens n logs under /data/topics sharing g.
func sgLogs(t *testing.T, fs *vfs.MemFS, g *segment.SyncGroup, n int) ([]*segment.Log, []*crashIndex) {
	t.Helper()
	logs := make([]*segment.Log, n)
	idxs := make([]*crashIndex, n)
	for i := range logs {
		idxs[i] = newCrashIndex(fs)
		l, err := segment.Open(fmt.Sprintf("/data/topics/sg-%d", i), segment.Options{
			Index: idxs[i], FS: fs, SegmentBytes: 16 << 10, Logger: quietLogger(),
			Fsync: segment.FsyncPolicy{Mode: segment.FsyncAlways}, SyncGroup: g,
		})
		if err != nil {
			t.Fatal(err)
		}
		logs[i] = l
	}
	// The folders as partition.Manager makes them: durable.
	for _, d := range []string{"/", "/data", "/data/topics"} {
		if err := fs.SyncDir(d); err != nil {
			t.Fatal(err)
		}
	}
	return logs, idxs
}

func sgGroup(t *testing.T, fs *vfs.MemFS, minFiles int) *segment.SyncGroup {
	t.Helper()
	if err := fs.Mkdir("/data", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fs.Mkdir("/data/topics", 0o755); err != nil {
		t.Fatal(err)
	}
	g, err := segment.NewSyncGroup(fs, "/data/topics", segment.SyncGroupOptions{MinFiles: minFiles, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// appendAll appends rounds batches to every log at once, each log's
// appender waiting for its batch to be durable before the next, and
// returns the batches each log acknowledged.
func appendAll(t *testing.T, logs []*segment.Log, rounds int) []int {
	t.Helper()
	batch := testbatch.Make(testbatch.Spec{Timestamp: 1, Values: testbatch.Values(4, 200, 1)})
	acked := make([]int, len(logs))
	var wg sync.WaitGroup
	errs := make(chan error, len(logs))
	for i, l := range logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				r, err := l.Append(batch, testEpoch)
				if err == nil {
					err = l.WaitDurable(context.Background(), r.LastOffset+1)
				}
				if err != nil {
					errs <- fmt.Errorf("log %d: %w", i, err)
					return
				}
				acked[i]++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return acked
}

// TestSyncGroupCoversLogs: with a sync group of MinFiles 1, the flushes
// of many logs are made durable by syncs of the whole file system (and,
// in the rounds the group gives them, by their own fdatasyncs); after a
// power loss every acknowledged batch of every log is there.
func TestSyncGroupCoversLogs(t *testing.T) {
	fs := vfs.NewMemFS()
	g := sgGroup(t, fs, 1)
	logs, idxs := sgLogs(t, fs, g, 6)
	acked := appendAll(t, logs, 40)
	if n := fs.Count(vfs.OpSyncFS); n == 0 {
		t.Fatal("no syncfs: the group did not sync the flushes")
	}
	fs.Crash()
	for i := range logs {
		idxs[i].crash(false)
		l, err := segment.Open(fmt.Sprintf("/data/topics/sg-%d", i), segment.Options{
			Index: idxs[i], FS: fs, SegmentBytes: 16 << 10, Logger: quietLogger(),
			Fsync: segment.FsyncPolicy{Mode: segment.FsyncAlways}})
		if err != nil {
			t.Fatal(err)
		}
		// Each batch holds 4 records: offsets 0 .. 4*acked-1 were acknowledged.
		if got, want := l.LogEndOffset(), int64(4*acked[i]); got < want {
			t.Errorf("log %d: end %d after the power loss, %d offsets were acknowledged", i, got, want)
		}
		l.Close()
	}
}

// TestSyncGroupSmallRounds: rounds of fewer files than MinFiles are left
// to the logs, which fdatasync their own: a lone log never syncs the
// whole file system.
func TestSyncGroupSmallRounds(t *testing.T) {
	fs := vfs.NewMemFS()
	g := sgGroup(t, fs, 1000)
	logs, _ := sgLogs(t, fs, g, 3)
	syncs0 := fs.Count(vfs.OpSync)
	appendAll(t, logs, 20)
	if n := fs.Count(vfs.OpSyncFS); n != 0 {
		t.Fatalf("%d syncfs for rounds below MinFiles", n)
	}
	if fs.Count(vfs.OpSync) == syncs0 {
		t.Fatal("no fdatasync: nothing made the appends durable")
	}
	for _, l := range logs {
		l.Close()
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSyncGroupFailedSyncfs: when the shared sync fails, each log of the
// round syncs its own files: the logs whose files sync stay online and
// their acknowledged data survives a power loss; the one whose fdatasync
// fails goes offline, alone.
func TestSyncGroupFailedSyncfs(t *testing.T) {
	fs := vfs.NewMemFS()
	g := sgGroup(t, fs, 1)
	logs, idxs := sgLogs(t, fs, g, 4)
	fs.Inject(func(op vfs.Op, path string) error {
		switch {
		case op == vfs.OpSyncFS:
			return errors.New("injected: write-back failed somewhere")
		case op == vfs.OpSync && strings.Contains(path, "/sg-2/"):
			return errors.New("injected: write-back of sg-2 failed")
		}
		return nil
	})
	batch := testbatch.Make(testbatch.Spec{Timestamp: 1, Values: testbatch.Values(4, 200, 1)})
	for i, l := range logs {
		r, err := l.Append(batch, testEpoch)
		if err != nil {
			t.Fatal(err)
		}
		err = l.WaitDurable(context.Background(), r.LastOffset+1)
		switch {
		case i == 2 && !errors.Is(err, segment.ErrOffline):
			t.Fatalf("log 2, whose fdatasync fails: %v, want ErrOffline", err)
		case i != 2 && err != nil:
			t.Fatalf("log %d, whose files sync: %v", i, err)
		}
	}
	if fs.Count(vfs.OpSyncFS) == 0 {
		t.Fatal("the group never tried a syncfs")
	}
	fs.Inject(nil)
	fs.Crash()
	for i := range logs {
		if i == 2 {
			continue
		}
		idxs[i].crash(false)
		l, err := segment.Open(fmt.Sprintf("/data/topics/sg-%d", i), segment.Options{
			Index: idxs[i], FS: fs, Logger: quietLogger(), Fsync: segment.FsyncPolicy{Mode: segment.FsyncAlways}})
		if err != nil {
			t.Fatal(err)
		}
		if l.LogEndOffset() < 4 {
			t.Errorf("log %d: end %d after the power loss, its batch was acknowledged", i, l.LogEndOffset())
		}
		l.Close()
	}
}
