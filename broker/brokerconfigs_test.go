package broker

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDynamicBrokerConfigsLive: broker configs changed through
// IncrementalAlterConfigs (kadm) take effect while the broker runs and
// after it restarts: the log level, and a cluster-wide log.retention.ms
// that the topics without their own retention.ms take, so retention
// removes the segments it allows at its next run; DescribeConfigs says
// where each value comes from.
func TestDynamicBrokerConfigsLive(t *testing.T) {
	cfg := testConfig(t)
	cfg.MetricsListen = ""
	cfg.LogLevel = new(slog.LevelVar)
	cfg.Logger = slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: cfg.LogLevel}))
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	go b.Run(context.Background())
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"segment.bytes": kmsg.StringPtr("200")}, "r"); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	for i := range 5 {
		r := &kgo.Record{Topic: "r", Value: []byte("a record of some length"), Timestamp: old.Add(time.Duration(i) * time.Second)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	p, err := b.parts.Get("r", 0)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.Log().ApplyRetention(); n != 0 || err != nil {
		t.Fatalf("retention at the default 7 days removed %d segments (%v)", n, err)
	}

	set := func(name, value string) kadm.AlterConfig {
		return kadm.AlterConfig{Op: kadm.SetConfig, Name: name, Value: kmsg.StringPtr(value)}
	}
	resps, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{set("log.retention.ms", "60000")}) // cluster-wide
	if err == nil {
		err = resps[0].Err
	}
	if err != nil {
		t.Fatal(err)
	}
	resps, err = adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{set("log.level", "debug")}, cfg.NodeID)
	if err == nil {
		err = resps[0].Err
	}
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.LogLevel.Level(); l != slog.LevelDebug || !cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		t.Errorf("log level %v after log.level=debug", l)
	}
	// The same level is the root logger of the broker's BROKER_LOGGER
	// configs, which set it too, for this run only.
	dreq := kmsg.NewPtrDescribeConfigsRequest()
	dres := kmsg.NewDescribeConfigsRequestResource()
	dres.ResourceType, dres.ResourceName = kmsg.ConfigResourceTypeBrokerLogger, strconv.Itoa(int(cfg.NodeID))
	dreq.Resources = append(dreq.Resources, dres)
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if rs := dresp.Resources; len(rs) != 1 || len(rs[0].Configs) != 1 || rs[0].Configs[0].Name != "root" ||
		rs[0].Configs[0].Value == nil || *rs[0].Configs[0].Value != "DEBUG" {
		t.Errorf("broker loggers: %+v", rs)
	}
	ireq := kmsg.NewPtrIncrementalAlterConfigsRequest()
	ires := kmsg.NewIncrementalAlterConfigsRequestResource()
	ires.ResourceType, ires.ResourceName = kmsg.ConfigResourceTypeBrokerLogger, strconv.Itoa(int(cfg.NodeID))
	icfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	icfg.Name, icfg.Value = "root", kmsg.StringPtr("WARN")
	ires.Configs = append(ires.Configs, icfg)
	ireq.Resources = append(ireq.Resources, ires)
	if iresp, err := ireq.RequestWith(ctx, cl); err != nil || iresp.Resources[0].ErrorCode != 0 {
		t.Fatalf("setting the root logger: %v %+v", err, iresp)
	}
	if l := cfg.LogLevel.Level(); l != slog.LevelWarn {
		t.Errorf("log level %v after root=WARN", l)
	}
	cfg.LogLevel.Set(slog.LevelDebug)
	if got := p.Config().RetentionMs; got != 60000 {
		t.Errorf("the partition's retention.ms is %d after log.retention.ms=60000", got)
	}
	if n, err := p.Log().ApplyRetention(); n == 0 || err != nil {
		t.Errorf("retention at 60 s removed %d segments (%v), want the hour-old sealed ones", n, err)
	}

	described, err := adm.DescribeBrokerConfigs(ctx, cfg.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := described.On("1", nil)
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]kmsg.ConfigSource{}
	for _, c := range rc.Configs {
		sources[c.Key] = c.Source
	}
	for name, want := range map[string]kmsg.ConfigSource{"log.retention.ms": kmsg.ConfigSourceDynamicDefaultBrokerConfig,
		"log.level": kmsg.ConfigSourceDynamicBrokerConfig, "log.segment.bytes": kmsg.ConfigSourceDefaultConfig,
		"log.dirs": kmsg.ConfigSourceStaticBrokerConfig} {
		if sources[name] != want {
			t.Errorf("%s: source %v, want %v", name, sources[name], want)
		}
	}

	// A restart keeps them: they are in the Raft state.
	cl.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.LogLevel.Set(slog.LevelInfo)
	b2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if l := cfg.LogLevel.Level(); l != slog.LevelDebug {
		t.Errorf("log level %v after a restart, want debug from the dynamic config", l)
	}
	p2, err := b2.parts.Get("r", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := p2.Config().RetentionMs; got != 60000 {
		t.Errorf("after a restart the partition's retention.ms is %d, want 60000", got)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// TestConfigsReachEveryBroker: on three brokers, a topic's changed config
// reaches its replicas on each, and a broker's own dynamic config only
// that broker's replicas, over the cluster-wide one the others take.
func TestConfigsReachEveryBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("three brokers")
	}
	voters := []cluster.Voter{{ID: 1, Addr: freeAddr(t)}, {ID: 2, Addr: freeAddr(t)}, {ID: 3, Addr: freeAddr(t)}}
	brokers, stop := startQuorum(t, voters, nil)
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
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "spread"); err != nil {
		t.Fatal(err)
	}
	alter := func(f func() (kadm.AlterConfigsResponses, error)) {
		t.Helper()
		resps, err := f()
		if err == nil {
			err = resps[0].Err
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	set := func(name, value string) []kadm.AlterConfig {
		return []kadm.AlterConfig{{Op: kadm.SetConfig, Name: name, Value: kmsg.StringPtr(value)}}
	}
	alter(func() (kadm.AlterConfigsResponses, error) {
		return adm.AlterTopicConfigs(ctx, set("min.insync.replicas", "2"), "spread")
	})
	alter(func() (kadm.AlterConfigsResponses, error) {
		return adm.AlterBrokerConfigs(ctx, set("log.retention.ms", "3600000"))
	})
	alter(func() (kadm.AlterConfigsResponses, error) {
		return adm.AlterBrokerConfigs(ctx, set("log.retention.ms", "60000"), 2)
	})
	for _, b := range brokers {
		want := int64(3600000)
		if b.cfg.NodeID == 2 {
			want = 60000
		}
		// Each broker's reconciliation follows the metadata on its own.
		for {
			p, err := b.parts.Get("spread", 0)
			if err == nil && p.MinInsyncReplicas() == 2 && p.Config().RetentionMs == want {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("broker %d: the replica's config never became min.insync.replicas 2, retention.ms %d", b.cfg.NodeID, want)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}
