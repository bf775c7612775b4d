package segment

import (
	"testing"
	"time"

	"github.com/runnel-io/runnel/internal/vfs"
)

// TestSyncGroupChoosesTheFasterWay: a round big enough for a syncfs is
// synced the way whose average round was shorter, except every
// probeEvery-th (more rarely when the other way is much slower), which
// tries the other; an unmeasured way is tried first.
func TestSyncGroupChoosesTheFasterWay(t *testing.T) {
	var g SyncGroup
	if !g.useVolumeLocked() {
		t.Fatal("nothing measured: the syncfs is not tried first")
	}
	g.volumeAvg = 5 * time.Millisecond // the ownAvg of 0 is unmeasured: tried next
	if g.useVolumeLocked() {
		t.Fatal("fdatasyncs unmeasured, yet the syncfs was chosen")
	}
	for _, c := range []struct {
		volume, own time.Duration
		want        bool
		every       int
	}{
		{3 * time.Millisecond, 2 * time.Millisecond, false, probeEvery},
		{2 * time.Millisecond, 3 * time.Millisecond, true, probeEvery},
		{10 * time.Millisecond, time.Millisecond, false, 10 * probeEvery}, // a much slower way is tried less often
		{time.Millisecond, time.Second, true, maxProbeScale * probeEvery},
	} {
		g.volumeAvg, g.ownAvg, g.sinceProbe = c.volume, c.own, 0
		for i := 1; i <= 3*c.every; i++ {
			want := c.want
			if i%c.every == 0 {
				want = !want
			}
			if got := g.useVolumeLocked(); got != want {
				t.Fatalf("syncfs %v, fdatasyncs %v, round %d: syncfs chosen %v, want %v", c.volume, c.own, i, got, want)
			}
		}
	}
	if got := average(0, 8*time.Millisecond); got != 8*time.Millisecond {
		t.Errorf("first average %v", got)
	}
	if got := average(8*time.Millisecond, 16*time.Millisecond); got != 9*time.Millisecond {
		t.Errorf("average(8ms, 16ms) = %v, want 9ms", got)
	}
}

// TestSyncGroupWindow: a round too small for a syncfs waits while flushes
// given back are still being fdatasynced, if with them it would be big
// enough; it goes when they are done, or as soon as enough flushes queue.
func TestSyncGroupWindow(t *testing.T) {
	fs := vfs.NewMemFS()
	if err := fs.Mkdir("/data", 0o755); err != nil {
		t.Fatal(err)
	}
	g, err := NewSyncGroup(fs, "/data", SyncGroupOptions{MinFiles: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// giveBack makes a lone flush, given back (one file is below the
	// minimum), and returns its done, not yet called.
	giveBack := func() func(time.Duration) {
		t.Helper()
		own, done := g.flush(1)
		if !own || done == nil {
			t.Fatalf("lone flush: own %v, done set %v", own, done != nil)
		}
		return done
	}
	results := make(chan bool, 8)
	flush := func() {
		own, done := g.flush(1)
		if done != nil {
			done(time.Millisecond)
		}
		results <- own
	}
	held := []func(time.Duration){giveBack(), giveBack(), giveBack()}
	notYet := func(what string) {
		t.Helper()
		select {
		case own := <-results:
			t.Fatalf("%s: a flush returned (own %v) while the round should wait", what, own)
		case <-time.After(100 * time.Millisecond):
		}
	}

	// One queued and three being fdatasynced make four: it waits, and
	// goes (given back) once one of them is done.
	go flush()
	notYet("1 queued, 3 syncing")
	held[0](time.Millisecond)
	if own := <-results; !own {
		t.Fatal("a one-file round was covered by a syncfs")
	}

	// Three syncing again; flushes queue until there are four: one
	// syncfs covers them.
	held[0] = giveBack()
	go flush()
	notYet("1 queued, 3 syncing")
	go flush()
	go flush()
	notYet("3 queued, 3 syncing")
	go flush()
	for range 4 {
		if own := <-results; own {
			t.Fatal("a flush of the four-file round was given back instead of covered by the syncfs")
		}
	}
	for _, done := range held {
		done(200 * time.Microsecond)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ownFiles != 0 || g.volumeAvg == 0 {
		t.Fatalf("own files %d, syncfs average %v", g.ownFiles, g.volumeAvg)
	}
}

// TestSyncGroupPricesOwnRoundsBySum: the fdatasync way of a round is
// priced by the sum of its logs' sync times over its files.
func TestSyncGroupPricesOwnRoundsBySum(t *testing.T) {
	var g SyncGroup
	g.ownCond.L = &g.mu
	r := &ownRound{pending: 2, files: 4}
	a, b := &groupFlush{files: 2, timed: r}, &groupFlush{files: 2, timed: r}
	g.ownFiles = 4
	g.ownDone(a, 3*time.Millisecond)
	g.ownDone(b, time.Millisecond)
	if g.ownAvg != time.Millisecond || g.ownFiles != 0 {
		t.Fatalf("own average %v (want 4 ms over 4 files), own files %d", g.ownAvg, g.ownFiles)
	}
	// A failed sync leaves the average alone.
	r = &ownRound{pending: 1, files: 1}
	g.ownFiles = 1
	g.ownDone(&groupFlush{files: 1, timed: r}, -1)
	if g.ownAvg != time.Millisecond {
		t.Fatalf("a failed round moved the average to %v", g.ownAvg)
	}
}
