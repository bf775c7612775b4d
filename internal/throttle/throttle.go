// Package throttle holds replication traffic to a byte rate, as Kafka's
// leader.replication.throttled.rate and follower.replication.throttled.rate:
// the traffic of throttled replicas is counted, and while the count is
// ahead of the rate those replicas are skipped (their fetches answered or
// sent without them) rather than slowed byte by byte, so the replicas
// that are not throttled never wait behind them.
package throttle

import (
	"sync"
	"sync/atomic"
	"time"
)

// Unlimited is the rate of a throttle that holds nothing back: Kafka's
// default for the replication rates (Long.MAX_VALUE).
const Unlimited int64 = 1<<63 - 1

// burst is how far ahead of the rate the traffic may run before the
// throttle holds it back: a second's worth, as Kafka's quota window.
const burst = time.Second

// Rate is one byte-rate throttle, safe for concurrent use. The zero value
// is unusable; use New.
type Rate struct {
	rate    atomic.Int64
	counted atomic.Int64 // bytes of throttled traffic, ever
	now     func() time.Time

	mu   sync.Mutex
	next time.Time // when the bytes counted so far will have passed at the rate
}

// New returns a throttle at rate bytes per second (Unlimited: none).
func New(rate int64) *Rate { return newRate(rate, time.Now) }

func newRate(rate int64, now func() time.Time) *Rate {
	r := &Rate{now: now}
	r.rate.Store(rate)
	return r
}

// SetRate changes the rate; it takes effect at once.
func (r *Rate) SetRate(rate int64) { r.rate.Store(rate) }

// Limit returns the rate.
func (r *Rate) Limit() int64 { return r.rate.Load() }

// Exceeded reports whether throttled traffic must wait now.
func (r *Rate) Exceeded() bool {
	rate := r.rate.Load()
	if rate == Unlimited {
		return false
	}
	if rate <= 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next.Sub(r.now()) > burst
}

// Counted returns the bytes of throttled traffic recorded so far.
func (r *Rate) Counted() int64 { return r.counted.Load() }

// Record counts n bytes of throttled traffic.
func (r *Rate) Record(n int64) {
	if n <= 0 {
		return
	}
	r.counted.Add(n)
	rate := r.rate.Load()
	if rate == Unlimited || rate <= 0 {
		return
	}
	r.mu.Lock()
	now := r.now()
	if r.next.Before(now) {
		r.next = now
	}
	r.next = r.next.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
	r.mu.Unlock()
}

// Wait returns how long until throttled traffic may go again (0: now).
func (r *Rate) Wait() time.Duration {
	rate := r.rate.Load()
	if rate == Unlimited {
		return 0
	}
	if rate <= 0 {
		return burst
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return max(0, r.next.Sub(r.now())-burst)
}
