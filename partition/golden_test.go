package partition

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/runnel-io/runnel/cluster"
)

var update = flag.Bool("update", false, "rewrite testdata/v1 from the code")

// goldenSideFiles are the side files of a partition folder, by name.
var goldenSideFiles = []string{producerSnapshotFile, epochsFile, "log-start-offset", topicIDFile}

// goldenTopic is the topic of the golden partition folder.
var goldenTopic = cluster.Topic{Name: "orders", Partitions: 1, Configs: map[string]string{"segment.bytes": "1048576"},
	ID: cluster.TopicID{0x3f, 0x2a, 0x1b, 0x0c, 0x4d, 0x5e, 0x46, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8}}

// writeGoldenPartition runs a fixed history on a lone replica in dir and
// closes it: two leader epochs, two idempotent producers (one of them at
// a later producer epoch, with more batches than the window keeps), a
// batch without idempotence and a DeleteRecords. It returns the folder.
func writeGoldenPartition(t *testing.T, dir string) string {
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
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "topics", Name(goldenTopic.Name, 0))
}

// TestGoldenSideFiles: the side files the code writes for the golden
// history are, byte for byte, those in testdata/v1.
func TestGoldenSideFiles(t *testing.T) {
	folder := writeGoldenPartition(t, t.TempDir())
	for _, name := range goldenSideFiles {
		got, err := os.ReadFile(filepath.Join(folder, name))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", "v0", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to write it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s changed:\n got %q\nwant %q", name, got, want)
		}
	}
}
