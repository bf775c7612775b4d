package index

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/runnel-io/runnel/internal/formattest"
	"github.com/runnel-io/runnel/internal/pebblelog"
	"github.com/runnel-io/runnel/segment"
)

var update = flag.Bool("update", false, "rewrite testdata/v1 and v2 from the code")

// The golden partition's contents: two index entries (the first with no
// timestamp, -1, as records without one have), a checkpoint and a sealed
// segment's summary.
var (
	goldenName    = "orders-0"
	goldenEntries = []segment.IndexEntry{
		{Offset: 0, Segment: 0, Position: 0, MaxTimestamp: -1},
		{Offset: 4100, Segment: 4096, Position: 65536, MaxTimestamp: 1_700_000_000_123},
	}
	goldenCheckpoint = segment.Checkpoint{Segment: 4096, Position: 81920, NextOffset: 4200, MaxTimestamp: 1_700_000_000_456, Clean: true}
	goldenSegment    = segment.SegmentInfo{Size: 1 << 20, LastOffset: 4099, MaxTimestamp: 1_700_000_000_001}
	goldenSegBase    = int64(0)
	goldenAborted    = AbortedTxn{ProducerID: 2000, FirstOffset: 4150, LastOffset: 4180, LastStableOffset: 4160}
	goldenTxnEnd     = int64(4200)
)

type goldenPair struct {
	name       string // of the files in testdata/VERSION: NAME.key, NAME.value
	key, value []byte
	version    string // "v1" for the kinds of version 1, "v2" for those version 2 added and the version key
}

// goldenPairs are the golden partition's keys and values as the encoders
// make them, in key order.
func goldenPairs() []goldenPair {
	name := []byte(goldenName)
	cp, seg, ver := checkpointValue(goldenCheckpoint), segmentValue(goldenSegment), versionValue(FormatVersion)
	ab, te := abortedValue(goldenAborted), txnEndValue(goldenTxnEnd)
	var ps []goldenPair
	ps = append(ps, goldenPair{"aborted", abortedKey(name, goldenAborted.LastOffset), ab[:], "v2"})
	ps = append(ps, goldenPair{"checkpoint", checkpointKey(name), cp[:], "v1"})
	ps = append(ps, goldenPair{"txnend", txnEndKey(name), te[:], "v2"})
	for i, e := range goldenEntries {
		v := offsetValue(e)
		ps = append(ps, goldenPair{"offset-" + string(rune('1'+i)), offsetKey(name, e.Offset), v[:], "v1"})
	}
	ps = append(ps, goldenPair{"segment", segmentKey(name, goldenSegBase), seg[:], "v1"})
	for i, e := range goldenEntries {
		v := offsetValue(e)
		ps = append(ps, goldenPair{"time-" + string(rune('1'+i)), timeKey(name, e.MaxTimestamp, e.Offset), v[:timeValueSize], "v1"})
	}
	return append(ps, goldenPair{"version", versionKey, ver[:], "v2"})
}

