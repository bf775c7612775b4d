package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/mmap"
)

// Suffix is the file name suffix of segment files.
const Suffix = ".log"

// FileName returns the file name of the segment whose first offset is base.
func FileName(base int64) string { return fmt.Sprintf("%020d%s", base, Suffix) }

// ParseFileName returns the base offset named by a segment file name.
func ParseFileName(name string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, Suffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	// Digits only: ParseInt alone would take "+000…1" and "-000…0", names
	// that FileName never makes and openSegment cannot find again.
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	base, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || base < 0 {
		return 0, false
	}
	return base, true
}

// Growth of an active segment's file: it is extended in chunks ahead of the
// writer, doubling from minGrowChunk up to maxGrowChunk, so that a quiet
// partition reserves little disk and a busy one rarely calls fallocate.
// releaseEvery is how many bytes an active segment under FsyncNever
// appends between releases of its written pages (releaseWritten); under
// the other policies each flush releases them before it syncs.
const releaseEvery = 4 << 20

const (
	minGrowChunk = 64 << 10
	maxGrowChunk = 16 << 20
)

// Segment is one segment file. The partition log owns it and is its only
// writer; readers hold a reference (Acquire/Release) while they use its file.
//
// Concurrency: fields under "writer" are touched only by the owning Log with
// its lock held. size and next are published with atomics, next before
// size, so a reader that loads size first and next second never sees bytes
// of a batch whose offsets it does not also see. The mapping exists only
// while the segment is active and is guarded by mapMu: readers walking
// headers in it hold the read lock, Seal and the last Release take the write
// lock before unmapping.
type Segment struct {
	base    int64
	path    string
	fs      vfs.FS
	f       vfs.File
	maxSize int64

	refs atomic.Int64 // the owner holds one reference
	dead atomic.Bool  // removed from disk; the file closes at the last Release
	size atomic.Int64 // end of the last whole batch
	next atomic.Int64 // offset after the last batch

	mapMu sync.RWMutex
	m     vfs.Mapping // nil unless active
	// released is where the mapping's pages taken out of the page tables
	// ahead of their write-back end (releaseWritten): whole pages of
	// published bytes, which no append stores into again.
	released atomic.Int64

	// writer
	data         []byte // m.Bytes(), cached for the append path
	allocated    int64  // file size reserved on disk
	lastOffset   int64  // -1 when empty
	maxTimestamp int64  // largest batch maxTimestamp; -1 when unknown
	// rollClock is when this process first wrote to the segment or found it
	// holding data (Unix ms; -1 while empty): segment.ms counts from it.
	// Batch timestamps are not used, so producers with old or skewed clocks
	// cannot make every batch roll a segment.
	rollClock int64
}

// createSegment creates a new, empty, active segment file.
func createSegment(fsys vfs.FS, dir string, base, maxSize int64) (_ *Segment, err error) {
	path := filepath.Join(dir, FileName(base))
	f, err := fsys.Create(path, 0o644)
	if err != nil {
		return nil, fmt.Errorf("segment: create %s: %w", path, err)
	}
	s := newSegment(fsys, f, path, base, maxSize)
	defer func() {
		if err != nil {
			s.f.Close()
			fsys.Remove(path)
		}
	}()
	if err := s.activate(); err != nil {
		return nil, err
	}
	if err := fsys.SyncDir(dir); err != nil {
		s.unmap()
		return nil, err
	}
	return s, nil
}

// openSegment opens an existing segment file. Its size is the file size
// until recovery or the caller sets it.
func openSegment(fsys vfs.FS, dir string, base, maxSize int64) (*Segment, error) {
	path := filepath.Join(dir, FileName(base))
	f, err := fsys.OpenReadWrite(path)
	if err != nil {
		return nil, fmt.Errorf("segment: open %s: %w", path, err)
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("segment: stat %s: %w", path, err)
	}
	s := newSegment(fsys, f, path, base, maxSize)
	s.allocated = size
	s.size.Store(size)
	return s, nil
}

func newSegment(fsys vfs.FS, f vfs.File, path string, base, maxSize int64) *Segment {
	s := &Segment{base: base, path: path, fs: fsys, f: f, maxSize: maxSize,
		lastOffset: -1, maxTimestamp: -1, rollClock: -1}
	s.refs.Store(1)
	s.next.Store(base)
	return s
}

// Base returns the offset of the segment's first batch.
func (s *Segment) Base() int64 { return s.base }

// Path returns the segment file's path.
func (s *Segment) Path() string { return s.path }

// File returns the open segment file, for sendfile and pread, or nil when
// the log is not on the real file system (a test twin). It stays open while
// the caller holds a reference.
func (s *Segment) File() *os.File { return vfs.OSFile(s.f) }

