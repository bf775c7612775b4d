package cleaner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/compression"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// compactedTopic is topic "c" with small segments, compacted.
func compactedTopic(extra map[string]string) cluster.Topic {
	cfg := map[string]string{"cleanup.policy": "compact", "segment.bytes": "4096", "delete.retention.ms": "60000",
		"min.cleanable.dirty.ratio": "0.01"}
	for k, v := range extra {
		cfg[k] = v
	}
	return cluster.Topic{Name: "c", ID: cluster.TopicID{9}, Partitions: 1, Configs: cfg}
}

type testBroker struct {
	t   testing.TB
	dir string
	m   *partition.Manager
	p   *partition.Partition
}

func openBroker(t testing.TB, dir string, topic cluster.Topic) *testBroker {
	t.Helper()
	m, err := partition.OpenManager(partition.Options{DataDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Open(topic, 0, partition.Role{Leader: true, LeaderID: 1, Epoch: 1, ISR: []int32{1}, Replicas: []int32{1}})
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	return &testBroker{t: t, dir: dir, m: m, p: p}
}

func (b *testBroker) close() {
	if err := b.m.Close(); err != nil {
		b.t.Fatal(err)
	}
}

// rec is one record the workload produced.
type rec struct {
	key, value []byte // value nil: a tombstone
	offset     int64
}

// produce appends records as one batch of producer pid with codec, and
// returns them with their offsets.
func (b *testBroker) produce(codec int16, pid int64, seq int32, recs []rec) []rec {
	b.t.Helper()
	var rs []segment.Record
	for i, r := range recs {
		rs = append(rs, segment.Record{Offset: int64(i), Timestamp: 1000 + int64(i), Key: r.key, Value: r.value})
	}
	spec := segment.BatchSpec{Attributes: codec, LastOffsetDelta: int32(len(recs) - 1),
		ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq}
	if pid < 0 {
		spec.ProducerEpoch, spec.BaseSequence = -1, -1
	}
	batch, err := segment.BuildBatch(nil, spec, rs)
	if err != nil {
		b.t.Fatal(err)
	}
	res, err := b.p.Append(batch, 1)
	if err != nil {
		b.t.Fatalf("produce: %v", err)
	}
	if res.Duplicate {
		b.t.Fatalf("produce of seq %d: taken as a duplicate", seq)
	}
	out := make([]rec, len(recs))
	for i, r := range recs {
		out[i] = rec{key: r.key, value: r.value, offset: res.BaseOffset + int64(i)}
	}
	return out
}

// sealAll rolls the active segment and waits until every sealed segment
// is synced, so the whole log is cleanable.
func (b *testBroker) sealAll() {
	b.t.Helper()
	l := b.p.Log()
	if err := l.Roll(); err != nil {
		b.t.Fatal(err)
	}
	if err := l.Flush(context.Background()); err != nil {
		b.t.Fatal(err)
	}
}

// readLog returns every record of the log, in order, read through Read as
// a consumer's fetches are; it fails the test if offsets do not increase.
func readLog(t testing.TB, l *segment.Log) []rec {
	t.Helper()
	var out []rec
	last := int64(-1)
	for off := l.LogStartOffset(); off < l.LogEndOffset(); {
		r, err := l.Read(off, 1<<20, l.LogEndOffset())
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		buf := make([]byte, r.Length)
		if _, err := r.ReadAt(buf, r.Position); err != nil {
			t.Fatal(err)
		}
		r.Release()
		if len(buf) == 0 {
			t.Fatalf("empty read at %d below the log end %d", off, l.LogEndOffset())
		}
		for len(buf) >= segment.HeaderSize {
			h, err := segment.Validate(buf)
			if err != nil {
				t.Fatalf("batch at %d: %v", off, err)
			}
			err = segment.ForEachRecord(buf[:h.Size()], &h, 1<<30, func(r *segment.Record) error {
				if r.Offset <= last {
					return fmt.Errorf("offset %d after %d", r.Offset, last)
				}
				last = r.Offset
				var v []byte
				if r.Value != nil {
					v = bytes.Clone(r.Value)
				}
				out = append(out, rec{key: bytes.Clone(r.Key), value: v, offset: r.Offset})
				return nil
			})
			if err != nil {
				t.Fatalf("records of the batch at %d: %v", h.BaseOffset, err)
			}
			buf = buf[h.Size():]
			off = h.NextOffset()
		}
	}
	return out
}

// TestCleanerModel: random keyed workloads with overwrites and tombstones,
// every codec, one idempotent producer, small segments, a small dedupe
// buffer (so cleans take several passes) and the cleaner forced to run
// between rounds on a fake clock. Throughout, every record read is one that
// was produced at that offset, and every key's latest record is there.
// At the end, with the whole log sealed and cleaned, the log holds exactly
// the latest record of every key in offset order, tombstones included;
// once delete.retention.ms has passed since their segments were cleaned,
// exactly the live keys' latest values and no tombstone. The producer's
// sequence survives the clean and a restart that rebuilds its state from
// the log.
func TestCleanerModel(t *testing.T) {
	seeds := []uint64{1, 3}
	if os.Getenv("RUNNEL_COMPACTION_SOAK") != "" {
		seeds = nil
		for s := uint64(1); s <= 40; s++ {
			seeds = append(seeds, s)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, seed) })
	}
}

func runModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 15))
	clock := &fakeClock{now: time.UnixMilli(1_000_000_000)}
	dir := t.TempDir()
	fs := vfs.NewMemFS() // the segments' syncs cost nothing: the test runs many cleans
	b := plBroker(t, fs, dir)
	defer func() { b.close() }()
	cl, err := New(b.m, Options{DedupeBufferBytes: 25 * entryBytes, Now: clock.Now, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	const pid = 77
	seq := int32(0)
	produced := map[int64]rec{} // by offset
	latest := map[string]rec{}
	codecs := []int16{compression.None, compression.Gzip, compression.Snappy, compression.LZ4, compression.Zstd}
	checkRead := func(what string) {
		t.Helper()
		got := readLog(t, b.p.Log())
		seen := map[string]rec{}
		for _, r := range got {
			want, ok := produced[r.offset]
			if !ok || !bytes.Equal(want.key, r.key) || !bytes.Equal(want.value, r.value) || (want.value == nil) != (r.value == nil) {
				t.Fatalf("%s: offset %d holds %q=%q, produced %q=%q", what, r.offset, r.key, r.value, want.key, want.value)
			}
			seen[string(r.key)] = r
		}
		for k, want := range latest {
			if got, ok := seen[k]; !ok || got.offset != want.offset {
				if want.value == nil && !ok {
					continue // a tombstone gone past its time, with every record of its key
				}
				t.Fatalf("%s: key %q: last record at %d (present %v), want %d", what, k, got.offset, ok, want.offset)
			}
		}
	}
	for round := 0; round < 8; round++ {
		for n := 0; n < 30; n++ {
			recs := make([]rec, 1+rng.IntN(5))
			for i := range recs {
				k := []byte(fmt.Sprintf("key-%02d", rng.IntN(60)))
				var v []byte
				if rng.IntN(7) != 0 {
					v = []byte(fmt.Sprintf("v%d-%d-%s", round, n, bytes.Repeat([]byte{'x'}, rng.IntN(60))))
				}
				recs[i] = rec{key: k, value: v}
			}
			out := b.produce(codecs[rng.IntN(len(codecs))], pid, seq, recs)
			seq += int32(len(recs))
			for _, r := range out {
				produced[r.offset] = r
				latest[string(r.key)] = r
			}
		}
		if err := b.p.Log().Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := cl.CleanAll(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		checkRead(fmt.Sprint("round ", round))
		clock.Add(time.Duration(rng.IntN(40)) * time.Second)
	}

	// The producer's last batch, whose one record another producer
	// overwrites: it must stay, empty, for the producer's sequence.
	lastSeq := seq
	lastBatch := b.produce(compression.None, pid, seq, []rec{{key: []byte("p-last"), value: []byte("1")}})
	seq++
	for _, r := range b.produce(compression.None, -1, 0, []rec{{key: []byte("p-last"), value: []byte("2")}}) {
		produced[r.offset] = r
		latest[string(r.key)] = r
	}
	produced[lastBatch[0].offset] = lastBatch[0]

	// Everything sealed and cleaned: one record per key, the latest.
	b.sealAll()
	if err := cl.CleanAll(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	checkRead("sealed")
	clock.Add(61 * time.Second) // delete.retention.ms after every segment's clean
	if err := cl.CleanAll(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	// A second pass: the first one cleaned segments first cleaned in it,
	// whose horizon starts now.
	clock.Add(61 * time.Second)
	if err := cl.CleanAll(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	got := readLog(t, b.p.Log())
	segs := b.p.Log().Segments()
	for i, s := range segs[:len(segs)-1] {
		var end int64 = -1
		s.ReadBatches(nil, func(h *segment.Header, _ []byte) (bool, error) { end = h.NextOffset(); return true, nil })
		if end != segs[i+1].Base() {
			t.Fatalf("cleaned segment %d ends at %d, the next starts at %d", s.Base(), end, segs[i+1].Base())
		}
	}
	var want []rec
	for _, r := range latest {
		if r.value != nil {
			want = append(want, r)
		}
	}
	if len(got) != len(want) {
		cnt := map[string]int{}
		for _, r := range got {
			cnt[string(r.key)]++
		}
		for _, r := range got {
			if cnt[string(r.key)] > 1 || r.value == nil {
				t.Logf("%q at %d tomb=%v latest=%d", r.key, r.offset, r.value == nil, latest[string(r.key)].offset)
			}
		}
		t.Fatalf("the cleaned log holds %d records, want the %d live keys' latest", len(got), len(want))
	}
	for _, r := range got {
		w := latest[string(r.key)]
		if r.value == nil {
			t.Fatalf("a tombstone of %q at %d outlived delete.retention.ms", r.key, r.offset)
		}
		if w.offset != r.offset || !bytes.Equal(w.value, r.value) {
			t.Fatalf("key %q: %q at %d, want %q at %d", r.key, r.value, r.offset, w.value, w.offset)
		}
	}
	if s := cl.Stats(); s.Segments.Load() == 0 || s.RecordsRemoved.Load() == 0 || s.BytesCleaned.Load() <= s.BytesAfter.Load() {
		t.Fatalf("stats: %d segments, %d records removed, %d bytes cleaned to %d", s.Segments.Load(), s.RecordsRemoved.Load(), s.BytesCleaned.Load(), s.BytesAfter.Load())
	}

	// The idempotent producer after a restart whose producer state is
	// rebuilt from the cleaned log: its next sequence is taken, a retry
	// of its last batch is a duplicate.
	leo := b.p.LogEndOffset()
	b.close()
	if err := fs.Remove(filepath.Join(dir, "topics", "c-0", "producers.json")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "index"))
	b = plBroker(t, fs, dir)
	if b.p.LogEndOffset() != leo {
		t.Fatalf("log end %d after the restart, want %d", b.p.LogEndOffset(), leo)
	}
	checkRead("restarted")
	retry, err := segment.BuildBatch(nil, segment.BatchSpec{ProducerID: pid, BaseSequence: lastSeq}, []segment.Record{{Key: []byte("p-last"), Value: []byte("1")}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.p.Append(retry, 1)
	if err != nil || !res.Duplicate || res.BaseOffset != lastBatch[0].offset {
		t.Fatalf("retry of the producer's last batch: %+v, %v; want a duplicate at %d", res, err, lastBatch[0].offset)
	}
	out := b.produce(compression.None, pid, seq, []rec{{key: []byte("after"), value: []byte("restart")}})
	if out[0].offset != leo {
		t.Fatalf("first offset after the restart %d, want %d", out[0].offset, leo)
	}
}
