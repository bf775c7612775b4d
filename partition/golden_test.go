package partition

import (
	"bytes"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/formattest"
)

var update = flag.Bool("update", false, "rewrite testdata/v1 and v2 from the code")

// goldenPath is where the bytes the code writes for a side file are:
// testdata/v2 for producers.json (its version 2), testdata/v1 for the
// others.
func goldenPath(name string) string {
	if name == producerSnapshotFile {
		return filepath.Join("testdata", "v2", name)
	}
	return filepath.Join("testdata", "v1", name)
}

// goldenSideFiles are the side files of a partition folder, by name.
var goldenSideFiles = []string{producerSnapshotFile, epochsFile, "log-start-offset", topicIDFile}

// goldenTopic is the topic of the golden partition folder.
var goldenTopic = cluster.Topic{Name: "orders", Partitions: 1, Configs: map[string]string{"segment.bytes": "1048576"},
	ID: cluster.TopicID{0x3f, 0x2a, 0x1b, 0x0c, 0x4d, 0x5e, 0x46, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8}}

// goldenState is what a partition knows that its side files keep.
type goldenState struct {
	producers map[int64]*producerState
	open      map[int64]int64 // open transactions
	epochs    []EpochEntry
	logStart  int64
}

func stateOf(p *Partition) goldenState {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.txn.mu.Lock()
	defer p.txn.mu.Unlock()
	return goldenState{maps.Clone(p.mu.producers), maps.Clone(p.txn.open), slices.Clone(p.epochs.entries), p.LogStartOffset()}
}

// writeGoldenPartition runs a fixed history on a lone replica in dir and
// closes it: two leader epochs, two idempotent producers (one of them at
// a later producer epoch, with more batches than the window keeps), a
// batch without idempotence and a DeleteRecords; then, from offset 19,
// transactions: producer 2000 aborts one and leaves the next open,
// producer 3000 commits one from coordinator epoch 5. It returns the
// folder and the state the partition had at its close.
func writeGoldenPartition(t *testing.T, dir string) (string, goldenState) {
	t.Helper()
	m := newManager(t, dir, 1, fsyncNever)
	p, err := m.Open(goldenTopic, 0, leaderRole(1, 1, []int32{1}, 1))
	if err != nil {
		t.Fatal(err)
	}
	for seq := int32(0); seq < 14; seq += 2 {
		produce(t, p, idempotent(7, 0, seq, 2), -1)
	}
	if err := p.SetRole(leaderRole(1, 3, []int32{1}, 1)); err != nil {
		t.Fatal(err)
	}
	produce(t, p, idempotent(1000, 2, 0, 3), -1)
	produce(t, p, plain(1), -1)
	produce(t, p, idempotent(7, 0, 14, 1), -1)
	if _, err := p.DeleteRecords(5); err != nil {
		t.Fatal(err)
	}
	produce(t, p, transactional(2000, 0, 0, 2), -1)
	writeMarker(t, p, 2000, 0, 3, false)
	produce(t, p, transactional(2000, 0, 2, 1), -1)
	produce(t, p, transactional(3000, 1, 0, 1), -1)
	writeMarker(t, p, 3000, 1, 5, true)
	st := stateOf(p)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "topics", Name(goldenTopic.Name, 0)), st
}

// TestGoldenSideFiles: the side files the code writes for the golden
// history are, byte for byte, those in testdata/v1.
func TestGoldenSideFiles(t *testing.T) {
	folder, _ := writeGoldenPartition(t, t.TempDir())
	for _, name := range goldenSideFiles {
		got, err := os.ReadFile(filepath.Join(folder, name))
		if err != nil {
			t.Fatal(err)
		}
		formattest.Golden(t, goldenPath(name), got, *update)
	}
}

