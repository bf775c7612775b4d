package segment_test

// Power-loss tests. The log runs on vfs.MemFS, which keeps for every file
// and directory what was last made durable. A workload (appends under
// fsync=always, some pipelined, rolls with their background seals,
// retention, a truncation, a clean close and a reopen) runs once to count
// its syncs; then, for every k, again with the machine going down at the
// k-th sync, before that sync does anything. The file system and the index
// then lose what a power failure loses (everything unsynced, or a torn
// part of it: random unsynced pages and entries survive) and the log is
// opened again. It must
// hold every batch whose WaitDurable returned, byte for byte, serve only
// whole batches that were appended at their offsets, in order, and take new
// appends. A second pass kills the process at the k-th sync instead (the
// page cache survives), lets recovery run on what it left, and only then
// cuts the power: recovery must not have trusted bytes it did not sync.
//
// Every crash point is tried. RUNNEL_POWERLOSS=full runs a workload three
// times as long, tries strict and torn crashes with both index models at
// each point (the default run takes one of the four in turn) and also cuts
// the power at every sync point of the recovery after a kill.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/segment"
)

const plDir = "/data/topics/p-0"

func powerLossFull() bool { return os.Getenv("RUNNEL_POWERLOSS") == "full" }

// plBatch is the batch appended at base in generation gen (a truncation
// starts a new one): its first timestamp names both, so that a batch read
// back tells where it came from.
func plBatch(base int64, gen int) []byte {
	recs := 1 + int(base%3)
	return testbatch.Make(testbatch.Spec{
		Timestamp: int64(gen)*1_000_000 + base,
		Values:    testbatch.Values(recs, 40+int(base*37%160), byte(base*7+int64(gen)*13+1)),
	})
}

// plModel is what the workload did, as the checks need it.
type plModel struct {
	// required are the acknowledged batches that must survive, by base
	// offset, as stored.
	required map[int64][]byte
	// ever is every batch appended at each base offset, as stored.
	ever map[int64][][]byte
	// pending are appended and not yet acknowledged, in order.
	pending []plAppended
	acked   int
}

type plAppended struct {
	base, next int64
	stored     []byte
}

func newPLModel() *plModel {
	return &plModel{required: map[int64][]byte{}, ever: map[int64][][]byte{}}
}

func plOptions(fs *vfs.MemFS, idx *crashIndex) segment.Options {
	return segment.Options{
		Index:          idx,
		FS:             fs,
		SegmentBytes:   2 << 10,
		IndexInterval:  256,
		RetentionBytes: 3 << 10, // applied when the workload says so
		RetentionAge:   -1,
		Fsync:          segment.FsyncPolicy{Mode: segment.FsyncAlways},
		Logger:         quietLogger(),
	}
}

// plWorkload drives one log until it is done or an operation fails because
// the machine went down; any other failure fails the test.
type plWorkload struct {
	t   *testing.T
	fs  *vfs.MemFS
	idx *crashIndex
	m   *plModel
	l   *segment.Log
	gen int
	// What the workload did, so the dry run can show it did it.
	removed, truncations int
	// failing: a sync is made to fail; onFailure checks what follows.
	failing   bool
	onFailure func(what string, err error)
}

// stop reports whether err ends the workload: the machine is down (or the
// log went offline because of it).
func (w *plWorkload) stop(what string, err error) bool {
	if err == nil {
		return false
	}
	if w.fs.Down() {
		return true
	}
	if w.failing && (errors.Is(err, vfs.ErrSyncFailed) || errors.Is(err, segment.ErrOffline)) {
		w.onFailure(what, err)
		return true
	}
	w.t.Fatalf("%s: %v (the machine is up)", what, err)
	return true
}

func (w *plWorkload) appendOne() bool {
	b := plBatch(w.l.LogEndOffset(), w.gen)
	r, err := w.l.Append(b, testEpoch)
	if w.stop("append", err) {
		return false
	}
	st := stamped(b, r.BaseOffset)
	w.m.ever[r.BaseOffset] = append(w.m.ever[r.BaseOffset], st)
	w.m.pending = append(w.m.pending, plAppended{r.BaseOffset, r.LastOffset + 1, st})
	return true
}

func (w *plWorkload) waitAll() bool {
	if len(w.m.pending) == 0 {
		return true
	}
	last := w.m.pending[len(w.m.pending)-1].next
	if w.stop("wait", w.l.WaitDurable(context.Background(), last)) {
		return false
	}
	for _, a := range w.m.pending {
		w.m.required[a.base] = a.stored
		w.m.acked++
	}
	w.m.pending = w.m.pending[:0]
	return true
}

// dropRequired forgets required batches below (or at and above) offset,
// which an operation may legitimately remove.
func (w *plWorkload) dropRequired(keep func(base int64) bool) {
	for b := range w.m.required {
		if !keep(b) {
			delete(w.m.required, b)
		}
	}
}

func (w *plWorkload) open() bool {
	l, err := segment.Open(plDir, plOptions(w.fs, w.idx))
	if w.stop("open", err) {
		return false
	}
	w.l = l
	return true
}

