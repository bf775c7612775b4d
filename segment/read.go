package segment

import (
	"fmt"
	"io"
	"os"

	"github.com/runnel-io/runnel/internal/vfs"
)

// Region is a byte range of one segment file holding whole batches (the last
// one may be cut short by a byte limit, as Kafka allows). It holds a
// reference on the segment: call Release when done with it.
type Region struct {
	seg        *Segment
	Position   int64 // first byte in the file
	Length     int64 // bytes; zero when there is nothing to read
	BaseOffset int64 // base offset of the first batch in the region
}

// File returns the segment file to read the region from (pread, sendfile),
// or nil when the log is not on the real file system (see ReadAt).
func (r *Region) File() *os.File {
	if r.seg == nil {
		return nil
	}
	return vfs.OSFile(r.seg.f)
}

// ReadAt reads the region's segment file at off (a file position, as
// Position is), whatever file system the log is on.
func (r *Region) ReadAt(b []byte, off int64) (int, error) {
	if r.seg == nil {
		return 0, io.EOF
	}
	return vfs.ReadAt(r.seg.f, b, off)
}

// Release drops the region's reference. It is safe to call more than once.
func (r *Region) Release() {
	if r.seg != nil {
		r.seg.Release()
		r.seg = nil
	}
}

// Read returns the region holding the batch that contains offset and the
// batches after it, up to limit (an exclusive offset bound such as the high
// watermark) and about maxBytes bytes. As in Kafka, the region always holds
// the whole first batch even when it alone exceeds maxBytes, and it never
// spans two segments. An offset at limit or at the log end yields an empty
// region; one below the log start or past the log end, ErrOffsetOutOfRange.
// An offline log serves nothing: Read fails with its ErrOffline error.
func (l *Log) Read(offset int64, maxBytes int, limit int64) (Region, error) {
	for attempt := 0; ; attempt++ {
		r, retry, err := l.read(offset, maxBytes, limit)
		if !retry || attempt == 8 {
			return r, err
		}
	}
}

func (l *Log) read(offset int64, maxBytes int, limit int64) (r Region, retry bool, err error) {
	if l.sync.offline.Load() {
		return Region{}, false, l.failed()
	}
	start, end := l.logStart.Load(), l.leo.Load()
	if offset < start || offset > end {
		return Region{}, false, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, start, end)
	}
	if limit > end {
		limit = end
	}
	if offset >= limit {
		return Region{}, false, nil
	}
	segs := l.Segments()
	i := segmentFor(segs, offset)
	if i < 0 {
		i = 0
	}
	for ; i < len(segs); i++ {
		seg := segs[i]
		if !seg.Acquire() {
			return Region{}, true, nil // removed under us: load the list again
		}
		pos, err := l.startPosition(seg, offset)
		if err != nil {
			seg.Release()
			return Region{}, false, err
		}
		at, h, found, err := seg.locate(pos, offset)
		if err != nil {
			seg.Release()
			return Region{}, false, err
		}
		if !found {
			seg.Release()
			continue // offset lies in a later segment
		}
		if h.BaseOffset >= limit {
			seg.Release()
			return Region{}, false, nil
		}
		stop, err := l.regionEnd(seg, at, &h, maxBytes, limit)
		if err != nil {
			seg.Release()
			return Region{}, false, err
		}
		return Region{seg: seg, Position: at, Length: stop - at, BaseOffset: h.BaseOffset}, false, nil
	}
	// Between the list we loaded and now the log moved on (a roll, a cut):
	// look again.
	return Region{}, true, nil
}

// startPosition returns a batch boundary in seg at or before offset, from
// the sparse index when it has an entry in this segment.
func (l *Log) startPosition(seg *Segment, offset int64) (int64, error) {
	e, ok, err := l.idx.Floor(offset)
	if err != nil {
		l.log.Warn("index lookup failed; scanning the segment", "dir", l.dir, "offset", offset, "err", err)
		return 0, nil
	}
	if ok && e.Segment == seg.base && e.Position <= seg.Size() {
		return e.Position, nil
	}
	return 0, nil
}

// regionEnd returns the end of a read that starts with batch h at pos.
func (l *Log) regionEnd(seg *Segment, pos int64, h *Header, maxBytes int, limit int64) (int64, error) {
	size := seg.Size() // load size before next: see Segment
	next := seg.NextOffset()
	stop := size
	if limit < next {
		// The bound falls inside this segment: find its batch boundary.
		stop = pos
		err := seg.walk(pos, size, func(p int64, hh *Header) bool {
			if hh.BaseOffset >= limit || p-pos > int64(maxBytes) {
				return false
			}
			stop = p + int64(hh.Size())
			return true
		})
		if err != nil {
			return 0, err
		}
	}
	first := pos + int64(h.Size())
	if want := pos + int64(maxBytes); want < stop {
		stop = want
	}
	if stop < first {
		stop = first
	}
	return stop, nil
}

