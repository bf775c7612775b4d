package server

import (
	"context"
	"errors"
	"testing"
)

// acquireAsync starts an acquire of n and returns a channel that gets its
// error once granted or given up.
func acquireAsync(ctx context.Context, b *requestBudget, n int64) chan error {
	done := make(chan error, 1)
	go func() {
		_, err := b.acquire(ctx, n)
		done <- err
	}()
	return done
}

func waitWaiting(t *testing.T, b *requestBudget, n int) {
	t.Helper()
	waitFor(t, "reservations to queue", func() bool { _, w := b.stats(); return w == n })
}

func TestRequestBudget(t *testing.T) {
	t.Run("granted in arrival order", func(t *testing.T) {
		b := newRequestBudget(10, nil)
		if waited, err := b.acquire(context.Background(), 8); waited || err != nil {
			t.Fatalf("first reservation: waited %v, %v", waited, err)
		}
		large := acquireAsync(context.Background(), b, 6)
		waitWaiting(t, b, 1)
		// 2 bytes are free, but the small one queues behind the large.
		small := acquireAsync(context.Background(), b, 2)
		waitWaiting(t, b, 2)
		b.release(8)
		if err := <-large; err != nil {
			t.Fatal(err)
		}
		if err := <-small; err != nil {
			t.Fatal(err)
		}
		if held, w := b.stats(); held != 8 || w != 0 {
			t.Fatalf("held %d, waiting %d; want 8, 0", held, w)
		}
	})
	t.Run("a waiter that gives up lets the next one in", func(t *testing.T) {
		b := newRequestBudget(10, nil)
		b.acquire(context.Background(), 5)
		ctx, cancel := context.WithCancel(context.Background())
		large := acquireAsync(ctx, b, 10)
		waitWaiting(t, b, 1)
		small := acquireAsync(context.Background(), b, 5)
		waitWaiting(t, b, 2)
		cancel()
		if err := <-large; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled reservation: %v", err)
		}
		if err := <-small; err != nil {
			t.Fatal(err)
		}
		if held, w := b.stats(); held != 10 || w != 0 {
			t.Fatalf("held %d, waiting %d; want 10, 0", held, w)
		}
	})
	t.Run("unbounded counts without waiting", func(t *testing.T) {
		b := newRequestBudget(-1, nil)
		for range 3 {
			if waited, err := b.acquire(context.Background(), 1<<40); waited || err != nil {
				t.Fatalf("waited %v, %v", waited, err)
			}
		}
		if held, _ := b.stats(); held != 3<<40 || !b.fits(1<<62) {
			t.Fatalf("held %d", held)
		}
	})
}
