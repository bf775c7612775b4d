package segment

import (
	"fmt"
	"time"
)

// ApplyRetention removes the oldest sealed segments that retention allows
// to go, by size and by age, as Kafka's delete cleanup policy does: whole
// segments only, never the active one, oldest first, stopping at the first
// segment that must stay. It returns how many segments went.
func (l *Log) ApplyRetention() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	segs := l.Segments()
	total := l.Size()
	now := l.opts.Now()
	n := 0
	for ; n < len(segs)-1; n++ {
		s := segs[n]
		bySize := l.opts.RetentionBytes >= 0 && total-s.Size() >= l.opts.RetentionBytes
		byAge := false
		if l.opts.RetentionAge >= 0 {
			ts, err := l.segmentMaxTimestamp(s)
			if err != nil {
				return 0, err
			}
			byAge = ts >= 0 && now.Sub(time.UnixMilli(ts)) > l.opts.RetentionAge
		}
		// An empty sealed segment (its records all compacted away)
		// holds nothing to keep.
		empty := s.Size() == 0 && (l.opts.RetentionAge >= 0 || l.opts.RetentionBytes >= 0)
		if !bySize && !byAge && !empty {
			break
		}
		total -= s.Size()
	}
	if n == 0 {
		return 0, nil
	}
	return n, l.removeOldestLocked(n, "retention")
}

// segmentMaxTimestamp returns a sealed segment's newest batch timestamp,
// scanning its headers once when neither this process nor the index knows it.
func (l *Log) segmentMaxTimestamp(s *Segment) (int64, error) {
	if s.maxTimestamp >= 0 || s.Size() == 0 {
		return s.maxTimestamp, nil
	}
	max := int64(-1)
	err := s.walk(0, s.Size(), func(_ int64, h *Header) bool {
		if h.MaxTimestamp > max {
			max = h.MaxTimestamp
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	s.maxTimestamp = max
	return max, nil
}

// removeOldestLocked removes the n oldest segments and moves the log start.
func (l *Log) removeOldestLocked(n int, why string) error {
	segs := l.Segments()
	gone, keep := segs[:n], append([]*Segment(nil), segs[n:]...)
	l.setSegments(keep)
	if keep[0].base > l.logStart.Load() {
		l.logStart.Store(keep[0].base)
	}
	if err := l.idx.DeleteBefore(keep[0].base); err != nil {
		l.log.Warn("index: dropping entries of removed segments failed", "err", err)
	}
	var first error
	for _, s := range gone {
		if err := l.idx.DeleteSegmentInfo(s.base); err != nil {
			l.log.Warn("index: dropping segment info failed", "segment", s.path, "err", err)
		}
		l.log.Info("removing segment", "reason", why, "segment", s.path, "bytes", s.Size())
		if err := s.remove(); err != nil && first == nil {
			first = err
		}
	}
	if err := l.syncDir(); err != nil && first == nil {
		// The removals may come undone in a crash; a second directory
		// sync would prove nothing.
		first = l.offline(err)
	}
	return first
}

// TruncateTo removes every batch holding an offset at or above offset, as a
// follower does after a leader change. The log end becomes the base offset
// of the first removed batch (offset itself when it is a batch boundary).
// Cut bytes are zeroed and synced before TruncateTo returns, so they do not
// come back after a crash; a crash during TruncateTo may leave the log
// uncut, never corrupt.
func (l *Log) TruncateTo(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if err := l.failed(); err != nil {
		return err
	}
	if offset >= l.leo.Load() {
		return nil
	}
	if offset < l.logStart.Load() {
		return fmt.Errorf("%w: truncate to %d below log start %d", ErrOffsetOutOfRange, offset, l.logStart.Load())
	}
	segs := l.Segments()
	i := segmentFor(segs, offset)
	s := segs[i]
	pos, err := l.startPosition(s, offset)
	if err != nil {
		return err
	}
	at, h, found, err := s.locate(pos, offset)
	if err != nil {
		return err
	}
	next := h.BaseOffset
	if !found { // offset is this segment's end: cut nothing in it
		at, next = s.Size(), s.NextOffset()
	}

	// Recovery must not trust anything past the cut: move the checkpoint
	// back first (after making what stays durable).
	if err := l.syncSealedLocked(); err != nil {
		return l.offline(err)
	}
	if err := s.sync(); err != nil {
		return l.offline(err)
	}
	ck := Checkpoint{Segment: s.base, Position: at, NextOffset: next, MaxTimestamp: l.mu.maxTS}
	if err := l.idx.SetCheckpoint(ck, true); err != nil {
		return err
	}
	if i < len(segs)-1 {
		for _, later := range segs[i+1:] {
			l.idx.DeleteSegmentInfo(later.base)
			if err := later.remove(); err != nil {
				return l.offline(err)
			}
		}
		l.setSegments(append([]*Segment(nil), segs[:i+1]...))
		if err := l.syncDir(); err != nil {
			return l.offline(err)
		}
		l.idx.DeleteSegmentInfo(s.base)
		if err := s.activate(); err != nil {
			return l.offline(err)
		}
	}
	if err := l.idx.TruncateFrom(next); err != nil {
		l.log.Warn("index: truncation failed", "err", err)
	}
	l.leo.Store(next)
	// Before the cut: should it fail, the log is offline at this end, and
	// nothing past it counts as durable.
	l.sync.advance(next, true)
	if err := s.cut(at, next); err != nil {
		return l.offline(err)
	}
	s.lastOffset = next - 1
	l.mu.sinceIndex = int64(l.opts.IndexInterval)
	l.log.Info("truncated log", "offset", offset, "log_end_offset", next)
	return nil
}
