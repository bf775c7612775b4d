// Package vfs is the file system under runnel's durable state: the segment
// files, the side files beside them (leader epochs, producer snapshots, log
// start) and the helpers of internal/fsutil. Everything that decides what
// survives a crash goes through it: create, open, write, map, fdatasync,
// msync, ftruncate, fallocate, rename, remove and directory sync.
//
// Default is the real file system (golang.org/x/sys/unix and package
// mmap). MemFS is its test twin: an in-memory file system that remembers,
// per file and per directory, what was last made durable, and can lose
// everything else the way a power failure does (see MemFS.Crash). It also
// injects errors, so that tests can fail the Nth sync or write of a kind.
//
// # Sync failures
//
// A sync that fails (fdatasync, fsync, msync, a directory fsync) leaves the
// file's state on disk unknown: Linux marks the dirty pages clean after
// reporting the error once, so a second fsync that succeeds proves nothing.
// Both implementations therefore make a failed sync sticky: every later
// sync of the same path fails again, for the life of the process (of the
// twin, until Crash or Restart), until the path is removed or replaced.
// Errors of syncs wrap ErrSyncFailed; callers take the data offline.
//
// # Concurrency
//
// An FS may be used from any number of goroutines. A File may be shared too:
// ReadAt, WriteAt, Datasync and Size may run concurrently; Write (which
// moves the file position), Truncate, Allocate and Close must not race with
// other calls on the same File. A Mapping's bytes follow the rules of
// package mmap: the owner keeps stores below the size Allocate last
// established and stops touching the slice before Unmap. Stores into a
// mapping are not synchronised with the file's other methods; a reader that
// must see them relies on the caller's own happens-before edges (a lock, an
// atomic), as with a real shared mapping.
//
// # The hot path
//
// Real files expose their *os.File (OSFile) for sendfile and pread, and
// ReadAt reaches the *os.File method without an interface call, so a buffer
// on the caller's stack stays there: the append and fetch paths allocate
// nothing more than they did over *os.File.
package vfs

import (
	"errors"
	"io"
	"os"

	"github.com/runnel-io/runnel/mmap"
)

// Errors of the package.
var (
	// ErrSyncFailed matches every error of a failed (or earlier failed)
	// sync: the file's durable state is unknown.
	ErrSyncFailed = errors.New("vfs: sync failed")
	// ErrNoSpace is the file system being full (Allocate, Write). It is
	// mmap.ErrNoSpace, so either name matches.
	ErrNoSpace = mmap.ErrNoSpace
)

// FS is a file system. Paths are as for package os.
type FS interface {
	// Create creates a new file for reading and writing; it fails if the
	// name exists (O_CREATE|O_EXCL).
	Create(name string, perm os.FileMode) (File, error)
	// CreateTemp creates a new file in dir, named from pattern as
	// os.CreateTemp does, for reading and writing.
	CreateTemp(dir, pattern string) (File, error)
	// Open opens an existing file read-only.
	Open(name string) (File, error)
	// OpenReadWrite opens an existing file for reading and writing.
	OpenReadWrite(name string) (File, error)
	// Rename renames a file, replacing newpath if it exists.
	Rename(oldpath, newpath string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// RemoveAll removes a path and everything under it; a missing path is
	// not an error.
	RemoveAll(name string) error
	// Mkdir creates a directory.
	Mkdir(name string, perm os.FileMode) error
	// Stat describes a file or directory.
	Stat(name string) (os.FileInfo, error)
	// ReadDir lists a directory, sorted by name.
	ReadDir(name string) ([]os.DirEntry, error)
	// SyncDir makes the entries created, renamed or removed in a directory
	// durable (fsync of the directory).
	SyncDir(name string) error
	// SyncFailed returns the error of the failed sync of name that makes
	// its syncs fail from now on, or nil: what a sync of name would answer
	// without asking the disk.
	SyncFailed(name string) error
	// OpenVolume opens the file system that holds dir, for syncs of all of
	// it at once (Volume.Sync). Keep it open: a Volume reports the
	// write-back errors that happen while it is open.
	OpenVolume(dir string) (Volume, error)
}

// Volume is a whole file system, for one sync of everything on it.
type Volume interface {
	// Sync makes every file's data and metadata and every directory's
	// entries on the file system durable (syncfs). An error wraps
	// ErrSyncFailed and is not sticky: it says some file's write-back
	// failed, not which; the callers find out with a sync of each of
	// their files, which answers for that file alone.
	Sync() error
	// Close releases the volume.
	Close() error
}

// File is an open file.
type File interface {
	// Name returns the path the file was opened with.
	Name() string
	io.ReaderAt
	io.WriterAt
	// Write writes at the file position and moves it.
	Write(p []byte) (int, error)
	// Size returns the file size.
	Size() (int64, error)
	// Datasync makes the file's data, and the size needed to read it,
	// durable (fdatasync).
	Datasync() error
	// Sync makes the file's data and metadata durable (fsync).
	Sync() error
	// Truncate changes the file size.
	Truncate(size int64) error
	// Chmod changes the file's mode.
	Chmod(mode os.FileMode) error
	// Allocate makes the file at least size bytes long with its blocks
	// reserved, so that stores into a mapping below size cannot fault for
	// lack of space (fallocate). A full disk is ErrNoSpace. It never
	// shrinks the file.
	Allocate(size int64) error
	// ZeroFrom replaces [off, end of file) with zeros, keeping the size
	// and the reserved blocks. The caller syncs afterwards.
	ZeroFrom(off int64) error
	// Map maps the first length bytes of the file; length may pass the
	// file size (see package mmap).
	Map(length int, mode mmap.Mode) (Mapping, error)
	// Close closes the file. Mappings stay valid until unmapped.
	Close() error
}

// Mapping is a memory mapping of a file.
type Mapping interface {
	// Bytes returns the mapped memory, valid until Unmap.
	Bytes() []byte
	// Sync makes [off, off+n) of the mapping durable (msync MS_SYNC).
	Sync(off, n int) error
	// Release takes the whole pages inside [off, off+n) out of the
	// process's page tables, keeping their bytes (see mmap.Mapping.Release):
	// their write-back then needs no TLB flushes. The range stays mapped
	// and readable.
	Release(off, n int) error
	// Unmap releases the mapping; a second call is a no-op.
	Unmap() error
}

// ReadFile reads a whole file.
func ReadFile(fs FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	n, err := f.ReadAt(b, 0)
	if err == io.EOF {
		err = nil
	}
	return b[:n], err
}

// ReadAt reads from f at off as f.ReadAt does. For a real file it calls
// the *os.File method directly, so that b does not escape to the heap
// because of the interface call; the fetch path reads headers into a
// stack buffer this way.
func ReadAt(f File, b []byte, off int64) (int, error) {
	if of, ok := f.(*osFile); ok {
		return of.f.ReadAt(b, off)
	}
	tmp := make([]byte, len(b))
	n, err := f.ReadAt(tmp, off)
	copy(b, tmp[:n])
	return n, err
}

// OSFile returns the *os.File under a real file, for sendfile(2), and nil
// for files of other implementations.
func OSFile(f File) *os.File {
	if of, ok := f.(*osFile); ok {
		return of.f
	}
	return nil
}