// TestGoldenKeysAndValues: every kind of key and value is, byte for byte,
// its copy in testdata/v1 (or v2, for the kinds version 2 added and the
// version key; testdata/v1/version.value is version 1's); a database
// written through Partition holds
// exactly those pairs; the golden bytes decode to the inputs and read back
// through Partition.
func TestGoldenKeysAndValues(t *testing.T) {
	pairs := goldenPairs()
	for _, gp := range pairs {
		formattest.Golden(t, filepath.Join("testdata", gp.version, gp.name+".key"), gp.key, *update)
		formattest.Golden(t, filepath.Join("testdata", gp.version, gp.name+".value"), gp.value, *update)
	}

	db, err := Open(t.TempDir(), Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := db.Partition(goldenName)
	addAll(t, p, goldenEntries)
	if err := p.SetCheckpoint(goldenCheckpoint, true); err != nil {
		t.Fatal(err)
	}
	if err := p.SetSegmentInfo(goldenSegBase, goldenSegment); err != nil {
		t.Fatal(err)
	}
	if err := p.AddAborted(goldenAborted); err != nil {
		t.Fatal(err)
	}
	if err := p.SetTxnIndexEnd(goldenTxnEnd, false); err != nil {
		t.Fatal(err)
	}
	it, err := db.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		if i >= len(pairs) {
			t.Fatalf("the database holds an unexpected key %x", it.Key())
		}
		if gp := pairs[i]; !bytes.Equal(it.Key(), gp.key) || !bytes.Equal(it.Value(), gp.value) {
			t.Errorf("stored %x → %x, want %s: %x → %x", it.Key(), it.Value(), gp.name, gp.key, gp.value)
		}
		i++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if i != len(pairs) {
		t.Fatalf("the database holds %d keys, want %d", i, len(pairs))
	}

	read := func(name string) (k, v []byte) {
		dir := "v1"
		if name == "aborted" || name == "txnend" || name == "version" {
			dir = "v2"
		}
		k, _ = os.ReadFile(filepath.Join("testdata", dir, name+".key"))
		v, _ = os.ReadFile(filepath.Join("testdata", dir, name+".value"))
		return k, v
	}
	value := func(name string) []byte { _, v := read(name); return v }
	for i, want := range goldenEntries {
		n := string(rune('1' + i))
		if got, err := decodeOffsetEntry(read("offset-" + n)); err != nil || got != want {
			t.Errorf("offset-%s decodes to %+v, %v; want %+v", n, got, err, want)
		}
		if got, err := decodeTimeEntry(read("time-" + n)); err != nil || got != want {
			t.Errorf("time-%s decodes to %+v, %v; want %+v", n, got, err, want)
		}
		if got, ok, err := p.Floor(want.Offset); err != nil || !ok || got != want {
			t.Errorf("Floor(%d) = %+v, %v, %v; want %+v", want.Offset, got, ok, err, want)
		}
		if got, ok, err := p.TimeFloor(want.MaxTimestamp + 1); err != nil || !ok || got != want {
			t.Errorf("TimeFloor(%d) = %+v, %v, %v; want %+v", want.MaxTimestamp+1, got, ok, err, want)
		}
	}
	if got, err := decodeCheckpoint(value("checkpoint")); err != nil || got != goldenCheckpoint {
		t.Errorf("checkpoint decodes to %+v, %v; want %+v", got, err, goldenCheckpoint)
	}
	if got, ok, err := p.Checkpoint(); err != nil || !ok || got != goldenCheckpoint {
		t.Errorf("Checkpoint() = %+v, %v, %v; want %+v", got, ok, err, goldenCheckpoint)
	}
	if got, err := decodeSegmentInfo(value("segment")); err != nil || got != goldenSegment {
		t.Errorf("segment decodes to %+v, %v; want %+v", got, err, goldenSegment)
	}
	if got, ok, err := p.SegmentInfo(goldenSegBase); err != nil || !ok || got != goldenSegment {
		t.Errorf("SegmentInfo(%d) = %+v, %v, %v; want %+v", goldenSegBase, got, ok, err, goldenSegment)
	}
	if got, err := decodeVersion(value("version")); err != nil || got != FormatVersion {
		t.Errorf("version decodes to %d, %v; want %d", got, err, FormatVersion)
	}
	if got, err := decodeAborted(read("aborted")); err != nil || got != goldenAborted {
		t.Errorf("aborted decodes to %+v, %v; want %+v", got, err, goldenAborted)
	}
	if got, err := p.Aborted(nil, 0, goldenAborted.FirstOffset+1); err != nil || len(got) != 1 || got[0] != goldenAborted {
		t.Errorf("Aborted() = %+v, %v; want %+v", got, err, goldenAborted)
	}
	if got, err := decodeTxnEnd(value("txnend")); err != nil || got != goldenTxnEnd {
		t.Errorf("txnend decodes to %d, %v; want %d", got, err, goldenTxnEnd)
	}
	if got, ok, err := p.TxnIndexEnd(); err != nil || !ok || got != goldenTxnEnd {
		t.Errorf("TxnIndexEnd() = %d, %v, %v; want %d", got, ok, err, goldenTxnEnd)
	}
}

// TestFormatRoundTrip: every value decodes to what was encoded, at the
// edges of every field.
func TestFormatRoundTrip(t *testing.T) {
	edges := []int64{0, 1, -1, 4096, math.MaxInt64, math.MinInt64, math.MaxInt32, 1_700_000_000_000}
	name := []byte("t-0")
	for _, a := range edges {
		for _, b := range edges {
			for _, c := range edges {
				e := segment.IndexEntry{Offset: a, Segment: b, Position: c, MaxTimestamp: a ^ b}
				v := offsetValue(e)
				if got, err := decodeOffsetEntry(offsetKey(name, e.Offset), v[:]); err != nil || got != e {
					t.Fatalf("offset entry %+v round trips to %+v, %v", e, got, err)
				}
				if got, err := decodeTimeEntry(timeKey(name, e.MaxTimestamp, e.Offset), v[:timeValueSize]); err != nil || got != e {
					t.Fatalf("time entry %+v round trips to %+v, %v", e, got, err)
				}
				for _, clean := range []bool{false, true} {
					cp := segment.Checkpoint{Segment: a, Position: b, NextOffset: c, MaxTimestamp: b ^ c, Clean: clean}
					v := checkpointValue(cp)
					if got, err := decodeCheckpoint(v[:]); err != nil || got != cp {
						t.Fatalf("checkpoint %+v round trips to %+v, %v", cp, got, err)
					}
				}
				ab := AbortedTxn{ProducerID: a, FirstOffset: b, LastOffset: c, LastStableOffset: a ^ c}
				av := abortedValue(ab)
				if got, err := decodeAborted(abortedKey(name, ab.LastOffset), av[:]); err != nil || got != ab {
					t.Fatalf("aborted %+v round trips to %+v, %v", ab, got, err)
				}
				te := txnEndValue(a)
				if got, err := decodeTxnEnd(te[:]); err != nil || got != a {
					t.Fatalf("aborted-index end %d round trips to %d, %v", a, got, err)
				}
				info := segment.SegmentInfo{Size: a, LastOffset: b, MaxTimestamp: c}
				sv := segmentValue(info)
				if got, err := decodeSegmentInfo(sv[:]); err != nil || got != info {
					t.Fatalf("segment info %+v round trips to %+v, %v", info, got, err)
				}
			}
		}
	}
	for _, ver := range []uint32{1, 2, math.MaxUint32} {
		v := versionValue(ver)
		if got, err := decodeVersion(v[:]); err != nil || got != ver {
			t.Fatalf("version %d round trips to %d, %v", ver, got, err)
		}
	}
}

// setVersionKey writes the version key of the database in dir as raw bytes
// (nil: removes it), as another broker's code would have left it.
func setVersionKey(t *testing.T, dir string, v []byte) {
	t.Helper()
	db, err := pebble.Open(dir, quietPebble())
	if err != nil {
		t.Fatal(err)
	}
	if v == nil {
		err = db.Delete(versionKey, pebble.Sync)
	} else {
		err = db.Set(versionKey, v, pebble.Sync)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func quietPebble() *pebble.Options {
	return &pebble.Options{Logger: pebblelog.Logger{L: slog.New(slog.DiscardHandler), Component: "test"}}
}

func storedVersion(t *testing.T, d *DB) []byte {
	t.Helper()
	v, closer, err := d.db.Get(versionKey)
	if err != nil {
		t.Fatalf("version key: %v", err)
	}
	defer closer.Close()
	return append([]byte(nil), v...)
}

// TestFormatVersion: Open writes the version; a database without one (as
// written before the key existed) or of version 1 opens with its data and
// is marked version 2; a newer version is refused with ErrVersion and a
// malformed one with ErrCorrupt, both leaving the database as it was.
func TestFormatVersion(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir)
	if got, want := storedVersion(t, db), []byte{0, 0, 0, 2}; !bytes.Equal(got, want) {
		t.Fatalf("a new database has version %x, want %x", got, want)
	}
	p := db.Partition(goldenName)
	addAll(t, p, goldenEntries)
	if err := p.SetCheckpoint(goldenCheckpoint, true); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for _, old := range [][]byte{nil, {0, 0, 0, 1}} {
		setVersionKey(t, dir, old)
		db = openTestDB(t, dir)
		if got, ok, err := db.Partition(goldenName).Checkpoint(); err != nil || !ok || got != goldenCheckpoint {
			t.Fatalf("checkpoint of a database of version %x: %+v, %v, %v", old, got, ok, err)
		}
		if got, want := storedVersion(t, db), []byte{0, 0, 0, 2}; !bytes.Equal(got, want) {
			t.Fatalf("version written to a database of version %x: %x, want %x", old, got, want)
		}
		db.Close()
	}

	for _, c := range []struct {
		v    []byte
		want error
	}{
		{[]byte{0, 0, 0, 3}, ErrVersion},
		{[]byte{0xff, 0xff, 0xff, 0xff}, ErrVersion},
		{[]byte{0, 0, 0, 0}, ErrCorrupt},
		{[]byte{1}, ErrCorrupt},
	} {
		setVersionKey(t, dir, c.v)
		if db, err := Open(dir, Options{Logger: slog.New(slog.DiscardHandler)}); !errors.Is(err, c.want) {
			if err == nil {
				db.Close()
			}
			t.Fatalf("open at version %x: %v, want %v", c.v, err, c.want)
		}
		got := func() []byte {
			db, err := pebble.Open(dir, quietPebble())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			v, closer, err := db.Get(versionKey)
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			return append([]byte(nil), v...)
		}()
		if !bytes.Equal(got, c.v) {
			t.Fatalf("refused open changed the version from %x to %x", c.v, got)
		}
	}
	if !bytes.Equal(versionKey, []byte("v")) {
		t.Fatal("the version key is not the byte 'v' alone")
	}
}

// FuzzDecode: no key or value read from the database makes a decoder
// panic, and whatever decodes encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, gp := range goldenPairs() {
		f.Add(gp.key, gp.value)
	}
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		if e, err := decodeOffsetEntry(k, v); err == nil {
			if b := offsetValue(e); !bytes.Equal(b[:], v) {
				t.Fatalf("offset value %x decodes to %+v, encodes to %x", v, e, b)
			}
		}
		if e, err := decodeTimeEntry(k, v); err == nil {
			if b := offsetValue(e); !bytes.Equal(b[:timeValueSize], v) || !bytes.Equal(timeKey(nil, e.MaxTimestamp, e.Offset)[2:], k[len(k)-16:]) {
				t.Fatalf("time entry %x → %x decodes to %+v", k, v, e)
			}
		}
		if c, err := decodeCheckpoint(v); err == nil && v[32] <= 1 {
			if b := checkpointValue(c); !bytes.Equal(b[:], v) {
				t.Fatalf("checkpoint %x decodes to %+v, encodes to %x", v, c, b)
			}
		}
		if info, err := decodeSegmentInfo(v); err == nil {
			if b := segmentValue(info); !bytes.Equal(b[:], v) {
				t.Fatalf("segment info %x decodes to %+v, encodes to %x", v, info, b)
			}
		}
		if a, err := decodeAborted(k, v); err == nil {
			if b := abortedValue(a); !bytes.Equal(b[:], v) {
				t.Fatalf("aborted %x decodes to %+v, encodes to %x", v, a, b)
			}
		}
		if end, err := decodeTxnEnd(v); err == nil {
			if b := txnEndValue(end); !bytes.Equal(b[:], v) {
				t.Fatalf("aborted-index end %x decodes to %d, encodes to %x", v, end, b)
			}
		}
		if ver, err := decodeVersion(v); err == nil {
			if b := versionValue(ver); !bytes.Equal(b[:], v) {
				t.Fatalf("version %x decodes to %d, encodes to %x", v, ver, b)
			}
		}
	})
}
