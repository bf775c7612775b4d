package broker

import (
	"context"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// TestOfflinePartitionMetric: runnel_partition_offline is 1 for the
// partition whose fdatasync failed and 0 for the one beside it.
func TestOfflinePartitionMetric(t *testing.T) {
	fs := vfs.NewMemFS()
	m, err := partition.OpenManager(partition.Options{DataDir: t.TempDir(), FS: fs,
		Fsync: segment.FsyncPolicy{Mode: segment.FsyncAlways}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	role := partition.Role{Leader: true, LeaderID: 1, Epoch: 1, ISR: []int32{1}, Replicas: []int32{1}}
	open := func(name string, id byte) *partition.Partition {
		p, err := m.Open(cluster.Topic{Name: name, ID: cluster.TopicID{id}, Partitions: 1}, 0, role)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	sick, well := open("sick", 1), open("well", 2)
	produce := func(p *partition.Partition) error {
		r, err := p.Append(testbatch.Make(testbatch.Spec{Timestamp: 1_000, Values: testbatch.Values(2, 30, 5)}), 1)
		if err != nil {
			return err
		}
		return p.WaitDurable(context.Background(), r.LastOffset+1)
	}
	fs.Inject(func(op vfs.Op, path string) error {
		if op == vfs.OpSync && strings.Contains(path, "/sick-0/") {
			return syscall.EIO
		}
		return nil
	})
	if err := produce(sick); err == nil {
		t.Fatal("a produce whose fdatasync failed was acknowledged")
	}
	if err := produce(well); err != nil {
		t.Fatalf("the other partition: %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newStorageCollector(m))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "runnel_partition_offline" {
			continue
		}
		for _, mt := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["topic"]+"-"+labels["partition"]] = mt.GetGauge().GetValue()
		}
	}
	if got["sick-0"] != 1 || got["well-0"] != 0 || len(got) != 2 {
		t.Fatalf("runnel_partition_offline = %v, want sick-0 1 and well-0 0", got)
	}
}
