// Package fsutil holds the helpers for replacing a file whole (durably, or
// not for caches) and the directory sync that creating or removing a file
// needs to survive a crash.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces path with data durably: it writes a temporary file
// beside it, fsyncs it, renames it over path and fsyncs the directory. After a
// crash, path holds either the old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return replace(path, data, perm, true)
}

// ReplaceFile replaces path with data as WriteFileAtomic does, but syncs
// nothing: a process crash leaves path old or new, an operating-system
// crash may leave it empty or torn. It is for caches whose reader checks
// what it reads and rebuilds when the check fails.
func ReplaceFile(path string, data []byte, perm os.FileMode) error {
	return replace(path, data, perm, false)
}

func replace(path string, data []byte, perm os.FileMode, sync bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("fsutil: create temporary file for %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
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
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("fsutil: close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("fsutil: rename to %s: %w", path, err)
	}
	if !sync {
		return nil
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsutil: open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsutil: fsync directory %s: %w", dir, err)
	}
	return nil
}

// MkdirAllDurable creates dir and any missing parents, syncing each parent
// whose entries changed.
func MkdirAllDurable(dir string, perm os.FileMode) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("fsutil: %s exists and is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAllDurable(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil && !os.IsExist(err) {
		return fmt.Errorf("fsutil: mkdir %s: %w", dir, err)
	}
	return SyncDir(parent)
}
