package cleaner

import (
	"context"
	"testing"
	"time"
)

// TestThrottle: at 1,000 bytes/s, 20 waits of 100 bytes sleep about 2 s in
// all on a fake clock (the clock moves by what was slept), small bookings
// within 10 ms of the timeline pass without a sleep, a rate of 0 never
// sleeps, and a wait gives up when its context ends.
func TestThrottle(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	var slept time.Duration
	sleeps := 0
	sleep := func(ctx context.Context, d time.Duration) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		slept += d
		sleeps++
		clock.Add(d)
		return nil
	}
	th := newThrottle(1000, clock.Now, sleep)
	for i := 0; i < 20; i++ {
		if err := th.wait(context.Background(), 100); err != nil {
			t.Fatal(err)
		}
	}
	if slept < 1900*time.Millisecond || slept > 2*time.Second {
		t.Fatalf("slept %v for 2,000 bytes at 1,000 bytes/s", slept)
	}
	sleeps = 0
	clock.Add(time.Hour)
	if err := th.wait(context.Background(), 5); err != nil || sleeps != 0 {
		t.Fatalf("a 5 ms booking: %v, %d sleeps", err, sleeps)
	}
	free := newThrottle(0, clock.Now, sleep)
	if err := free.wait(context.Background(), 1<<30); err != nil || sleeps != 0 {
		t.Fatalf("no limit: %v, %d sleeps", err, sleeps)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := th.wait(ctx, 1<<20); err == nil {
		t.Fatal("a wait with its context ended returned nil")
	}
}

// TestThrottleSetRate: a rate changed while the cleaner runs applies to
// the next booking: unlimited waits nothing, a limit set later holds.
func TestThrottleSetRate(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	var slept time.Duration
	sleep := func(_ context.Context, d time.Duration) error { slept += d; clock.Add(d); return nil }
	c, err := New(nil, Options{Now: clock.Now, sleep: sleep})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.io.wait(context.Background(), 1<<20); err != nil || slept != 0 {
		t.Fatalf("unlimited: %v, slept %v", err, slept)
	}
	c.SetIOBytesPerSecond(1000)
	if err := c.io.wait(context.Background(), 2000); err != nil || slept < 1900*time.Millisecond {
		t.Fatalf("2,000 bytes at 1,000 bytes/s: %v, slept %v", err, slept)
	}
}
