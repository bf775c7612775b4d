package broker

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

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

// TestCoordinatorMetrics: a group's commit creates __consumer_offsets;
// /metrics then shows its partitions loaded and active here, the group,
// and the loads.
func TestCoordinatorMetrics(t *testing.T) {
	cfg := testConfig(t)
	cfg.OffsetsTopic.Partitions = 3
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- b.Run(context.Background()) }()
	defer func() {
		b.Close()
		<-ran
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "events", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "events", Partition: 0, At: 1, LeaderEpoch: -1})
	resp, err := adm.CommitOffsets(ctx, "metrics-group", offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCoordinatorCollector(b.groups, nil))
	// The other partitions may still be loading: wait for them.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got := gatherCoordinatorMetrics(t, reg)
		if got["runnel_coordinator_partitions/active"] == 3 || time.Now().After(deadline) {
			break
		}
	}
	got := gatherCoordinatorMetrics(t, reg)
	if got["runnel_coordinator_partitions/active"] != 3 || got["runnel_coordinator_partitions/loading"] != 0 ||
		got["runnel_coordinator_groups"] != 1 || got["runnel_coordinator_loads_total"] < 3 {
		t.Fatalf("coordinator metrics %v", got)
	}
}

// gatherCoordinatorMetrics returns the values gathered, by name and, for
// runnel_coordinator_partitions, state.
func gatherCoordinatorMetrics(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			name := f.GetName()
			for _, l := range mt.GetLabel() {
				if l.GetName() == "state" {
					name += "/" + l.GetValue()
				}
			}
			v := mt.GetGauge().GetValue()
			if mt.GetCounter() != nil {
				v = mt.GetCounter().GetValue()
			}
			got[name] = v
		}
	}
	return got
}