// TestGoldenSideFilesRead: the side files of testdata/v2 and v1, and
// those of testdata/v0 (written before the JSON files had versions), put
// in place of the ones the golden history wrote, reopen to the state the
// partition had (producers.json of v0 and v1, from before the history's
// transactions at offset 19, by the walk from there); the next close
// writes the current versions, byte for byte.
func TestGoldenSideFilesRead(t *testing.T) {
	for _, version := range []string{"v0", "v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			dir := t.TempDir()
			folder, want := writeGoldenPartition(t, dir)
			for _, name := range goldenSideFiles {
				b, err := os.ReadFile(filepath.Join("testdata", version, name))
				if errors.Is(err, os.ErrNotExist) && version == "v2" {
					continue // only producers.json has a version 2
				}
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(folder, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := newManager(t, dir, 1, fsyncNever)
			p, err := m.Open(goldenTopic, 0, leaderRole(1, 3, []int32{1}, 1))
			if err != nil {
				t.Fatal(err)
			}
			got := stateOf(p)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("opened with the %s side files:\n%s %v %d\nwant\n%s %v %d", version,
					fmtProducers(got.producers), got.epochs, got.logStart, fmtProducers(want.producers), want.epochs, want.logStart)
			}
			if p.LogEndOffset() != 25 {
				t.Fatalf("log end %d, want 25: the folder was not kept", p.LogEndOffset())
			}
			if lso := p.LastStableOffset(); lso != 22 {
				t.Fatalf("LSO %d, want 22 (producer 2000's open transaction)", lso)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{producerSnapshotFile} {
				got, _ := os.ReadFile(filepath.Join(folder, name))
				want, _ := os.ReadFile(goldenPath(name))
				if !bytes.Equal(got, want) {
					t.Errorf("%s after a close:\n got %s\nwant %s", name, got, want)
				}
			}
		})
	}
}

// TestSideFileRoundTrips: the golden files decode and encode again to the
// same bytes, the two versions of each JSON file decode alike, and what
// the code does not know is refused.
func TestSideFileRoundTrips(t *testing.T) {
	read := func(version, name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", version, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	end0, table0, open0, err := decodeProducers(read("v0", producerSnapshotFile))
	if err != nil {
		t.Fatal(err)
	}
	end1, table1, open1, err := decodeProducers(read("v1", producerSnapshotFile))
	if err != nil {
		t.Fatal(err)
	}
	if end0 != end1 || !reflect.DeepEqual(table0, table1) || len(open0)+len(open1) != 0 {
		t.Fatalf("producers v0 decodes to %d %s %v, v1 to %d %s %v", end0, fmtProducers(table0), open0, end1, fmtProducers(table1), open1)
	}
	v2 := read("v2", producerSnapshotFile)
	end2, table2, open2, err := decodeProducers(v2)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int64]int64{2000: 22}; !reflect.DeepEqual(open2, want) || table2[3000].CoordinatorEpoch != 5 {
		t.Fatalf("producers v2: open transactions %v, want %v; producer 3000 %+v", open2, want, table2[3000])
	}
	for id, st := range table1 {
		if !reflect.DeepEqual(table2[id], st) {
			t.Errorf("producer %d: v2 %+v, v1 %+v", id, table2[id], st)
		}
	}
	if b, err := encodeProducers(end2, table2, open2); err != nil || !bytes.Equal(b, v2) {
		t.Fatalf("producers v2 encodes again to %s, %v", b, err)
	}
	// Version 1 written today would lose the transactions: never written.
	if b, err := encodeProducers(end1, table1, nil); err != nil || !bytes.Contains(b, []byte(`"version":2`)) {
		t.Fatalf("producers encode to %s, %v: not version 2", b, err)
	}

	e0, err := decodeEpochs(read("v0", epochsFile))
	if err != nil {
		t.Fatal(err)
	}
	v1 := read("v1", epochsFile)
	e1, err := decodeEpochs(v1)
	if err != nil || !slices.Equal(e0, e1) {
		t.Fatalf("leader epochs v0 decodes to %v, v1 to %v, %v", e0, e1, err)
	}
	if b, err := encodeEpochs(e1); err != nil || !bytes.Equal(b, v1) {
		t.Fatalf("leader epochs v1 encodes again to %s, %v", b, err)
	}

	if id := read("v1", topicIDFile); !sameTopic(id, goldenTopic.ID) || !bytes.Equal(encodeTopicID(goldenTopic.ID), id) {
		t.Fatalf("topic-id %q is not the golden topic's", id)
	}

	for _, bad := range []string{
		`{"version":3,"log_end_offset":0,"producers":[]}`,
		`{"version":0,"log_end_offset":0,"producers":[]}`,
		`{"version":2,"log_end_offset":9,"producers":[{"producer_id":1,"epoch":0,"batches":[],"coordinator_epoch":0,"txn_first_offset":-2}]}`,
		`{"version":2,"log_end_offset":9,"producers":[{"producer_id":1,"epoch":0,"batches":[],"coordinator_epoch":0,"txn_first_offset":9}]}`,
		`{"version":2,"log_end_offset":9,"producers":[{"producer_id":1,"epoch":0,"batches":[],"coordinator_epoch":0,"txn_first_offset":1,"x":1}]}`,
		`{"version":1,"log_end_offset":0,"producers":[{"producer_id":1,"txn_first_offset":0}]}`,
		`{"version":1,"log_end_offset":0,"producers":[],"surprise":1}`,
		`{"version":1,"log_end_offset":0,"producers":[{"producer_id":1},{"producer_id":1}]}`,
		`{"version":1,"log_end_offset":0,"producers":[{"producer_id":-1}]}`,
		`{"version":1,"log_end_offset":0,"producers":[]} {}`,
		`[]`,
	} {
		if _, _, _, err := decodeProducers([]byte(bad)); err == nil {
			t.Errorf("producers %s decoded", bad)
		}
	}
	for _, bad := range []string{
		`{"version":2,"epochs":[]}`,
		`{"epochs":[]}`,
		`{"version":1,"epochs":[],"surprise":1}`,
		`{"version":1,"epochs":[{"epoch":2,"start_offset":0},{"epoch":1,"start_offset":5}]}`,
		`[{"epoch":1,"start_offset":5},{"epoch":2,"start_offset":4}]`,
	} {
		if _, err := decodeEpochs([]byte(bad)); err == nil {
			t.Errorf("leader epochs %s decoded", bad)
		}
	}
	if _, err := decodeEpochs([]byte(`{"version":2,"epochs":[]}`)); !errors.Is(err, errSideFileVersion) {
		t.Errorf("leader epochs of version 2: %v, want errSideFileVersion", err)
	}
}

