package segment_test

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/segment"
)

// killedLog leaves, on a fresh MemFS, what a process killed while appending
// leaves: several segments, the last one past the checkpoint, in the page
// cache only.
func killedLog(t *testing.T) (*vfs.MemFS, *crashIndex) {
	t.Helper()
	fs := vfs.NewMemFS()
	idx := newCrashIndex(fs)
	l, err := segment.Open(plDir, plOptions(fs, idx))
	if err != nil {
		t.Fatal(err)
	}
	for range 40 {
		r, err := l.Append(plBatch(l.LogEndOffset(), 0), testEpoch)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.WaitDurable(context.Background(), r.LastOffset+1); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(l.Segments()); n < 4 {
		t.Fatalf("%d segments, want several", n)
	}
	// Garbage past the last batch, as a batch torn by the kill leaves.
	if _, err := l.Append(plBatch(l.LogEndOffset(), 0), testEpoch); err != nil {
		t.Fatal(err)
	}
	fs.Freeze()
	l.Close()
	fs.Restart()
	if n := fs.OpenFiles(); n != 0 {
		t.Fatalf("%d files open after the kill", n)
	}
	return fs, idx
}

// An Open whose recovery fails releases every segment it opened (files and
// mappings), however far recovery got: the caller (partition reconciling)
// tries again, and each try must not leak a descriptor per segment.
func TestOpenFailureReleasesSegments(t *testing.T) {
	cases := []struct {
		name string
		op   vfs.Op
	}{
		{"mapping a scanned segment", vfs.OpMap},
		{"cutting the torn tail", vfs.OpZero},
		{"syncing what was scanned", vfs.OpSync},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs, idx := killedLog(t)
			if c.op == vfs.OpZero {
				// Tear the last batch so that recovery cuts it.
				tearLast(t, fs)
			}
			for try := 1; try <= 2; try++ {
				fs.FailNth(c.op, 1, "", syscall.EIO)
				if c.op == vfs.OpSync && try == 2 {
					fs.Inject(nil) // the first failure is sticky on its own
				}
				l, err := segment.Open(plDir, plOptions(fs, idx))
				if err == nil {
					l.Close()
					t.Fatalf("try %d: Open succeeded", try)
				}
				if !errors.Is(err, syscall.EIO) {
					t.Fatalf("try %d: Open: %v, want the injected EIO", try, err)
				}
				if n, m := fs.OpenFiles(), fs.Mappings(); n != 0 || m != 0 {
					t.Fatalf("try %d: a failed Open left %d files open and %d mappings", try, n, m)
				}
			}
		})
	}
}

// tearLast overwrites the middle of the last segment's last batch.
func tearLast(t *testing.T, fs *vfs.MemFS) {
	t.Helper()
	ents, err := fs.ReadDir(plDir)
	if err != nil {
		t.Fatal(err)
	}
	last := plDir + "/" + ents[len(ents)-1].Name()
	f, err := fs.OpenReadWrite(last)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Size()
	b := make([]byte, size)
	f.ReadAt(b, 0)
	end := 0
	for end < len(b) {
		h, err := segment.Validate(b[end:])
		if err != nil {
			break
		}
		if end+h.Size() >= len(b) || b[end+h.Size()] == 0 && b[end+h.Size()+8] == 0 {
			f.WriteAt([]byte("torn"), int64(end+h.Size()/2))
			return
		}
		end += h.Size()
	}
	t.Fatal("no batch to tear")
}

// Close while appenders wait for durability: every waiter returns (nil for
// what Close made durable, ErrClosed otherwise), and no flush runs once
// Close has returned.
func TestCloseRacingWaiters(t *testing.T) {
	fs := vfs.NewMemFS()
	idx := newCrashIndex(fs)
	l, err := segment.Open(plDir, plOptions(fs, idx))
	if err != nil {
		t.Fatal(err)
	}
	const appenders = 4
	started := make(chan struct{}, appenders)
	errs := make(chan error, appenders)
	for range appenders {
		go func() {
			first := true
			for {
				r, err := l.Append(plBatch(0, 0), testEpoch)
				if err == nil {
					err = l.WaitDurable(context.Background(), r.LastOffset+1)
				}
				if first {
					started <- struct{}{}
					first = false
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range appenders {
		<-started
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	syncs := fs.Syncs()
	for range appenders {
		if err := <-errs; !errors.Is(err, segment.ErrClosed) {
			t.Errorf("appender ended with %v, want ErrClosed", err)
		}
	}
	if n := fs.Syncs(); n != syncs {
		t.Errorf("%d syncs after Close returned", n-syncs)
	}
	if n := fs.OpenFiles(); n != 0 {
		t.Errorf("%d files open after Close", n)
	}
}
