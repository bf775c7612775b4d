package cleaner

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runnel-io/runnel/compression"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// plBroker is a partition manager whose partitions are on a MemFS (the
// index stays on the real file system, in dir).
func plBroker(t *testing.T, fs *vfs.MemFS, dir string) *testBroker {
	t.Helper()
	m, err := partition.OpenManager(partition.Options{DataDir: dir, FS: fs, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Open(compactedTopic(nil), 0, partition.Role{Leader: true, LeaderID: 1, Epoch: 1, ISR: []int32{1}, Replicas: []int32{1}})
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	return &testBroker{t: t, dir: dir, m: m, p: p}
}

// plWorkload produces the same keyed records every time (the rewrites a
// clean makes of them are then the same too) and seals the log. It
// returns every record produced, by offset.
func plWorkload(b *testBroker) map[int64]rec {
	rng := rand.New(rand.NewPCG(7, 7))
	out := map[int64]rec{}
	codecs := []int16{compression.None, compression.Zstd}
	for n := 0; n < 120; n++ {
		recs := make([]rec, 1+rng.IntN(4))
		for i := range recs {
			var v []byte
			if rng.IntN(6) != 0 {
				v = []byte(fmt.Sprintf("value %d %s", n, strings.Repeat("y", rng.IntN(50))))
			}
			recs[i] = rec{key: []byte(fmt.Sprintf("k%02d", rng.IntN(30))), value: v}
		}
		for _, r := range b.produce(codecs[n%2], -1, 0, recs) {
			out[r.offset] = r
		}
	}
	b.sealAll()
	return out
}

// segmentFiles returns the bytes of every sealed segment file on fs.
func segmentFiles(t *testing.T, fs *vfs.MemFS, l *segment.Log) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	segs := l.Segments()
	for _, s := range segs[:len(segs)-1] {
		b, err := vfs.ReadFile(fs, s.Path())
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(s.Path())] = b
	}
	return out
}

// TestCleanPowerLoss cuts the power at every sync point of a clean of a
// whole compacted log (strict and torn crashes in turn) and reopens it.
// Every sealed segment then holds exactly its old bytes or exactly its
// cleaned ones; every record read is one produced at its offset; every
// key's latest record is there; no temporary file is left; and a clean
// after the restart ends in the state an uninterrupted clean reaches.
func TestCleanPowerLoss(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(2_000_000_000)}
	opts := Options{Now: clock.Now, Logger: quiet()}

	// The dry run: the old and the cleaned bytes of every segment, and
	// how many syncs the clean makes.
	fs := vfs.NewMemFS()
	b := plBroker(t, fs, t.TempDir())
	produced := plWorkload(b)
	old := segmentFiles(t, fs, b.p.Log())
	cl, err := New(b.m, opts)
	if err != nil {
		t.Fatal(err)
	}
	before := fs.Syncs()
	if err := cl.CleanAll(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	syncs := fs.Syncs() - before
	cleaned := segmentFiles(t, fs, b.p.Log())
	final := readLog(t, b.p.Log())
	b.close()
	latest := map[string]rec{}
	for off := int64(0); off < int64(len(produced)); off++ {
		r := produced[off]
		latest[string(r.key)] = r
	}
	changed := 0
	for name := range old {
		if !bytes.Equal(old[name], cleaned[name]) {
			changed++
		}
	}
	if changed < 2 || syncs < 2*changed {
		t.Fatalf("the clean rewrote %d of %d segments with %d syncs: want a workload with something to clean", changed, len(old), syncs)
	}

	rng := rand.New(rand.NewPCG(15, 15))
	sawOld, sawNew := false, false
	for k := 1; k <= syncs+1; k++ {
		t.Run(fmt.Sprint("sync", k), func(t *testing.T) {
			fs := vfs.NewMemFS()
			dir := t.TempDir()
			b := plBroker(t, fs, dir)
			plWorkload(b)
			cl, err := New(b.m, opts)
			if err != nil {
				t.Fatal(err)
			}
			fs.FreezeAtSync(k)
			if err := cl.CleanAll(context.Background(), true); err != nil && !fs.Down() {
				t.Fatalf("clean failed with the machine up: %v", err)
			}
			fs.Freeze()
			b.m.Close() // fails: the machine is down
			if k%2 == 0 {
				fs.Crash()
			} else {
				fs.CrashTorn(rng)
			}
			b = plBroker(t, fs, dir)
			defer b.close()
			for name, got := range segmentFiles(t, fs, b.p.Log()) {
				switch {
				case bytes.Equal(got, old[name]):
					sawOld = sawOld || !bytes.Equal(got, cleaned[name])
				case bytes.Equal(got, cleaned[name]):
					sawNew = sawNew || !bytes.Equal(got, old[name])
				default:
					t.Fatalf("after a crash at sync %d, %s holds %d bytes: neither its %d old ones nor its %d cleaned ones",
						k, name, len(got), len(old[name]), len(cleaned[name]))
				}
			}
			seen := map[string]int64{}
			for _, r := range readLog(t, b.p.Log()) {
				p := produced[r.offset]
				if !bytes.Equal(p.key, r.key) || !bytes.Equal(p.value, r.value) || (p.value == nil) != (r.value == nil) {
					t.Fatalf("offset %d holds %q=%q, produced %q=%q", r.offset, r.key, r.value, p.key, p.value)
				}
				seen[string(r.key)] = r.offset
			}
			for key, r := range latest {
				if seen[key] != r.offset {
					t.Fatalf("key %s: last record at %d, want %d", key, seen[key], r.offset)
				}
			}
			ents, _ := fs.ReadDir(b.p.Log().Dir())
			for _, e := range ents {
				if strings.Contains(e.Name(), ".rewrite") {
					t.Errorf("left behind: %s", e.Name())
				}
			}
			cl, err = New(b.m, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.CleanAll(context.Background(), true); err != nil {
				t.Fatal(err)
			}
			got := readLog(t, b.p.Log())
			if len(got) != len(final) {
				t.Fatalf("a clean after the restart leaves %d records, an uninterrupted one %d", len(got), len(final))
			}
			for i := range got {
				if got[i].offset != final[i].offset {
					t.Fatalf("a clean after the restart leaves record %d at %d, an uninterrupted one at %d", i, got[i].offset, final[i].offset)
				}
			}
		})
	}
	if !sawOld || !sawNew {
		t.Errorf("crash points left old segments %v, cleaned ones %v: want both", sawOld, sawNew)
	}
}
