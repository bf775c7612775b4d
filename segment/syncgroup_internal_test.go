package segment

import (
	"testing"
	"time"
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
