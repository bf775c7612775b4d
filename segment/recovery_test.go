package segment_test

// Recovery tests. A crash is simulated by copying what is on disk while the
// log is still open (env.crash): the copy holds what a process killed at that
// moment leaves behind, namely the segment files as the page cache holds them
// (mapped stores included, with the zeros reserved ahead of the writer) and
// the index as far as Pebble has written it. The copy is then damaged on
// purpose (torn, zeroed, bit-flipped, garbage, missing index) and opened.
//
// Many cases of one test share one crash image and one index database: each
// case gets its own partition name, a copy of the damaged segment files and
// the image's checkpoint, which keeps hundreds of recoveries fast.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

// testEpoch is the leader epoch these tests append with.
const testEpoch = 7

// batchAt returns the batch the tests append at offset base: recs records of
// size bytes whose contents and timestamps derive from base, so that what was
// written at any offset can be rebuilt.
func batchAt(base int64, recs, size int) []byte {
	return testbatch.Make(testbatch.Spec{
		Timestamp: 10_000 + base,
		Values:    testbatch.Values(recs, size, byte(base*7+3)),
	})
}

// stamped returns b as the log stores it at base: baseOffset and
// partitionLeaderEpoch rewritten, every other byte as appended.
func stamped(b []byte, base int64) []byte {
	out := bytes.Clone(b)
	segment.SetBaseOffset(out, base)
	segment.SetPartitionLeaderEpoch(out, testEpoch)
	return out
}

