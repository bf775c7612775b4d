// Package fsutil holds the helpers for replacing a file whole (durably, or
// not for caches) and for creating directories durably, over a vfs.FS.
package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/runnel-io/runnel/internal/vfs"
)

// WriteFileAtomic replaces path with data durably: it writes a temporary file
// beside it, fsyncs it, renames it over path and fsyncs the directory. After a
// crash, path holds either the old or the new content, never a mix. A failed
// sync is reported wrapping vfs.ErrSyncFailed: path may then hold either.
func WriteFileAtomic(fsys vfs.FS, path string, data []byte, perm os.FileMode) error {
	return replace(fsys, path, data, perm, true)
}

// ReplaceFile replaces path with data as WriteFileAtomic does, but syncs
// nothing: a process crash leaves path old or new, an operating-system
// crash may leave it empty or torn. It is for caches whose reader checks
// what it reads and rebuilds when the check fails.
func ReplaceFile(fsys vfs.FS, path string, data []byte, perm os.FileMode) error {
	return replace(fsys, path, data, perm, false)
}

func replace(fsys vfs.FS, path string, data []byte, perm os.FileMode, sync bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := fsys.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("fsutil: create temporary file for %s: %w", path, err)
	}
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				tmp.Close()
			}
			fsys.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("fsutil: write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("fsutil: chmod %s: %w", tmp.Name(), err)
	}
	if sync {
		if err = tmp.Sync(); err != nil {
			return fmt.Errorf("fsutil: fsync %s: %w", tmp.Name(), err)
		}
	}
	closed = true
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("fsutil: close %s: %w", tmp.Name(), err)
	}
	if err = fsys.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("fsutil: rename to %s: %w", path, err)
	}
	if !sync {
		return nil
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("fsutil: replacing %s: %w", path, err)
	}
	return nil
}

// MkdirAllDurable creates dir and any missing parents, syncing each parent
// whose entries changed. A dir that exists may have been left by an earlier
// call whose sync of the parent failed: then it fails with that error
// rather than let dir be trusted (see vfs, Sync failures).
func MkdirAllDurable(fsys vfs.FS, dir string, perm os.FileMode) error {
	if fi, err := fsys.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("fsutil: %s exists and is not a directory", dir)
		}
		return fsys.SyncFailed(filepath.Dir(dir))
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAllDurable(fsys, parent, perm); err != nil {
			return err
		}
	}
	if err := fsys.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("fsutil: mkdir %s: %w", dir, err)
	}
	return fsys.SyncDir(parent)
}
