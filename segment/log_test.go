package segment_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/runnel-io/runnel/index"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

// env is a broker-like setup: one index database and partition folders.
type env struct {
	t   *testing.T
	dir string
	db  *index.DB
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.openDB()
	t.Cleanup(func() {
		if e.db != nil {
			e.db.Close()
		}
	})
	return e
}

func (e *env) openDB() {
	e.t.Helper()
	db, err := index.Open(filepath.Join(e.dir, "index"), index.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
}

func (e *env) closeDB() {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.db = nil
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (e *env) open(name string, o segment.Options) *segment.Log {
	e.t.Helper()
	o.Index = e.db.Partition(name)
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	l, err := segment.Open(filepath.Join(e.dir, "topics", name), o)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

func appendN(t *testing.T, l *segment.Log, n, recs, size int) []segment.AppendResult {
	t.Helper()
	var out []segment.AppendResult
	for i := 0; i < n; i++ {
		b := testbatch.Make(testbatch.Spec{Timestamp: int64(1000 + i), Values: testbatch.Values(recs, size, byte(i))})
		r, err := l.Append(b, 7)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		out = append(out, r)
	}
	if err := l.WaitDurable(context.Background(), l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	return out
}

// readAll reads every batch from offset from up to the log end.
func readAll(t *testing.T, l *segment.Log, from int64) []segment.Header {
	t.Helper()
	var hs []segment.Header
	off := from
	for off < l.LogEndOffset() {
		r, err := l.Read(off, 1<<20, l.LogEndOffset())
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		buf := make([]byte, r.Length)
		if _, err := r.File().ReadAt(buf, r.Position); err != nil {
			t.Fatal(err)
		}
		r.Release()
		for len(buf) >= segment.HeaderSize {
			h, err := segment.Validate(buf)
			if errors.Is(err, segment.ErrShortBatch) {
				break
			}
			if err != nil {
				t.Fatalf("batch at offset %d: %v", off, err)
			}
			if h.LastOffset() >= off {
				hs = append(hs, h)
				off = h.NextOffset()
			}
			buf = buf[h.Size():]
		}
	}
	return hs
}

func TestAppendReadReopen(t *testing.T) {
	e := newEnv(t)
	l := e.open("t-0", segment.Options{SegmentBytes: 64 << 10})
	res := appendN(t, l, 200, 3, 100)
	if got := l.LogEndOffset(); got != 600 {
		t.Fatalf("log end %d, want 600", got)
	}
	if n := len(l.Segments()); n < 2 {
		t.Fatalf("expected rolls, have %d segments", n)
	}
	for i, r := range res {
		if r.BaseOffset != int64(i*3) || r.LastOffset != int64(i*3+2) {
			t.Fatalf("batch %d got offsets %d..%d", i, r.BaseOffset, r.LastOffset)
		}
	}
	hs := readAll(t, l, 0)
	if len(hs) != 200 {
		t.Fatalf("read %d batches, want 200", len(hs))
	}
	for i, h := range hs {
		if h.BaseOffset != int64(i*3) || h.PartitionLeaderEpoch != 7 {
			t.Fatalf("batch %d: base %d epoch %d", i, h.BaseOffset, h.PartitionLeaderEpoch)
		}
	}
	// Every offset, including mid-batch ones, finds its batch.
	for off := int64(0); off < 600; off += 7 {
		r, err := l.Read(off, 1, 600)
		if err != nil {
			t.Fatal(err)
		}
		if r.BaseOffset > off || r.BaseOffset+3 <= off {
			t.Fatalf("offset %d: region starts at batch %d", off, r.BaseOffset)
		}
		r.Release()
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	e.closeDB()
	e.openDB()
	l = e.open("t-0", segment.Options{SegmentBytes: 64 << 10})
	defer l.Close()
	if got := l.LogEndOffset(); got != 600 {
		t.Fatalf("after reopen: log end %d, want 600", got)
	}
	appendN(t, l, 1, 1, 10)
	if hs := readAll(t, l, 0); len(hs) != 201 {
		t.Fatalf("after reopen: %d batches", len(hs))
	}
}

func TestReadBounds(t *testing.T) {
	e := newEnv(t)
	l := e.open("t-0", segment.Options{})
	defer l.Close()
	appendN(t, l, 10, 2, 50)
	if _, err := l.Read(21, 100, 20); !errors.Is(err, segment.ErrOffsetOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
	r, err := l.Read(20, 100, 20)
	if err != nil || r.Length != 0 {
		t.Fatalf("read at end: %v len %d", err, r.Length)
	}
	r, err = l.Read(0, 1<<20, 6) // limit at batch boundary 6
	if err != nil {
		t.Fatal(err)
	}
	one := testbatch.Make(testbatch.Spec{Timestamp: 1000, Values: testbatch.Values(2, 50, 0)})
	if r.Length != int64(3*len(one)) {
		t.Fatalf("limit 6: %d bytes, want %d", r.Length, 3*len(one))
	}
	r.Release()
	r, err = l.Read(0, 1, 20) // maxBytes 1 still returns the first batch whole
	if err != nil || r.Length != int64(len(one)) {
		t.Fatalf("maxBytes 1: %v len %d want %d", err, r.Length, len(one))
	}
	r.Release()
}

func TestTruncateAndRetention(t *testing.T) {
	e := newEnv(t)
	l := e.open("t-0", segment.Options{SegmentBytes: 4 << 10, RetentionAge: -1})
	appendN(t, l, 100, 1, 200)
	if err := l.TruncateTo(55); err != nil {
		t.Fatal(err)
	}
	if l.LogEndOffset() != 55 {
		t.Fatalf("after truncate: log end %d", l.LogEndOffset())
	}
	appendN(t, l, 5, 1, 200)
	hs := readAll(t, l, 0)
	if len(hs) != 60 || hs[59].BaseOffset != 59 {
		t.Fatalf("after truncate+append: %d batches", len(hs))
	}
	l.Close()
	e.closeDB()
	e.openDB()
	l = e.open("t-0", segment.Options{SegmentBytes: 4 << 10, RetentionBytes: 8 << 10, RetentionAge: -1})
	defer l.Close()
	if l.LogEndOffset() != 60 {
		t.Fatalf("reopen after truncate: %d", l.LogEndOffset())
	}
	n, err := l.ApplyRetention()
	if err != nil || n == 0 {
		t.Fatalf("retention removed %d: %v", n, err)
	}
	if l.Size() < 8<<10-4<<10 || l.LogStartOffset() == 0 {
		t.Fatalf("after retention: size %d start %d", l.Size(), l.LogStartOffset())
	}
	if _, err := l.Read(0, 100, 60); !errors.Is(err, segment.ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	if hs := readAll(t, l, l.LogStartOffset()); int64(len(hs)) != 60-l.LogStartOffset() {
		t.Fatalf("after retention read %d", len(hs))
	}
	var buf bytes.Buffer
	_ = buf
}

func TestResetTo(t *testing.T) {
	e := newEnv(t)
	l := e.open("r-0", segment.Options{SegmentBytes: 4 << 10, RetentionAge: -1})
	appendN(t, l, 50, 1, 200)
	if err := l.ResetTo(40); !errors.Is(err, segment.ErrOffsetOutOfRange) {
		t.Fatalf("reset below the log end: %v", err)
	}
	if err := l.ResetTo(1000); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 1000 || l.LogEndOffset() != 1000 || len(l.Segments()) != 1 {
		t.Fatalf("after reset: start %d end %d segments %d", l.LogStartOffset(), l.LogEndOffset(), len(l.Segments()))
	}
	if _, err := l.Read(10, 100, 1000); !errors.Is(err, segment.ErrOffsetOutOfRange) {
		t.Fatalf("read of a reset offset: %v", err)
	}
	b := testbatch.Make(testbatch.Spec{Values: testbatch.Values(3, 10, 1)})
	segment.SetBaseOffset(b, 1000)
	if _, err := l.AppendReplica(b); err != nil {
		t.Fatal(err)
	}
	l.Close()
	e.closeDB()
	e.openDB()
	l = e.open("r-0", segment.Options{SegmentBytes: 4 << 10, RetentionAge: -1})
	defer l.Close()
	if l.LogStartOffset() != 1000 || l.LogEndOffset() != 1003 {
		t.Fatalf("reopened: start %d end %d", l.LogStartOffset(), l.LogEndOffset())
	}
	if hs := readAll(t, l, 1000); len(hs) != 1 || hs[0].BaseOffset != 1000 {
		t.Fatalf("reopened read %+v", hs)
	}
}
