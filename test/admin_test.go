package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestAdminAPIs(t *testing.T) {
	b := startBroker(t, "")
	adm := kadm.NewClient(b.client())
	ctx := ctxTimeout(t, 60*time.Second)

	retention := "3600000"
	maxMsg := "2048"
	res, err := adm.CreateTopics(ctx, 2, 1, map[string]*string{"retention.ms": &retention, "max.message.bytes": &maxMsg}, "adm")
	if err != nil || res["adm"].Err != nil {
		t.Fatalf("create: %v %v", err, res["adm"].Err)
	}
	if res["adm"].ID == [16]byte{} {
		t.Fatal("no topic id")
	}
	// Creating it again, an invalid config, and a replication factor the
	// single broker cannot meet are refused with Kafka's codes.
	again, _ := adm.CreateTopics(ctx, 1, 1, nil, "adm")
	if !errorsIs(again["adm"].Err, kerr.TopicAlreadyExists) {
		t.Fatalf("create twice: %v", again["adm"].Err)
	}
	bad := "compacted"
	inval, _ := adm.CreateTopics(ctx, 1, 1, map[string]*string{"cleanup.policy": &bad}, "adm-compact")
	if !errorsIs(inval["adm-compact"].Err, kerr.InvalidConfig) {
		t.Fatalf("compact: %v", inval["adm-compact"].Err)
	}
	rf3, _ := adm.CreateTopics(ctx, 1, 3, nil, "adm-rf3")
	if !errorsIs(rf3["adm-rf3"].Err, kerr.InvalidReplicationFactor) {
		t.Fatalf("rf 3: %v", rf3["adm-rf3"].Err)
	}

	cfgs, err := adm.DescribeTopicConfigs(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range cfgs[0].Configs {
		got[c.Key] = c.MaybeValue()
	}
	if got["retention.ms"] != retention || got["max.message.bytes"] != maxMsg || got["segment.bytes"] != "1073741824" {
		t.Fatalf("configs: %v", got)
	}

	if _, err := adm.CreatePartitions(ctx, 2, "adm"); err != nil {
		t.Fatal(err)
	}
	td, err := adm.ListTopics(ctx, "adm")
	if err != nil || len(td["adm"].Partitions) != 4 {
		t.Fatalf("partitions after CreatePartitions: %v %d", err, len(td["adm"].Partitions))
	}

	// 100 records into partition 0, timestamps 1000 ms apart.
	cl := b.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DefaultProduceTopic("adm"))
	base := time.UnixMilli(1_700_000_000_000)
	for i := 0; i < 100; i++ {
		r := &kgo.Record{Value: []byte(fmt.Sprint(i)), Partition: 0, Timestamp: base.Add(time.Duration(i) * time.Second)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	start, _ := adm.ListStartOffsets(ctx, "adm")
	end, _ := adm.ListEndOffsets(ctx, "adm")
	if o, _ := start.Lookup("adm", 0); o.Offset != 0 {
		t.Fatalf("start offset %d", o.Offset)
	}
	if o, _ := end.Lookup("adm", 0); o.Offset != 100 {
		t.Fatalf("end offset %d", o.Offset)
	}
	byTime, err := adm.ListOffsetsAfterMilli(ctx, base.Add(42*time.Second).UnixMilli(), "adm")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := byTime.Lookup("adm", 0); o.Offset != 42 {
		t.Fatalf("offset for time: %d, want 42", o.Offset)
	}

	del, err := adm.DeleteRecords(ctx, kadm.Offsets{"adm": {0: {Topic: "adm", Partition: 0, At: 60}}})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := del.Lookup("adm", 0); d.Err != nil || d.LowWatermark != 60 {
		t.Fatalf("delete records: %+v", d)
	}
	tooFar, _ := adm.DeleteRecords(ctx, kadm.Offsets{"adm": {0: {Topic: "adm", Partition: 0, At: 1000}}})
	if d, _ := tooFar.Lookup("adm", 0); !errorsIs(d.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete records past the end: %v", d.Err)
	}

	meta, err := adm.BrokerMetadata(ctx)
	if err != nil || len(meta.Brokers) != 1 || meta.Controller != 1 {
		t.Fatalf("cluster: %+v %v", meta, err)
	}

	// All of it survives a restart.
	b.stop()
	b.restart()
	adm = kadm.NewClient(b.client())
	ctx = ctxTimeout(t, 60*time.Second)
	start, _ = adm.ListStartOffsets(ctx, "adm")
	if o, _ := start.Lookup("adm", 0); o.Offset != 60 {
		t.Fatalf("start offset after restart %d, want 60", o.Offset)
	}
	td, _ = adm.ListTopics(ctx, "adm")
	if len(td["adm"].Partitions) != 4 || td["adm"].ID != res["adm"].ID {
		t.Fatalf("after restart: %d partitions, id %x", len(td["adm"].Partitions), td["adm"].ID)
	}

	dr, err := adm.DeleteTopics(ctx, "adm")
	if err != nil || dr["adm"].Err != nil {
		t.Fatalf("delete: %v %v", err, dr["adm"].Err)
	}
	td, _ = adm.ListTopics(ctx)
	if _, ok := td["adm"]; ok {
		t.Fatal("topic still listed after delete")
	}
}

func errorsIs(err error, target *kerr.Error) bool {
	ke, ok := err.(*kerr.Error)
	return ok && ke.Code == target.Code
}
