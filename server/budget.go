package server

import (
	"context"
	"sync"
)

// requestBudget is the server-wide budget of request bytes being read
// (Kafka's queued.max.request.bytes). A connection reserves a frame's size
// before allocating the frame and gives it back once the request's handler
// is done with the bytes. Reservations are granted in arrival order: a
// large frame waiting for room is not overtaken for ever by small ones,
// and a small one waits behind it.
//
// The bytes reserved are counted even when the budget is unbounded.
type requestBudget struct {
	capacity int64 // < 0: unbounded
	m        *Metrics

	mu struct {
		sync.Mutex
		held    int64
		waiters []*budgetWaiter // FIFO
	}
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed when n is granted
}

func newRequestBudget(capacity int64, m *Metrics) *requestBudget {
	return &requestBudget{capacity: capacity, m: m}
}

// fits reports whether a frame of n bytes can ever be granted.
func (b *requestBudget) fits(n int64) bool { return b.capacity < 0 || n <= b.capacity }

// max returns the largest reservation the budget grants.
func (b *requestBudget) max() int64 {
	if b.capacity < 0 {
		return 1<<63 - 1
	}
	return b.capacity
}

// roomLocked reports whether n more bytes fit now.
func (b *requestBudget) roomLocked(n int64) bool {
	return b.capacity < 0 || b.mu.held+n <= b.capacity
}

// acquire reserves n bytes, waiting while they are not free. It returns
// whether it had to wait, or ctx's error (and reserves nothing) if ctx
// ends first. n must fit.
func (b *requestBudget) acquire(ctx context.Context, n int64) (waited bool, err error) {
	b.mu.Lock()
	if len(b.mu.waiters) == 0 && b.roomLocked(n) {
		b.mu.held += n
		b.mu.Unlock()
		b.m.queuedBytes(n)
		return false, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.mu.waiters = append(b.mu.waiters, w)
	b.mu.Unlock()
	b.m.queuedWait()
	select {
	case <-w.ready:
		return true, nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	select {
	case <-w.ready:
		// Granted while ctx ended: give it back.
		b.mu.Unlock()
		b.release(n)
		return true, ctx.Err()
	default:
	}
	for i, o := range b.mu.waiters {
		if o == w {
			b.mu.waiters = append(b.mu.waiters[:i], b.mu.waiters[i+1:]...)
			break
		}
	}
	// The head may have left: the next ones may fit now.
	b.grantLocked()
	b.mu.Unlock()
	return true, ctx.Err()
}

// release gives back n bytes reserved by acquire.
func (b *requestBudget) release(n int64) {
	b.mu.Lock()
	b.mu.held -= n
	if b.mu.held < 0 {
		panic("server: request budget released more than was reserved")
	}
	b.m.queuedBytes(-n)
	b.grantLocked()
	b.mu.Unlock()
}

// grantLocked grants waiters in order while the head fits.
func (b *requestBudget) grantLocked() {
	for len(b.mu.waiters) > 0 {
		w := b.mu.waiters[0]
		if !b.roomLocked(w.n) {
			return
		}
		b.mu.held += w.n
		b.m.queuedBytes(w.n)
		b.mu.waiters[0] = nil
		b.mu.waiters = b.mu.waiters[1:]
		close(w.ready)
	}
}

// stats returns the bytes reserved and the number of reservations waiting.
func (b *requestBudget) stats() (held int64, waiting int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.held, len(b.mu.waiters)
}
