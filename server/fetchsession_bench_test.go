package server

import (
	"context"
	"io"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/partition"
)

// BenchmarkFetchSession: one consumer of 1,000 partitions, fetching again
// and again while one partition at a time gets a new batch (the sparse
// traffic where sessions pay), with a session (incremental fetches that
// name only the partition whose position moved) and without (every fetch
// names all 1,000). Each fetch is decoded from its bytes, answered and
// sent with sendfile to a socket a goroutine drains, as a connection
// would. req-B/op and resp-B/op are the request and response sizes;
// cpu-µs/op is the process's CPU time per fetch (the drain included).
func BenchmarkFetchSession(b *testing.B) {
	const parts = 1000
	for _, mode := range []string{"none", "incremental"} {
		b.Run("sessions="+mode+"/partitions=1000", func(b *testing.B) {
			ts := newTestServer(b, Config{})
			topic := ts.createTopic(b, "bench", parts)
			batch := testbatch.Make(testbatch.Spec{Timestamp: 1000, ProducerID: -1, Values: testbatch.Values(1, 100, 1)})
			for p := int32(0); p < parts; p++ {
				if _, err := ts.mustPartition(b, "bench", p).Append(batch, 1); err != nil {
					b.Fatal(err)
				}
			}
			conns := socketPair(b)
			go io.Copy(io.Discard, conns[1])
			c := &conn{s: ts.Server, ctx: context.Background(), remote: "127.0.0.1:1", addr: "127.0.0.1", host: "/127.0.0.1",
				listener: cluster.DefaultListener, principal: Anonymous}

			offsets := make([]int64, parts)
			for p := range offsets {
				offsets[p] = 1 // every partition read to its end
			}
			var sid, epoch int32 // epoch 0: the first fetch is full
			if mode == "none" {
				epoch = -1
			}
			changed := map[int32]bool{}
			var reqBytes, respBytes int64
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p := int32(i % parts)
				if _, err := ts.mustPartition(b, "bench", p).Append(batch, 1); err != nil {
					b.Fatal(err)
				}
				req := kmsg.NewPtrFetchRequest()
				req.SetVersion(13)
				req.ReplicaID, req.MaxBytes, req.MinBytes, req.MaxWaitMillis = -1, 1<<20, 0, 0
				req.SessionID, req.SessionEpoch = sid, epoch
				rt := kmsg.NewFetchRequestTopic()
				rt.Topic, rt.TopicID = topic.Name, topic.ID
				for q := int32(0); q < parts; q++ {
					if epoch > 0 && !changed[q] {
						continue
					}
					rp := kmsg.NewFetchRequestTopicPartition()
					rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = q, offsets[q], 1<<20, -1
					rt.Partitions = append(rt.Partitions, rp)
				}
				if len(rt.Partitions) > 0 {
					req.Topics = append(req.Topics, rt)
				}
				clear(changed)
				body := req.AppendTo(nil)
				reqBytes += int64(len(body))
				h := requestHeader{Key: 1, Version: 13, CorrelationID: int32(i), Flexible: true}
				rep, err := ts.dispatch(c, h, body)
				if err != nil {
					b.Fatal(err)
				}
				e := rep.finish().(*consumer.Encoded)
				respBytes += e.Size()
				if err := consumer.Send(conns[0], e, consumer.Sendfile); err != nil {
					b.Fatal(err)
				}
				// The new batch was sent: the client's position moves.
				offsets[p]++
				changed[p] = true
				if mode == "incremental" {
					if sid == 0 {
						sid = ts.sessionOf(b)
					}
					epoch = nextSessionEpoch(epoch)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(reqBytes)/float64(b.N), "req-B/op")
			b.ReportMetric(float64(respBytes)/float64(b.N), "resp-B/op")
			b.ReportMetric(float64(cpuTime(b)-cpu0)/1e3/float64(b.N), "cpu-µs/op")
		})
	}
}

func (ts *testServer) mustPartition(b testing.TB, topic string, p int32) *partition.Partition {
	pt, err := ts.parts.Get(topic, p)
	if err != nil {
		b.Fatal(err)
	}
	return pt
}

// sessionOf returns the id of the one open session.
func (ts *testServer) sessionOf(b testing.TB) int32 {
	ts.sessions.mu.Lock()
	defer ts.sessions.mu.Unlock()
	for id := range ts.sessions.mu.sessions {
		return id
	}
	b.Fatal("no session opened")
	return 0
}
