//go:build linux

package mmap

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Errors returned by this package. Errors from the kernel are wrapped so that
// errors.Is also matches the underlying syscall.Errno.
var (
	// ErrNoSpace is returned by Grow when the file system has no room left.
	ErrNoSpace = errors.New("mmap: no space left on device")
	// ErrClosed is returned by operations on a mapping after Unmap.
	ErrClosed = errors.New("mmap: mapping is unmapped")
	// ErrRange is returned for an offset or length outside the mapping.
	ErrRange = errors.New("mmap: range outside the mapping")
)

// Mode says how a mapping may be accessed.
type Mode int

const (
	// ReadOnly maps with PROT_READ.
	ReadOnly Mode = iota
	// ReadWrite maps with PROT_READ|PROT_WRITE, MAP_SHARED: stores reach the
	// file's page cache.
	ReadWrite
)

// Advice is a hint for the kernel about how a range will be accessed.
type Advice int

const (
	// Sequential: read ahead aggressively, drop pages soon after reading.
	Sequential Advice = iota
	// Random: no read-ahead.
	Random
	// WillNeed: start reading the range in now.
	WillNeed
	// DontNeed: the range will not be used soon; clean pages may be dropped.
	DontNeed
)

var pageSize = os.Getpagesize()

// PageSize returns the system page size.
func PageSize() int { return pageSize }

// Mapping is a memory mapping of a file. Its methods are safe for concurrent
// use, but the caller must not touch the slice returned by Bytes once Unmap
// has been called; Mapping cannot enforce that.
type Mapping struct {
	mu   sync.Mutex
	data []byte
	mode Mode
	path string
}

// Map maps length bytes of f from offset 0. length may exceed the current
// file size; see the package documentation for what that allows.
func Map(f *os.File, length int, mode Mode) (*Mapping, error) {
	if length <= 0 {
		return nil, fmt.Errorf("mmap: map %s: length %d: %w", f.Name(), length, ErrRange)
	}
	prot := unix.PROT_READ
	if mode == ReadWrite {
		prot |= unix.PROT_WRITE
	}
	data, err := unix.Mmap(int(f.Fd()), 0, length, prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: map %s (%d bytes): %w", f.Name(), length, err)
	}
	return &Mapping{data: data, mode: mode, path: f.Name()}, nil
}

// Bytes returns the mapped memory. It is valid until Unmap.
func (m *Mapping) Bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data
}

// Len returns the length of the mapping, or 0 once unmapped.
func (m *Mapping) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.data)
}

// pageRange widens [off, off+n) to whole pages and checks it against the
// mapping. It must be called with m.mu held.
func (m *Mapping) pageRangeLocked(off, n int) ([]byte, error) {
	if m.data == nil {
		return nil, ErrClosed
	}
	if off < 0 || n < 0 || n > len(m.data)-off { // not off+n: it can overflow
		return nil, fmt.Errorf("mmap: %s [%d,%d) of %d: %w", m.path, off, off+n, len(m.data), ErrRange)
	}
	start := off &^ (pageSize - 1)
	end := off + n
	return m.data[start:end], nil
}

// Sync writes the pages covering [off, off+n) to disk and waits for them
// (msync MS_SYNC).
func (m *Mapping) Sync(off, n int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n == 0 {
		return nil
	}
	b, err := m.pageRangeLocked(off, n)
	if err != nil {
		return err
	}
	if err := unix.Msync(b, unix.MS_SYNC); err != nil {
		return fmt.Errorf("mmap: msync %s [%d,%d): %w", m.path, off, off+n, err)
	}
	return nil
}

