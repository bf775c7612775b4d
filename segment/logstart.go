package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/runnel-io/runnel/internal/fsutil"
	"github.com/runnel-io/runnel/internal/vfs"
)

// logStartFile holds a log start offset moved inside a segment (Kafka's
// DeleteRecords, or a follower's reset), as decimal text and a newline.
// Without it the log starts at its first segment's base. This is on-disk
// format, version 1, with no version marker: a change of format takes a
// new file name. testdata/log-start-offset holds its exact bytes.
const logStartFile = "log-start-offset"

// formatLogStart is the content of logStartFile for offset.
func formatLogStart(offset int64) []byte {
	return append(strconv.AppendInt(nil, offset, 10), '\n')
}

// parseLogStart reads the content of logStartFile: a non-negative decimal
// offset, with white space around it.
func parseLogStart(b []byte) (int64, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1, err
	}
	if v < 0 {
		return -1, fmt.Errorf("negative log start offset %d", v)
	}
	return v, nil
}

// AdvanceLogStart moves the log start offset forward to offset (at most the
// log end), durably, and removes the segments wholly below it. Reads below
// the new start fail with ErrOffsetOutOfRange.
func (l *Log) AdvanceLogStart(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if offset > l.leo.Load() {
		return fmt.Errorf("%w: log start %d past the log end %d", ErrOffsetOutOfRange, offset, l.leo.Load())
	}
	if offset <= l.logStart.Load() {
		return nil
	}
	if err := fsutil.WriteFileAtomic(l.fs, filepath.Join(l.dir, logStartFile), formatLogStart(offset), 0o644); err != nil {
		if errors.Is(err, vfs.ErrSyncFailed) {
			return l.offline(err)
		}
		return err
	}
	l.logStart.Store(offset)
	segs := l.Segments()
	n := 0
	for n < len(segs)-1 && segs[n].NextOffset() <= offset {
		n++
	}
	if n == 0 {
		return nil
	}
	return l.removeOldestLocked(n, "log start moved")
}

// readLogStart returns the stored log start offset, or -1.
func readLogStart(fsys vfs.FS, dir string) (int64, error) {
	b, err := vfs.ReadFile(fsys, filepath.Join(dir, logStartFile))
	if errors.Is(err, fs.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return -1, fmt.Errorf("segment: read log start offset: %w", err)
	}
	v, err := parseLogStart(b)
	if err != nil {
		return -1, fmt.Errorf("segment: %s is corrupt: %w", filepath.Join(dir, logStartFile), err)
	}
	return v, nil
}
