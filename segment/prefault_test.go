package segment_test

import (
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/mmap"
	"github.com/runnel-io/runnel/segment"
)

// populateFS is a MemFS whose mappings report each Populate, with the
// size of the file (the blocks Allocate reserved) when it was called, and
// whose files report each StartWriteback.
type populateFS struct {
	*vfs.MemFS
	mu         sync.Mutex
	calls      []populateCall
	writebacks []populateCall
	seen       chan struct{} // a token per call
	gate       chan struct{} // if set, Populate waits for it to close
}

type populateCall struct {
	file          string
	off, n        int
	fileSize      int64
	mappingLength int
}

func newPopulateFS() *populateFS {
	return &populateFS{MemFS: vfs.NewMemFS(), seen: make(chan struct{}, 1<<16)}
}

func (p *populateFS) Create(name string, perm os.FileMode) (vfs.File, error) {
	f, err := p.MemFS.Create(name, perm)
	if err != nil {
		return nil, err
	}
	return &populateFile{File: f, fs: p}, nil
}

func (p *populateFS) OpenReadWrite(name string) (vfs.File, error) {
	f, err := p.MemFS.OpenReadWrite(name)
	if err != nil {
		return nil, err
	}
	return &populateFile{File: f, fs: p}, nil
}

func (p *populateFS) snapshot() []populateCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]populateCall(nil), p.calls...)
}

type populateFile struct {
	vfs.File
	fs *populateFS
}

func (f *populateFile) StartWriteback(off, n int64) error {
	f.fs.mu.Lock()
	f.fs.writebacks = append(f.fs.writebacks, populateCall{file: f.Name(), off: int(off), n: int(n)})
	f.fs.mu.Unlock()
	return f.File.StartWriteback(off, n)
}

func (f *populateFile) Map(length int, mode mmap.Mode) (vfs.Mapping, error) {
	m, err := f.File.Map(length, mode)
	if err != nil {
		return nil, err
	}
	return &populateMapping{Mapping: m, f: f}, nil
}

type populateMapping struct {
	vfs.Mapping
	f *populateFile
}

func (m *populateMapping) Populate(off, n int) error {
	size, err := m.f.Size()
	if err != nil {
		return err
	}
	m.f.fs.mu.Lock()
	m.f.fs.calls = append(m.f.fs.calls, populateCall{file: m.f.Name(), off: off, n: n, fileSize: size, mappingLength: len(m.Bytes())})
	m.f.fs.mu.Unlock()
	m.f.fs.seen <- struct{}{}
	if m.f.fs.gate != nil {
		<-m.f.fs.gate
	}
	return m.Mapping.Populate(off, n)
}

