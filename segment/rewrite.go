package segment

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/runnel-io/runnel/internal/vfs"
)

// Rewriting a sealed segment: the log cleaner writes a segment's kept
// batches into a new file and swaps it in for the old one, whole.
//
// The new file is written as an active segment is (created, grown with
// fallocate, mapped, batches copied into the mapping), then sealed (cut to
// size, unmapped) and fdatasynced, all under a temporary name beside the
// segment (rewriteMarker). Install then, under the log's lock, drops the
// segment's index entries (a synced Pebble write), renames the new file
// over the old one and syncs the directory, and only then indexes the new
// file. A crash leaves the old file or the new one under the segment's
// name, never a mix: the rename is atomic, and whichever file it is, the
// index holds no entry of the other. Leftover temporary files are removed
// when the log opens.
//
// Offsets never change: the new file holds a subset of the old one's
// batches (a batch's records may be fewer, its base offset and
// lastOffsetDelta are the same), so the segment keeps its base offset and
// its end, and Read finds the next batch kept for an offset removed.

// rewriteMarker is in the name of a rewrite's temporary file:
// ".00000000000000000000.log.rewrite123456".
const rewriteMarker = Suffix + ".rewrite"

// ErrRewriteStale: the segment being rewritten changed (removed by
// retention, cut by truncation, or its log closed) before the new file
// could replace it. Nothing was replaced; the cleaner tries again later.
var ErrRewriteStale = errors.New("segment: the segment changed during its rewrite")

// Rewrite is a replacement being written for one sealed segment. It is
// used by one goroutine; Abort releases it unless Install succeeded.
type Rewrite struct {
	l       *Log
	old     *Segment
	oldSize int64
	next    int64 // offset after the last batch appended
	tmp     *Segment
	maxTS   int64
	entries []IndexEntry
	since   int64
	done    bool

	indexInterval int // the log's, when the rewrite began
}

// SealedSegments returns the log's sealed segments, oldest first, each
// with a reference the caller releases. Segments whose seal is not yet
// synced are left out: a rewrite replaces only what is durable.
func (l *Log) SealedSegments() []*Segment {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil
	}
	segs := l.Segments()
	var out []*Segment
	for _, s := range segs[:len(segs)-1] {
		if slices.Contains(l.mu.unsynced, s) {
			break
		}
		if s.Acquire() {
			out = append(out, s)
		}
	}
	return out
}

// SegmentMaxTimestamp returns the newest batch timestamp of a sealed
// segment (-1 when it is empty or every timestamp is -1), scanning its
// headers once when neither the log nor the index knows it.
func (l *Log) SegmentMaxTimestamp(s *Segment) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.segmentMaxTimestamp(s)
}

