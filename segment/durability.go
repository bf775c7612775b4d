package segment

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FsyncMode says when appended bytes are flushed to disk.
type FsyncMode int

const (
	// FsyncAlways acknowledges an append only after its bytes are on disk.
	// Appenders waiting at the same moment share one fdatasync (group
	// commit).
	FsyncAlways FsyncMode = iota
	// FsyncInterval flushes at most Interval after an append; acknowledged
	// data younger than that can be lost in a machine crash.
	FsyncInterval
	// FsyncNever leaves flushing to the kernel (and to segment rolls and
	// Close); durability comes from replicas.
	FsyncNever
)

// FsyncPolicy is a FsyncMode and, for FsyncInterval, its period.
type FsyncPolicy struct {
	Mode     FsyncMode
	Interval time.Duration
}

// ParseFsyncPolicy parses "always", "never" or "interval:DURATION".
func ParseFsyncPolicy(s string) (FsyncPolicy, error) {
	switch {
	case s == "always":
		return FsyncPolicy{Mode: FsyncAlways}, nil
	case s == "never":
		return FsyncPolicy{Mode: FsyncNever}, nil
	case strings.HasPrefix(s, "interval:"):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "interval:"))
		if err != nil || d <= 0 {
			return FsyncPolicy{}, fmt.Errorf("segment: fsync policy %q: want interval:DURATION with a positive duration such as interval:100ms", s)
		}
		return FsyncPolicy{Mode: FsyncInterval, Interval: d}, nil
	}
	return FsyncPolicy{}, fmt.Errorf("segment: fsync policy %q: want always, never or interval:DURATION", s)
}

func (p FsyncPolicy) String() string {
	switch p.Mode {
	case FsyncAlways:
		return "always"
	case FsyncNever:
		return "never"
	default:
		return "interval:" + p.Interval.String()
	}
}

// syncer runs group commit for one log. One goroutine at most flushes at a
// time; it starts when a flush is requested and none runs, and exits when
// nothing more is requested. Appenders that arrive during a flush are
// covered together by the next one.
type syncer struct {
	mu        sync.Mutex
	durable   int64         // every offset below this is on disk
	requested int64         // highest offset someone wants durable
	again     bool          // a flush is wanted even if nothing new is requested
	running   bool          // a flush goroutine exists
	stopped   bool          // stop was called: no flush starts again
	round     chan struct{} // closed when the current flush round ends
	err       error         // sticky: the log is offline or closed
	resets    int64         // advances with reset: a flush begun before one proves nothing after it
	offline   atomic.Bool   // err is set and is not ErrClosed: readers look here without the lock
	idle      sync.WaitGroup
	flush     func() (int64, error) // flushes and returns the offset now durable
	onDurable func(int64)           // optional, called after each good flush
}

func (s *syncer) init(durable int64, flush func() (int64, error)) {
	s.durable, s.requested, s.flush = durable, durable, flush
	s.round = make(chan struct{})
}

// request asks for offsets below next to become durable.
func (s *syncer) request(next int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if next > s.requested {
		s.requested = next
	}
	s.startLocked()
}

// requestFlush asks for one more flush even if every offset is durable
// already: a roll's seal cut the file to size, which must reach the disk
// before the roll's checkpoint is written.
func (s *syncer) requestFlush(next int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if next > s.requested {
		s.requested = next
	}
	s.again = true
	s.startLocked()
}

func (s *syncer) startLocked() {
	if s.running || s.stopped || s.err != nil || (s.requested <= s.durable && !s.again) {
		return
	}
	s.running = true
	s.idle.Add(1)
	go s.run()
}

func (s *syncer) run() {
	defer s.idle.Done()
	for {
		s.gather()
		s.mu.Lock()
		if (s.requested <= s.durable && !s.again) || s.err != nil || s.stopped {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.again = false
		resets := s.resets
		s.mu.Unlock()

		// A truncation (advance with reset) while the flush ran moved the
		// log end back: the flush's end may name offsets that will be
		// appended again, unsynced. It then proves nothing.
		upto, err := s.flush()
		s.mu.Lock()
		valid := s.resets == resets
		s.mu.Unlock()
		if err == nil && valid && s.onDurable != nil {
			s.onDurable(upto)
		}

		s.mu.Lock()
		if err != nil {
			s.setErrLocked(err)
		} else if upto > s.durable && s.resets == resets {
			s.durable = upto
		}
		close(s.round)
		s.round = make(chan struct{})
		s.mu.Unlock()
	}
}

// gatherYields bounds how often gather yields before a flush.
const gatherYields = 16

// gather lets appenders that are runnable now, above all those the last
// round just woke, append and ask before the next flush starts, so that
// one fdatasync covers them too. Without it the flusher syncs again at once
// and N steady appenders split into two cohorts that alternate, N/2 per
// fdatasync (measured: 4.0 batches per sync with 8 appenders; with gather
// 6 to 8). It yields the processor while each yield brings a new request,
// at most gatherYields times; with nobody else runnable it costs one yield.
func (s *syncer) gather() {
	s.mu.Lock()
	last := s.requested
	s.mu.Unlock()
	for range gatherYields {
		runtime.Gosched()
		s.mu.Lock()
		r := s.requested
		s.mu.Unlock()
		if r == last {
			return
		}
		last = r
	}
}

// wait blocks until offsets below next are durable, the log fails, or ctx
// ends.
func (s *syncer) wait(ctx context.Context, next int64) error {
	s.request(next)
	for {
		s.mu.Lock()
		if s.durable >= next {
			s.mu.Unlock()
			return nil
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return err
		}
		round := s.round
		s.mu.Unlock()
		select {
		case <-round:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// advance records offsets made durable outside the syncer (a roll, a cut).
// It wakes the waiters to look again: the flush they asked for may now find
// nothing left to do and end without a round that would wake them.
func (s *syncer) advance(durable int64, reset bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reset {
		s.resets++
	}
	if durable > s.durable || reset {
		s.durable = durable
		close(s.round)
		s.round = make(chan struct{})
	}
	if reset && s.requested > durable {
		s.requested = durable
	}
}

// fail makes the log offline for every waiter.
func (s *syncer) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.setErrLocked(err)
		close(s.round)
		s.round = make(chan struct{})
	}
}

func (s *syncer) setErrLocked(err error) {
	if s.err == nil {
		s.err = err
		s.offline.Store(!errors.Is(err, ErrClosed))
	}
}

// stop waits for a running flush to end and keeps any other from starting:
// requests after it (an appender racing Log.Close, the interval timer) are
// answered by what the caller makes durable itself (advance) or by fail.
func (s *syncer) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.idle.Wait()
}
