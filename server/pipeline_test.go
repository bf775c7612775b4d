package server

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/testbatch"
)

// produceT is an acks=1 produce of one batch of n records to "t".
func produceT(n int) *kmsg.ProduceRequest {
	r := kmsg.NewPtrProduceRequest()
	r.SetVersion(9)
	r.Acks, r.TimeoutMillis = 1, 30000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topicT.Name
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = testbatch.Make(testbatch.Spec{Timestamp: 1, ProducerID: -1, Values: testbatch.Values(n, 100, 1)})
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	return r
}

// readAnswers reads n answers from c and returns their correlation ids.
func readAnswers(t *testing.T, c io.Reader, n int) []int32 {
	t.Helper()
	var corrs []int32
	for range n {
		var size [4]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			t.Fatalf("after %d answers: %v", len(corrs), err)
		}
		b := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		corrs = append(corrs, int32(binary.BigEndian.Uint32(b)))
	}
	return corrs
}

// TestReadAhead: while a connection's handler cannot go on (every reply
// slot is taken by a parked long-poll), its reader still reads the next
// frameQueue frames and more, holding their bytes in the request budget;
// once the long-polls are answered, every request is answered in order and
// the budget is given back.
func TestReadAhead(t *testing.T) {
	ts := newConnServer(t, Config{MaxFetchWait: time.Hour}, nil, nil)
	c := ts.dial(t)
	c.SetDeadline(time.Now().Add(waitLong))
	const sent = maxInFlight + frameQueue + 8
	var per int
	for i := range sent {
		f := frame(longPollFetch(math.MaxInt32), int32(i))
		per = len(f)
		if _, err := c.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	// One long-poll parked in the writer, maxInFlight replies queued for
	// it, one held by the handler, frameQueue frames queued for the
	// handler and one held by the reader.
	read := 1 + maxInFlight + 1 + frameQueue + 1
	waitFor(t, "the reader to read ahead of the blocked handler", func() bool {
		return ts.metric(t, "runnel_bytes_in_total") >= float64(read*per)
	})
	if held, _ := ts.s.budget.stats(); held < int64(frameQueue*(per-4)) {
		t.Errorf("%d bytes held in the request budget, want the %d queued frames' %d", held, frameQueue, frameQueue*(per-4))
	}
	// A record for the long-polls to return.
	roundTrip(t, ts.dial(t), produceT(1))
	corrs := readAnswers(t, c, sent)
	for i, corr := range corrs {
		if corr != int32(i) {
			t.Fatalf("answer %d has correlation id %d: answers out of order", i, corr)
		}
	}
	waitFor(t, "the budget to be given back", func() bool { h, w := ts.s.budget.stats(); return h == 0 && w == 0 })
}

// TestReadAheadAfterBadRequest: the requests a client sent after one the
// server refuses are not handled, though the reader may have read them:
// the connection closes, their budget is given back, and nothing of them
// reaches the log; the request before the refused one is appended.
func TestReadAheadAfterBadRequest(t *testing.T) {
	ts := newConnServer(t, Config{}, nil, nil)
	c := ts.dial(t)
	c.SetDeadline(time.Now().Add(waitLong))
	var b []byte
	b = append(b, frame(produceT(1), 0)...)
	b = append(b, 0, 0, 0, 1, 0) // a frame too short for a request header
	for i := range frameQueue + 2 {
		b = append(b, frame(produceT(1), int32(1+i))...)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	// The server closes with frames unread, so the close may come as a
	// reset that takes the answer before it along: only the end is checked.
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the bad frame: %v; want the server to close", err)
	}
	waitFor(t, "the budget to be given back", func() bool { h, w := ts.s.budget.stats(); return h == 0 && w == 0 })
	p, err := ts.s.parts.Get(topicT.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	if next := p.LogEndOffset(); next != 1 {
		t.Fatalf("the log ends at offset %d, want 1: requests after the refused one were appended", next)
	}
}
