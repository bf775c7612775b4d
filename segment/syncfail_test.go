package segment_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/segment"
)

// A failed sync is never retried as if the data were safe. The workload's
// k-th sync fails with EIO, for every k: an open log goes offline (appends,
// waits, reads and truncation fail with ErrOffline, Offline says why, and
// nothing more is acknowledged), an Open whose recovery failed fails again
// when retried, and after a power cut every batch acknowledged before the
// failure is there.
func TestSyncFailureTakesLogOffline(t *testing.T) {
	n := plSyncCount(t)
	offline, openFailed := 0, 0
	for k := 1; k <= n; k++ {
		fs := vfs.NewMemFS()
		idx := newCrashIndex(fs)
		w := &plWorkload{t: t, fs: fs, idx: idx, m: newPLModel(), failing: true}
		seen := 0
		fs.Inject(func(op vfs.Op, path string) error {
			if op == vfs.OpSync || op == vfs.OpMsync || op == vfs.OpSyncDir {
				seen++
				if seen == k {
					return syscall.EIO
				}
			}
			return nil
		})
		point := fmt.Sprintf("sync %d of %d failed", k, n)
		w.onFailure = func(what string, err error) {
			switch {
			case what == "open":
				openFailed++
				l, err := segment.Open(plDir, plOptions(fs, idx))
				if err == nil {
					l.Close()
				}
				if !errors.Is(err, vfs.ErrSyncFailed) {
					t.Fatalf("%s in open: a retried Open gave %v, want the sync failure again", point, err)
				}
				return
			case what == "close":
				return
			}
			offline++
			l := w.l
			if !errors.Is(err, segment.ErrOffline) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("%s in %s: %v, want ErrOffline carrying the EIO", point, what, err)
			}
			if l.Offline() == nil {
				t.Fatalf("%s in %s: the log does not say it is offline", point, what)
			}
			r, err := l.Append(plBatch(l.LogEndOffset(), 0), testEpoch)
			if !errors.Is(err, segment.ErrOffline) {
				t.Fatalf("%s: append to the offline log: %+v %v", point, r, err)
			}
			if err := l.WaitDurable(context.Background(), l.LogEndOffset()+1); !errors.Is(err, segment.ErrOffline) {
				t.Fatalf("%s: a wait on the offline log returned %v", point, err)
			}
			if _, err := l.Read(l.LogStartOffset(), 1<<10, l.LogEndOffset()); !errors.Is(err, segment.ErrOffline) {
				t.Fatalf("%s: a read of the offline log returned %v", point, err)
			}
			if err := l.TruncateTo(l.LogStartOffset()); !errors.Is(err, segment.ErrOffline) {
				t.Fatalf("%s: truncating the offline log returned %v", point, err)
			}
		}
		w.run()
		fs.Freeze()
		fs.Crash()
		idx.crash(true)
		plCheck(t, fs, idx, w.m, point+", then the power")
	}
	t.Logf("%d sync points failed: %d took an open log offline, %d failed a recovery", n, offline, openFailed)
	if offline == 0 {
		t.Fatal("no failure took an open log offline")
	}
}