// appendBatches appends n batches (batchAt) at the log end, waits until they
// are durable and returns them as stored.
func appendBatches(t *testing.T, l *segment.Log, n, recs, size int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := 0; i < n; i++ {
		base := l.LogEndOffset()
		b := batchAt(base, recs, size)
		r, err := l.Append(b, testEpoch)
		if err != nil {
			t.Fatalf("append at %d: %v", base, err)
		}
		if r.BaseOffset != base {
			t.Fatalf("append at log end %d got base offset %d", base, r.BaseOffset)
		}
		out = append(out, stamped(b, base))
	}
	if err := l.WaitDurable(context.Background(), l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	return out
}

func header(t *testing.T, b []byte) segment.Header {
	t.Helper()
	h, err := segment.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// endOffset is the offset after the batches bs, which start at start.
func endOffset(t *testing.T, start int64, bs [][]byte) int64 {
	t.Helper()
	if len(bs) == 0 {
		return start
	}
	h := header(t, bs[len(bs)-1])
	return h.NextOffset()
}

// readBatches returns the raw bytes of every batch from offset from (a batch
// boundary) to the log end, in order, failing on a gap or a bad batch.
func readBatches(t *testing.T, l *segment.Log, from int64) [][]byte {
	t.Helper()
	var out [][]byte
	end := l.LogEndOffset()
	for off := from; off < end; {
		r, err := l.Read(off, 64<<10, end)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		buf := make([]byte, r.Length)
		_, err = r.File().ReadAt(buf, r.Position)
		r.Release()
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		before := off
		for len(buf) >= segment.HeaderSize {
			h, err := segment.Validate(buf)
			if errors.Is(err, segment.ErrShortBatch) {
				break // the region was cut by maxBytes
			}
			if err != nil {
				t.Fatalf("batch at offset %d: %v", off, err)
			}
			if h.BaseOffset != off {
				t.Fatalf("expected a batch at offset %d, found one at %d", off, h.BaseOffset)
			}
			out = append(out, buf[:h.Size()])
			off = h.NextOffset()
			buf = buf[h.Size():]
		}
		if off == before {
			t.Fatalf("read at %d below the log end %d returned no whole batch", off, end)
		}
	}
	return out
}

// checkLog asserts that the log holds exactly want from offset start,
// byte for byte, ends right after it, and reads nothing past its end.
func checkLog(t *testing.T, l *segment.Log, start int64, want [][]byte) {
	t.Helper()
	end := endOffset(t, start, want)
	if got := l.LogEndOffset(); got != end {
		t.Fatalf("log end offset %d, want %d", got, end)
	}
	got := readBatches(t, l, start)
	if len(got) != len(want) {
		t.Fatalf("read %d batches from %d, want %d", len(got), start, len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d (offset %d) differs from what was appended", i, header(t, want[i]).BaseOffset)
		}
	}
	r, err := l.Read(end, 1<<20, math.MaxInt64)
	if err != nil || r.Length != 0 {
		t.Fatalf("read at the log end %d: %d bytes, err %v; want nothing", end, r.Length, err)
	}
	r.Release()
	if _, err := l.Read(end+1, 1<<20, math.MaxInt64); !errors.Is(err, segment.ErrOffsetOutOfRange) {
		t.Fatalf("read past the log end: err %v, want ErrOffsetOutOfRange", err)
	}
}

// logSink captures a logger's records as JSON lines.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the captured records whose message is msg.
func (s *logSink) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(s.buf.Bytes(), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// Messages the recovery tests look for.
const (
	msgRecovered  = "recovered partition log"
	msgCutTail    = "recovery: cutting a torn or corrupt tail"
	msgRemovedSeg = "recovery: removing a segment after the cut"
)

func (e *env) partDir(name string) string { return filepath.Join(e.dir, "topics", name) }

func (e *env) segPath(name string, base int64) string {
	return filepath.Join(e.partDir(name), segment.FileName(base))
}

// fork returns a new env over a copy of e's files as they are now, the index
// database included once Pebble has written out its log. Open logs of e keep
// working on e's files.
func (e *env) fork() *env {
	e.t.Helper()
	if err := e.db.Sync(); err != nil {
		e.t.Fatal(err)
	}
	c := &env{t: e.t, dir: e.t.TempDir()}
	copyTree(e.t, e.dir, c.dir)
	c.openDB()
	e.t.Cleanup(func() {
		if c.db != nil {
			c.db.Close()
		}
	})
	return c
}

// crash simulates kill -9 of the process holding e and its open logs ls: it
// returns a new env over the files they leave behind. The originals are closed
// afterwards (which touches only e's files) and must not be used again.
func (e *env) crash(ls ...*segment.Log) *env {
	e.t.Helper()
	c := e.fork()
	for _, l := range ls {
		l.Close()
	}
	e.closeDB()
	return c
}

// indexImage copies e's index database as Pebble has written it so far, for
// useIndex to bring back later: a stale index, as after Pebble lost its
// unsynced tail.
func (e *env) indexImage() string {
	e.t.Helper()
	if err := e.db.Sync(); err != nil {
		e.t.Fatal(err)
	}
	dir := e.t.TempDir()
	copyTree(e.t, filepath.Join(e.dir, "index"), dir)
	return dir
}

// useIndex replaces e's index database by a copy of img.
func (e *env) useIndex(img string) {
	e.t.Helper()
	e.closeDB()
	dir := filepath.Join(e.dir, "index")
	if err := os.RemoveAll(dir); err != nil {
		e.t.Fatal(err)
	}
	copyTree(e.t, img, dir)
	e.openDB()
}

// dropIndex deletes e's index database, as an operator removing the folder.
func (e *env) dropIndex() {
	e.t.Helper()
	e.closeDB()
	if err := os.RemoveAll(filepath.Join(e.dir, "index")); err != nil {
		e.t.Fatal(err)
	}
	e.openDB()
}

// installCase writes a partition folder name holding the segment files segs
// (base offset → contents) and gives it checkpoint ck, if any.
func (e *env) installCase(name string, segs map[int64][]byte, ck *segment.Checkpoint) {
	e.t.Helper()
	if err := os.MkdirAll(e.partDir(name), 0o755); err != nil {
		e.t.Fatal(err)
	}
	for base, b := range segs {
		if err := os.WriteFile(e.segPath(name, base), b, 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	if ck != nil {
		if err := e.db.Partition(name).SetCheckpoint(*ck, false); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) checkpoint(name string) segment.Checkpoint {
	e.t.Helper()
	ck, ok, err := e.db.Partition(name).Checkpoint()
	if err != nil || !ok {
		e.t.Fatalf("checkpoint of %s: ok %v, err %v", name, ok, err)
	}
	return ck
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

// segmentBases lists the segment files in dir by base offset, in order.
func segmentBases(t *testing.T, dir string) []int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var bases []int64
	for _, ent := range ents {
		base, ok := segment.ParseFileName(ent.Name())
		if !ok {
			t.Fatalf("unexpected file %s in %s", ent.Name(), dir)
		}
		bases = append(bases, base)
	}
	return bases
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func allZero(b []byte) bool { return !bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }) }

// size is the total length of bs.
func size(bs [][]byte) int {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	return n
}

// intactPrefix returns how many of the batches want, laid out from the start
// of got, are still byte-identical in got.
func intactPrefix(want [][]byte, got []byte) int {
	pos := 0
	for i, b := range want {
		if pos+len(b) > len(got) || !bytes.Equal(got[pos:pos+len(b)], b) {
			return i
		}
		pos += len(b)
	}
	return len(want)
}

// checkCutDurable asserts that the segment file holds nothing but zeros past
// the end of its data, so the cut bytes cannot come back.
func checkCutDurable(t *testing.T, path string, dataEnd int) {
	t.Helper()
	b := readFile(t, path)
	if len(b) < dataEnd {
		t.Fatalf("%s: %d bytes, shorter than its data (%d)", path, len(b), dataEnd)
	}
	if !allZero(b[dataEnd:]) {
		t.Fatalf("%s: non-zero bytes past the end of its data at %d", path, dataEnd)
	}
}

// checkCutWarning asserts whether recovery warned about cutting segment path
// at position pos.
func checkCutWarning(t *testing.T, sink *logSink, path string, pos int, want bool) {
	t.Helper()
	recs := sink.records(t, msgCutTail)
	if !want {
		if len(recs) != 0 {
			t.Fatalf("unexpected warning about cutting zeros: %v", recs)
		}
		return
	}
	if len(recs) != 1 {
		t.Fatalf("%d %q records, want 1", len(recs), msgCutTail)
	}
	r := recs[0]
	if r["level"] != "WARN" || r["segment"] != path || r["position"] != float64(pos) {
		t.Fatalf("cut warning %v: want level WARN, segment %s, position %d", r, path, pos)
	}
}

// crashImage appends batches with fsync=always and crashes: first batches
// are appended and, with cleanFirst, the log is closed and reopened (so the
// checkpoint sits after them), then last is appended. It returns the image and
// everything appended.
func crashImage(t *testing.T, o segment.Options, first func(*segment.Log) [][]byte, cleanFirst bool, last func(*segment.Log) [][]byte) (*env, [][]byte) {
	t.Helper()
	e := newEnv(t)
	l := e.open("p", o)
	want := first(l)
	if cleanFirst {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = e.open("p", o)
	}
	want = append(want, last(l)...)
	return e.crash(l), want
}

// TestRecoverTornLastBatch cuts the last of five acknowledged batches at every
// byte, by truncating the file there or by zeroing the rest of the batch (a
// torn mapped write: the reserved zeros remain). Recovery must keep exactly
// the four whole batches, byte for byte, zero what it cut, warn only when it
// cut more than zeros, and let appends continue at the cut.
func TestRecoverTornLastBatch(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cleanFirst bool
	}{
		{"checkpoint at segment start", false},
		{"checkpoint at last batch", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, want := crashImage(t, segment.Options{SegmentBytes: 1 << 20}, batchesT(t, 4, 2, 40), tc.cleanFirst, batchesT(t, 1, 2, 20))
			ck := c.checkpoint("p")
			img := readFile(t, c.segPath("p", 0))
			keep := want[:len(want)-1]
			start, end := size(keep), size(want)
			if !bytes.Equal(img[:end], bytes.Join(want, nil)) {
				t.Fatal("the crash image does not hold what was appended")
			}
			if tc.cleanFirst && ck.Position != int64(start) {
				t.Fatalf("checkpoint at %d, want %d", ck.Position, start)
			}
			for _, mode := range []string{"truncated", "zeroed"} {
				for cut := start; cut <= end; cut++ {
					var damaged []byte
					if mode == "truncated" {
						damaged = bytes.Clone(img[:cut])
					} else {
						damaged = bytes.Clone(img)
						clear(damaged[cut:end])
					}
					t.Run(fmt.Sprintf("%s/at=%d", mode, cut-start), func(t *testing.T) {
						name := fmt.Sprintf("%s-%d", mode, cut)
						c.installCase(name, map[int64][]byte{0: damaged}, &ck)
						sink := &logSink{}
						l := c.open(name, segment.Options{SegmentBytes: 1 << 20, Logger: sink.logger()})
						defer l.Close()
						expect := keep
						if intactPrefix(want, damaged) == len(want) {
							expect = want // nothing of the last batch was lost
						}
						checkLog(t, l, 0, expect)
						checkCutDurable(t, c.segPath(name, 0), size(expect))
						checkCutWarning(t, sink, c.segPath(name, 0), start, size(expect) == start && !allZero(damaged[start:]))
						more := appendBatches(t, l, 1, 1, 10)
						checkLog(t, l, 0, append(append([][]byte(nil), expect...), more...))
					})
				}
			}
			// An append stores the batch length last: killed just before
			// that store, every other byte of the batch is in place, its
			// base offset and epoch included, and the length reads zero.
			// Recovery must cut it.
			t.Run("length-not-stored", func(t *testing.T) {
				damaged := bytes.Clone(img)
				clear(damaged[start+segment.BatchLengthOffset : start+segment.PartitionLeaderEpochOffset])
				c.installCase("length", map[int64][]byte{0: damaged}, &ck)
				sink := &logSink{}
				l := c.open("length", segment.Options{SegmentBytes: 1 << 20, Logger: sink.logger()})
				defer l.Close()
				checkLog(t, l, 0, keep)
				checkCutDurable(t, c.segPath("length", 0), size(keep))
				checkCutWarning(t, sink, c.segPath("length", 0), start, true)
			})
		})
	}
}

// batchesT is batches with a test to report to.
func batchesT(t *testing.T, n, recs, size int) func(*segment.Log) [][]byte {
	return func(l *segment.Log) [][]byte { return appendBatches(t, l, n, recs, size) }
}

// TestRecoverBitFlipLastBatch flips one bit in each header byte and in many
// record bytes of the last batch. Recovery must cut that batch (its length,
// magic, CRC or base offset check fails) and keep the others. The one
// exception is partitionLeaderEpoch: in RecordBatch v2 it is outside the CRC
// so brokers can rewrite it, and no check can see a flip there; the batch
// stays, with the flipped epoch.
func TestRecoverBitFlipLastBatch(t *testing.T) {
	c, want := crashImage(t, segment.Options{SegmentBytes: 1 << 20}, batchesT(t, 3, 2, 40), false, batchesT(t, 1, 4, 40))
	ck := c.checkpoint("p")
	img := readFile(t, c.segPath("p", 0))
	keep := want[:len(want)-1]
	start, end := size(keep), size(want)
	var positions []int
	for p := 0; p < segment.HeaderSize; p++ {
		positions = append(positions, p)
	}
	for p := segment.HeaderSize; p < end-start; p += 3 {
		positions = append(positions, p)
	}
	positions = append(positions, end-start-1)
	for _, p := range positions {
		bit := byte(1) << (p % 8)
		t.Run(fmt.Sprintf("byte=%d/bit=%d", p, p%8), func(t *testing.T) {
			damaged := bytes.Clone(img)
			damaged[start+p] ^= bit
			name := fmt.Sprintf("flip-%d", p)
			c.installCase(name, map[int64][]byte{0: damaged}, &ck)
			sink := &logSink{}
			l := c.open(name, segment.Options{SegmentBytes: 1 << 20, Logger: sink.logger()})
			defer l.Close()
			path := c.segPath(name, 0)
			if p >= segment.PartitionLeaderEpochOffset && p < segment.MagicOffset {
				flipped := bytes.Clone(want[len(want)-1])
				flipped[p] ^= bit
				checkLog(t, l, 0, append(append([][]byte(nil), keep...), flipped))
				checkCutWarning(t, sink, path, 0, false)
				return
			}
			checkLog(t, l, 0, keep)
			checkCutDurable(t, path, start)
			checkCutWarning(t, sink, path, start, true)
		})
	}
}

// TestRecoverCorruptBatchMidSegment damages a batch in the middle of the active
// segment, after the checkpoint: the log is cut at that batch, the valid
// batches after it go too, and the warning names the segment and position.
func TestRecoverCorruptBatchMidSegment(t *testing.T) {
	c, want := crashImage(t, segment.Options{SegmentBytes: 1 << 20}, batchesT(t, 3, 2, 40), true, batchesT(t, 6, 2, 40))
	ck := c.checkpoint("p")
	img := readFile(t, c.segPath("p", 0))
	if ck.Position != int64(size(want[:3])) {
		t.Fatalf("checkpoint at %d, want %d", ck.Position, size(want[:3]))
	}
	const bad = 5 // past the checkpoint, with valid batches after it
	at := size(want[:bad])
	for _, tc := range []struct {
		name string
		pos  int // in the batch
	}{
		{"base offset", segment.BaseOffsetOffset + 7},
		{"length", segment.BatchLengthOffset + 3},
		{"magic", segment.MagicOffset},
		{"crc", segment.CRCOffset + 2},
		{"attributes", segment.AttributesOffset + 1},
		{"record count", segment.RecordCountOffset + 3},
		{"record", segment.HeaderSize + 20},
		{"last byte", len(want[bad]) - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			damaged := bytes.Clone(img)
			damaged[at+tc.pos] ^= 0x10
			name := "mid-" + tc.name
			c.installCase(name, map[int64][]byte{0: damaged}, &ck)
			sink := &logSink{}
			l := c.open(name, segment.Options{SegmentBytes: 1 << 20, Logger: sink.logger()})
			defer l.Close()
			path := c.segPath(name, 0)
			checkLog(t, l, 0, want[:bad])
			checkCutDurable(t, path, at)
			checkCutWarning(t, sink, path, at, true)
		})
	}
}

// TestRecoverZeroedTail zeroes the last n bytes of the data in the active
// segment: the log is cut at the first batch that lost a byte that was not
// already zero, silently when everything from there on is zero (that is what
// reserved space looks like), with a warning otherwise.
func TestRecoverZeroedTail(t *testing.T) {
	c, want := crashImage(t, segment.Options{SegmentBytes: 1 << 20}, batchesT(t, 6, 2, 30), false, batchesT(t, 0, 0, 0))
	ck := c.checkpoint("p")
	img := readFile(t, c.segPath("p", 0))
	end := size(want)
	last := len(want[len(want)-1])
	for _, n := range []int{1, 2, 3, 40, last - 1, last, last + 1, last + 30, 2 * last, 3*last + 17, end - 1, end} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			damaged := bytes.Clone(img)
			clear(damaged[end-n : end])
			keep := intactPrefix(want, damaged)
			name := fmt.Sprintf("zero-%d", n)
			c.installCase(name, map[int64][]byte{0: damaged}, &ck)
			sink := &logSink{}
			l := c.open(name, segment.Options{SegmentBytes: 1 << 20, Logger: sink.logger()})
			defer l.Close()
			path := c.segPath(name, 0)
			checkLog(t, l, 0, want[:keep])
			cut := size(want[:keep])
			checkCutDurable(t, path, cut)
			checkCutWarning(t, sink, path, cut, keep < len(want) && !allZero(damaged[cut:]))
			more := appendBatches(t, l, 2, 1, 10)
			checkLog(t, l, 0, append(append([][]byte(nil), want[:keep]...), more...))
		})
	}
}

