package segment_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/segment"
)

// rwSetup is a compacted log on a MemFS with four sealed segments and an
// active one, every batch durable. It returns the batches as stored.
func rwSetup(t *testing.T, fs *vfs.MemFS, idx *crashIndex) (*segment.Log, [][]byte) {
	t.Helper()
	o := plOptions(fs, idx)
	o.Compacted = true
	o.RetentionBytes = -1
	l, err := segment.Open(plDir, o)
	if err != nil {
		t.Fatal(err)
	}
	var stored [][]byte
	for len(l.Segments()) < 5 {
		b := plBatch(l.LogEndOffset(), 0)
		r, err := l.Append(b, testEpoch)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, stamped(b, r.BaseOffset))
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l, stored
}

func rwReopen(t *testing.T, fs *vfs.MemFS, idx *crashIndex) *segment.Log {
	t.Helper()
	o := plOptions(fs, idx)
	o.Compacted = true
	o.RetentionBytes = -1
	l, err := segment.Open(plDir, o)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	return l
}

// rwKeep is the rewrite of a segment the tests make: every other batch.
func rwKeep(i int) bool { return i%2 == 0 }

// rewriteSegment rewrites sealed segment seg keeping the batches keep
// says, and returns the error of the first step that failed.
func rewriteSegment(l *segment.Log, seg *segment.Segment, keep func(int) bool) error {
	rw, err := l.BeginRewrite(seg)
	if err != nil {
		return err
	}
	defer rw.Abort()
	i := 0
	_, err = seg.ReadBatches(nil, func(h *segment.Header, b []byte) (bool, error) {
		defer func() { i++ }()
		if keep(i) {
			return true, rw.Append(b)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	return rw.Install()
}

// inSegment returns the stored batches of segment i of l (by base offsets).
func inSegment(l *segment.Log, stored [][]byte, i int) (from, to int) {
	segs := l.Segments()
	lo, hi := segs[i].Base(), segs[i+1].Base()
	base := func(b []byte) int64 { h, _ := segment.ParseHeader(b); return h.BaseOffset }
	from = slices.IndexFunc(stored, func(b []byte) bool { return base(b) >= lo })
	to = slices.IndexFunc(stored, func(b []byte) bool { return base(b) >= hi })
	return from, to
}

// logBatches reads every batch of l from its start, through Read (region
// by region, as a fetch does).
func logBatches(t *testing.T, l *segment.Log) [][]byte {
	t.Helper()
	var out [][]byte
	for off := l.LogStartOffset(); off < l.LogEndOffset(); {
		r, err := l.Read(off, 1<<20, l.LogEndOffset())
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		b := make([]byte, r.Length)
		if _, err := r.ReadAt(b, r.Position); err != nil {
			t.Fatal(err)
		}
		r.Release()
		if len(b) == 0 {
			t.Fatalf("read at %d: empty region below the log end %d", off, l.LogEndOffset())
		}
		for len(b) > 0 {
			h := header(t, b)
			out = append(out, b[:h.Size()])
			b = b[h.Size():]
			off = h.NextOffset()
		}
	}
	return out
}

// readEveryOffset reads at every offset of l with a 1-byte limit (so the
// index is used at every position) and checks that the read starts at
// the first batch of want holding an offset at or past it.
func readEveryOffset(t *testing.T, l *segment.Log, want [][]byte) {
	t.Helper()
	for off := l.LogStartOffset(); off < l.LogEndOffset(); off++ {
		r, err := l.Read(off, 1, l.LogEndOffset())
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		b := make([]byte, r.Length)
		r.ReadAt(b, r.Position)
		r.Release()
		i := slices.IndexFunc(want, func(w []byte) bool { wh := header(t, w); return wh.LastOffset() >= off })
		if !bytes.Equal(b, want[i]) {
			t.Fatalf("read at %d: %d bytes, want batch %d (%d bytes)", off, len(b), header(t, want[i]).BaseOffset, len(want[i]))
		}
	}
}

// TestRewriteSegment: a sealed segment rewritten with half its batches
// keeps its base offset and end; reads at removed offsets find the next
// batch kept (in the segment or the next one), reads through the index land
// on batch boundaries of the new file, a region taken before the swap reads
// the old bytes to the end, and the log reopens the same, with its index
// and without.
func TestRewriteSegment(t *testing.T) {
	fs := vfs.NewMemFS()
	idx := newCrashIndex(fs)
	l, stored := rwSetup(t, fs, idx)
	defer func() { l.Close() }()
	segs := l.Segments()
	seg := segs[1]
	if !seg.Acquire() {
		t.Fatal("acquire")
	}
	defer seg.Release()
	from, to := inSegment(l, stored, 1)
	old, err := l.Read(seg.Base(), 1<<20, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	oldBytes := slices.Concat(stored[from:to]...)
	if err := rewriteSegment(l, seg, rwKeep); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, old.Length)
	if _, err := old.ReadAt(got, old.Position); err != nil || !bytes.Equal(got, oldBytes[:old.Length]) {
		t.Fatalf("a region taken before the rewrite reads other bytes after it (%v)", err)
	}
	old.Release()

	var want [][]byte
	for i, b := range stored {
		if i < from || i >= to || rwKeep(i-from) {
			want = append(want, b)
		}
	}
	check := func(what string, l *segment.Log) {
		t.Helper()
		if got := logBatches(t, l); !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("%s: the log holds %d batches, want %d", what, len(got), len(want))
		}
		if s := l.Segments()[1]; s.Base() != seg.Base() || s.NextOffset() != segs[2].Base() {
			t.Fatalf("%s: rewritten segment [%d, %d), want [%d, %d)", what, s.Base(), s.NextOffset(), seg.Base(), segs[2].Base())
		}
		readEveryOffset(t, l, want)
	}
	check("after the rewrite", l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fs.Restart()
	l = rwReopen(t, fs, idx)
	check("reopened", l)
	l.Close()
	fs.Crash()
	idx.crash(false)
	idx.Reset()
	l = rwReopen(t, fs, idx)
	check("reopened without an index", l)
}

// TestRewriteStale: a rewrite whose segment was removed by retention
// before its swap installs nothing and leaves no file behind.
func TestRewriteStale(t *testing.T) {
	fs := vfs.NewMemFS()
	idx := newCrashIndex(fs)
	l, _ := rwSetup(t, fs, idx)
	defer l.Close()
	seg := l.Segments()[0]
	seg.Acquire()
	defer seg.Release()
	rw, err := l.BeginRewrite(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AdvanceLogStart(l.Segments()[1].Base()); err != nil {
		t.Fatal(err)
	}
	if err := rw.Install(); !errors.Is(err, segment.ErrRewriteStale) {
		t.Fatalf("install over a removed segment: %v, want ErrRewriteStale", err)
	}
	ents, _ := fs.ReadDir(plDir)
	for _, e := range ents {
		if bytes.Contains([]byte(e.Name()), []byte(".rewrite")) {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestRewritePowerLoss cuts the power at every sync point of a rewrite
// (strict and torn crashes, the index keeping all its writes or only the
// synced ones, in turn) and reopens: the segment holds either all of its
// old batches or exactly the new ones, every other batch is there, and no
// temporary file is left.
func TestRewritePowerLoss(t *testing.T) {
	fs := vfs.NewMemFS()
	idx := newCrashIndex(fs)
	l, stored := rwSetup(t, fs, idx)
	from, to := inSegment(l, stored, 2)
	seg := l.Segments()[2]
	start := fs.Syncs()
	if err := rewriteSegment(l, seg, rwKeep); err != nil {
		t.Fatal(err)
	}
	n := fs.Syncs() - start
	l.Close()
	if n < 2 {
		t.Fatalf("a rewrite made %d syncs: want the new file's and the directory's", n)
	}
	oldLog := stored
	var newLog [][]byte
	for i, b := range stored {
		if i < from || i >= to || rwKeep(i-from) {
			newLog = append(newLog, b)
		}
	}
	rng := rand.New(rand.NewPCG(15, 1))
	sawOld, sawNew := false, false
	for k := 1; k <= n+1; k++ {
		for mode := 0; mode < 2; mode++ {
			t.Run(fmt.Sprintf("sync%d/mode%d", k, mode), func(t *testing.T) {
				fs := vfs.NewMemFS()
				idx := newCrashIndex(fs)
				l, _ := rwSetup(t, fs, idx)
				seg := l.Segments()[2]
				seg.Acquire()
				fs.FreezeAtSync(k)
				err := rewriteSegment(l, seg, rwKeep)
				seg.Release()
				if err != nil && !fs.Down() {
					t.Fatalf("rewrite failed with the machine up: %v", err)
				}
				fs.Freeze()
				l.Close()
				if mode == 0 {
					fs.Crash()
				} else {
					fs.CrashTorn(rng)
				}
				idx.crash(mode == 1)
				l = rwReopen(t, fs, idx)
				defer l.Close()
				got := logBatches(t, l)
				switch {
				case slices.EqualFunc(got, oldLog, bytes.Equal):
					sawOld = true
					readEveryOffset(t, l, oldLog)
				case slices.EqualFunc(got, newLog, bytes.Equal):
					sawNew = true
					readEveryOffset(t, l, newLog)
				default:
					t.Fatalf("after a crash at sync %d the log holds %d batches: neither the old %d nor the new %d", k, len(got), len(oldLog), len(newLog))
				}
				ents, _ := fs.ReadDir(plDir)
				for _, e := range ents {
					if bytes.Contains([]byte(e.Name()), []byte(".rewrite")) {
						t.Errorf("left behind: %s", e.Name())
					}
				}
			})
		}
	}
	if !sawOld || !sawNew {
		t.Errorf("crash points saw the old log %v, the new one %v: want both", sawOld, sawNew)
	}
}
