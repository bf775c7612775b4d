package broker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-io/runnel/cluster"
)

// commitAt commits offset at of every partition of topic for group.
func commitAt(t *testing.T, ctx context.Context, adm *kadm.Client, group, topic string, partitions int32, at int64) {
	t.Helper()
	offs := kadm.Offsets{}
	for p := range partitions {
		offs.Add(kadm.Offset{Topic: topic, Partition: p, At: at, LeaderEpoch: -1})
	}
	resp, err := adm.CommitOffsets(ctx, group, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestConsumerLagMetric: after a commit at 1 and four more records, the
// broker's /metrics shows the group's committed offset 1 and lag 4.
func TestConsumerLagMetric(t *testing.T) {
	cfg := testConfig(t)
	cfg.OffsetsTopic.Partitions = 1
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	commitAt(t, ctx, kadm.NewClient(cl), "lagging", "events", 1, 1)
	for range 4 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get("http://" + b.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`runnel_consumer_group_lag{group="lagging",partition="0",topic="events"} 4`,
		`runnel_consumer_group_committed_offset{group="lagging",partition="0",topic="events"} 1`,
		`runnel_consumer_group_lag_dropped_series_total 0`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestConsumerLagOfPartitionsLedElsewhere: on three brokers, the group's
// coordinator reports the lag of partitions led by the other two once its
// refresher has asked their leaders.
func TestConsumerLagOfPartitionsLedElsewhere(t *testing.T) {
	if testing.Short() {
		t.Skip("three brokers")
	}
	voters := []cluster.Voter{{ID: 1, Addr: freeAddr(t)}, {ID: 2, Addr: freeAddr(t)}, {ID: 3, Addr: freeAddr(t)}}
	brokers, stop := startQuorum(t, voters, func(c *Config, _ cluster.Voter) {
		c.OffsetsTopic.Partitions, c.OffsetsTopic.ReplicationFactor = 1, 1
		c.ConsumerLag.Interval = time.Hour // refreshed by hand below
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	waitRegistered(t, ctx, adm, 3)
	const parts = 6
	if _, err := adm.CreateTopic(ctx, parts, 1, nil, "spread"); err != nil {
		t.Fatal(err)
	}
	produce := func(n int) {
		for p := range int32(parts) {
			for range n {
				if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "spread", Partition: p, Value: []byte("v")}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	produce(2)
	commitAt(t, ctx, adm, "far", "spread", parts, 1)
	produce(3) // high watermark 5, committed 1: lag 4

	var coord *Broker
	for _, b := range brokers {
		for _, gc := range b.groups.Coordinators() {
			if len(gc.ListGroups()) > 0 {
				coord = b
			}
		}
	}
	if coord == nil {
		t.Fatal("no broker coordinates the group")
	}
	elsewhere := 0
	for p := range int32(parts) {
		if info, _ := coord.meta.Partition("spread", p); info.Leader != coord.cfg.NodeID {
			elsewhere++
		}
	}
	if elsewhere == 0 {
		t.Fatal("every partition is led by the coordinator; the test needs some led elsewhere")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(coord.lag)
	coord.lag.Refresh(ctx)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	lags := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "runnel_consumer_group_lag" {
			continue
		}
		for _, m := range f.GetMetric() {
			var p string
			for _, l := range m.GetLabel() {
				if l.GetName() == "partition" {
					p = l.GetValue()
				}
			}
			lags[p] = m.GetGauge().GetValue()
		}
	}
	for p := range parts {
		if got, ok := lags[fmt.Sprint(p)]; !ok || got != 4 {
			t.Errorf("lag of spread-%d = %v (present %v), want 4; %d partitions led elsewhere", p, got, ok, elsewhere)
		}
	}
}