// checkLookups checks Read at many offsets (mid-batch ones too) and
// OffsetForTimestamp against a walk over want, which starts at offset 0.
func checkLookups(t *testing.T, l *segment.Log, want [][]byte) {
	t.Helper()
	hs := make([]segment.Header, len(want))
	for i, b := range want {
		hs[i] = header(t, b)
	}
	end := endOffset(t, 0, want)
	for off := int64(0); off < end; off += 5 {
		i := sort.Search(len(hs), func(i int) bool { return hs[i].LastOffset() >= off })
		r, err := l.Read(off, 1, end)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		buf := make([]byte, r.Length)
		_, err = r.File().ReadAt(buf, r.Position)
		base := r.BaseOffset
		r.Release()
		if err != nil {
			t.Fatal(err)
		}
		if base != hs[i].BaseOffset || !bytes.Equal(buf, want[i]) {
			t.Fatalf("read at %d: region at batch %d (%d bytes), want batch %d", off, base, len(buf), hs[i].BaseOffset)
		}
	}
	lo, hi := hs[0].MaxTimestamp-5, hs[len(hs)-1].MaxTimestamp+5
	for ts := lo; ts <= hi; ts += 3 {
		i := sort.Search(len(hs), func(i int) bool { return hs[i].MaxTimestamp >= ts })
		got, ok, err := l.OffsetForTimestamp(ts)
		if err != nil {
			t.Fatalf("offset for timestamp %d: %v", ts, err)
		}
		if ok != (i < len(hs)) || (ok && got != hs[i].BaseOffset) {
			t.Fatalf("offset for timestamp %d: %d, %v; want batch %d of %d", ts, got, ok, i, len(hs))
		}
	}
}

