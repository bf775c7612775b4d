package broker

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-io/runnel/cluster"
)

// TestLegacyOffsetsMovedOnUpgrade: a data directory whose Raft log holds
// offsets committed the way an older runnel committed them (CommitOffsets
// commands) keeps them: on start they are written into __consumer_offsets,
// served from there, and gone from the Raft state.
func TestLegacyOffsetsMovedOnUpgrade(t *testing.T) {
	cfg := testConfig(t)
	cfg.MetricsListen = ""
	cfg.OffsetsTopic.Partitions = 4
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.meta.CreateTopic(cluster.Topic{Name: "orders", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	// As an older broker committed: a command in the Raft log.
	for _, g := range []string{"billing", "audit"} {
		c := cluster.CommitOffsets{Group: g, Offsets: []cluster.OffsetCommit{
			{Topic: "orders", Partition: 0, Offset: 42, LeaderEpoch: 1, Metadata: "m", CommitMs: 1_700_000_000_000},
			{Topic: "orders", Partition: 1, Offset: 7, LeaderEpoch: -1, CommitMs: 1_700_000_000_000}}}
		if _, err := b.node.Propose(ctx, cluster.CmdCommitOffsets, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- b.Run(context.Background()) }()
	defer func() {
		b.Close()
		<-ran
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, g := range []string{"billing", "audit"} {
		var offs kadm.OffsetResponses
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			offs, err = adm.FetchOffsets(ctx, g)
			if err == nil && offs.Error() == nil {
				if _, ok := offs.Lookup("orders", 0); ok {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("group %s: offsets %v, %v", g, offs, err)
			}
		}
		o0, _ := offs.Lookup("orders", 0)
		o1, _ := offs.Lookup("orders", 1)
		if o0.At != 42 || o0.LeaderEpoch != 1 || o0.Metadata != "m" || o1.At != 7 {
			t.Fatalf("group %s after the upgrade: %+v %+v", g, o0, o1)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); len(b.meta.LegacyOffsets()) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("offsets still in the Raft state: %v", b.meta.LegacyOffsets())
		}
	}
	if _, ok := b.meta.Topic("__consumer_offsets"); !ok {
		t.Fatal("no __consumer_offsets")
	}
}