func (w *plWorkload) close() bool {
	err := w.l.Close()
	w.l = nil
	return !w.stop("close", err)
}

// run is the workload. It returns with the log closed.
func (w *plWorkload) run() {
	defer func() {
		if w.l != nil {
			w.l.Close()
			w.l = nil
		}
	}()
	if !w.open() {
		return
	}
	steps := 36
	if powerLossFull() {
		steps = 108
	}
	for i := 0; i < steps; i++ {
		n := 1 + i%3 // one, two or three appends per acknowledgement
		for range n {
			if !w.appendOne() {
				return
			}
		}
		if !w.waitAll() {
			return
		}
		switch i % 36 {
		case 14: // retention down to about two segments
			segs := w.l.Segments()
			active := segs[len(segs)-1].Base()
			n, err := w.l.ApplyRetention()
			w.removed += n
			if w.stop("retention", err) {
				w.dropRequired(func(b int64) bool { return b >= active })
				return
			}
			start := w.l.LogStartOffset()
			w.dropRequired(func(b int64) bool { return b >= start })
		case 24: // a follower's truncation, five batches back
			var bases []int64
			for b := range w.m.required {
				bases = append(bases, b)
			}
			cut := maxBelow(bases, 5)
			w.dropRequired(func(b int64) bool { return b < cut })
			w.m.pending = w.m.pending[:0]
			if w.stop("truncate", w.l.TruncateTo(cut)) {
				return
			}
			w.gen++
			w.truncations++
		}
	}
	if !w.close() || !w.open() {
		return
	}
	for range 4 {
		if !w.appendOne() || !w.waitAll() {
			return
		}
	}
	w.close()
}

// maxBelow returns the n-th largest value of bs.
func maxBelow(bs []int64, n int) int64 {
	var best int64 = -1
	for range n {
		next := int64(-1)
		for _, b := range bs {
			if (best < 0 || b < best) && b > next {
				next = b
			}
		}
		if next < 0 {
			break
		}
		best = next
	}
	return best
}

// plCheck opens the log after a crash and checks it against the model. It
// returns how many required batches it found.
func plCheck(t *testing.T, fs *vfs.MemFS, idx *crashIndex, m *plModel, point string) int {
	t.Helper()
	l, err := segment.Open(plDir, plOptions(fs, idx))
	if err != nil {
		t.Fatalf("%s: open after the crash: %v", point, err)
	}
	defer l.Close()
	start, end := l.LogStartOffset(), l.LogEndOffset()
	found := map[int64][]byte{}
	lastGen := -1
	for off := start; off < end; {
		r, err := l.Read(off, 64<<10, end)
		if err != nil {
			t.Fatalf("%s: read at %d of [%d, %d): %v", point, off, start, end, err)
		}
		buf := make([]byte, r.Length)
		_, err = r.ReadAt(buf, r.Position)
		r.Release()
		if err != nil {
			t.Fatalf("%s: read at %d: %v", point, off, err)
		}
		before := off
		for len(buf) >= segment.HeaderSize {
			h, err := segment.Validate(buf)
			if errors.Is(err, segment.ErrShortBatch) && off != before {
				break
			}
			if err != nil {
				t.Fatalf("%s: the log serves a bad batch at offset %d: %v", point, off, err)
			}
			b := buf[:h.Size()]
			if h.BaseOffset != off && off != before {
				t.Fatalf("%s: batch at offset %d where %d was expected", point, h.BaseOffset, off)
			}
			known := false
			for _, e := range m.ever[h.BaseOffset] {
				known = known || bytes.Equal(e, b)
			}
			if !known {
				t.Fatalf("%s: the log serves at offset %d a batch that was never appended there", point, h.BaseOffset)
			}
			if gen := int(h.BaseTimestamp / 1_000_000); gen < lastGen {
				t.Fatalf("%s: at offset %d a batch of generation %d follows one of generation %d", point, h.BaseOffset, gen, lastGen)
			} else {
				lastGen = gen
			}
			found[h.BaseOffset] = b
			off = h.NextOffset()
			buf = buf[h.Size():]
		}
		if off == before {
			t.Fatalf("%s: read at %d below the log end %d returned no whole batch", point, off, end)
		}
	}
	lost := 0
	for base, want := range m.required {
		if got, ok := found[base]; !ok || !bytes.Equal(got, want) {
			lost++
			t.Errorf("%s: acknowledged batch at offset %d lost (log [%d, %d), present %v)", point, base, start, end, ok)
		}
	}
	if lost > 0 {
		t.FailNow()
	}
	// The log takes appends again.
	r, err := l.Append(plBatch(end, 99), testEpoch)
	if err != nil {
		t.Fatalf("%s: append after recovery: %v", point, err)
	}
	if err := l.WaitDurable(context.Background(), r.LastOffset+1); err != nil {
		t.Fatalf("%s: wait after recovery: %v", point, err)
	}
	return len(m.required)
}

type plStats struct{ points, batches int }