// TestRecoverWithoutIndex deletes the index database, after a clean shutdown
// and after a crash: every segment is scanned, and the log, its reads and its
// time lookups come back identical.
func TestRecoverWithoutIndex(t *testing.T) {
	o := segment.Options{SegmentBytes: 4 << 10, IndexInterval: 512}
	for _, crashed := range []bool{false, true} {
		t.Run(fmt.Sprintf("crashed=%v", crashed), func(t *testing.T) {
			e := newEnv(t)
			l := e.open("p", o)
			want := appendBatches(t, l, 150, 2, 30)
			if n := len(l.Segments()); n < 4 {
				t.Fatalf("%d segments, want several", n)
			}
			if crashed {
				e = e.crash(l)
			} else if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			e.dropIndex()
			sink := &logSink{}
			o := o
			o.Logger = sink.logger()
			l = e.open("p", o)
			defer l.Close()
			checkLog(t, l, 0, want)
			recs := sink.records(t, msgRecovered)
			if len(recs) != 1 || recs[0]["scanned_bytes"] != float64(size(want)) || recs[0]["clean_shutdown"] != false {
				t.Fatalf("recovery records %v: want one that scanned all %d bytes", recs, size(want))
			}
			checkLookups(t, l, want)
			more := appendBatches(t, l, 40, 2, 30)
			all := append(append([][]byte(nil), want...), more...)
			checkLog(t, l, 0, all)
			checkLookups(t, l, all)
		})
	}
}

