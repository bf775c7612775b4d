package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The real file system remembers a failed sync per path for the life of
// the process: a retry on any handle fails too, until the path is removed
// or a new file is created there. The failure itself cannot be provoked on
// a healthy disk, so it is recorded as Datasync records it.
func TestOSFSFailedSyncIsSticky(t *testing.T) {
	fs := &osFS{}
	dir := t.TempDir()
	name := filepath.Join(dir, "seg")
	f, err := fs.Create(name, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Datasync(); err != nil {
		t.Fatal(err)
	}
	fs.fail(name, "fdatasync", syscall.EIO)
	g, err := fs.OpenReadWrite(name)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, sync := range []func() error{f.Datasync, f.Sync, g.Datasync} {
		if err := sync(); !errors.Is(err, ErrSyncFailed) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("sync after a failure: %v, want the first failure again", err)
		}
	}
	other := filepath.Join(dir, "other")
	h, err := fs.Create(other, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := fs.Rename(other, name); err != nil {
		t.Fatal(err)
	}
	if err := g.Datasync(); err != nil { // g's inode is gone from the name; the name is new
		t.Fatalf("sync after the path was replaced: %v", err)
	}
	fs.fail(dir, "fsync directory", syscall.EIO)
	if err := fs.SyncDir(dir); !errors.Is(err, ErrSyncFailed) {
		t.Fatalf("directory sync after a failure: %v", err)
	}
	if err := fs.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncDir(dir); err != nil {
		t.Fatalf("sync of a directory made anew: %v", err)
	}
}

// The real volume syncs the file system of a directory and refuses use
// after Close.
func TestOSFSVolumeSync(t *testing.T) {
	dir := t.TempDir()
	v, err := Default.OpenVolume(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := mustWrite(t, Default, dir+"/a", []byte("data"), false)
	defer f.Close()
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err == nil {
		t.Fatal("Sync after Close succeeded")
	}
	if _, err := Default.OpenVolume(dir + "/missing"); err == nil {
		t.Fatal("OpenVolume of a missing directory succeeded")
	}
}
