package vfs

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"

	"github.com/runnel-io/runnel/mmap"
)

func mustWrite(t *testing.T, m FS, name string, data []byte, sync bool) File {
	t.Helper()
	f, err := m.Create(name, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Datasync(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func contents(t *testing.T, m FS, name string) ([]byte, bool) {
	t.Helper()
	b, err := ReadFile(m, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}

// A crash keeps exactly what was synced: file contents by Datasync, entries
// by SyncDir.
func TestMemFSCrashKeepsOnlySynced(t *testing.T) {
	m := NewMemFS()
	if err := m.Mkdir("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, m, "/d/synced", []byte("one"), true).Close()
	mustWrite(t, m, "/d/unsynced-data", []byte("two"), false).Close()
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, m, "/d/unsynced-entry", []byte("three"), true).Close()
	f, err := m.OpenReadWrite("/d/synced")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("ONE!"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := m.Remove("/d/unsynced-data"); err != nil {
		t.Fatal(err)
	}
	if err := m.Rename("/d/synced", "/d/renamed"); err != nil {
		t.Fatal(err)
	}
	if b, _ := contents(t, m, "/d/renamed"); string(b) != "ONE!" {
		t.Fatalf("before the crash: %q", b)
	}

	m.Crash()
	cases := []struct {
		name string
		want string
		ok   bool
	}{
		{"/d/synced", "one", true},       // the rename was not synced; the rewrite neither
		{"/d/renamed", "", false},        // never synced into the directory
		{"/d/unsynced-data", "", true},   // the entry was synced, its bytes were not; the remove was not
		{"/d/unsynced-entry", "", false}, // bytes synced, entry not
	}
	for _, c := range cases {
		b, ok := contents(t, m, c.name)
		if ok != c.ok || string(b) != c.want {
			t.Errorf("%s after the crash: %q (exists %v), want %q (exists %v)", c.name, b, ok, c.want, c.ok)
		}
	}
	if n := m.OpenFiles(); n != 0 {
		t.Errorf("%d files open", n)
	}
}

// Stores through a mapping are volatile until a sync of the file covers them.
func TestMemFSMappedBytesNeedSync(t *testing.T) {
	m := NewMemFS()
	f := mustWrite(t, m, "/seg", nil, false)
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	if err := f.Allocate(8192); err != nil {
		t.Fatal(err)
	}
	mp, err := f.Map(1<<20, mmap.ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	copy(mp.Bytes(), "synced")
	if err := f.Datasync(); err != nil {
		t.Fatal(err)
	}
	copy(mp.Bytes()[4096:], "msynced")
	if err := mp.Sync(4096, 7); err != nil {
		t.Fatal(err)
	}
	// Release keeps the bytes, as the real one does, and checks its range.
	if err := mp.Release(0, 8192); err != nil {
		t.Fatal(err)
	}
	if err := mp.Release(1<<20, 1); !errors.Is(err, mmap.ErrRange) {
		t.Errorf("release past the mapping: %v, want ErrRange", err)
	}
	copy(mp.Bytes()[100:], "lost")
	got := make([]byte, 4)
	if _, err := f.ReadAt(got, 100); err != nil || string(got) != "lost" {
		t.Fatalf("read through the file: %q %v", got, err)
	}
	m.Crash()
	if mp.Sync(0, 1) == nil {
		t.Error("a mapping of an earlier boot synced")
	}
	if err := mp.Release(0, 1); !errors.Is(err, ErrStale) {
		t.Errorf("release through a mapping of an earlier boot: %v, want ErrStale", err)
	}
	mp.Unmap()
	if err := mp.Release(0, 1); !errors.Is(err, mmap.ErrClosed) {
		t.Errorf("release after Unmap: %v, want ErrClosed", err)
	}
	b, _ := contents(t, m, "/seg")
	if len(b) != 8192 || !bytes.HasPrefix(b, []byte("synced")) || string(b[4096:4103]) != "msynced" || string(b[100:104]) != "\x00\x00\x00\x00" {
		t.Fatalf("after the crash: %d bytes, %q %q %q", len(b), b[:6], b[4096:4103], b[100:104])
	}
	if m.Mappings() != 0 {
		t.Errorf("%d mappings left", m.Mappings())
	}
}

// The writer stores into the mapping while a syncer copies it: as with a
// real shared mapping, the race detector does not see the mapping's memory.
func TestMemFSMappingConcurrentSync(t *testing.T) {
	m := NewMemFS()
	f := mustWrite(t, m, "/seg", nil, false)
	f.Allocate(1 << 16)
	mp, err := f.Map(1<<16, mmap.ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Unmap()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			f.Datasync()
		}
	}()
	b := mp.Bytes()
	for i := range 200 * 256 {
		b[i%len(b)] = byte(i)
	}
	wg.Wait()
}

func TestMemFSFreezeAndFaults(t *testing.T) {
	m := NewMemFS()
	f := mustWrite(t, m, "/a", []byte("x"), false)
	m.FreezeAtSync(2)
	if err := f.Datasync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Datasync(); !errors.Is(err, ErrDown) {
		t.Fatalf("second sync: %v, want ErrDown", err)
	}
	if _, err := f.Write([]byte("y")); !errors.Is(err, ErrDown) {
		t.Fatalf("write while down: %v", err)
	}
	m.Restart()
	if _, err := f.Write([]byte("y")); !errors.Is(err, ErrStale) {
		t.Fatalf("write through a file of the last boot: %v", err)
	}
	f.Close()

	m.FailNth(OpSync, 1, "/a", syscall.EIO)
	g, err := m.OpenReadWrite("/a")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Datasync(); !errors.Is(err, ErrSyncFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("injected sync failure: %v", err)
	}
	if err := g.Datasync(); !errors.Is(err, ErrSyncFailed) {
		t.Fatalf("a retried sync succeeded: %v", err)
	}
}

// A torn crash keeps every synced byte and, of the unsynced ones, whole
// pages that were written, never bytes that were not.
func TestMemFSCrashTorn(t *testing.T) {
	kept, lost := 0, 0
	for seed := range uint64(64) {
		m := NewMemFS()
		f := mustWrite(t, m, "/f", bytes.Repeat([]byte{1}, 3*tornPage), true)
		if err := m.SyncDir("/"); err != nil {
			t.Fatal(err)
		}
		f.WriteAt(bytes.Repeat([]byte{2}, 2*tornPage), tornPage) // pages 1 and 2, unsynced
		f.WriteAt(bytes.Repeat([]byte{3}, tornPage), 3*tornPage) // page 3 grows the file
		f.Close()
		m.CrashTorn(rand.New(rand.NewPCG(seed, 1)))
		b, _ := contents(t, m, "/f")
		if len(b) != 3*tornPage && len(b) != 4*tornPage {
			t.Fatalf("seed %d: %d bytes", seed, len(b))
		}
		if !bytes.Equal(b[:tornPage], bytes.Repeat([]byte{1}, tornPage)) {
			t.Fatalf("seed %d: a synced page changed", seed)
		}
		for p := 1; p < len(b)/tornPage; p++ {
			page := b[p*tornPage : (p+1)*tornPage]
			old, new := byte(1), byte(2)
			if p == 3 {
				old, new = 0, 3
			}
			switch {
			case bytes.Equal(page, bytes.Repeat([]byte{new}, tornPage)):
				kept++
			case bytes.Equal(page, bytes.Repeat([]byte{old}, tornPage)):
				lost++
			default:
				t.Fatalf("seed %d: page %d holds neither its old nor its new bytes", seed, p)
			}
		}
	}
	if kept == 0 || lost == 0 {
		t.Fatalf("over 64 seeds %d unsynced pages survived and %d did not: not torn", kept, lost)
	}
}

// Volume.Sync makes everything durable at once, data and entries, but
// not a file whose earlier sync failed: that one keeps what it had and the
// sync reports it. A volume of an earlier boot is stale.
func TestMemFSVolumeSync(t *testing.T) {
	m := NewMemFS()
	if err := m.Mkdir("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	v, err := m.OpenVolume("/d")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, m, "/d/a", []byte("one"), false).Close()
	mustWrite(t, m, "/d/bad", []byte("old"), true).Close()
	m.Inject(func(op Op, path string) error {
		if op == OpSync && path == "/d/bad" {
			return errors.New("injected")
		}
		return nil
	})
	f, err := m.OpenReadWrite("/d/bad")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("new"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Datasync(); err == nil {
		t.Fatal("the injected sync failure did not fail")
	}
	f.Close()
	m.Inject(nil)
	if err := v.Sync(); !errors.Is(err, ErrSyncFailed) {
		t.Fatalf("Sync over a file whose sync failed: %v, want ErrSyncFailed", err)
	}
	if n := m.Count(OpSyncFS); n != 1 {
		t.Fatalf("%d syncfs counted", n)
	}
	m.Crash()
	if b, ok := contents(t, m, "/d/a"); !ok || string(b) != "one" {
		t.Errorf("/d/a after the crash: %q (exists %v): the volume sync did not cover it", b, ok)
	}
	if b, _ := contents(t, m, "/d/bad"); string(b) != "old" {
		t.Errorf("/d/bad after the crash: %q, want what its last good sync made durable", b)
	}
	if err := v.Sync(); !errors.Is(err, ErrStale) {
		t.Errorf("a volume of an earlier boot: %v, want ErrStale", err)
	}
}