// TestRecoverDistrustsBadCheckpoint stores checkpoints that do not match the
// segment files, as after restoring a data folder whose index and segments
// were copied at different moments: recovery must not trust them and must
// still yield the whole intact log.
func TestRecoverDistrustsBadCheckpoint(t *testing.T) {
	o := segment.Options{SegmentBytes: 4 << 10, IndexInterval: 512}
	c, want := crashImage(t, o, batchesT(t, 70, 2, 30), false, batchesT(t, 0, 0, 0))
	ck := c.checkpoint("p")
	segs := map[int64][]byte{}
	bases := segmentBases(t, c.partDir("p"))
	for _, base := range bases {
		segs[base] = readFile(t, c.segPath("p", base))
	}
	if len(bases) < 3 || ck.Segment != bases[len(bases)-1] || ck.Position != 0 {
		t.Fatalf("segments %v, checkpoint %+v: want several, checkpoint at the start of the last", bases, ck)
	}
	lastBase := bases[len(bases)-1]
	first := sort.Search(len(want), func(i int) bool { return header(t, want[i]).BaseOffset >= lastBase })
	inLast := want[first:] // batches in the active segment
	if len(inLast) < 4 {
		t.Fatalf("%d batches in the active segment, want at least 4", len(inLast))
	}
	dataEnd := int64(size(inLast))
	fileSize := int64(len(segs[lastBase]))
	if fileSize <= dataEnd {
		t.Fatalf("active segment file %d bytes, data %d: want reserved zeros", fileSize, dataEnd)
	}
	at := func(i int) (int64, int64) { // position and base offset of batch i of the active segment
		return int64(size(inLast[:i])), header(t, inLast[i]).BaseOffset
	}
	pos2, off2 := at(2)
	pos3, off3 := at(3)
	end := endOffset(t, 0, want)
	for _, tc := range []struct {
		name string
		ck   segment.Checkpoint
	}{
		{"past the end of its segment file", segment.Checkpoint{Segment: lastBase, Position: fileSize + 100, NextOffset: end + 5}},
		{"past the last batch in the reserved zeros", segment.Checkpoint{Segment: lastBase, Position: dataEnd + 512, NextOffset: end + 4}},
		{"at the end with a wrong next offset", segment.Checkpoint{Segment: lastBase, Position: dataEnd, NextOffset: end + 2}},
		{"inside a batch", segment.Checkpoint{Segment: lastBase, Position: pos2 + 17, NextOffset: off2 + 1}},
		{"at a batch with a wrong next offset", segment.Checkpoint{Segment: lastBase, Position: pos3, NextOffset: off3 + 1}},
		{"at a batch with an old next offset", segment.Checkpoint{Segment: lastBase, Position: pos3, NextOffset: off2}},
		{"negative position", segment.Checkpoint{Segment: lastBase, Position: -8, NextOffset: lastBase}},
		{"next offset below its segment", segment.Checkpoint{Segment: lastBase, Position: pos2, NextOffset: -1}},
		{"a segment past the last", segment.Checkpoint{Segment: lastBase + 1000, Position: 10, NextOffset: lastBase + 1000}},
		{"a removed segment between two", segment.Checkpoint{Segment: bases[1] + 1, Position: 0, NextOffset: bases[1] + 1}},
		{"a removed segment before the first", segment.Checkpoint{Segment: -100, Position: 0, NextOffset: -100}},
		{"a clean shutdown that did not happen", segment.Checkpoint{Segment: lastBase, Position: dataEnd + 64, NextOffset: end + 1, Clean: true}},
		{"a sealed segment past its end", segment.Checkpoint{Segment: bases[1], Position: int64(len(segs[bases[1]])) + 1, NextOffset: bases[2] + 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := c.fork() // with the image's index entries
			if err := f.db.Partition("p").SetCheckpoint(tc.ck, true); err != nil {
				t.Fatal(err)
			}
			l := f.open("p", o)
			defer l.Close()
			checkLog(t, l, 0, want)
			checkCutDurable(t, f.segPath("p", lastBase), int(dataEnd))
			checkLookups(t, l, want)
			more := appendBatches(t, l, 3, 1, 10)
			checkLog(t, l, 0, append(append([][]byte(nil), want...), more...))
		})
	}
	t.Run("trusted checkpoint", func(t *testing.T) {
		// The real checkpoint, moved to a batch boundary of the active
		// segment, is used: only what follows it is scanned.
		name := "ck-good"
		ck := segment.Checkpoint{Segment: lastBase, Position: pos3, NextOffset: off3, MaxTimestamp: header(t, inLast[2]).MaxTimestamp}
		c.installCase(name, segs, &ck)
		sink := &logSink{}
		o := o
		o.Logger = sink.logger()
		l := c.open(name, o)
		defer l.Close()
		checkLog(t, l, 0, want)
		recs := sink.records(t, msgRecovered)
		if len(recs) != 1 || recs[0]["scanned_bytes"] != float64(dataEnd-pos3) {
			t.Fatalf("recovery records %v: want one that scanned %d bytes", recs, dataEnd-pos3)
		}
	})
}

