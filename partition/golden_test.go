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

var update = flag.Bool("update", false, "rewrite testdata/v1 from the code")

// goldenSideFiles are the side files of a partition folder, by name.
var goldenSideFiles = []string{producerSnapshotFile, epochsFile, "log-start-offset", topicIDFile}

// goldenTopic is the topic of the golden partition folder.
var goldenTopic = cluster.Topic{Name: "orders", Partitions: 1, Configs: map[string]string{"segment.bytes": "1048576"},
	ID: cluster.TopicID{0x3f, 0x2a, 0x1b, 0x0c, 0x4d, 0x5e, 0x46, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8}}

// goldenState is what a partition knows that its side files keep.
type goldenState struct {
	producers map[int64]*producerState
	epochs    []EpochEntry
	logStart  int64
}

func stateOf(p *Partition) goldenState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return goldenState{maps.Clone(p.mu.producers), slices.Clone(p.epochs.entries), p.LogStartOffset()}
}

// writeGoldenPartition runs a fixed history on a lone replica in dir and
// closes it: two leader epochs, two idempotent producers (one of them at
// a later producer epoch, with more batches than the window keeps), a
// batch without idempotence and a DeleteRecords. It returns the folder
// and the state the partition had at its close.
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
		formattest.Golden(t, filepath.Join("testdata", "v1", name), got, *update)
	}
}

// TestGoldenSideFilesRead: the side files of testdata/v1, and those of
// testdata/v0 (written before the JSON files had versions), put in place
// of the ones the golden history wrote, reopen to the state the partition
// had; the next close writes version 1, byte for byte.
func TestGoldenSideFilesRead(t *testing.T) {
	for _, version := range []string{"v0", "v1"} {
		t.Run(version, func(t *testing.T) {
			dir := t.TempDir()
			folder, want := writeGoldenPartition(t, dir)
			for _, name := range goldenSideFiles {
				b, err := os.ReadFile(filepath.Join("testdata", version, name))
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
			if p.LogEndOffset() != 19 {
				t.Fatalf("log end %d, want 19: the folder was not kept", p.LogEndOffset())
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{producerSnapshotFile} {
				got, _ := os.ReadFile(filepath.Join(folder, name))
				want, _ := os.ReadFile(filepath.Join("testdata", "v1", name))
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
	end0, table0, err := decodeProducers(read("v0", producerSnapshotFile))
	if err != nil {
		t.Fatal(err)
	}
	v1 := read("v1", producerSnapshotFile)
	end1, table1, err := decodeProducers(v1)
	if err != nil {
		t.Fatal(err)
	}
	if end0 != end1 || !reflect.DeepEqual(table0, table1) {
		t.Fatalf("producers v0 decodes to %d %s, v1 to %d %s", end0, fmtProducers(table0), end1, fmtProducers(table1))
	}
	if b, err := encodeProducers(end1, table1); err != nil || !bytes.Equal(b, v1) {
		t.Fatalf("producers v1 encodes again to %s, %v", b, err)
	}

	e0, err := decodeEpochs(read("v0", epochsFile))
	if err != nil {
		t.Fatal(err)
	}
	v1 = read("v1", epochsFile)
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
		`{"version":2,"log_end_offset":0,"producers":[]}`,
		`{"version":0,"log_end_offset":0,"producers":[]}`,
		`{"version":1,"log_end_offset":0,"producers":[],"surprise":1}`,
		`{"version":1,"log_end_offset":0,"producers":[{"producer_id":1},{"producer_id":1}]}`,
		`{"version":1,"log_end_offset":0,"producers":[{"producer_id":-1}]}`,
		`{"version":1,"log_end_offset":0,"producers":[]} {}`,
		`[]`,
	} {
		if _, _, err := decodeProducers([]byte(bad)); err == nil {
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
	for _, v := range []string{"v0", "v1"} {
		for _, name := range goldenSideFiles {
			if b, err := os.ReadFile(filepath.Join("testdata", v, name)); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if end, table, err := decodeProducers(b); err == nil {
			enc, err := encodeProducers(end, table)
			if err != nil {
				t.Fatal(err)
			}
			end2, table2, err := decodeProducers(enc)
			if err != nil || end2 != end || !reflect.DeepEqual(table2, table) {
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