// ReadBatches calls fn with every batch of a sealed segment, in order,
// until fn returns false or an error. The bytes are valid only during the
// call; buf, if big enough, holds them. Each batch's CRC is checked: a
// rewrite never copies damage it could have noticed.
func (s *Segment) ReadBatches(buf []byte, fn func(h *Header, batch []byte) (bool, error)) ([]byte, error) {
	size := s.Size()
	var pos int64
	var hdr [HeaderSize]byte
	for pos+HeaderSize <= size {
		if _, err := s.f.ReadAt(hdr[:], pos); err != nil {
			return buf, fmt.Errorf("segment: read %s at %d: %w", s.path, pos, err)
		}
		h, err := ParseHeader(hdr[:])
		if err != nil {
			return buf, &CorruptError{Path: s.path, Position: pos, Err: err}
		}
		n := h.Size()
		if pos+int64(n) > size {
			return buf, &CorruptError{Path: s.path, Position: pos, Err: ErrShortBatch}
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		b := buf[:n]
		if _, err := s.f.ReadAt(b, pos); err != nil {
			return buf, fmt.Errorf("segment: read %s at %d: %w", s.path, pos, err)
		}
		if _, err := Validate(b); err != nil {
			return buf, &CorruptError{Path: s.path, Position: pos, Err: err}
		}
		more, err := fn(&h, b)
		if err != nil || !more {
			return buf, err
		}
		pos += int64(n)
	}
	return buf, nil
}

// BeginRewrite starts a replacement for seg, a sealed segment of the log
// (from SealedSegments; the caller keeps its reference until the rewrite
// ends).
func (l *Log) BeginRewrite(seg *Segment) (*Rewrite, error) {
	size := seg.Size()
	l.mu.Lock()
	segmentBytes, indexInterval := l.opts.SegmentBytes, l.opts.IndexInterval
	l.mu.Unlock()
	f, err := l.fs.CreateTemp(l.dir, "."+FileName(seg.base)+strings.TrimPrefix(rewriteMarker, Suffix)+"*")
	if err != nil {
		return nil, fmt.Errorf("segment: rewrite %s: %w", seg.path, err)
	}
	// Room for the segment size, or twice the old file: a rebuilt batch
	// may compress worse than the original (a subset of records loses
	// the matches the removed ones gave).
	tmp := newSegment(l.fs, f, f.Name(), seg.base, max(segmentBytes, 2*size, HeaderSize))
	r := &Rewrite{l: l, old: seg, oldSize: size, next: seg.base, tmp: tmp, maxTS: -1, indexInterval: indexInterval}
	if size > 0 {
		if err := tmp.activate(); err != nil {
			r.Abort()
			return nil, err
		}
	}
	return r, nil
}

// Append copies one batch, which must be (a cleaned form of) a batch of the
// old segment: offsets in order, inside the old segment's range. The new
// file may grow to the larger of segment.bytes and twice the old file;
// past that Append fails with ErrBatchTooLarge and appends nothing.
func (r *Rewrite) Append(batch []byte) error {
	h, err := Validate(batch)
	if err != nil {
		return err
	}
	if h.Size() != len(batch) {
		return fmt.Errorf("%w: batch length says %d bytes, got %d", ErrShortBatch, h.Size(), len(batch))
	}
	if h.BaseOffset < r.next || h.LastOffset() >= r.old.NextOffset() {
		return fmt.Errorf("%w: rewritten batch [%d, %d] outside [%d, %d) of %s", ErrOffsetSequence,
			h.BaseOffset, h.LastOffset(), r.next, r.old.NextOffset(), r.old.path)
	}
	if !r.tmp.room(len(batch)) {
		return fmt.Errorf("%w: the rewrite of %s outgrows it", ErrBatchTooLarge, r.old.path)
	}
	pos, err := r.tmp.append(batch, false, 0, 0)
	if err != nil {
		return err
	}
	if h.MaxTimestamp > r.maxTS {
		r.maxTS = h.MaxTimestamp
	}
	if pos == 0 || r.since >= int64(r.indexInterval) {
		// MaxTimestamp covers the new file up to this batch; Install
		// adds what comes before the segment.
		r.entries = append(r.entries, IndexEntry{Offset: h.BaseOffset, Segment: r.tmp.base, Position: pos, MaxTimestamp: r.maxTS})
		r.since = 0
	}
	r.since += int64(len(batch))
	r.next = h.NextOffset()
	r.tmp.publish(pos+int64(len(batch)), r.next)
	return nil
}

// Size returns the bytes appended so far.
func (r *Rewrite) Size() int64 { return r.tmp.Size() }

// Abort drops the rewrite and its temporary file. It is a no-op after
// Install succeeded, and safe to call more than once.
func (r *Rewrite) Abort() {
	if r.done {
		return
	}
	r.done = true
	r.tmp.Release()
	r.l.fs.Remove(r.tmp.path)
}

// Install makes the new file durable and puts it in place of the old
// segment (see the top of this file for the order of steps). Readers
// holding the old segment keep reading it until they release it. A
// failure before the rename leaves the old segment in place and the log
// serving (the error says why; ErrRewriteStale when the segment changed);
// a failed directory sync after it takes the log offline, since which of
// the two files a crash would leave is then unknown.
func (r *Rewrite) Install() error {
	if r.done {
		return errors.New("segment: rewrite already ended")
	}
	defer r.Abort()
	l, tmp := r.l, r.tmp
	if err := tmp.seal(); err != nil {
		return err
	}
	if err := tmp.sync(); err != nil {
		return err
	}

	// No entry of either file from here until the new file is in place:
	// a read meanwhile, or recovery after a crash, walks the segment from
	// its start, whichever file it finds. Appends index only the active
	// segment, so none comes back meanwhile. (Done before the lock: it is
	// a synced write.)
	if err := l.idx.ReplaceRange(r.old.base, r.old.NextOffset(), nil, true); err != nil {
		return fmt.Errorf("segment: rewrite %s: dropping its index entries: %w", r.old.path, err)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if err := l.failed(); err != nil {
		return err
	}
	segs := l.Segments()
	i := slices.Index(segs, r.old)
	if i < 0 || i == len(segs)-1 || r.old.Size() != r.oldSize {
		return fmt.Errorf("%w: %s", ErrRewriteStale, r.old.path)
	}
	end := r.old.NextOffset()
	if i+1 < len(segs) {
		end = segs[i+1].base
	}
	// The running maximum timestamp of the first entry: everything before
	// the segment (the last entry before it and the segment before it).
	running := int64(-1)
	if i > 0 {
		if e, ok, err := l.idx.Floor(r.old.base - 1); err == nil && ok {
			running = e.MaxTimestamp
		}
		ts, err := l.segmentMaxTimestamp(segs[i-1])
		if err != nil {
			return err
		}
		running = max(running, ts)
	}
	if err := l.fs.Rename(tmp.path, r.old.path); err != nil {
		return fmt.Errorf("segment: rewrite %s: %w", r.old.path, err)
	}
	if err := l.syncDir(); err != nil {
		return l.offline(fmt.Errorf("rewrite %s: %w", r.old.path, err))
	}
	r.done = true
	tmp.path = r.old.path
	tmp.next.Store(r.old.NextOffset())
	tmp.lastOffset = r.old.lastOffset
	tmp.maxTimestamp = r.maxTS
	tmp.allocated = tmp.Size()
	tmp.maxSize = l.mapSize()
	for k := range r.entries {
		running = max(running, r.entries[k].MaxTimestamp)
		r.entries[k].MaxTimestamp = running
	}
	if err := l.idx.ReplaceRange(r.old.base, end, r.entries, false); err != nil {
		// Reads walk the segment from its start meanwhile: slower, right.
		l.log.Warn("index: indexing a rewritten segment failed", "segment", tmp.path, "err", err)
	}
	if err := l.idx.SetSegmentInfo(tmp.base, SegmentInfo{Size: tmp.Size(), LastOffset: tmp.lastOffset, MaxTimestamp: tmp.maxTimestamp}); err != nil {
		l.log.Warn("index: recording segment info failed", "segment", tmp.path, "err", err)
	}
	next := append([]*Segment(nil), segs...)
	next[i] = tmp
	l.setSegments(next)
	// The old file is unlinked already (renamed over); its descriptor
	// closes at its last release.
	r.old.dead.Store(true)
	r.old.Release()
	l.log.Debug("rewrote segment", "segment", tmp.path, "bytes_before", r.oldSize, "bytes_after", tmp.Size())
	return nil
}

// isRewriteTemp reports whether name is a rewrite's temporary file.
func isRewriteTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, rewriteMarker)
}

// removeRewriteTemps removes what rewrites cut short by a crash left.
func removeRewriteTemps(fsys vfs.FS, dir string) error {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("segment: list %s: %w", dir, err)
	}
	removed := false
	for _, e := range ents {
		if isRewriteTemp(e.Name()) {
			if err := fsys.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("segment: remove %s: %w", e.Name(), err)
			}
			removed = true
		}
	}
	if removed {
		return fsys.SyncDir(dir)
	}
	return nil
}