// TestRecoverCorruptSealedSegment damages a sealed segment after a stale
// checkpoint (the index lost its later writes) while later segments exist:
// the log is cut at the damage, later segments are removed from disk, and
// the log grows again from the cut.
func TestRecoverCorruptSealedSegment(t *testing.T) {
	o := segment.Options{SegmentBytes: 2 << 10}
	e := newEnv(t)
	l := e.open("p", o)
	want := appendBatches(t, l, 11, 2, 60) // the eleventh rolls: checkpoint at segment 2's start
	stale := e.indexImage()
	want = append(want, appendBatches(t, l, 40, 2, 60)...)
	img := e.crash(l)
	img.useIndex(stale)
	ck := img.checkpoint("p")

	bases := segmentBases(t, img.partDir("p"))
	if len(bases) < 5 || ck.Segment != bases[1] {
		t.Fatalf("segments %v, checkpoint in %d: want 5 or more, checkpoint in the second", bases, ck.Segment)
	}
	victim := bases[2] // past the checkpoint, with later segments
	first := sort.Search(len(want), func(i int) bool { return header(t, want[i]).BaseOffset >= victim })
	posOf := func(i int) int { return size(want[first:i]) } // position of batch i in the victim
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(255) + 1)
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		damage  func(c *env)
		keep    int // batches that survive
		removed int // index into bases of the first segment recovery removes
	}{
		{"garbage inside a batch", func(c *env) {
			p := c.segPath("p", victim)
			b := readFile(t, p)
			copy(b[posOf(first+3)+30:], garbage(20))
			os.WriteFile(p, b, 0o644)
		}, first + 3, 3},
		{"garbage over the first batch", func(c *env) {
			p := c.segPath("p", victim)
			b := readFile(t, p)
			copy(b, garbage(segment.HeaderSize+5))
			os.WriteFile(p, b, 0o644)
		}, first, 3},
		{"garbage appended after the last batch", func(c *env) {
			p := c.segPath("p", victim)
			os.WriteFile(p, append(readFile(t, p), garbage(100)...), 0o644)
		}, sort.Search(len(want), func(i int) bool { return header(t, want[i]).BaseOffset >= bases[3] }), 3},
		{"torn last batch", func(c *env) {
			p := c.segPath("p", victim)
			b := readFile(t, p)
			os.WriteFile(p, b[:len(b)-7], 0o644)
		}, sort.Search(len(want), func(i int) bool { return header(t, want[i]).BaseOffset >= bases[3] }) - 1, 3},
		{"missing segment", func(c *env) {
			os.Remove(c.segPath("p", bases[3]))
		}, sort.Search(len(want), func(i int) bool { return header(t, want[i]).BaseOffset >= bases[3] }), 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := img.fork()
			tc.damage(c)
			sink := &logSink{}
			o := o
			o.Logger = sink.logger()
			l := c.open("p", o)
			defer l.Close()
			checkLog(t, l, 0, want[:tc.keep])
			removed := map[string]bool{}
			for _, r := range sink.records(t, msgRemovedSeg) {
				removed[r["segment"].(string)] = true
			}
			for _, base := range bases[tc.removed:] {
				p := c.segPath("p", base)
				if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("segment %s after the cut is still on disk (stat: %v)", p, err)
				}
				if !removed[p] {
					t.Errorf("no warning names removed segment %s", p)
				}
			}
			for _, s := range l.Segments() {
				if s.Base() > victim {
					t.Errorf("segment %d after the cut is still in the log", s.Base())
				}
			}
			more := appendBatches(t, l, 30, 2, 60) // rolls over the removed bases
			all := append(append([][]byte(nil), want[:tc.keep]...), more...)
			checkLog(t, l, 0, all)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = c.open("p", o)
			checkLog(t, l, 0, all)
		})
	}
}

