package server

import (
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

// cpuTime is the CPU time (user and system) the process has used, in ns.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkFetchIsolation: the CPU a fetch costs per byte at each
// isolation level, over a partition of transactions (eight producers,
// four 16 KiB batches each, one in five aborted), 1 MiB per fetch sent
// with sendfile to a socket a goroutine drains. Compare cpu-ms/GiB (the
// process's CPU time, the drain included, per GiB of response) of
// read_committed with read_uncommitted.
func BenchmarkFetchIsolation(b *testing.B) {
	ts := newTestServer(b, Config{})
	ts.createTopic(b, "bench", 1)
	p, err := ts.parts.Get("bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	seqs := map[int64]int32{}
	for txn := 0; txn < 256; txn++ {
		pid := int64(1 + txn%8)
		for i := 0; i < 4; i++ {
			batch := testbatch.Make(testbatch.Spec{Timestamp: 1000, Idempotent: true, ProducerID: pid, BaseSequence: seqs[pid],
				Attributes: segment.AttrTransactional, Values: testbatch.Values(16, 1000, byte(i))})
			seqs[pid] += 16
			if _, err := p.Append(batch, 1); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := p.WriteMarker(pid, 0, 0, txn%5 != 4); err != nil {
			b.Fatal(err)
		}
	}
	end := p.LastStableOffset()
	if end != p.HighWatermark() {
		b.Fatalf("LSO %d, high watermark %d", end, p.HighWatermark())
	}

	conns := socketPair(b)
	go io.Copy(io.Discard, conns[1])

	for _, c := range []struct {
		name string
		iso  int8
	}{{"read_uncommitted", 0}, {"read_committed", 1}} {
		b.Run(c.name, func(b *testing.B) {
			req := kmsg.NewPtrFetchRequest()
			req.SetVersion(11)
			req.ReplicaID, req.MaxBytes, req.IsolationLevel = -1, 1<<20, c.iso
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = "bench"
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			h := requestHeader{Key: 1, Version: 11, CorrelationID: 1}
			var bytes, offset int64
			deadline := time.Now().Add(time.Hour)
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req.Topics[0].Partitions[0].FetchOffset = offset
				e := ts.fetch(context.Background(), identity{principal: "User:ANONYMOUS"}, "PLAINTEXT", h, req, deadline)
				bytes += e.Size()
				if err := consumer.Send(conns[0], e, consumer.Sendfile); err != nil {
					b.Fatal(err)
				}
				// The next fetch goes on from about where this one ended.
				offset += 1 << 20 / 1060
				if offset >= end {
					offset = 0
				}
			}
			b.StopTimer()
			b.SetBytes(bytes / int64(b.N))
			b.ReportMetric(float64(cpuTime(b)-cpu0)/1e6/(float64(bytes)/(1<<30)), "cpu-ms/GiB")
		})
	}
}
