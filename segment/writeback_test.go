package segment_test

import (
	"os"
	"sync"
	"testing"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/mmap"
	"github.com/runnel-io/runnel/segment"
)

// writebackFS is a MemFS whose files report each StartWriteback.
type writebackFS struct {
	*vfs.MemFS
	mu         sync.Mutex
	writebacks []writeback
}

type writeback struct {
	file   string
	off, n int
}

func newWritebackFS() *writebackFS { return &writebackFS{MemFS: vfs.NewMemFS()} }

func (w *writebackFS) Create(name string, perm os.FileMode) (vfs.File, error) {
	f, err := w.MemFS.Create(name, perm)
	if err != nil {
		return nil, err
	}
	return &writebackFile{File: f, fs: w}, nil
}

func (w *writebackFS) OpenReadWrite(name string) (vfs.File, error) {
	f, err := w.MemFS.OpenReadWrite(name)
	if err != nil {
		return nil, err
	}
	return &writebackFile{File: f, fs: w}, nil
}

type writebackFile struct {
	vfs.File
	fs *writebackFS
}

func (f *writebackFile) StartWriteback(off, n int64) error {
	f.fs.mu.Lock()
	f.fs.writebacks = append(f.fs.writebacks, writeback{file: f.Name(), off: int(off), n: int(n)})
	f.fs.mu.Unlock()
	return f.File.StartWriteback(off, n)
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
		fs := newWritebackFS()
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
