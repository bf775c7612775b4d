package segment_test

// FuzzRecoverSegment lives in package segment_test, not with the other fuzz
// targets in fuzz_test.go: it opens a real index, and package index imports
// package segment, so an internal test importing it would be an import cycle.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/runnel-io/runnel/index"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

// fuzzBatch is one batch of the valid prefix, as the fuzz target finds it.
type fuzzBatch struct {
	pos, size  int
	base, last int64
}

// fuzzValidPrefix walks file the way recovery must: batch after batch while each
// validates and starts at the offset the one before it ends. It returns the
// batches, the prefix length and the offset after it.
func fuzzValidPrefix(file []byte) (batches []fuzzBatch, end int, next int64) {
	for len(file)-end >= segment.HeaderSize {
		h, err := segment.Validate(file[end:])
		if err != nil || h.BaseOffset != next {
			break
		}
		batches = append(batches, fuzzBatch{pos: end, size: h.Size(), base: h.BaseOffset, last: h.LastOffset()})
		end += h.Size()
		next = h.NextOffset()
	}
	return batches, end, next
}

// repairFraming returns a copy of file in which every batch whose
// batchLength fits the bytes left gets magic 2, the base offset that follows
// the batch before it, and a correct CRC, until one does not fit. The other
// header fields are left as they are for the fuzzer to vary.
func repairFraming(file []byte) []byte {
	file = bytes.Clone(file)
	pos, next := 0, int64(0)
	for len(file)-pos >= segment.HeaderSize {
		b := file[pos:]
		size := int(int32(binary.BigEndian.Uint32(b[segment.BatchLengthOffset:]))) + segment.LogOverhead
		if size < segment.HeaderSize || size > len(b) {
			break
		}
		b = b[:size]
		b[segment.MagicOffset] = segment.Magic
		segment.SetBaseOffset(b, next)
		binary.BigEndian.PutUint32(b[segment.CRCOffset:], segment.ComputeCRC(b))
		next += int64(int32(binary.BigEndian.Uint32(b[segment.LastOffsetDeltaOffset:]))) + 1
		pos += size
	}
	return file
}

// fuzzBaseDir returns the folder for the fuzz target's files. While fuzzing
// (-fuzz) it is on /dev/shm when there is one: fsync is free on tmpfs, which
// makes an iteration several times faster. The seed corpus in a plain
// go test runs in the usual temporary folder.
func fuzzBaseDir(f *testing.F) string {
	if fl := flag.Lookup("test.fuzz"); fl != nil && fl.Value.String() != "" {
		if dir, err := os.MkdirTemp("/dev/shm", "runnel-fuzz-"); err == nil {
			f.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return f.TempDir()
}

// isOSError reports whether err comes from the operating system rather than
// from the log's own checks.
func isOSError(err error) bool {
	var errno syscall.Errno
	var pathErr *fs.PathError
	return errors.As(err, &errno) || errors.As(err, &pathErr)
}

func FuzzRecoverSegment(f *testing.F) {
	b0 := testbatch.Make(testbatch.Spec{BaseOffset: 0, Timestamp: 1000, Values: testbatch.Values(3, 8, 1)})
	b3 := testbatch.Make(testbatch.Spec{BaseOffset: 3, Timestamp: 2000, Values: testbatch.Values(1, 20, 2)})
	b4 := testbatch.Make(testbatch.Spec{BaseOffset: 4, Timestamp: 500})
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }
	// withPrefix puts a valid batch before data; repair fixes the framing
	// of data's batches (see repairFraming) so the fuzzer gets past the CRC.
	f.Add(false, false, []byte(nil))
	f.Add(false, false, cat(b0, b3, b4))
	f.Add(true, false, cat(b3, b4))
	f.Add(true, false, cat(b3, make([]byte, 300)))   // reserved zeros after the last batch
	f.Add(true, false, cat(b3, flip(b4, len(b4)-1))) // bad CRC
	f.Add(true, false, cat(b4, b3))                  // out of sequence
	f.Add(false, false, cat(b0, b3[:len(b3)-5]))     // torn tail
	f.Add(false, false, cat(b0, b3, b4[:segment.HeaderSize-1]))
	f.Add(true, false, flip(cat(b3, b4), segment.MagicOffset))
	f.Add(false, false, cat(b3, b4)) // does not start at 0
	f.Add(false, true, cat(b3, b4, flip(b0, segment.LastOffsetDeltaOffset)))

	base := fuzzBaseDir(f)
	db, err := index.Open(filepath.Join(base, "index"), index.Options{Logger: fuzzLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	var partitions atomic.Int64

	f.Fuzz(func(t *testing.T, withPrefix, repair bool, data []byte) {
		if len(data) > 256<<10 {
			t.Skip("input above 256 KiB: keep iterations fast")
		}
		file := data
		if withPrefix {
			file = cat(b0, data)
		}
		if repair {
			file = repairFraming(file)
		}
		batches, end, next := fuzzValidPrefix(file)

		name := fmt.Sprintf("fuzz-%d", partitions.Add(1)) // a fresh, empty index
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, segment.FileName(0))
		if err := os.WriteFile(path, file, 0o644); err != nil {
			t.Fatal(err)
		}
		opts := segment.Options{
			Index:         db.Partition(name),
			SegmentBytes:  1 << 20,
			IndexInterval: 128, // several index entries even in small inputs
			Fsync:         segment.FsyncPolicy{Mode: segment.FsyncNever},
			Logger:        fuzzLogger(),
		}
		l, err := segment.Open(dir, opts)
		if err != nil {
			if isOSError(err) {
				t.Skipf("I/O error: %v", err)
			}
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()

		if got := l.LogEndOffset(); got != next {
			t.Fatalf("log end %d, want %d (valid prefix: %d batches, %d of %d bytes)", got, next, len(batches), end, len(file))
		}
		if l.LogStartOffset() != 0 || len(l.Segments()) != 1 || l.Size() != int64(end) {
			t.Fatalf("start %d, %d segments, size %d; want 0, 1, %d", l.LogStartOffset(), len(l.Segments()), l.Size(), end)
		}
		for _, b := range batches {
			for _, off := range []int64{b.base, b.last} {
				r, err := l.Read(off, 1, next)
				if err != nil {
					t.Fatalf("read %d: %v", off, err)
				}
				if r.Position != int64(b.pos) || r.Length != int64(b.size) || r.BaseOffset != b.base {
					r.Release()
					t.Fatalf("read %d: region at %d, %d bytes, base %d; want %d, %d, %d", off, r.Position, r.Length, r.BaseOffset, b.pos, b.size, b.base)
				}
				got := make([]byte, r.Length)
				_, err = r.File().ReadAt(got, r.Position)
				r.Release()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, file[b.pos:b.pos+b.size]) {
					t.Fatalf("batch at %d reads back different bytes", b.pos)
				}
			}
		}
		// What Close leaves on disk is exactly the valid prefix, and the
		// clean reopen agrees with the recovery.
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		onDisk, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(onDisk, file[:end]) {
			t.Fatalf("after Close the segment holds %d bytes, want the %d-byte valid prefix", len(onDisk), end)
		}
		l2, err := segment.Open(dir, opts)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer l2.Close()
		if got := l2.LogEndOffset(); got != next {
			t.Fatalf("reopen: log end %d, want %d", got, next)
		}
	})
}

func fuzzLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
