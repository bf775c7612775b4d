package partition

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
	"github.com/cockroachdb/pebble/vfs/errorfs"
	"golang.org/x/sys/unix"
)

// fullIndexDisk is the operating system's file system on which every
// write under dir fails with ENOSPC while full() says so.
func fullIndexDisk(dir string, full func() bool) vfs.FS {
	return errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op, path string) error {
		if !strings.HasPrefix(path, dir) {
			return nil
		}
		switch op {
		case errorfs.OpCreate, errorfs.OpLink, errorfs.OpReuseForRewrite, errorfs.OpFilePreallocate,
			errorfs.OpFileWrite, errorfs.OpFileWriteAt:
			if full() {
				return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
			}
		}
		return nil
	}))
}

// syncBuffer is a log destination tests read while the manager writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestIndexOnFullDisk: an index that cannot be opened for want of space
// (opening replays Pebble's write-ahead log, which writes) does not keep the
// broker from starting. It is removed and rebuilt from the segments; if a
// new one does not fit either, the broker runs with the index in memory.
// Either way every batch is there, and a later start on a disk with space
// has it all too.
func TestIndexOnFullDisk(t *testing.T) {
	for _, tc := range []struct {
		name string
		// freed: removing the old index made room for a new one.
		freed bool
		log   string
	}{
		{"space after removing it", true, "removing it (it is derived from the segments)"},
		{"no space at all", false, "running with the index in memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			topic := testTopic(nil)
			m := newManager(t, dir, 1, fsyncNever)
			p := openReplica(t, m, topic, leaderRole(1, 1, []int32{1}, 1))
			for i := 0; i < 50; i++ {
				produce(t, p, plain(3), 1)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}

			indexDir := filepath.Join(dir, "index")
			var removed atomic.Bool
			full := func() bool {
				if !tc.freed {
					return true
				}
				if !removed.Load() {
					if _, err := os.Stat(filepath.Join(indexDir, "CURRENT")); os.IsNotExist(err) {
						removed.Store(true) // the old index is gone: space again
					}
				}
				return !removed.Load()
			}
			var logs syncBuffer
			m2, err := OpenManager(Options{DataDir: dir, Fsync: fsyncNever, NodeID: 1,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)), indexFS: fullIndexDisk(indexDir, full)})
			if err != nil {
				t.Fatalf("starting with a full disk under the index: %v", err)
			}
			defer m2.Close()
			if !strings.Contains(logs.String(), tc.log) {
				t.Fatalf("no log line saying %q in:\n%s", tc.log, logs.String())
			}
			p2 := openReplica(t, m2, topic, leaderRole(1, 1, []int32{1}, 1))
			if end := p2.LogEndOffset(); end != 150 {
				t.Fatalf("log end %d after the restart, want 150", end)
			}
			produce(t, p2, plain(2), 1)
			r, err := p2.Read(75, 1<<20)
			if err != nil || r.Length == 0 || r.BaseOffset > 75 {
				t.Fatalf("read at 75: %+v %v", r, err)
			}
			r.Release()
			if err := m2.Close(); err != nil {
				t.Fatal(err)
			}

			// Space again: the next start has everything.
			m3 := newManager(t, dir, 1, fsyncNever)
			if end := openReplica(t, m3, topic, leaderRole(1, 1, []int32{1}, 1)).LogEndOffset(); end != 152 {
				t.Fatalf("log end %d at the start after, want 152", end)
			}
		})
	}
}

// TestIndexOnFullTmpfs is TestIndexOnFullDisk on a real full file system:
// a small tmpfs (root only) filled after the index was left with a
// write-ahead log to replay.
func TestIndexOnFullTmpfs(t *testing.T) {
	skip := func(why string) {
		if os.Getenv("RUNNEL_TEST_PRIVILEGED") == "require" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	if os.Geteuid() != 0 {
		skip("mounting a small tmpfs to fill needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		skip("cannot mount a tmpfs on " + dir + ": " + err.Error())
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	topic := testTopic(nil)
	m := newManager(t, dir, 1, fsyncNever)
	p := openReplica(t, m, topic, leaderRole(1, 1, []int32{1}, 1))
	for i := 0; i < 50; i++ {
		produce(t, p, plain(3), 1)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// Fill what is left.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 64<<10)); err != nil {
			break
		}
	}
	for {
		if _, err := f.Write(make([]byte, 1)); err != nil {
			break
		}
	}
	f.Close()
	var logs syncBuffer
	m2, err := OpenManager(Options{DataDir: dir, Fsync: fsyncNever, NodeID: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("starting on the full tmpfs: %v", err)
	}
	defer m2.Close()
	if !strings.Contains(logs.String(), "the disk is full") {
		t.Fatalf("no log line about the full disk in:\n%s", logs.String())
	}
	p2, err := m2.Open(topic, 0, leaderRole(1, 1, []int32{1}, 1))
	if err != nil {
		t.Fatalf("opening the partition on the full tmpfs: %v\n%s", err, logs.String())
	}
	if end := p2.LogEndOffset(); end != 150 {
		t.Fatalf("log end %d, want 150", end)
	}
}
