package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/runnel-io/runnel/segment"
)

func openTestDB(t testing.TB, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// testEntries returns n entries at offsets first, first+step, … whose
// running maximum timestamp repeats three times before it grows, so that
// ties in MaxTimestamp are everywhere.
func testEntries(n int, first, step int64) []segment.IndexEntry {
	es := make([]segment.IndexEntry, n)
	for i := range es {
		off := first + int64(i)*step
		es[i] = segment.IndexEntry{
			Offset:       off,
			Segment:      off / 256 * 256,
			Position:     int64(i) * 100,
			MaxTimestamp: 1000 + int64(i/3)*10,
		}
	}
	return es
}

func addAll(t testing.TB, p *Partition, es []segment.IndexEntry) {
	t.Helper()
	for _, e := range es {
		if err := p.Add(e); err != nil {
			t.Fatal(err)
		}
	}
}

func pendingLen(p *Partition) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.mu.pending)
}

// stored returns the committed entries of the partition as the offset index
// and the time index hold them, each in key order.
func stored(t *testing.T, p *Partition) (byOffset, byTime []segment.IndexEntry) {
	t.Helper()
	scan := func(kind byte, fn func(k, v []byte)) {
		lo, hi := p.bounds(kind)
		it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			fn(it.Key(), it.Value())
		}
	}
	scan(kindOffset, func(k, v []byte) {
		e, err := decodeOffsetEntry(k, v)
		if err != nil {
			t.Fatal(err)
		}
		byOffset = append(byOffset, e)
	})
	scan(kindTime, func(k, v []byte) {
		byTime = append(byTime, segment.IndexEntry{
			MaxTimestamp: int64(binary.BigEndian.Uint64(k[len(k)-16:]) ^ (1 << 63)),
			Offset:       int64(binary.BigEndian.Uint64(k[len(k)-8:])),
			Segment:      int64(binary.BigEndian.Uint64(v[0:])),
			Position:     int64(binary.BigEndian.Uint64(v[8:])),
		})
	})
	return byOffset, byTime
}

// checkStored fails unless both indexes hold exactly want and nothing is
// pending.
func checkStored(t *testing.T, p *Partition, want []segment.IndexEntry) {
	t.Helper()
	if n := pendingLen(p); n != 0 {
		t.Fatalf("%d entries still pending", n)
	}
	byOffset, byTime := stored(t, p)
	if !sameEntries(byOffset, want) {
		t.Fatalf("offset index holds %s, want %s", offsetsOf(byOffset), offsetsOf(want))
	}
	if !sameEntries(byTime, want) {
		t.Fatalf("time index holds %s, want %s", offsetsOf(byTime), offsetsOf(want))
	}
}

func sameEntries(a, b []segment.IndexEntry) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

func offsetsOf(es []segment.IndexEntry) string {
	if len(es) == 0 {
		return "nothing"
	}
	return fmt.Sprintf("%d entries, offsets %d..%d", len(es), es[0].Offset, es[len(es)-1].Offset)
}

// modelFloor is Floor over a slice.
func modelFloor(es []segment.IndexEntry, offset int64) (segment.IndexEntry, bool) {
	i := sort.Search(len(es), func(i int) bool { return es[i].Offset > offset })
	if i == 0 {
		return segment.IndexEntry{}, false
	}
	return es[i-1], true
}

// modelTimeFloor is TimeFloor over a slice: the last entry with
// MaxTimestamp < ts.
func modelTimeFloor(es []segment.IndexEntry, ts int64) (segment.IndexEntry, bool) {
	i := sort.Search(len(es), func(i int) bool { return es[i].MaxTimestamp >= ts })
	if i == 0 {
		return segment.IndexEntry{}, false
	}
	return es[i-1], true
}

func checkFloor(t *testing.T, p *Partition, offset int64, want segment.IndexEntry, wantOK bool) {
	t.Helper()
	got, ok, err := p.Floor(offset)
	if err != nil {
		t.Fatalf("Floor(%d): %v", offset, err)
	}
	if ok != wantOK || got != want {
		t.Fatalf("Floor(%d) = %+v, %v; want %+v, %v", offset, got, ok, want, wantOK)
	}
}