// Size returns the bytes of whole batches in the segment.
func (s *Segment) Size() int64 { return s.size.Load() }

// NextOffset returns the offset after the segment's last batch.
func (s *Segment) NextOffset() int64 { return s.next.Load() }

// Acquire takes a reference; it fails once the segment is closed.
func (s *Segment) Acquire() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release drops a reference. The last one unmaps and closes the file.
func (s *Segment) Release() {
	n := s.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		panic(fmt.Sprintf("segment: %s released more often than acquired", s.path))
	}
	s.unmap()
	s.f.Close()
}

// activate maps the segment read-write over its maximum size so the writer
// can append to it. The file keeps its size; grow extends it.
func (s *Segment) activate() error {
	s.mapMu.Lock()
	defer s.mapMu.Unlock()
	if s.m != nil {
		return nil
	}
	n := s.maxSize
	if s.allocated > n {
		n = s.allocated
	}
	m, err := s.f.Map(int(n), mmap.ReadWrite)
	if err != nil {
		return fmt.Errorf("segment: activate %s: %w", s.path, err)
	}
	s.m, s.data = m, m.Bytes()
	return nil
}

func (s *Segment) unmap() {
	s.mapMu.Lock()
	defer s.mapMu.Unlock()
	if s.m != nil {
		s.m.Unmap()
		s.m, s.data = nil, nil
	}
}

// releaseWritten takes the mapping's whole pages of published bytes out of
// the page tables (vfs.Mapping.Release), from where the last call stopped.
// Their bytes stay in the page cache; what changes is their write-back: a
// page mapped writable is write-protected in every CPU's TLB as it is
// written back, one flush (an interprocessor interrupt) per page, which
// cost the syncing thread more than the disk did. One release flushes the
// TLBs once for the whole range. Safe beside readers and the appender: a
// released page is mapped again on its next access.
func (s *Segment) releaseWritten() {
	s.mapMu.RLock()
	defer s.mapMu.RUnlock()
	if s.m == nil {
		return
	}
	end := s.size.Load() &^ int64(mmap.PageSize()-1)
	from := s.released.Load()
	if end <= from || !s.released.CompareAndSwap(from, end) {
		return
	}
	// A failure leaves the pages mapped: their write-back costs more, and
	// nothing else changes.
	_ = s.m.Release(int(from), int(end-from))
}

// unreleased is how many published bytes releaseWritten has not covered.
func (s *Segment) unreleased() int64 { return s.size.Load() - s.released.Load() }

// room reports whether n more bytes fit under the segment's maximum size.
func (s *Segment) room(n int) bool { return s.size.Load()+int64(n) <= int64(len(s.data)) }

// reserve makes sure the file has blocks for n more bytes past size.
func (s *Segment) reserve(n int) error {
	need := s.size.Load() + int64(n)
	if need <= s.allocated {
		return nil
	}
	chunk := s.allocated
	if chunk < minGrowChunk {
		chunk = minGrowChunk
	}
	if chunk > maxGrowChunk {
		chunk = maxGrowChunk
	}
	target := s.allocated + chunk
	if target < need {
		target = need
	}
	if limit := int64(len(s.data)); target > limit {
		target = limit
	}
	if err := s.f.Allocate(target); err != nil {
		if errors.Is(err, vfs.ErrNoSpace) {
			return fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return err
	}
	s.allocated = target
	return nil
}

// append copies the batch b into the mapping at the end of the segment and
// returns its position; the caller publishes it. With stamp, the copy gets
// base and epoch as its base offset and partition leader epoch instead of
// b's. The batch length is stored last: until then the bytes at the end
// read as a zero length, which recovery cuts, so a process killed during
// an append cannot leave a batch that passes its CRC (which covers neither
// field) with an offset or epoch the log did not give it.
func (s *Segment) append(b []byte, stamp bool, base int64, epoch int32) (int64, error) {
	if err := s.reserve(len(b)); err != nil {
		return 0, err
	}
	pos := s.size.Load()
	dst := s.data[pos : pos+int64(len(b))]
	copy(dst[PartitionLeaderEpochOffset:], b[PartitionLeaderEpochOffset:])
	if stamp {
		SetPartitionLeaderEpoch(dst, epoch)
		SetBaseOffset(dst, base)
	} else {
		copy(dst[:BatchLengthOffset], b[:BatchLengthOffset])
	}
	copy(dst[BatchLengthOffset:PartitionLeaderEpochOffset], b[BatchLengthOffset:PartitionLeaderEpochOffset])
	return pos, nil
}

// publish makes a batch appended at the end visible to readers.
func (s *Segment) publish(size, next int64) {
	s.next.Store(next)
	s.size.Store(size)
}

// sync flushes the file's data to disk (fdatasync). It works on sealed
// segments as well as on the mapped active one.
func (s *Segment) sync() error {
	if err := s.f.Datasync(); err != nil {
		return fmt.Errorf("segment: fdatasync %s: %w", s.path, err)
	}
	return nil
}

// seal turns the active segment into a sealed one: unmapped and cut to its
// real size. The caller syncs it (Log.rollLocked hands it to the syncer).
func (s *Segment) seal() error {
	s.unmap()
	size := s.size.Load()
	if s.allocated != size {
		if err := s.f.Truncate(size); err != nil {
			return fmt.Errorf("segment: seal %s: %w", s.path, err)
		}
		s.allocated = size
	}
	return nil
}

// cut removes every byte from pos on: the segment keeps its file size (and
// its disk blocks, if mapped) but reads zeros there, durably.
func (s *Segment) cut(pos, next int64) error {
	s.publish(pos, next)
	// Appends store below the released end again; a later release starts
	// from the cut.
	if page := pos &^ int64(mmap.PageSize()-1); s.released.Load() > page {
		s.released.Store(page)
	}
	if err := s.f.ZeroFrom(pos); err != nil {
		return fmt.Errorf("segment: cut %s at %d: %w", s.path, pos, err)
	}
	return s.sync()
}

// remove deletes the file and drops the owner's reference; readers that
// still hold one keep the data until they release it.
func (s *Segment) remove() error {
	s.dead.Store(true)
	err := s.fs.Remove(s.path)
	s.Release()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("segment: remove %s: %w", s.path, err)
	}
	return nil
}

