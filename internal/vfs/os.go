package vfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/runnel-io/runnel/mmap"
)

// Default is the real file system.
var Default FS = &osFS{}

// osFS is the real file system. failed remembers the paths whose sync
// failed in this process (see the package documentation).
type osFS struct {
	mu      sync.Mutex
	failed  map[string]error
	anyFail atomic.Bool // failed has held an entry: syncs look it up
}

// osFile is a real file. f is reached directly by ReadAt and OSFile.
type osFile struct {
	f  *os.File
	fs *osFS
}

func (fs *osFS) wrap(f *os.File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &osFile{f: f, fs: fs}, nil
}

func (fs *osFS) Create(name string, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if err == nil {
		fs.forget(name, false)
	}
	return fs.wrap(f, err)
}

func (fs *osFS) CreateTemp(dir, pattern string) (File, error) {
	return fs.wrap(os.CreateTemp(dir, pattern))
}

func (fs *osFS) Open(name string) (File, error) { return fs.wrap(os.Open(name)) }

func (fs *osFS) OpenReadWrite(name string) (File, error) {
	return fs.wrap(os.OpenFile(name, os.O_RDWR, 0))
}

func (fs *osFS) Rename(oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	oldpath, newpath = filepath.Clean(oldpath), filepath.Clean(newpath)
	delete(fs.failed, newpath)
	if err, ok := fs.failed[oldpath]; ok {
		delete(fs.failed, oldpath)
		fs.failed[newpath] = err
	}
	return nil
}

func (fs *osFS) Remove(name string) error {
	err := os.Remove(name)
	if err == nil {
		fs.forget(name, false)
	}
	return err
}

func (fs *osFS) RemoveAll(name string) error {
	err := os.RemoveAll(name)
	if err == nil {
		fs.forget(name, true)
	}
	return err
}

func (fs *osFS) Mkdir(name string, perm os.FileMode) error { return os.Mkdir(name, perm) }

func (fs *osFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

func (fs *osFS) ReadDir(name string) ([]os.DirEntry, error) { return os.ReadDir(name) }

func (fs *osFS) SyncDir(name string) error {
	if err := fs.earlier(name); err != nil {
		return err
	}
	d, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("vfs: open directory %s: %w", name, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fs.fail(name, "fsync directory", err)
	}
	return nil
}

func (fs *osFS) OpenVolume(dir string) (Volume, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open volume", Path: dir, Err: err}
	}
	return &osVolume{fd: fd, dir: dir}, nil
}

// osVolume is an open directory of a real file system. Its descriptor
// samples the file system's write-back error sequence at open, so each
// syncfs through it reports the errors since the one before (Linux 5.8
// and later).
type osVolume struct {
	mu     sync.Mutex
	fd     int
	dir    string
	closed bool
}

func (v *osVolume) Sync() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return &os.PathError{Op: "syncfs", Path: v.dir, Err: os.ErrClosed}
	}
	if err := unix.Syncfs(v.fd); err != nil {
		return fmt.Errorf("%w: syncfs %s: %w", ErrSyncFailed, v.dir, err)
	}
	return nil
}

func (v *osVolume) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil
	}
	v.closed = true
	return unix.Close(v.fd)
}

func (fs *osFS) SyncFailed(name string) error {
	if !fs.anyFail.Load() {
		return nil
	}
	return fs.earlier(name)
}

// earlier returns the sticky error of a path whose sync failed before.
func (fs *osFS) earlier(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err, ok := fs.failed[filepath.Clean(name)]; ok {
		return fmt.Errorf("%w: %s: an earlier sync failed, its data may be lost: %w", ErrSyncFailed, name, err)
	}
	return nil
}

// fail records a failed sync of name and returns its error.
func (fs *osFS) fail(name, op string, err error) error {
	err = fmt.Errorf("%w: %s %s: %w", ErrSyncFailed, op, name, err)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.failed == nil {
		fs.failed = map[string]error{}
	}
	fs.anyFail.Store(true)
	if _, ok := fs.failed[filepath.Clean(name)]; !ok {
		fs.failed[filepath.Clean(name)] = err
	}
	return err
}

// forget drops the sync failures of a path that was removed or created
// anew (and of everything under it, for a tree).
func (fs *osFS) forget(name string, tree bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.failed) == 0 {
		return
	}
	name = filepath.Clean(name)
	delete(fs.failed, name)
	if tree {
		prefix := name + string(filepath.Separator)
		for p := range fs.failed {
			if strings.HasPrefix(p, prefix) {
				delete(fs.failed, p)
			}
		}
	}
}

func (f *osFile) Name() string                            { return f.f.Name() }
func (f *osFile) ReadAt(b []byte, off int64) (int, error) { return f.f.ReadAt(b, off) }
func (f *osFile) WriteAt(b []byte, off int64) (int, error) {
	return f.f.WriteAt(b, off)
}
func (f *osFile) Write(b []byte) (int, error)  { return f.f.Write(b) }
func (f *osFile) Truncate(size int64) error    { return f.f.Truncate(size) }
func (f *osFile) Chmod(mode os.FileMode) error { return f.f.Chmod(mode) }
func (f *osFile) Close() error                 { return f.f.Close() }

func (f *osFile) Size() (int64, error) {
	fi, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f *osFile) Datasync() error {
	if f.fs.anyFail.Load() {
		if err := f.fs.earlier(f.f.Name()); err != nil {
			return err
		}
	}
	if err := unix.Fdatasync(int(f.f.Fd())); err != nil {
		return f.fs.fail(f.f.Name(), "fdatasync", err)
	}
	return nil
}

func (f *osFile) Sync() error {
	if err := f.fs.earlier(f.f.Name()); err != nil {
		return err
	}
	if err := f.f.Sync(); err != nil {
		return f.fs.fail(f.f.Name(), "fsync", err)
	}
	return nil
}

func (f *osFile) Allocate(size int64) error { return mmap.Grow(f.f, size) }

func (f *osFile) ZeroFrom(off int64) error { return mmap.Zero(f.f, off) }

func (f *osFile) Map(length int, mode mmap.Mode) (Mapping, error) {
	m, err := mmap.Map(f.f, length, mode)
	if err != nil {
		return nil, err
	}
	return &osMapping{Mapping: m, fs: f.fs, path: f.f.Name()}, nil
}

// osMapping is a real mapping; its msync is sticky on failure as fsync is.
type osMapping struct {
	*mmap.Mapping
	fs   *osFS
	path string
}

func (m *osMapping) Sync(off, n int) error {
	if err := m.fs.earlier(m.path); err != nil {
		return err
	}
	if err := m.Mapping.Sync(off, n); err != nil {
		return m.fs.fail(m.path, "msync", err)
	}
	return nil
}