// TestLoadEpochsNewerVersion: a partition whose leader-epoch file is of a
// newer version does not open, and says why; without the file it opens,
// the history rebuilt from the batch headers.
func TestLoadEpochsNewerVersion(t *testing.T) {
	dir := t.TempDir()
	folder, want := writeGoldenPartition(t, dir)
	path := filepath.Join(folder, epochsFile)
	if err := os.WriteFile(path, []byte(`{"version":2,"epochs":[{"epoch":1,"start_offset":0}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, dir, 1, fsyncNever)
	if _, err := m.Open(goldenTopic, 0, leaderRole(1, 3, []int32{1}, 1)); !errors.Is(err, errSideFileVersion) || !strings.Contains(err.Error(), epochsFile) {
		t.Fatalf("open with leader epochs of version 2: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	p, err := m.Open(goldenTopic, 0, leaderRole(1, 3, []int32{1}, 1))
	if err != nil {
		t.Fatal(err)
	}
	// Rebuilt from the batches the log holds: epoch 1 from the first one
	// (the log start, 5, lies in the batch at 4).
	rebuilt := []EpochEntry{{1, 4}, want.epochs[1]}
	if got := stateOf(p).epochs; !slices.Equal(got, rebuilt) {
		t.Fatalf("epochs rebuilt as %v, want %v", got, rebuilt)
	}
}

// FuzzDecodeSideFiles: no bytes make a side-file decoder panic, and what
// decodes encodes to bytes that decode to the same.
func FuzzDecodeSideFiles(f *testing.F) {
	for _, v := range []string{"v0", "v1", "v2"} {
		for _, name := range goldenSideFiles {
			if b, err := os.ReadFile(filepath.Join("testdata", v, name)); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if end, table, open, err := decodeProducers(b); err == nil {
			enc, err := encodeProducers(end, table, open)
			if err != nil {
				return // an open transaction of a producer without state: never written
			}
			end2, table2, open2, err := decodeProducers(enc)
			if err != nil || end2 != end || !reflect.DeepEqual(table2, table) || !reflect.DeepEqual(open2, open) {
				t.Fatalf("producers %q: %d %s, again %d %s, %v", b, end, fmtProducers(table), end2, fmtProducers(table2), err)
			}
		}
		if entries, err := decodeEpochs(b); err == nil {
			enc, err := encodeEpochs(entries)
			if err != nil {
				t.Fatal(err)
			}
			again, err := decodeEpochs(enc)
			if err != nil || !slices.Equal(again, entries) {
				t.Fatalf("leader epochs %q: %v, again %v, %v", b, entries, again, err)
			}
		}
		sameTopic(b, goldenTopic.ID)
	})
}
