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

// TestUnderReplicatedAndISRChanges: a led partition whose ISR lacks a
// replica is under-replicated; the ISR watch counts its shrink and its
// expansion, but not a new leader epoch.
func TestUnderReplicatedAndISRChanges(t *testing.T) {
	m, err := partition.OpenManager(partition.Options{DataDir: t.TempDir(), FS: vfs.NewMemFS(),
		Fsync: segment.FsyncPolicy{Mode: segment.FsyncAlways}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	full := partition.Role{Leader: true, LeaderID: 1, Epoch: 1, ISR: []int32{1, 2}, Replicas: []int32{1, 2}}
	p, err := m.Open(cluster.Topic{Name: "t", ID: cluster.TopicID{1}, Partitions: 1}, 0, full)
	if err != nil {
		t.Fatal(err)
	}
	w := newISRWatch()
	reg := prometheus.NewRegistry()
	reg.MustRegister(newStorageCollector(m), w.shrinks, w.expands)
	gather := func() map[string]float64 {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range families {
			for _, mt := range f.GetMetric() {
				got[f.GetName()] = mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
			}
		}
		return got
	}
	setRole := func(r partition.Role) {
		t.Helper()
		if err := p.SetRole(r); err != nil {
			t.Fatal(err)
		}
		w.observe(m.Partitions())
	}
	w.observe(m.Partitions())
	if got := gather(); got["runnel_partition_under_replicated"] != 0 || got["runnel_under_replicated_partitions"] != 0 {
		t.Fatalf("full ISR: %v", got)
	}
	shrunk := full
	shrunk.ISR, shrunk.PartitionEpoch = []int32{1}, 1
	setRole(shrunk)
	if got := gather(); got["runnel_partition_under_replicated"] != 1 || got["runnel_under_replicated_partitions"] != 1 ||
		got["runnel_isr_shrinks_total"] != 1 || got["runnel_isr_expands_total"] != 0 {
		t.Fatalf("after a shrink: %v", got)
	}
	expanded := full
	expanded.PartitionEpoch = 2
	setRole(expanded)
	if got := gather(); got["runnel_under_replicated_partitions"] != 0 || got["runnel_isr_shrinks_total"] != 1 || got["runnel_isr_expands_total"] != 1 {
		t.Fatalf("after an expansion: %v", got)
	}
	newLeader := shrunk
	newLeader.Epoch, newLeader.PartitionEpoch = 2, 3
	setRole(newLeader)
	if got := gather(); got["runnel_isr_shrinks_total"] != 1 {
		t.Fatalf("a new leader epoch counted as a shrink: %v", got)
	}
}

// TestDiskAndOfflinePartitionMetrics: a broker reports its data
// directory's file system, and, as the controller, no partition without a
// leader.
func TestDiskAndOfflinePartitionMetrics(t *testing.T) {
	cfg := testConfig(t)
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(newDiskCollector(cfg.DataDir), newClusterCollector(b))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		got[f.GetName()] = f.GetMetric()[0].GetGauge().GetValue()
	}
	free, ok1 := got["runnel_data_dir_free_bytes"]
	size, ok2 := got["runnel_data_dir_size_bytes"]
	if !ok1 || !ok2 || size <= 0 || free > size {
		t.Errorf("data dir free %v (present %v), size %v (present %v)", free, ok1, size, ok2)
	}
	if off, ok := got["runnel_offline_partitions"]; !ok || off != 0 {
		t.Errorf("runnel_offline_partitions = %v (present %v) on the only broker, want 0", off, ok)
	}
}

// gatherValues returns each unlabelled or summed-over-labels value
// gathered from collectors, by name.
func gatherValues(t *testing.T, collectors ...prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			got[f.GetName()] += mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
		}
	}
	return got
}

// TestReplicationMetricsWhenABrokerStops: when one of three brokers stops
// and is fenced, the others count the shrink of the ISRs they kept leading
// and report every partition they lead under-replicated, and the controller reports the
// partitions whose only replica was on the stopped broker as having no
// leader.
func TestReplicationMetricsWhenABrokerStops(t *testing.T) {
	if testing.Short() {
		t.Skip("three brokers")
	}
	voters := []cluster.Voter{{ID: 1, Addr: freeAddr(t)}, {ID: 2, Addr: freeAddr(t)}, {ID: 3, Addr: freeAddr(t)}}
	brokers, stop := startQuorum(t, voters, func(c *Config, _ cluster.Voter) {
		c.Controller.SessionTimeout, c.Controller.HeartbeatInterval = time.Second, 100*time.Millisecond
	})
	defer stop()
	if t.Failed() {
		return
	}
	var seeds []string
	for _, b := range brokers {
		seeds = append(seeds, b.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	waitRegistered(t, ctx, adm, 3)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "solo"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 3, 3, nil, "replicated"); err != nil {
		t.Fatal(err)
	}
	controller := brokers[0].meta.Controller()
	var victim *Broker
	var rest []*Broker
	for _, b := range brokers {
		if b.cfg.NodeID != controller && victim == nil {
			victim = b
		} else {
			rest = append(rest, b)
		}
	}
	var ctl *Broker
	for _, b := range rest {
		if b.cfg.NodeID == controller {
			ctl = b
		}
	}
	solo := 0
	for p := range int32(3) {
		if info, _ := ctl.meta.Partition("solo", p); info.Leader == victim.cfg.NodeID {
			solo++
		}
	}
	if solo == 0 {
		t.Fatal("the stopped broker leads no partition of solo; the test needs one")
	}
	// A partition of replicated the stopped broker led gets a new leader,
	// which sees no shrink of an ISR it led; the others shrink.
	kept := 0
	for p := range int32(3) {
		if info, _ := ctl.meta.Partition("replicated", p); info.Leader != victim.cfg.NodeID {
			kept++
		}
	}
	victim.Close()

	for {
		changed := ctl.node.FSM().TopologyChanged()
		offline := gatherValues(t, newClusterCollector(ctl))["runnel_offline_partitions"]
		shrinks, under := 0.0, 0.0
		for _, b := range rest {
			v := gatherValues(t, b.isrs.shrinks, newStorageCollector(b.parts))
			shrinks += v["runnel_isr_shrinks_total"]
			under += v["runnel_under_replicated_partitions"]
		}
		// Every partition of replicated is led by a broker still up, each
		// with one replica out of its ISR.
		if offline == float64(solo) && shrinks == float64(kept) && under == 3 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("runnel_offline_partitions %v, want %d; ISR shrinks %v, want %d; under-replicated %v, want 3",
				offline, solo, shrinks, kept, under)
		case <-changed:
		case <-time.After(50 * time.Millisecond): // reconciles follow the change
		}
	}
}
