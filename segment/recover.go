package segment

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/runnel-io/runnel/internal/fsutil"
	"github.com/runnel-io/runnel/internal/vfs"
)

// Open opens the partition log in dir, creating it if needed, and recovers
// it: segments before the index's last checkpoint are trusted; everything
// after it is scanned batch by batch (length, magic, CRC-32C, offsets in
// sequence), index entries are rebuilt for it, and the log is cut at the
// first batch that fails. What is cut is logged. With no checkpoint (a new
// or deleted index) every segment is scanned; a checkpoint that does not
// fall on a batch boundary of its segment is not trusted, and that segment
// is scanned whole.
func Open(dir string, opts Options) (_ *Log, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := fsutil.MkdirAllDurable(opts.FS, dir, 0o755); err != nil {
		return nil, fmt.Errorf("segment: open log %s: %w", dir, err)
	}
	l := &Log{dir: dir, opts: opts, fs: opts.FS, idx: opts.Index, log: opts.Logger.With("dir", dir)}
	if err := removeRewriteTemps(l.fs, dir); err != nil {
		return nil, err
	}
	var segs []*Segment
	defer func() {
		if err != nil {
			for _, s := range segs {
				s.Release()
			}
		}
	}()
	bases, err := listSegments(l.fs, dir)
	if err != nil {
		return nil, err
	}
	if len(bases) == 0 {
		// A new log. Whatever the index holds for this name is stale.
		if err := l.idx.Reset(); err != nil {
			return nil, err
		}
		seg, err := createSegment(l.fs, dir, 0, l.mapSize())
		if err != nil {
			return nil, err
		}
		segs = []*Segment{seg}
		l.setSegments(segs)
		l.mu.maxTS = -1
		l.sync.init(0, l.flushActive)
		l.sync.onDurable = opts.OnDurable
		l.checkpointLocked(false, false)
		return l, nil
	}
	for _, b := range bases {
		s, err := openSegment(l.fs, dir, b, l.mapSize())
		if err != nil {
			return nil, err
		}
		segs = append(segs, s)
	}
	segs, err = l.recover(segs)
	if err != nil {
		return nil, err
	}
	l.logStart.Store(segs[0].base)
	if stored, err := readLogStart(l.fs, dir); err != nil {
		return nil, err
	} else if stored > segs[0].base && stored <= l.leo.Load() {
		l.logStart.Store(stored)
	}
	l.sync.init(l.leo.Load(), l.flushActive)
	l.sync.onDurable = opts.OnDurable
	// Entries of segments that retention removed before a crash.
	if err := l.idx.DeleteBefore(segs[0].base); err != nil {
		l.log.Warn("index: dropping entries of removed segments failed", "err", err)
	}
	return l, nil
}

func listSegments(fsys vfs.FS, dir string) ([]int64, error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("segment: list %s: %w", dir, err)
	}
	var bases []int64
	for _, e := range ents {
		b, ok := ParseFileName(e.Name())
		if !ok {
			continue
		}
		// Skipping it would leave a gap that recovery cuts at, removing
		// every later segment.
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("segment: %s is not a regular file", filepath.Join(dir, e.Name()))
		}
		bases = append(bases, b)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

