package segment

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/runnel-io/runnel/internal/fsutil"
	"github.com/runnel-io/runnel/internal/vfs"
)

// ResetTo empties the log and starts it again at offset, past its log end,
// as a follower does when its leader no longer holds the offsets after the
// follower's log end (retention removed them). Every segment goes; readers
// holding one keep it until they release it.
func (l *Log) ResetTo(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if err := l.failed(); err != nil {
		return err
	}
	if offset <= l.leo.Load() {
		return fmt.Errorf("%w: reset to %d at or below the log end %d", ErrOffsetOutOfRange, offset, l.leo.Load())
	}
	seg, err := createSegment(l.fs, l.dir, offset, l.mapSize())
	if errors.Is(err, vfs.ErrSyncFailed) {
		return l.offline(err)
	}
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(l.fs, filepath.Join(l.dir, logStartFile), formatLogStart(offset), 0o644); err != nil {
		seg.remove()
		if errors.Is(err, vfs.ErrSyncFailed) {
			return l.offline(err)
		}
		return err
	}
	old := l.Segments()
	l.releaseUnsyncedLocked() // every one of them goes
	l.mu.pending = nil
	l.setSegments([]*Segment{seg})
	l.leo.Store(offset)
	l.logStart.Store(offset)
	l.mu.sinceIndex, l.mu.maxTS = 0, -1
	if err := l.idx.TruncateFrom(0); err != nil {
		l.log.Warn("index: dropping entries of a reset log failed", "err", err)
	}
	for _, s := range old {
		l.idx.DeleteSegmentInfo(s.base)
		if err := s.remove(); err != nil {
			return l.offline(err)
		}
	}
	if err := l.syncDir(); err != nil {
		return l.offline(err)
	}
	l.checkpointLocked(false, true)
	l.sync.advance(offset, true)
	l.log.Info("log reset", "log_start_offset", offset)
	return nil
}