func (s *plStats) log(t *testing.T, what string) {
	t.Logf("POWERLOSS %s: crash points tried %d, acknowledged batches checked %d, lost 0", what, s.points, s.batches)
}

// plCrash is one way for the power to go: strict (nothing unsynced
// survives) or torn (a random part of it does, seeded), with the index
// keeping every write or only its synced ones.
type plCrash struct {
	torn    bool
	seed    uint64
	keepAll bool
}

func (c plCrash) String() string {
	return fmt.Sprintf("torn %v seed %d, index keeps all %v", c.torn, c.seed, c.keepAll)
}

func (c plCrash) cut(fs *vfs.MemFS, idx *crashIndex) {
	if c.torn {
		fs.CrashTorn(rand.New(rand.NewPCG(c.seed, 7)))
	} else {
		fs.Crash()
	}
	idx.crash(c.keepAll)
}

// plCrashes returns the crashes to try at point k: the four kinds in the
// full run, one of them (in turn) otherwise.
func plCrashes(k int) []plCrash {
	var out []plCrash
	for i, torn := range []bool{false, true} {
		for j, keepAll := range []bool{true, false} {
			if powerLossFull() || (k%4 == i*2+j) {
				out = append(out, plCrash{torn: torn, seed: uint64(k), keepAll: keepAll})
			}
		}
	}
	return out
}

// plPoints returns the crash points to try: 1..n+1 (n+1: after the last
// sync).
func plPoints(n int) []int {
	var ks []int
	for k := 1; k <= n+1; k++ {
		ks = append(ks, k)
	}
	return ks
}

func plSyncCount(t *testing.T) int {
	fs := vfs.NewMemFS()
	w := &plWorkload{t: t, fs: fs, idx: newCrashIndex(fs), m: newPLModel()}
	w.run()
	if w.m.acked == 0 || w.removed == 0 || w.truncations == 0 {
		t.Fatalf("the workload acknowledged %d batches, retention removed %d segments, %d truncations: it tests too little", w.m.acked, w.removed, w.truncations)
	}
	t.Logf("workload: %d syncs, %d batches acknowledged, %d segments removed by retention, %d truncations", fs.Syncs(), w.m.acked, w.removed, w.truncations)
	return fs.Syncs()
}

// TestPowerLossWorkload cuts the power at every sync point of the workload.
func TestPowerLossWorkload(t *testing.T) {
	n := plSyncCount(t)
	var st plStats
	for _, k := range plPoints(n) {
		for _, c := range plCrashes(k) {
			fs := vfs.NewMemFS()
			idx := newCrashIndex(fs)
			w := &plWorkload{t: t, fs: fs, idx: idx, m: newPLModel()}
			fs.FreezeAtSync(k)
			w.run()
			fs.Freeze()
			c.cut(fs, idx)
			st.points++
			st.batches += plCheck(t, fs, idx, w.m, fmt.Sprintf("power cut at sync %d of %d (%s)", k, n, c))
		}
	}
	st.log(t, "workload")
}

// TestPowerLossAfterKill kills the process at every sync point of the
// workload, lets recovery run on the page cache it left, then cuts the
// power (in the full run, also at every sync point of that recovery).
func TestPowerLossAfterKill(t *testing.T) {
	n := plSyncCount(t)
	var st plStats
	for _, k := range plPoints(n) {
		keepAll := true // the checkpoint recovery writes is then kept
		// How many syncs the recovery after this kill makes.
		recoverySyncs := func() int {
			fs := vfs.NewMemFS()
			idx := newCrashIndex(fs)
			w := &plWorkload{t: t, fs: fs, idx: idx, m: newPLModel()}
			fs.FreezeAtSync(k)
			w.run()
			fs.Freeze()
			fs.Restart()
			before := fs.Syncs()
			if w.open() {
				w.l.Close()
			}
			return fs.Syncs() - before
		}()
		js := []int{recoverySyncs + 1} // the power goes right after recovery
		if powerLossFull() {
			js = js[:0]
			for j := 1; j <= recoverySyncs+1; j++ {
				js = append(js, j)
			}
		}
		for _, j := range js {
			fs := vfs.NewMemFS()
			idx := newCrashIndex(fs)
			w := &plWorkload{t: t, fs: fs, idx: idx, m: newPLModel()}
			fs.FreezeAtSync(k)
			w.run()
			fs.Freeze()
			fs.Restart() // killed: the page cache stays
			fs.FreezeAtSync(j)
			if w.open() {
				fs.Freeze()
				w.l.Close()
			}
			fs.Freeze()
			c := plCrash{torn: (k+j)%2 == 1, seed: uint64(k*1000 + j), keepAll: keepAll}
			c.cut(fs, idx)
			st.points++
			st.batches += plCheck(t, fs, idx, w.m, fmt.Sprintf("killed at sync %d of %d, power cut at sync %d of %d of the recovery (%s)", k, n, j, recoverySyncs, c))
		}
	}
	st.log(t, "kill, recovery, power cut")
}
