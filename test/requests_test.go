package test

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestHugePartitionCounts: CreateTopics with 2^31-1 partitions once took
// the broker down (out of memory while assigning them); a count past the
// per-topic limit is INVALID_PARTITIONS, one past the per-broker limit
// (20,000 by default on one broker) POLICY_VIOLATION, and the broker goes
// on serving.
func TestHugePartitionCounts(t *testing.T) {
	b := startBroker(t, "")
	adm := kadm.NewClient(newClient(t, b.addr))
	ctx := ctxTimeout(t, 60*time.Second)
	for _, c := range []struct {
		topic      string
		partitions int32
		want       *kerr.Error
	}{
		{"huge", math.MaxInt32, kerr.InvalidPartitions},
		{"over-topic-limit", 100_001, kerr.InvalidPartitions},
		{"over-broker-limit", 20_001, kerr.PolicyViolation},
	} {
		resp, err := adm.CreateTopic(ctx, c.partitions, 1, nil, c.topic)
		if err == nil {
			err = resp.Err
		}
		if !errors.Is(err, c.want) {
			t.Fatalf("create %s with %d partitions: %v, want %v", c.topic, c.partitions, err, c.want)
		}
	}
	// One partition: consumeN reads partition 0, where every record of a
	// one-partition topic goes.
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "small"); err != nil {
		t.Fatal(err)
	}
	grown, err := adm.UpdatePartitions(ctx, math.MaxInt32, "small")
	if err == nil {
		err = grown.Error()
	}
	if !errors.Is(err, kerr.InvalidPartitions) {
		t.Fatalf("growing to 2^31-1 partitions: %v", err)
	}
	waitLog(t, b, "INFO", "create topic refused", "huge")
	if n := labelledMetric(t, b, "runnel_request_errors_total", `api="CreateTopics",code="37"`); n != 2 {
		t.Fatalf("%v CreateTopics answered INVALID_PARTITIONS, want 2", n)
	}

	// Still serving.
	cl := newClient(t, b.addr, kgo.DefaultProduceTopic("small"))
	if err := cl.ProduceSync(ctx, kgo.StringRecord("still here")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if recs := consumeN(t, b.addr, "small", 1); string(recs[0].Value) != "still here" {
		t.Fatalf("consumed %q", recs[0].Value)
	}
}

// TestFetchResponseBounded sends the shape of a fetch that once produced a
// 2.15 GB answer with a negative size: a 3 MB request naming the same
// partitions a hundred thousand times, every entry and the request asking
// for 2 GiB. The answer names each partition once, its records are bounded
// by --fetch-max-bytes (55 MiB) plus one batch, and a client decodes it.
func TestFetchResponseBounded(t *testing.T) {
	b := startBroker(t, "", "--fsync", "never")
	const partitions = 8
	adm := kadm.NewClient(newClient(t, b.addr))
	ctx := ctxTimeout(t, 120*time.Second)
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, "wide"); err != nil {
		t.Fatal(err)
	}
	// 8 MiB a partition, 64 MiB in all: more than one response may carry.
	cl := newClient(t, b.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	value := bytes.Repeat([]byte("r"), 512<<10)
	for i := 0; i < 16*partitions; i++ {
		r := &kgo.Record{Topic: "wide", Partition: int32(i % partitions), Value: value}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID, req.SessionEpoch = -1, -1
	req.MaxWaitMillis, req.MaxBytes = 100, math.MaxInt32
	for len(req.Topics)*partitions < 100_000 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "wide"
		for p := int32(0); p < partitions; p++ {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.PartitionMaxBytes = p, math.MaxInt32
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	if n := len(req.AppendTo(nil)); n < 2<<20 {
		t.Fatalf("request of %d bytes, want the 3 MB shape", n)
	}
	rc := dialRaw(t, b.addr)
	resp := rc.roundTrip(req).(*kmsg.FetchResponse) // fails on a negative or oversized frame
	seen := map[int32]bool{}
	records := 0
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if seen[rp.Partition] || rp.ErrorCode != 0 {
				t.Fatalf("partition %d answered twice or with error %d", rp.Partition, rp.ErrorCode)
			}
			seen[rp.Partition] = true
			records += len(rp.RecordBatches)
		}
	}
	if len(seen) != partitions {
		t.Fatalf("%d partitions answered, want %d", len(seen), partitions)
	}
	t.Logf("a %d-byte request named %d partition entries; the answer carried %d record bytes of %d partitions",
		len(req.AppendTo(nil)), len(req.Topics)*partitions, records, len(seen))
	if records > 55<<20+1<<20 || records < 50<<20 {
		t.Fatalf("%d record bytes, want about the 55 MiB limit", records)
	}

	// Still serving.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "wide", Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
