package consumer_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/runnel-io/runnel/consumer"
)

// writeRecorder keeps what is written to it and the size of each write.
type writeRecorder struct {
	bytes.Buffer
	writes []int
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	return w.Buffer.Write(p)
}

// TestSendBufferedMatchesSendfile: the buffered path writes the same bytes
// as sendfile, in writes of the whole buffer but the last, and counts every
// record byte as its own.
func TestSendBufferedMatchesSendfile(t *testing.T) {
	l := openLog(t)
	var recBytes int64
	encode := func() *consumer.Encoded {
		r1, err := l.Read(0, 1<<20, l.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		r2, err := l.Read(50, 1, l.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		recBytes = r1.Length + r2.Length
		return consumer.Encode(&consumer.Response{Version: 13, CorrelationID: 5, Topics: []consumer.TopicData{{
			Topic: "t", Partitions: []consumer.PartitionData{
				{Partition: 0, HighWatermark: 100, PreferredReadReplica: -1, Records: r1},
				{Partition: 1, HighWatermark: 100, PreferredReadReplica: -1},
				{Partition: 2, HighWatermark: 100, PreferredReadReplica: -1, Records: r2},
			}}}}, nil)
	}
	srv, cli := tcpPair(t)
	enc := encode()
	size := enc.Size()
	errc := make(chan error, 1)
	go func() { errc <- consumer.Send(srv, enc, consumer.Sendfile) }()
	want := make([]byte, size)
	if _, err := io.ReadFull(cli, want); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	sentBefore := consumer.SentfileBytes.Load()

	for _, bufSize := range []int{4 << 10, 5000, consumer.BufferedSendSize} {
		var w writeRecorder
		before := consumer.BufferedBytes.Load()
		enc := encode()
		buf := make([]byte, 0, bufSize)
		if err := consumer.SendBuffered(&w, enc, buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w.Bytes(), want) {
			t.Fatalf("buffer %d: %d bytes differ from sendfile's %d", bufSize, w.Len(), len(want))
		}
		for i, n := range w.writes {
			if n > bufSize || (i < len(w.writes)-1 && n != bufSize) {
				t.Fatalf("buffer %d: writes %v, want full buffers but the last", bufSize, w.writes)
			}
		}
		got := consumer.BufferedBytes.Load() - before
		if got != recBytes {
			t.Fatalf("buffer %d: %d record bytes counted, want %d", bufSize, got, recBytes)
		}
	}
	if consumer.SentfileBytes.Load() != sentBefore {
		t.Fatal("the buffered path counted bytes as sendfile's")
	}
	if err := consumer.SendBuffered(io.Discard, encode(), make([]byte, 0, 100)); err == nil {
		t.Fatal("a buffer below 4 KiB was taken")
	}
}

// TestSendBufferedAllocatesNothing: sending through a reused buffer
// allocates nothing, whatever the response's size.
func TestSendBufferedAllocatesNothing(t *testing.T) {
	l := openLog(t)
	const runs = 20
	encs := make([]*consumer.Encoded, runs+1)
	for i := range encs {
		r, err := l.Read(0, 1<<20, l.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		encs[i] = consumer.Encode(&consumer.Response{Version: 12, Topics: []consumer.TopicData{{Topic: "t",
			Partitions: []consumer.PartitionData{{HighWatermark: 100, PreferredReadReplica: -1, Records: r}}}}}, nil)
	}
	buf := make([]byte, 0, 4<<10) // smaller than the response: several writes
	i := 0
	allocs := testing.AllocsPerRun(runs, func() {
		if err := consumer.SendBuffered(io.Discard, encs[i], buf); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per send", allocs)
	}
}