func TestFloor(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	// Entries at 100, 110, …; the first 64 of 100 are committed by Add.
	for _, phase := range []struct {
		name    string
		n       int
		flush   bool
		pending int
	}{
		{"pending only", 10, false, 10},
		{"committed and pending", 100, false, 100 - pendingLimit},
		{"all committed", 100, true, 0},
	} {
		t.Run(phase.name, func(t *testing.T) {
			p := db.Partition("floor-" + phase.name)
			es := testEntries(phase.n, 100, 10)
			addAll(t, p, es)
			if phase.flush {
				if err := p.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if got := pendingLen(p); got != phase.pending {
				t.Fatalf("%d entries pending, want %d", got, phase.pending)
			}
			last := len(es) - 1
			for _, tc := range []struct {
				name   string
				offset int64
				want   int // index into es; -1: not found
			}{
				{"zero, before the first", 0, -1},
				{"just before the first", 99, -1},
				{"exact first", 100, 0},
				{"between the first two", 105, 0},
				{"exact hit", 150, 5},
				{"just before an entry", 169, 6},
				{"exact last", es[last].Offset, last},
				{"just after the last", es[last].Offset + 1, last},
				{"far after the last", 1 << 40, last},
				{"max int64", math.MaxInt64, last},
			} {
				if tc.want == -1 {
					checkFloor(t, p, tc.offset, segment.IndexEntry{}, false)
				} else {
					checkFloor(t, p, tc.offset, es[tc.want], true)
				}
			}
			if phase.n > pendingLimit {
				// Around the boundary between committed and pending entries.
				lastCommitted := es[pendingLimit-1].Offset
				for _, off := range []int64{lastCommitted, lastCommitted + 1, lastCommitted + 9, lastCommitted + 10, lastCommitted + 11} {
					want, _ := modelFloor(es, off)
					checkFloor(t, p, off, want, true)
				}
			}
			for off := int64(0); off <= es[last].Offset+15; off++ {
				want, ok := modelFloor(es, off)
				checkFloor(t, p, off, want, ok)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		p := db.Partition("floor-empty")
		for _, off := range []int64{0, 1, math.MaxInt64} {
			checkFloor(t, p, off, segment.IndexEntry{}, false)
		}
	})
}

func TestTimeFloor(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	ts := []int64{-50, -1, -1, 0, 100, 100, 200, 200, 200, 300}
	es := make([]segment.IndexEntry, len(ts))
	for i := range es {
		es[i] = segment.IndexEntry{Offset: int64(i) * 5, Segment: 7, Position: int64(i) * 64, MaxTimestamp: ts[i]}
	}
	for _, phase := range []string{"pending", "committed"} {
		t.Run(phase, func(t *testing.T) {
			p := db.Partition("time-" + phase)
			addAll(t, p, es)
			if phase == "committed" {
				if err := p.SetCheckpoint(segment.Checkpoint{Segment: 7, Position: 640, NextOffset: 50}, false); err != nil {
					t.Fatal(err)
				}
			}
			for _, tc := range []struct {
				ts   int64
				want int // index into es; -1: not found
			}{
				{math.MinInt64, -1},
				{-51, -1},
				{-50, -1}, // not below itself
				{-49, 0},
				{-1, 0},
				{0, 2}, // the last of the tie at -1
				{1, 3},
				{100, 3},
				{101, 5},
				{200, 5},
				{201, 8}, // the last of three ties
				{300, 8},
				{301, 9},
				{math.MaxInt64, 9},
			} {
				got, ok, err := p.TimeFloor(tc.ts)
				if err != nil {
					t.Fatalf("TimeFloor(%d): %v", tc.ts, err)
				}
				var want segment.IndexEntry
				if tc.want >= 0 {
					want = es[tc.want]
				}
				if m, mok := modelTimeFloor(es, tc.ts); m != want || mok != (tc.want >= 0) {
					t.Fatalf("test table disagrees with the model at %d", tc.ts)
				}
				if ok != (tc.want >= 0) || got != want {
					t.Fatalf("TimeFloor(%d) = %+v, %v; want %+v, %v", tc.ts, got, ok, want, tc.want >= 0)
				}
			}
			if n := pendingLen(p); n != 0 {
				t.Fatalf("%d entries pending after TimeFloor", n)
			}
		})
	}
}

// cutCases are offsets to cut at for entries 0, 10, …, 990, of which 0..630
// are committed and 640..990 pending.
var cutCases = []struct {
	name   string
	offset int64
}{
	{"zero", 0},
	{"inside the first", 5},
	{"exact committed", 300},
	{"between committed", 305},
	{"inside a timestamp tie", 490}, // 480, 490 and 500 share a MaxTimestamp
	{"last committed", 630},
	{"after the last committed", 635},
	{"first pending", 640},
	{"between pending", 645},
	{"last", 990},
	{"after the last", 995},
	{"far after", 1 << 40},
}

func TestTruncateFrom(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	es := testEntries(100, 0, 10)
	for _, tc := range cutCases {
		t.Run(tc.name, func(t *testing.T) {
			p := db.Partition("truncate-" + tc.name)
			addAll(t, p, es)
			if err := p.TruncateFrom(tc.offset); err != nil {
				t.Fatal(err)
			}
			keep := sort.Search(len(es), func(i int) bool { return es[i].Offset >= tc.offset })
			want := es[:keep]
			checkStored(t, p, want)
			for _, q := range []int64{0, tc.offset - 1, tc.offset, 5000} {
				w, ok := modelFloor(want, q)
				checkFloor(t, p, q, w, ok)
			}
			// The log appends again from the cut.
			next := segment.IndexEntry{Offset: tc.offset, Segment: 1, Position: 2, MaxTimestamp: 5000}
			if len(want) > 0 && tc.offset <= want[len(want)-1].Offset {
				t.Fatalf("bad test case %d", tc.offset)
			}
			if err := p.Add(next); err != nil {
				t.Fatal(err)
			}
			checkFloor(t, p, tc.offset, next, true)
			if got, ok, err := p.TimeFloor(5001); err != nil || !ok || got != next {
				t.Fatalf("TimeFloor after re-append: %+v %v %v", got, ok, err)
			}
			checkStored(t, p, append(append([]segment.IndexEntry(nil), want...), next))
		})
	}
}

func TestDeleteBefore(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	es := testEntries(100, 0, 10)
	for _, tc := range cutCases {
		t.Run(tc.name, func(t *testing.T) {
			p := db.Partition("delete-" + tc.name)
			addAll(t, p, es)
			if err := p.DeleteBefore(tc.offset); err != nil {
				t.Fatal(err)
			}
			from := sort.Search(len(es), func(i int) bool { return es[i].Offset >= tc.offset })
			want := es[from:]
			checkStored(t, p, want)
			for _, q := range []int64{0, tc.offset - 1, tc.offset, 5000} {
				w, ok := modelFloor(want, q)
				checkFloor(t, p, q, w, ok)
			}
			for _, ts := range []int64{1000, 1161, 1162, 2000} {
				w, wok := modelTimeFloor(want, ts)
				if got, ok, err := p.TimeFloor(ts); err != nil || ok != wok || got != w {
					t.Fatalf("TimeFloor(%d) = %+v %v %v; want %+v %v", ts, got, ok, err, w, wok)
				}
			}
		})
	}
}

func TestCheckpoint(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	p := db.Partition("ck")
	if c, ok, err := p.Checkpoint(); err != nil || ok {
		t.Fatalf("fresh partition has a checkpoint: %+v %v %v", c, ok, err)
	}
	for _, tc := range []struct {
		c    segment.Checkpoint
		sync bool
	}{
		{segment.Checkpoint{Segment: 0, Position: 0, NextOffset: 0, MaxTimestamp: -1}, false},
		{segment.Checkpoint{Segment: 1 << 20, Position: 12345, NextOffset: 1<<20 + 77, MaxTimestamp: 1_700_000_000_000}, true},
		{segment.Checkpoint{Segment: 1 << 20, Position: 99999, NextOffset: 1<<20 + 500, MaxTimestamp: math.MinInt64, Clean: true}, false},
		{segment.Checkpoint{Segment: math.MaxInt64, Position: math.MaxInt64, NextOffset: math.MaxInt64, MaxTimestamp: math.MaxInt64, Clean: true}, true},
		{segment.Checkpoint{Segment: 3, Position: 4, NextOffset: 5, MaxTimestamp: 6, Clean: false}, true}, // Clean goes back to false
	} {
		if err := p.SetCheckpoint(tc.c, tc.sync); err != nil {
			t.Fatal(err)
		}
		got, ok, err := p.Checkpoint()
		if err != nil || !ok || got != tc.c {
			t.Fatalf("Checkpoint() = %+v, %v, %v; want %+v", got, ok, err, tc.c)
		}
	}
	// A checkpoint commits the entries added before it.
	es := testEntries(3, 0, 1)
	addAll(t, p, es)
	last := segment.Checkpoint{Segment: 0, Position: 300, NextOffset: 3, MaxTimestamp: es[2].MaxTimestamp, Clean: true}
	if err := p.SetCheckpoint(last, true); err != nil {
		t.Fatal(err)
	}
	checkStored(t, p, es)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	p = openTestDB(t, dir).Partition("ck")
	if got, ok, err := p.Checkpoint(); err != nil || !ok || got != last {
		t.Fatalf("after reopen: %+v, %v, %v; want %+v", got, ok, err, last)
	}
	checkStored(t, p, es)
}

func TestSegmentInfo(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	p := db.Partition("si")
	a := segment.SegmentInfo{Size: 1 << 30, LastOffset: 1<<20 - 1, MaxTimestamp: 1_700_000_000_000}
	b := segment.SegmentInfo{Size: 61, LastOffset: 1 << 20, MaxTimestamp: -1}
	check := func(base int64, want segment.SegmentInfo, wantOK bool) {
		t.Helper()
		got, ok, err := p.SegmentInfo(base)
		if err != nil || ok != wantOK || got != want {
			t.Fatalf("SegmentInfo(%d) = %+v, %v, %v; want %+v, %v", base, got, ok, err, want, wantOK)
		}
	}
	check(0, segment.SegmentInfo{}, false)
	for _, step := range []struct {
		base int64
		info segment.SegmentInfo
	}{{0, a}, {1 << 20, b}} {
		if err := p.SetSegmentInfo(step.base, step.info); err != nil {
			t.Fatal(err)
		}
	}
	check(0, a, true)
	check(1<<20, b, true)
	check(1, segment.SegmentInfo{}, false)
	if err := p.SetSegmentInfo(0, b); err != nil { // overwrite
		t.Fatal(err)
	}
	check(0, b, true)
	if err := p.DeleteSegmentInfo(0); err != nil {
		t.Fatal(err)
	}
	check(0, segment.SegmentInfo{}, false)
	check(1<<20, b, true)
	if err := p.DeleteSegmentInfo(12345); err != nil {
		t.Fatalf("deleting a missing summary: %v", err)
	}
}

// fill stores something of every kind for p: committed and pending entries,
// a checkpoint and two segment summaries.
func fill(t *testing.T, p *Partition, es []segment.IndexEntry) segment.Checkpoint {
	t.Helper()
	addAll(t, p, es)
	ck := segment.Checkpoint{Segment: es[0].Segment, Position: 1, NextOffset: es[len(es)-1].Offset + 1, MaxTimestamp: es[len(es)-1].MaxTimestamp}
	if err := p.SetCheckpoint(ck, false); err != nil {
		t.Fatal(err)
	}
	addAll(t, p, moreEntries(es)) // pending again
	for _, base := range []int64{0, es[0].Segment} {
		if err := p.SetSegmentInfo(base, segment.SegmentInfo{Size: base + 1}); err != nil {
			t.Fatal(err)
		}
	}
	return ck
}

// moreEntries returns three entries that may follow es.
func moreEntries(es []segment.IndexEntry) []segment.IndexEntry {
	last := es[len(es)-1]
	more := testEntries(3, last.Offset+1, 1)
	for i := range more {
		more[i].MaxTimestamp = last.MaxTimestamp + int64(i)
	}
	return more
}

// isEmpty fails unless p holds nothing at all.
func isEmpty(t *testing.T, p *Partition) {
	t.Helper()
	checkStored(t, p, nil)
	for _, kind := range []byte{kindOffset, kindTime, kindCheckpoint, kindSegment} {
		lo, hi := p.bounds(kind)
		it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			t.Fatal(err)
		}
		found := it.First()
		it.Close()
		if found {
			t.Fatalf("keys of kind %q remain", kind)
		}
	}
	checkFloor(t, p, math.MaxInt64, segment.IndexEntry{}, false)
	if _, ok, err := p.Checkpoint(); ok || err != nil {
		t.Fatalf("checkpoint remains: %v", err)
	}
	if _, ok, err := p.SegmentInfo(0); ok || err != nil {
		t.Fatalf("segment info remains: %v", err)
	}
}

func TestReset(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	p := db.Partition("reset")
	fill(t, p, testEntries(100, 0, 10))
	if err := p.Reset(); err != nil {
		t.Fatal(err)
	}
	isEmpty(t, p)
	if err := p.Reset(); err != nil { // nothing left to reset
		t.Fatal(err)
	}
	isEmpty(t, p)
	// Usable afterwards.
	es := testEntries(2, 0, 1)
	addAll(t, p, es)
	checkFloor(t, p, 5, es[1], true)
}

// TestPrefixNames checks that partitions whose names are prefixes of each
// other keep to their own keys, whatever is done to the others.
func TestPrefixNames(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	names := []string{"t-", "t-1", "t-10", "t-100"}
	parts := map[string]*Partition{}
	entries := map[string][]segment.IndexEntry{}
	checkpoints := map[string]segment.Checkpoint{}
	for i, name := range names {
		// Distinct, overlapping offsets and timestamps for each.
		es := testEntries(80, int64(i)*7, 3)
		for j := range es {
			es[j].Segment = int64(i + 1)
			es[j].MaxTimestamp += int64(i)
		}
		parts[name] = db.Partition(name)
		checkpoints[name] = fill(t, parts[name], es)
		entries[name] = append(es, moreEntries(es)...)
	}
	intact := func(name string) {
		t.Helper()
		p := parts[name]
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		checkStored(t, p, entries[name])
		if got, ok, err := p.Checkpoint(); err != nil || !ok || got != checkpoints[name] {
			t.Fatalf("%s: checkpoint %+v %v %v", name, got, ok, err)
		}
		if got, ok, err := p.SegmentInfo(entries[name][0].Segment); err != nil || !ok || got.Size != entries[name][0].Segment+1 {
			t.Fatalf("%s: segment info %+v %v %v", name, got, ok, err)
		}
	}
	for _, name := range names {
		intact(name)
	}
	if err := parts["t-1"].TruncateFrom(0); err != nil {
		t.Fatal(err)
	}
	if err := parts["t-10"].DeleteBefore(math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if err := parts["t-"].Reset(); err != nil {
		t.Fatal(err)
	}
	checkStored(t, parts["t-1"], nil)
	checkStored(t, parts["t-10"], nil)
	isEmpty(t, parts["t-"])
	intact("t-100")
	for _, name := range []string{"t-1", "t-10"} {
		// Entries went; the checkpoint and summaries did not.
		if got, ok, err := parts[name].Checkpoint(); err != nil || !ok || got != checkpoints[name] {
			t.Fatalf("%s: checkpoint %+v %v %v", name, got, ok, err)
		}
		if _, ok, err := parts[name].SegmentInfo(entries[name][0].Segment); err != nil || !ok {
			t.Fatalf("%s: segment info gone: %v", name, err)
		}
	}
}

func TestCloseReopen(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	p := db.Partition("t-0")
	es := testEntries(pendingLimit+6, 0, 10)
	addAll(t, p, es)
	if n := pendingLen(p); n != 6 {
		t.Fatalf("%d pending, want 6", n)
	}
	ck := segment.Checkpoint{Segment: 0, Position: 6900, NextOffset: 700, MaxTimestamp: es[len(es)-1].MaxTimestamp, Clean: true}
	if err := p.SetCheckpoint(ck, false); err != nil { // commits the 6
		t.Fatal(err)
	}
	info := segment.SegmentInfo{Size: 6900, LastOffset: 699, MaxTimestamp: 1}
	if err := p.SetSegmentInfo(0, info); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	p = openTestDB(t, dir).Partition("t-0")
	checkStored(t, p, es)
	for off := int64(0); off < 720; off += 7 {
		want, ok := modelFloor(es, off)
		checkFloor(t, p, off, want, ok)
	}
	if got, ok, err := p.Checkpoint(); err != nil || !ok || got != ck {
		t.Fatalf("checkpoint after reopen: %+v %v %v", got, ok, err)
	}
	if got, ok, err := p.SegmentInfo(0); err != nil || !ok || got != info {
		t.Fatalf("segment info after reopen: %+v %v %v", got, ok, err)
	}
}

// TestConcurrentReaders runs lookups while the writer adds, commits and
// truncates; run with -race.
func TestConcurrentReaders(t *testing.T) {
	db := openTestDB(t, t.TempDir())
	p := db.Partition("t-0")
	es := testEntries(3000, 0, 10)
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			for !done.Load() {
				off := rng.Int64N(31000)
				e, ok, err := p.Floor(off)
				if err == nil && ok && (e.Offset > off || e.Offset%10 != 0 || e.Position != e.Offset*10) {
					err = fmt.Errorf("Floor(%d) = %+v", off, e)
				}
				if err == nil {
					e, ok, err = p.TimeFloor(1000 + off/10)
					if err == nil && ok && e.MaxTimestamp >= 1000+off/10 {
						err = fmt.Errorf("TimeFloor(%d) = %+v", 1000+off/10, e)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(uint64(r))
	}
	for i, e := range es {
		if err := p.Add(e); err != nil {
			t.Fatal(err)
		}
		if i == 2000 {
			if err := p.TruncateFrom(15000); err != nil {
				t.Fatal(err)
			}
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// BenchmarkFloor measures Floor of random offsets in a partition of 100,000
// entries, once with the entries in Pebble's memtable and once flushed to
// sstables, and reports the latency percentiles.
func BenchmarkFloor(b *testing.B) {
	db := openTestDB(b, b.TempDir())
	p := db.Partition("bench-0")
	const n, step = 100_000, 16
	addAll(b, p, testEntries(n, 0, step))
	if err := p.Flush(); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		lat := make([]time.Duration, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			off := rng.Int64N(n * step)
			start := time.Now()
			e, ok, err := p.Floor(off)
			lat[i] = time.Since(start)
			if err != nil || !ok || e.Offset != off/step*step {
				b.Fatalf("Floor(%d) = %+v, %v, %v", off, e, ok, err)
			}
		}
		b.StopTimer()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		pct := func(q float64) float64 {
			return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Microsecond)
		}
		b.ReportMetric(pct(0.50), "p50-us")
		b.ReportMetric(pct(0.99), "p99-us")
	}
	b.Run("memtable", run)
	if err := db.db.Flush(); err != nil {
		b.Fatal(err)
	}
	b.Run("sstable", run)
}

func TestNegativeOffsetsAndUseAfterClose(t *testing.T) {
	d, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := d.Partition("neg-0")
	for i := int64(0); i < 3; i++ {
		if err := p.Add(segment.IndexEntry{Offset: i * 10, Position: i * 100, MaxTimestamp: i}); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := p.Floor(-5); ok || err != nil {
		t.Fatalf("Floor(-5): found=%v err=%v, want nothing", ok, err)
	}
	if err := p.DeleteBefore(-5); err != nil {
		t.Fatal(err)
	}
	if err := p.TruncateFrom(-5); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := p.Floor(20); ok {
		t.Fatal("TruncateFrom(-5) should have removed everything")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Floor(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Floor after Close: %v", err)
	}
	if err := p.Add(segment.IndexEntry{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	if _, _, err := p.Checkpoint(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Checkpoint after Close: %v", err)
	}
}
