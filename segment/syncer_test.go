package segment

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A roll makes data durable outside the syncer. A waiter parked on the
// current round must be woken by it: the flush it asked for may now find
// nothing to do and end without closing a round.
func TestSyncerAdvanceWakesWaiters(t *testing.T) {
	var s syncer
	s.init(0, func() (int64, error) { return 0, errors.New("flush must not run") })
	s.mu.Lock()
	round := s.round // what a waiter of offset 10 is parked on
	s.requested, s.running = 10, true
	s.mu.Unlock()

	s.advance(10, false)
	select {
	case <-round:
	default:
		t.Fatal("advance left a waiter parked on the old round")
	}
	s.mu.Lock()
	s.running = false
	s.mu.Unlock()
	if err := s.wait(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
}

// Many waiters, flushes that take a while, and advances from the side: every
// waiter returns once its offset is durable, and flushes are shared.
func TestSyncerGroupCommitStress(t *testing.T) {
	var s syncer
	var end, flushes atomic.Int64
	s.init(0, func() (int64, error) {
		flushes.Add(1)
		upto := end.Load()
		time.Sleep(50 * time.Microsecond) // an fdatasync's worth of waiting
		return upto, nil
	})
	var wg sync.WaitGroup
	const waiters, each = 8, 200
	for w := 0; w < waiters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				next := end.Add(1)
				if i%50 == 0 {
					s.advance(next, false) // a roll covering everything so far
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := s.wait(ctx, next)
				cancel()
				if err != nil {
					t.Errorf("wait(%d): %v", next, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s.stop()
	if n := flushes.Load(); n >= waiters*each {
		t.Errorf("%d flushes for %d waits: no group commit", n, waiters*each)
	}
}

func TestSyncerFailureReachesWaiters(t *testing.T) {
	var s syncer
	boom := errors.New("fdatasync: EIO")
	s.init(0, func() (int64, error) { return 0, boom })
	if err := s.wait(context.Background(), 5); !errors.Is(err, boom) {
		t.Fatalf("wait: %v, want the flush error", err)
	}
	if err := s.wait(context.Background(), 6); !errors.Is(err, boom) {
		t.Fatalf("wait after failure: %v, want the sticky flush error", err)
	}
	s.stop()
}

// stop ends group commit for good: a request after it (an appender racing
// Log.Close, or the interval timer firing) starts no flush, which would run
// on segments Close is sealing and releasing.
func TestSyncerStopRefusesNewFlushes(t *testing.T) {
	var s syncer
	var flushes atomic.Int32
	s.init(0, func() (int64, error) {
		flushes.Add(1)
		return 10, nil
	})
	s.stop()
	s.request(10)
	s.requestFlush(10)
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	s.stop()
	if running || flushes.Load() != 0 {
		t.Fatalf("after stop a request started a flush (running %v, %d flushes)", running, flushes.Load())
	}
	// A waiter is answered by what Close made durable, or by its error.
	s.advance(5, false)
	if err := s.wait(context.Background(), 5); err != nil {
		t.Fatalf("wait for what is durable: %v", err)
	}
	done := make(chan error)
	go func() { done <- s.wait(context.Background(), 10) }()
	s.fail(ErrClosed)
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("wait past the durable end after stop: %v, want ErrClosed", err)
	}
}

// A flush that was running when a truncation moved the log end back (an
// advance with reset) proves nothing about the offsets that will be
// appended again past the new end: its result must not count.
func TestSyncerFlushAcrossTruncationDoesNotCount(t *testing.T) {
	var s syncer
	entered, release := make(chan struct{}), make(chan struct{})
	var reported atomic.Int64
	s.init(0, func() (int64, error) {
		close(entered)
		<-release
		return 10, nil // the log end when this flush began
	})
	s.onDurable = func(end int64) { reported.Store(end) }
	s.request(10)
	<-entered
	s.advance(5, true) // truncated to 5 while the flush ran
	close(release)
	s.stop()
	s.mu.Lock()
	durable := s.durable
	s.mu.Unlock()
	if durable != 5 || reported.Load() != 0 {
		t.Fatalf("after a flush across a truncation to 5: durable %d, reported %d", durable, reported.Load())
	}
}