// TestRecoverAfterCleanShutdown: a clean Close leaves nothing to scan; after
// a reopen, more appends and a crash, recovery scans only what was appended
// after the reopen, from the checkpoint the reopen wrote or, when the index
// lost that write, from the stale clean-shutdown checkpoint, and keeps it.
func TestRecoverAfterCleanShutdown(t *testing.T) {
	o := segment.Options{SegmentBytes: 64 << 10, IndexInterval: 512}
	e := newEnv(t)
	l := e.open("p", o)
	want := appendBatches(t, l, 30, 2, 30)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ck := e.checkpoint("p")
	if !ck.Clean || ck.Position != int64(size(want)) || ck.NextOffset != endOffset(t, 0, want) {
		t.Fatalf("checkpoint after Close %+v: want a clean one at the end (%d, next %d)", ck, size(want), endOffset(t, 0, want))
	}
	if fi, err := os.Stat(e.segPath("p", 0)); err != nil || fi.Size() != int64(size(want)) {
		t.Fatalf("segment after Close: %v, %v; want cut to %d bytes", fi, err, size(want))
	}
	cleanIndex := e.indexImage()

	sink := &logSink{}
	o.Logger = sink.logger()
	l = e.open("p", o)
	if recs := sink.records(t, msgRecovered); len(recs) != 0 {
		t.Fatalf("a clean reopen scanned: %v", recs)
	}
	checkLog(t, l, 0, want)
	more := appendBatches(t, l, 10, 2, 30)
	all := append(append([][]byte(nil), want...), more...)
	img := e.crash(l)

	for _, tc := range []struct {
		name  string
		index string // image to restore, "" for the one the crash left
		clean bool
	}{
		{"checkpoint written by the reopen", "", false},
		{"stale clean checkpoint", cleanIndex, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := img.fork()
			if tc.index != "" {
				c.useIndex(tc.index)
			}
			sink := &logSink{}
			o.Logger = sink.logger()
			l := c.open("p", o)
			defer l.Close()
			checkLog(t, l, 0, all)
			recs := sink.records(t, msgRecovered)
			if len(recs) != 1 || recs[0]["scanned_bytes"] != float64(size(more)) || recs[0]["clean_shutdown"] != tc.clean {
				t.Fatalf("recovery records %v: want one that scanned %d bytes, clean_shutdown %v", recs, size(more), tc.clean)
			}
			if len(sink.records(t, msgCutTail)) != 0 {
				t.Fatal("recovery warned about cutting the reserved zeros")
			}
			all := append(all, appendBatches(t, l, 3, 1, 10)...)
			checkLog(t, l, 0, all)
		})
	}
}