// walk calls fn for each batch header from pos up to end, in order, until fn
// returns false. Headers are read from the mapping while there is one and
// with buffered preads otherwise. A header that does not parse ends the walk
// with a *CorruptError; the CRC is not checked here. The header fn is given
// is valid only during the call: fn copies what it keeps.
func (s *Segment) walk(pos, end int64, fn func(pos int64, h *Header) bool) error {
	s.mapMu.RLock()
	if s.m != nil {
		defer s.mapMu.RUnlock()
		return walkBytes(s.path, s.data, pos, end, fn)
	}
	s.mapMu.RUnlock()
	h := headerPool.Get().(*Header)
	defer headerPool.Put(h)
	var buf [16 << 10]byte
	var bufPos, bufLen int64 // window of the file held in buf
	window := int64(len(buf))
	for pos+HeaderSize <= end {
		if pos < bufPos || pos+HeaderSize > bufPos+bufLen {
			n := window
			if end-pos < n {
				n = end - pos
			}
			got, err := vfs.ReadAt(s.f, buf[:n], pos)
			if int64(got) < HeaderSize {
				return fmt.Errorf("segment: read %s at %d: %w", s.path, pos, err)
			}
			bufPos, bufLen = pos, int64(got)
		}
		var err error
		if *h, err = ParseHeader(buf[pos-bufPos : bufLen]); err != nil {
			return &CorruptError{Path: s.path, Position: pos, Err: err}
		}
		if !fn(pos, h) {
			return nil
		}
		pos += int64(h.Size())
		// Batches larger than the window: read headers alone, not the
		// records between them.
		if int64(h.Size()) >= window/2 {
			window = HeaderSize
		} else {
			window = int64(len(buf))
		}
	}
	return nil
}

// headerPool holds the headers walks hand to their callbacks: a header
// given to an unknown function escapes, and one per batch walked would be
// an allocation per batch on the fetch path.
var headerPool = sync.Pool{New: func() any { return new(Header) }}

func walkBytes(path string, data []byte, pos, end int64, fn func(pos int64, h *Header) bool) error {
	h := headerPool.Get().(*Header)
	defer headerPool.Put(h)
	for pos+HeaderSize <= end {
		var err error
		if *h, err = ParseHeader(data[pos:end]); err != nil {
			return &CorruptError{Path: path, Position: pos, Err: err}
		}
		if !fn(pos, h) {
			return nil
		}
		pos += int64(h.Size())
	}
	return nil
}

// locate finds, from a batch boundary at pos, the first batch whose last
// offset is at or past offset. It returns its position and header; found is
// false when the segment ends first.
func (s *Segment) locate(pos, offset int64) (at int64, h Header, found bool, err error) {
	err = s.walk(pos, s.size.Load(), func(p int64, hh *Header) bool {
		if hh.LastOffset() >= offset {
			at, h, found = p, *hh, true
			return false
		}
		return true
	})
	return at, h, found, err
}