// recover finds where to scan from, scans, cuts, and leaves the last
// segment active. It returns the segments that remain, and on an error the
// segments it still holds, for the caller to release: those it removed it
// has released already.
func (l *Log) recover(segs []*Segment) ([]*Segment, error) {
	start := time.Now()
	first, pos, next := 0, int64(0), segs[0].base
	l.mu.maxTS = -1
	ck, ok, err := l.idx.Checkpoint()
	if err != nil {
		l.log.Warn("index: reading the recovery checkpoint failed; scanning every segment", "err", err)
		ok = false
	}
	if ok {
		i := sort.Search(len(segs), func(i int) bool { return segs[i].base >= ck.Segment })
		switch {
		case i == len(segs):
			ok = false // the checkpoint names a segment past the last one: distrust it
		case segs[i].base == ck.Segment && l.checkpointHolds(segs[i], ck):
			first, pos, next = i, ck.Position, ck.NextOffset
		default:
			if segs[i].base == ck.Segment {
				l.log.Warn("recovery: the checkpoint does not match its segment; scanning the segment whole",
					"segment", segs[i].path, "position", ck.Position, "next_offset", ck.NextOffset)
			}
			first, pos, next = i, 0, segs[i].base
		}
		if ok {
			l.mu.maxTS = ck.MaxTimestamp
		}
	}
	if !ok {
		if err := l.idx.Reset(); err != nil {
			return segs, err
		}
	}
	// Sealed segments before the scan are trusted as they are.
	for _, s := range segs[:first] {
		if info, ok, err := l.idx.SegmentInfo(s.base); err == nil && ok && info.Size == s.Size() {
			s.maxTimestamp = info.MaxTimestamp
		}
	}
	for i := 0; i < first; i++ {
		segs[i].next.Store(segs[i+1].base)
		segs[i].lastOffset = segs[i+1].base - 1
	}
	if err := l.idx.TruncateFrom(next); err != nil {
		return segs, err
	}

	clean := ok && ck.Clean
	scanned := int64(0)
	for i := first; i < len(segs); i++ {
		s := segs[i]
		if i > first {
			pos, next = 0, s.base
		}
		if i > first && !l.follows(s.base, segs[i-1].NextOffset()) {
			cerr := &CorruptError{Path: s.path, Position: 0, Err: fmt.Errorf("%w: segment starts at %d, previous ends at %d", ErrOffsetSequence, s.base, segs[i-1].NextOffset())}
			segs, err := l.cutAfter(segs, i-1, cerr)
			if err != nil {
				return segs, err
			}
			return segs, l.finishRecovery(segs, first, clean, scanned, start)
		}
		end, nxt, cerr := l.scan(s, pos, next)
		scanned += end - pos
		if cerr != nil && !errors.Is(cerr, ErrCorrupt) {
			return segs, cerr
		}
		if cerr != nil {
			segs, err := l.cutAt(segs, i, end, nxt, cerr)
			if err != nil {
				return segs, err
			}
			return segs, l.finishRecovery(segs, first, clean, scanned, start)
		}
	}
	return segs, l.finishRecovery(segs, first, clean, scanned, start)
}

// follows reports whether a batch (or segment) starting at base may follow
// what ends before next: at next, or past it in a compacted log.
func (l *Log) follows(base, next int64) bool {
	return base == next || (base > next && l.opts.Compacted)
}

// checkpointHolds reports whether ck marks a batch boundary of s: walking
// batch headers from the last index entry before it (from the segment start
// without one) must land exactly on ck.Position with offsets in sequence up
// to ck.NextOffset. A checkpoint that does not (say, an index and segment
// files restored from copies made at different moments) would make recovery
// keep reserved zeros or half a batch as data, so it is not trusted.
func (l *Log) checkpointHolds(s *Segment, ck Checkpoint) bool {
	if ck.Position < 0 || ck.Position > s.Size() || ck.NextOffset < s.base {
		return false
	}
	pos, next := int64(0), s.base
	if e, ok, err := l.idx.Floor(ck.NextOffset - 1); err == nil && ok && e.Segment == s.base && e.Offset >= s.base && e.Position <= ck.Position {
		pos, next = e.Position, e.Offset
	}
	inSequence := true
	err := s.walk(pos, ck.Position, func(p int64, h *Header) bool {
		if !l.follows(h.BaseOffset, next) {
			inSequence = false
			return false
		}
		pos, next = p+int64(h.Size()), h.NextOffset()
		return true
	})
	return err == nil && inSequence && pos == ck.Position && next == ck.NextOffset
}

