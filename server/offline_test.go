package server

import (
	"context"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// A partition whose fdatasync failed answers KAFKA_STORAGE_ERROR to the
// produces, fetches and offset lookups that look it up (leaderPartition),
// and the broker's other partitions answer as before.
func TestOfflinePartitionAnswersStorageError(t *testing.T) {
	fs := vfs.NewMemFS()
	m, err := partition.OpenManager(partition.Options{DataDir: t.TempDir(), FS: fs, NodeID: 1,
		Fsync: segment.FsyncPolicy{Mode: segment.FsyncAlways}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	role := partition.Role{Leader: true, LeaderID: 1, Epoch: 1, ISR: []int32{1}, Replicas: []int32{1}}
	for i, name := range []string{"sick", "well"} {
		if _, err := m.Open(cluster.Topic{Name: name, ID: cluster.TopicID{byte(i + 1)}, Partitions: 1}, 0, role); err != nil {
			t.Fatal(err)
		}
	}
	fs.Inject(func(op vfs.Op, path string) error {
		if op == vfs.OpSync && strings.Contains(path, "/sick-0/") {
			return syscall.EIO
		}
		return nil
	})
	s := &Server{parts: m}
	for _, name := range []string{"sick", "well"} {
		p, err := s.leaderPartition(name, 0, -1)
		if err != nil {
			t.Fatalf("%s before the produce: %v", name, err)
		}
		r, err := p.Append(testbatch.Make(testbatch.Spec{Timestamp: 1, Values: testbatch.Values(1, 10, 1)}), 1)
		if err == nil {
			err = p.WaitDurable(context.Background(), r.LastOffset+1)
		}
		want := int16(0)
		if name == "sick" {
			want = kerr.KafkaStorageError.Code
		}
		if got := errorCode(err); got != want {
			t.Fatalf("produce to %s: %v (code %d), want code %d", name, err, got, want)
		}
		_, err = s.leaderPartition(name, 0, -1)
		if got := errorCode(err); got != want {
			t.Fatalf("%s looked up after the produce: %v (code %d), want code %d", name, err, got, want)
		}
	}
}