// TestPrefault: with Prefault set, an append hands the bytes past it to a
// helper that faults them in: the first append of a segment the whole
// Prefault past its end, on blocks the file has; while that helper runs
// no other starts; the next starts where the last range ended or at the
// log end, whichever is later; a rolled segment starts again. Under
// FsyncAlways the default is none, as is a negative Prefault.
func TestPrefault(t *testing.T) {
	const ahead = 64 << 10
	batch := testbatch.Make(testbatch.Spec{Timestamp: 1, Values: testbatch.Values(8, 1000, 1)})
	fs := newPopulateFS()
	fs.gate = make(chan struct{})
	l, err := segment.Open(plDir, segment.Options{
		Index: newCrashIndex(fs.MemFS), FS: fs, SegmentBytes: 256 << 10, Prefault: ahead,
		Fsync: segment.FsyncPolicy{Mode: segment.FsyncNever}, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	active := func() string { return plDir + "/" + segment.FileName(l.Segments()[len(l.Segments())-1].Base()) }
	next := func() populateCall {
		t.Helper()
		select {
		case <-fs.seen:
		case <-time.After(10 * time.Second): // an end that should come at once
			t.Fatal("no Populate call")
		}
		calls := fs.snapshot()
		return calls[len(calls)-1]
	}
	check := func(c populateCall, file string, off int64) {
		t.Helper()
		if c.file != file || int64(c.off) != off || int64(c.off+c.n) > c.fileSize || c.n <= 0 || c.n > ahead {
			t.Fatalf("Populate %+v; want %s from %d, at most %d bytes, within the file", c, file, off, ahead)
		}
	}

	r, err := l.Append(batch, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	end := r.Position + int64(len(batch))
	first := next()
	check(first, active(), end)
	if first.n != ahead {
		t.Fatalf("first range %d bytes, want %d", first.n, ahead)
	}
	// The helper is held: appends past half the range start no other.
	for range 12 {
		if r, err = l.Append(batch, testEpoch); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(fs.snapshot()); n != 1 {
		t.Fatalf("%d Populate calls while the first was running, want 1", n)
	}
	close(fs.gate)
	for segment.PrefaultBusy(l) {
		runtime.Gosched()
	}
	// The helper has returned: the next append starts the next range at
	// its own end, past the first range.
	if r, err = l.Append(batch, testEpoch); err != nil {
		t.Fatal(err)
	}
	check(next(), active(), r.Position+int64(len(batch)))
	// A roll: the new segment's first append starts its own.
	for len(l.Segments()) == 1 {
		if r, err = l.Append(batch, testEpoch); err != nil {
			t.Fatal(err)
		}
	}
	for {
		c := next()
		if c.file == active() {
			check(c, active(), r.Position+int64(len(batch)))
			break
		}
	}

	for _, tc := range []struct {
		name     string
		mode     segment.FsyncMode
		prefault int64
	}{
		{"fsync always, default", segment.FsyncAlways, 0},
		{"fsync never, negative", segment.FsyncNever, -1},
	} {
		fs := newPopulateFS()
		l, err := segment.Open(plDir, segment.Options{
			Index: newCrashIndex(fs.MemFS), FS: fs, SegmentBytes: 1 << 20, Prefault: tc.prefault,
			Fsync: segment.FsyncPolicy{Mode: tc.mode}, Logger: quietLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		for range 100 {
			if _, err := l.Append(batch, testEpoch); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		if n := len(fs.snapshot()); n != 0 {
			t.Errorf("%s: %d Populate calls, want none", tc.name, n)
		}
	}
}

// TestStartWriteback: under FsyncAlways appends start the writeback of
// their bytes in whole pages, each range where the one before ended and at
// least 256 KiB long, so a big batch starts its own at once and small ones
// start theirs together; what is left is under 256 KiB and a page; a roll
// starts again at the new segment's beginning. Under FsyncNever none is
// started.
func TestStartWriteback(t *testing.T) {
	const least = 256 << 10
	ps := mmap.PageSize()
	for _, tc := range []struct {
		name    string
		mode    segment.FsyncMode
		records int
	}{
		{"fsync always, 1 KiB batches", segment.FsyncAlways, 1},
		{"fsync always, 300 KiB batches", segment.FsyncAlways, 300},
		{"fsync never", segment.FsyncNever, 1},
	} {
		batch := testbatch.Make(testbatch.Spec{Timestamp: 1, Values: testbatch.Values(tc.records, 1000, 1)})
		fs := newPopulateFS()
		l, err := segment.Open(plDir, segment.Options{
			Index: newCrashIndex(fs.MemFS), FS: fs, SegmentBytes: 3 << 20,
			Fsync: segment.FsyncPolicy{Mode: tc.mode}, Logger: quietLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		ends := map[string]int{} // each file's appended end
		var appends, rolls int
		for total := 0; total < 5<<20; total += len(batch) {
			r, err := l.Append(batch, testEpoch)
			if err != nil {
				t.Fatal(err)
			}
			if r.Position == 0 && total > 0 {
				rolls++
			}
			ends[plDir+"/"+segment.FileName(r.Segment)] = int(r.Position) + len(batch)
			appends++
		}
		l.Close()
		fs.mu.Lock()
		got := fs.writebacks
		fs.mu.Unlock()
		if tc.mode != segment.FsyncAlways {
			if len(got) != 0 {
				t.Errorf("%s: %d writebacks, want none", tc.name, len(got))
			}
			continue
		}
		if rolls == 0 {
			t.Fatalf("%s: no roll", tc.name)
		}
		next := map[string]int{}
		for i, c := range got {
			if c.off != next[c.file] || c.n < least || (c.off+c.n)%ps != 0 || c.off+c.n > ends[c.file] {
				t.Fatalf("%s: writeback %d %+v; want it to start at %d, cover %d bytes or more, end on a page boundary, before the file's end %d",
					tc.name, i, c, next[c.file], least, ends[c.file])
			}
			next[c.file] = c.off + c.n
		}
		for file, end := range ends {
			if left := end - next[file]; left >= least+ps {
				t.Errorf("%s: %s: %d bytes past the last writeback, want under %d", tc.name, file, left, least+ps)
			}
		}
		if tc.records == 300 && len(got) < appends-rolls-len(ends) {
			t.Errorf("%s: %d writebacks for %d appends: big batches should start theirs at once", tc.name, len(got), appends)
		}
	}
}