// scan validates batches of s from pos, expecting offset next first, adds
// index entries for them, and returns where the valid data ends. It maps s
// read-write, so a segment that ends up active keeps the mapping.
func (l *Log) scan(s *Segment, pos, next int64) (end, nxt int64, err error) {
	fileSize := s.allocated
	s.maxSize = l.mapSize()
	if fileSize == 0 {
		s.publish(0, next)
		return 0, next, nil
	}
	if err := s.activate(); err != nil {
		return pos, next, err
	}
	data := s.data[:fileSize]
	l.mu.sinceIndex = int64(l.opts.IndexInterval) // index the first batch scanned
	for pos < fileSize {
		if fileSize-pos < HeaderSize {
			err = ErrShortBatch
			break
		}
		var h Header
		h, err = Validate(data[pos:])
		if err == nil && !l.follows(h.BaseOffset, next) {
			err = fmt.Errorf("%w: batch at %d, expected %d", ErrOffsetSequence, h.BaseOffset, next)
		}
		if err != nil {
			break
		}
		if h.MaxTimestamp > l.mu.maxTS {
			l.mu.maxTS = h.MaxTimestamp
		}
		if pos == 0 || l.mu.sinceIndex >= int64(l.opts.IndexInterval) {
			if aerr := l.idx.Add(IndexEntry{Offset: h.BaseOffset, Segment: s.base, Position: pos, MaxTimestamp: l.mu.maxTS}); aerr != nil {
				return pos, next, aerr
			}
			l.mu.sinceIndex = 0
		}
		l.mu.sinceIndex += int64(h.Size())
		if h.MaxTimestamp > s.maxTimestamp {
			s.maxTimestamp = h.MaxTimestamp
		}
		s.lastOffset = h.LastOffset()
		pos += int64(h.Size())
		next = h.NextOffset()
	}
	s.publish(pos, next)
	if err != nil {
		return pos, next, &CorruptError{Path: s.path, Position: pos, Err: err}
	}
	return pos, next, nil
}

// cutAt cuts segment i at end (dropping the bad bytes durably) and removes
// the segments after it. A tail of zeros is space reserved ahead of the
// writer, not damage, and is cut silently.
func (l *Log) cutAt(segs []*Segment, i int, end, next int64, cause error) ([]*Segment, error) {
	s := segs[i]
	tail := s.data[end:s.allocated]
	if !allZero(tail) {
		l.log.Warn("recovery: cutting a torn or corrupt tail",
			"segment", s.path, "position", end, "bytes", len(tail), "next_offset", next, "reason", cause)
	}
	if err := s.cut(end, next); err != nil {
		return segs, err
	}
	if len(segs) > i+1 {
		return l.cutAfter(segs, i, cause)
	}
	return segs, nil
}

// cutAfter removes every segment after segs[i] and returns segs[:i+1]. On
// an error the segments after segs[i] are released all the same (whether
// their files went or not), so that the caller holds segs[:i+1] only.
func (l *Log) cutAfter(segs []*Segment, i int, cause error) ([]*Segment, error) {
	var err error
	for _, s := range segs[i+1:] {
		if err != nil {
			s.Release()
			continue
		}
		l.log.Warn("recovery: removing a segment after the cut", "segment", s.path, "bytes", s.Size(), "reason", cause)
		err = s.remove() // releases s, whatever happens to its file
	}
	if err == nil {
		err = l.syncDir()
	}
	return segs[:i+1], err
}

func allZero(b []byte) bool {
	var zeros [4096]byte
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// finishRecovery makes the last segment active, syncs what was scanned (the
// segments from segs[first] on) and records a checkpoint at the end so the
// next start need not scan again.
func (l *Log) finishRecovery(segs []*Segment, first int, clean bool, scanned int64, start time.Time) error {
	l.setSegments(segs)
	last := segs[len(segs)-1]
	for _, s := range segs[:len(segs)-1] {
		if s.m != nil { // scanned sealed segments: drop their mapping
			s.unmap()
		}
	}
	if err := last.activate(); err != nil {
		return err
	}
	l.leo.Store(last.NextOffset())
	if last.Size() > 0 {
		last.rollClock = l.opts.Now().UnixMilli()
	}
	if last.Size() == 0 {
		l.mu.sinceIndex = 0
	}
	if scanned > 0 {
		// What was scanned may sit only in the page cache (the process died,
		// not the machine): make it durable before the checkpoint covers it.
		// That is every scanned segment, not only the last: a sealed one
		// whose background seal sync a kill cut short holds unsynced bytes
		// and an unsynced size, which the checkpoint would trust whole.
		for _, s := range segs[min(first, len(segs)-1):] {
			if err := s.sync(); err != nil {
				return err
			}
		}
	}
	if scanned > 0 || clean {
		l.checkpointLocked(false, false)
	}
	if !clean || scanned > 0 {
		l.log.Info("recovered partition log", "segments", len(segs), "scanned_bytes", scanned,
			"log_end_offset", l.leo.Load(), "clean_shutdown", clean, "took", time.Since(start))
	}
	return nil
}
