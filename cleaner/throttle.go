package cleaner

import (
	"context"
	"sync/atomic"
	"time"
)

// throttle holds the cleaner's I/O to a rate, in bytes per second, shared
// by its threads: each read or write of n bytes books its slot on one
// timeline and waits until then. A rate of zero or below is no limit. The
// rate may change at any time (setRate); a booking follows the rate it
// found.
type throttle struct {
	rate  atomic.Int64
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	mu    chan struct{} // a one-slot lock that waits can give up
	next  time.Time     // when the booked bytes will have passed
}

func newThrottle(rate int64, now func() time.Time, sleep func(context.Context, time.Duration) error) *throttle {
	t := &throttle{now: now, sleep: sleep, mu: make(chan struct{}, 1)}
	t.rate.Store(rate)
	return t
}

func (t *throttle) setRate(rate int64) { t.rate.Store(rate) }

// wait books n bytes and returns once the rate allows them, or when ctx
// ends.
func (t *throttle) wait(ctx context.Context, n int64) error {
	rate := t.rate.Load()
	if rate <= 0 || n <= 0 {
		return ctx.Err()
	}
	select {
	case t.mu <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	now := t.now()
	if t.next.Before(now) {
		t.next = now
	}
	t.next = t.next.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
	until := t.next.Sub(now)
	<-t.mu
	// Bytes within the first 10 ms of the timeline pass at once: a
	// sleep per small read would cost more than it holds back.
	if until <= 10*time.Millisecond {
		return nil
	}
	return t.sleep(ctx, until)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