// OffsetForTimestamp returns the base offset of the first batch whose
// maxTimestamp is at or after ts, and false when no batch is. Batches wholly
// below the log start are not considered; the batch holding the log start
// is, so its base offset may be below the log start.
func (l *Log) OffsetForTimestamp(ts int64) (int64, bool, error) {
	if err := l.Offline(); err != nil {
		return 0, false, err
	}
	var from int64 = -1
	var fromPos int64
	if e, ok, err := l.idx.TimeFloor(ts); err != nil {
		return 0, false, err
	} else if ok {
		from, fromPos = e.Segment, e.Position
	}
	segs := l.Segments()
	for _, seg := range segs {
		if seg.base < from || !seg.Acquire() {
			continue
		}
		pos := int64(0)
		if seg.base == from {
			pos = fromPos
		}
		var off int64
		found := false
		err := seg.walk(pos, seg.Size(), func(_ int64, h *Header) bool {
			if h.MaxTimestamp >= ts && h.LastOffset() >= l.logStart.Load() {
				off, found = h.BaseOffset, true
				return false
			}
			return true
		})
		seg.Release()
		if err != nil || found {
			return off, found, err
		}
	}
	return 0, false, nil
}

// WalkHeaders calls fn with the header of every batch from the one holding
// offset from to the log end, in order, until fn returns false. The header
// is valid only during the call.
func (l *Log) WalkHeaders(from int64, fn func(h *Header) bool) error {
	if from < l.logStart.Load() {
		from = l.logStart.Load()
	}
	for _, seg := range l.Segments() {
		if seg.NextOffset() <= from {
			continue
		}
		if !seg.Acquire() {
			continue
		}
		pos, err := l.startPosition(seg, from)
		if err == nil {
			stop := false
			err = seg.walk(pos, seg.Size(), func(_ int64, h *Header) bool {
				if h.LastOffset() < from {
					return true
				}
				if !fn(h) {
					stop = true
					return false
				}
				return true
			})
			if stop {
				seg.Release()
				return err
			}
		}
		seg.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// MaxTimestamp finds the batch holding the log's largest timestamp
// (ListOffsets' -3, KIP-734): the first batch, in offset order, whose
// maxTimestamp is the largest of the log, with its base offset. Each
// segment's largest timestamp is kept as it is appended to and recorded in
// the index when it is sealed, so only the segment holding the answer has
// its batch headers walked, with any segment whose largest timestamp is
// not known (found by a walk of its headers) and the one holding the log
// start (whose batches below it do not count). found is false when the
// log holds no batch from the log start on.
func (l *Log) MaxTimestamp() (base, ts int64, found bool, err error) {
	if err := l.Offline(); err != nil {
		return 0, 0, false, err
	}
	type seen struct {
		seg       *Segment
		max, size int64
	}
	l.mu.Lock()
	segs := l.Segments()
	view := make([]seen, len(segs))
	for i, s := range segs {
		// Appends publish a batch and raise maxTimestamp under mu, so
		// the two agree here.
		view[i] = seen{s, s.maxTimestamp, s.Size()}
	}
	l.mu.Unlock()
	logStart := l.logStart.Load()
	// first walks a segment's headers up to size and returns the base and
	// maxTimestamp of its first batch from the log start on with the
	// largest maxTimestamp (want -1), or with maxTimestamp want.
	first := func(v seen, want int64) (int64, int64, bool, error) {
		if !v.seg.Acquire() {
			return 0, 0, false, nil
		}
		defer v.seg.Release()
		var b, m int64 = 0, -1
		ok := false
		err := v.seg.walk(0, v.size, func(_ int64, h *Header) bool {
			if h.LastOffset() < logStart {
				return true
			}
			if want >= 0 {
				if h.MaxTimestamp == want {
					b, m, ok = h.BaseOffset, h.MaxTimestamp, true
					return false
				}
				return true
			}
			if !ok || h.MaxTimestamp > m {
				b, m, ok = h.BaseOffset, h.MaxTimestamp, true
			}
			return true
		})
		return b, m, ok, err
	}
	best := -1
	var bestTS int64 = -1
	for i, v := range view {
		if v.size == 0 || v.seg.NextOffset() <= logStart {
			continue
		}
		m := v.max
		if m < 0 || v.seg.base < logStart {
			var ok bool
			if _, m, ok, err = first(v, -1); err != nil {
				return 0, 0, false, err
			} else if !ok {
				continue
			}
		}
		if best < 0 || m > bestTS {
			best, bestTS = i, m
		}
	}
	if best < 0 {
		return 0, 0, false, nil
	}
	return first(view[best], bestTS)
}