// Release takes the whole pages inside [off, off+n) out of the process's
// page tables (madvise MADV_DONTNEED, which on a shared file mapping keeps
// the data: the bytes stay in the file's page cache, dirty ones included,
// and the next access maps them again). The write-back of a page still
// mapped writable must write-protect it in every CPU's TLB, one flush per
// page; released pages are written back without any. The caller releases
// only bytes it will not store into again soon; a later store is still
// safe, it just maps the page again.
func (m *Mapping) Release(off, n int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return ErrClosed
	}
	if off < 0 || n < 0 || n > len(m.data)-off {
		return fmt.Errorf("mmap: release %s [%d,%d) of %d: %w", m.path, off, off+n, len(m.data), ErrRange)
	}
	start := (off + pageSize - 1) &^ (pageSize - 1)
	end := (off + n) &^ (pageSize - 1)
	if end <= start {
		return nil
	}
	if err := unix.Madvise(m.data[start:end], unix.MADV_DONTNEED); err != nil {
		return fmt.Errorf("mmap: release %s [%d,%d): %w", m.path, start, end, err)
	}
	return nil
}

// Advise passes an access hint for [off, off+n) to the kernel.
func (m *Mapping) Advise(off, n int, advice Advice) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n == 0 {
		return nil
	}
	b, err := m.pageRangeLocked(off, n)
	if err != nil {
		return err
	}
	var a int
	switch advice {
	case Sequential:
		a = unix.MADV_SEQUENTIAL
	case Random:
		a = unix.MADV_RANDOM
	case WillNeed:
		a = unix.MADV_WILLNEED
	case DontNeed:
		a = unix.MADV_DONTNEED
	default:
		return fmt.Errorf("mmap: unknown advice %d", advice)
	}
	if err := unix.Madvise(b, a); err != nil {
		return fmt.Errorf("mmap: madvise %s: %w", m.path, err)
	}
	return nil
}

// Unmap releases the mapping. It is idempotent: a second call returns nil.
func (m *Mapping) Unmap() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return nil
	}
	err := unix.Munmap(m.data)
	m.data = nil
	if err != nil {
		return fmt.Errorf("mmap: munmap %s: %w", m.path, err)
	}
	return nil
}

// Grow makes f at least size bytes long with its blocks reserved on disk, so
// that stores into a mapping below size cannot fault for lack of space. It
// uses fallocate; on file systems without it, it writes zeros instead, which
// reserves the blocks the same way. Grow never shrinks a file.
func Grow(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("mmap: grow %s: %w", f.Name(), err)
	}
	cur := fi.Size()
	if size <= cur {
		return nil
	}
	err = unix.Fallocate(int(f.Fd()), 0, cur, size-cur)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		err = writeZeros(f, cur, size)
	}
	if err != nil {
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
			return fmt.Errorf("mmap: grow %s to %d bytes: %w (%w)", f.Name(), size, ErrNoSpace, err)
		}
		return fmt.Errorf("mmap: grow %s to %d bytes: %w", f.Name(), size, err)
	}
	return nil
}

// Zero replaces [off, end of file) with zeros while keeping the file's size
// and its blocks reserved, so that a mapping over that range stays safe to
// store into. It is used to cut a log back: the cut bytes must not come back
// after a crash, so the caller syncs afterwards.
func Zero(f *os.File, off int64) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("mmap: zero %s: %w", f.Name(), err)
	}
	size := fi.Size()
	if off >= size {
		return nil
	}
	fd := int(f.Fd())
	err = unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE, off, size-off)
	if err == nil {
		return nil
	}
	// tmpfs and some others lack ZERO_RANGE: punch a hole, then reserve the
	// blocks again.
	err = unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, size-off)
	if err == nil {
		err = unix.Fallocate(fd, 0, off, size-off)
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		err = writeZeros(f, off, size)
	}
	if err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return fmt.Errorf("mmap: zero %s from %d: %w (%w)", f.Name(), off, ErrNoSpace, err)
		}
		return fmt.Errorf("mmap: zero %s from %d: %w", f.Name(), off, err)
	}
	return nil
}

func writeZeros(f *os.File, from, to int64) error {
	zeros := make([]byte, 1<<20)
	for from < to {
		n := int64(len(zeros))
		if to-from < n {
			n = to - from
		}
		w, err := f.WriteAt(zeros[:n], from)
		if err != nil {
			return err
		}
		from += int64(w)
	}
	return nil
}
