package throttle

import (
	"testing"
	"time"
)

func TestRate(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	r := newRate(1000, func() time.Time { return now })
	if r.Exceeded() {
		t.Fatal("exceeded before any traffic")
	}
	r.Record(1000) // one second's worth: within the burst
	if r.Exceeded() {
		t.Fatal("exceeded within the burst")
	}
	r.Record(1500) // 2.5 s ahead
	if !r.Exceeded() {
		t.Fatal("not exceeded 2.5 s ahead of the rate")
	}
	if w := r.Wait(); w != 1500*time.Millisecond {
		t.Fatalf("wait %v, want 1.5s", w)
	}
	now = now.Add(1500 * time.Millisecond)
	if r.Exceeded() || r.Wait() != 0 {
		t.Fatalf("still exceeded once the rate caught up (wait %v)", r.Wait())
	}
	// Idle time is not saved up: after a long pause, the burst is all
	// that passes before the throttle holds back again.
	now = now.Add(time.Hour)
	r.Record(2001)
	if !r.Exceeded() {
		t.Fatal("idle time was saved up")
	}

	if got := r.Counted(); got != 1000+1500+2001 {
		t.Fatalf("counted %d bytes", got)
	}
	r.SetRate(Unlimited)
	if r.Exceeded() || r.Wait() != 0 {
		t.Fatal("an unlimited throttle held back")
	}
	r.SetRate(0)
	if !r.Exceeded() {
		t.Fatal("a zero rate let traffic pass")
	}
}
