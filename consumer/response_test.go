package consumer_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/index"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

func openLog(t *testing.T) *segment.Log {
	t.Helper()
	dir := t.TempDir()
	db, err := index.Open(filepath.Join(dir, "index"), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := segment.Open(filepath.Join(dir, "t-0"), segment.Options{
		Index:  db.Partition("t-0"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); db.Close() })
	for i := 0; i < 20; i++ {
		b := testbatch.Make(testbatch.Spec{Timestamp: int64(i), Values: testbatch.Values(5, 100, byte(i))})
		if _, err := l.Append(b, 3); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-done
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func TestEncodeSendRoundTrip(t *testing.T) {
	l := openLog(t)
	var want []byte
	{
		r, err := l.Read(0, 1<<20, l.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		want = make([]byte, r.Length)
		r.File().ReadAt(want, r.Position)
		r.Release()
	}
	for _, path := range []consumer.Path{consumer.Sendfile, consumer.Mmap, consumer.Copy} {
		for v := int16(4); v <= 16; v++ {
			t.Run(fmt.Sprintf("%s/v%d", path, v), func(t *testing.T) {
				srv, cli := tcpPair(t)
				r1, err := l.Read(0, 1<<20, l.LogEndOffset())
				if err != nil {
					t.Fatal(err)
				}
				r2, err := l.Read(50, 1, l.LogEndOffset()) // one batch only
				if err != nil {
					t.Fatal(err)
				}
				resp := &consumer.Response{
					Version: v, CorrelationID: 77, SessionID: 0,
					Topics: []consumer.TopicData{{
						Topic: "t", TopicID: [16]byte{1, 2, 3},
						Partitions: []consumer.PartitionData{
							{Partition: 0, HighWatermark: 100, LastStableOffset: 100, LogStartOffset: 0, PreferredReadReplica: -1, Records: r1},
							{Partition: 1, ErrorCode: 1, HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1, PreferredReadReplica: -1,
								CurrentLeader: &consumer.CurrentLeader{LeaderID: 2, LeaderEpoch: 9}},
							{Partition: 2, HighWatermark: 100, PreferredReadReplica: -1, Records: r2, Aborted: []consumer.Aborted{{ProducerID: 5, FirstOffset: 6}},
								DivergingEpoch: &consumer.DivergingEpoch{Epoch: 4, EndOffset: 44}},
						},
					}},
				}
				enc := consumer.Encode(resp, nil)
				enc.SetThrottleMillis(1234)
				if got := enc.ThrottleMillis(); got != 1234 {
					t.Fatalf("throttle %d after setting 1234", got)
				}
				size := enc.Size()
				counters := map[consumer.Path]*atomic.Int64{
					consumer.Sendfile: &consumer.SentfileBytes,
					consumer.Mmap:     &consumer.MappedBytes,
					consumer.Copy:     &consumer.CopiedBytes,
				}
				before := map[consumer.Path]int64{}
				for p, c := range counters {
					before[p] = c.Load()
				}
				errc := make(chan error, 1)
				go func() { errc <- consumer.Send(srv, enc, path) }()
				frame := make([]byte, size)
				if _, err := io.ReadFull(cli, frame); err != nil {
					t.Fatal(err)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				if got := int64(binary.BigEndian.Uint32(frame)) + 4; got != size {
					t.Fatalf("size prefix %d, sent %d", got, size)
				}
				body := frame[4:]
				if cid := int32(binary.BigEndian.Uint32(body)); cid != 77 {
					t.Fatalf("correlation id %d", cid)
				}
				body = body[4:]
				if v >= 12 {
					body = body[1:] // header tags
				}
				var fr kmsg.FetchResponse
				fr.Version = v
				if err := fr.ReadFrom(body); err != nil {
					t.Fatalf("kmsg decode: %v", err)
				}
				if fr.ThrottleMillis != 1234 {
					t.Fatalf("throttle_time_ms %d, set 1234", fr.ThrottleMillis)
				}
				ps := fr.Topics[0].Partitions
				if len(ps) != 3 || !bytes.Equal(ps[0].RecordBatches, want) {
					t.Fatalf("partition 0 records differ (%d bytes, want %d)", len(ps[0].RecordBatches), len(want))
				}
				if ps[1].ErrorCode != 1 || len(ps[1].RecordBatches) != 0 {
					t.Fatalf("partition 1: %+v", ps[1])
				}
				if v >= 13 && fr.Topics[0].TopicID != [16]byte{1, 2, 3} {
					t.Fatalf("topic id %v", fr.Topics[0].TopicID)
				}
				if v < 13 && fr.Topics[0].Topic != "t" {
					t.Fatalf("topic %q", fr.Topics[0].Topic)
				}
				h, err := segment.Validate(ps[2].RecordBatches)
				if err != nil || h.BaseOffset != 50 || len(ps[2].RecordBatches) != h.Size() {
					t.Fatalf("partition 2: header %+v err %v", h, err)
				}
				if len(ps[2].AbortedTransactions) != 1 || ps[2].AbortedTransactions[0].FirstOffset != 6 {
					t.Fatalf("aborted: %+v", ps[2].AbortedTransactions)
				}
				if v >= 12 {
					if ps[1].CurrentLeader.LeaderEpoch != 9 || ps[2].DivergingEpoch.EndOffset != 44 {
						t.Fatalf("tags: %+v %+v", ps[1].CurrentLeader, ps[2].DivergingEpoch)
					}
				}
				// Every record byte went through the chosen path and none
				// through another.
				recBytes := int64(len(want) + h.Size())
				for p, c := range counters {
					wantN := int64(0)
					if p == path {
						wantN = recBytes
					}
					if got := c.Load() - before[p]; got != wantN {
						t.Fatalf("%s path: %d record bytes counted by the %s path, want %d", path, got, p, wantN)
					}
				}
			})
		}
	}
}
