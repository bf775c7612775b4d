package server

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

// produceTxn sends one transactional batch of producer pid through Produce
// and returns its base offset; its records' timestamps start at 1000 +
// 100 × pid, 1 ms apart.
func (ts *testServer) produceTxn(t *testing.T, topic string, pid int64, seq int32, values ...string) int64 {
	t.Helper()
	var vs [][]byte
	for _, v := range values {
		vs = append(vs, []byte(v))
	}
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = testbatch.Make(testbatch.Spec{Timestamp: 1000 + 100*pid, Idempotent: true, ProducerID: pid, BaseSequence: seq,
		Attributes: segment.AttrTransactional, Values: vs})
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := ts.call(t, req).(*kmsg.ProduceResponse)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 {
		t.Fatalf("transactional produce of producer %d: %v", pid, kerr.ErrorForCode(p.ErrorCode))
	}
	return resp.Topics[0].Partitions[0].BaseOffset
}

// writeMarkers sends WriteTxnMarkers for one producer on partitions of
// topic and returns each partition's error code.
func (ts *testServer) writeMarkers(t *testing.T, version int16, topic string, pid int64, epoch int16, coordEpoch int32, commit bool, parts ...int32) []int16 {
	t.Helper()
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.SetVersion(version)
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch, m.Committed = pid, epoch, coordEpoch, commit
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = topic, parts
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	resp := ts.call(t, req).(*kmsg.WriteTxnMarkersResponse)
	if len(resp.Markers) != 1 || resp.Markers[0].ProducerID != pid || len(resp.Markers[0].Topics) != 1 {
		t.Fatalf("WriteTxnMarkers v%d answer %+v", version, resp)
	}
	var codes []int16
	for _, p := range resp.Markers[0].Topics[0].Partitions {
		codes = append(codes, p.ErrorCode)
	}
	return codes
}

func (ts *testServer) fetchAt(t *testing.T, topic string, offset int64, isolation int8) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID, req.MaxBytes, req.IsolationLevel = -1, 1<<20, isolation
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = offset, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return ts.call(t, req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
}

func (ts *testServer) latest(t *testing.T, topic string, isolation int8) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(5)
	req.ReplicaID, req.IsolationLevel = -1, isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp, rp.CurrentLeaderEpoch = -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	p := ts.call(t, req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("ListOffsets: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	return p.Offset
}

func (ts *testServer) byTime(t *testing.T, topic string, ms int64, isolation int8) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(5)
	req.ReplicaID, req.IsolationLevel = -1, isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp, rp.CurrentLeaderEpoch = ms, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	p := ts.call(t, req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("ListOffsets: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	return p.Offset
}

// lastOffsetIn returns the last offset of the last whole batch of records.
func lastOffsetIn(t *testing.T, records []byte) int64 {
	t.Helper()
	last := int64(-1)
	for len(records) >= segment.HeaderSize {
		h, err := segment.ParseHeader(records)
		if err != nil || h.Size() > len(records) {
			break
		}
		last, records = h.LastOffset(), records[h.Size():]
	}
	return last
}

// TestReadCommittedFetch: transactional produces and WriteTxnMarkers by
// hand; a read_committed fetch stops at the LSO, which every fetch
// reports, and lists the aborted transactions of the range it reads;
// ListOffsets' latest under read_committed is the LSO.
func TestReadCommittedFetch(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createTopic(t, "tx", 1)
	a1 := ts.produceTxn(t, "tx", 1, 0, "a1", "a2") // 0-1
	b1 := ts.produceTxn(t, "tx", 2, 0, "b1")       // 2
	if c := ts.writeMarkers(t, 1, "tx", 1, 0, 0, true, 0); c[0] != 0 {
		t.Fatalf("commit: %v", kerr.ErrorForCode(c[0]))
	}
	// Producer 2's transaction is open: the LSO holds at its first batch.
	for _, iso := range []int8{0, 1} {
		p := ts.fetchAt(t, "tx", 0, iso)
		if p.LastStableOffset != b1 || p.HighWatermark != 4 {
			t.Fatalf("isolation %d: LSO %d, high watermark %d; want %d, 4", iso, p.LastStableOffset, p.HighWatermark, b1)
		}
		if got, want := lastOffsetIn(t, p.RecordBatches), map[int8]int64{0: 3, 1: a1 + 1}[iso]; got != want {
			t.Fatalf("isolation %d: read up to %d, want %d", iso, got, want)
		}
	}
	if got := ts.latest(t, "tx", 1); got != b1 {
		t.Fatalf("read_committed latest %d, want the LSO %d", got, b1)
	}
	if got := ts.latest(t, "tx", 0); got != 4 {
		t.Fatalf("read_uncommitted latest %d, want 4", got)
	}
	// By time: the open transaction's record (time 1200) is found under
	// read_uncommitted only; producer 1's (1100) under both.
	for _, c := range []struct {
		ms   int64
		iso  int8
		want int64
	}{{1200, 0, b1}, {1200, 1, -1}, {1101, 0, 1}, {1101, 1, 1}} {
		if got := ts.byTime(t, "tx", c.ms, c.iso); got != c.want {
			t.Errorf("isolation %d: offset for time %d is %d, want %d", c.iso, c.ms, got, c.want)
		}
	}
	if p := ts.fetchAt(t, "tx", b1, 1); len(p.RecordBatches) != 0 || p.ErrorCode != 0 {
		t.Fatalf("read_committed fetch at the LSO: %d bytes, error %d", len(p.RecordBatches), p.ErrorCode)
	}
	if c := ts.writeMarkers(t, 0, "tx", 2, 0, 0, false, 0); c[0] != 0 {
		t.Fatalf("abort: %v", kerr.ErrorForCode(c[0]))
	}
	p := ts.fetchAt(t, "tx", 0, 1)
	if p.LastStableOffset != 5 || lastOffsetIn(t, p.RecordBatches) != 4 {
		t.Fatalf("after the abort: LSO %d, read up to %d; want 5, 4", p.LastStableOffset, lastOffsetIn(t, p.RecordBatches))
	}
	if len(p.AbortedTransactions) != 1 || p.AbortedTransactions[0].ProducerID != 2 || p.AbortedTransactions[0].FirstOffset != b1 {
		t.Fatalf("aborted transactions %+v, want producer 2 at %d", p.AbortedTransactions, b1)
	}
	if p := ts.fetchAt(t, "tx", 4, 1); len(p.AbortedTransactions) != 1 {
		t.Fatalf("read_committed fetch of the abort marker: aborted %+v, want producer 2's", p.AbortedTransactions)
	}
	ts.produceTxn(t, "tx", 1, 2, "a3") // 5
	ts.writeMarkers(t, 1, "tx", 1, 0, 0, true, 0)
	if p := ts.fetchAt(t, "tx", 5, 1); len(p.AbortedTransactions) != 0 || p.AbortedTransactions == nil || lastOffsetIn(t, p.RecordBatches) != 6 {
		t.Fatalf("read_committed fetch past the abort: aborted %+v, want an empty list", p.AbortedTransactions)
	}
	if p := ts.fetchAt(t, "tx", 0, 0); p.AbortedTransactions != nil {
		t.Fatalf("read_uncommitted fetch: aborted %+v, want none", p.AbortedTransactions)
	}
}

// TestWriteTxnMarkersErrors: each partition of a WriteTxnMarkers request
// gets its own error, as Kafka's: an older producer epoch is
// INVALID_PRODUCER_EPOCH, an older coordinator epoch
// TRANSACTION_COORDINATOR_FENCED, an unknown partition
// UNKNOWN_TOPIC_OR_PARTITION; the others are written.
func TestWriteTxnMarkersErrors(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createTopic(t, "tx", 2)
	ts.produceTxn(t, "tx", 1, 0, "x")
	if c := ts.writeMarkers(t, 2, "tx", 1, 3, 5, false, 0); c[0] != 0 {
		t.Fatalf("abort at epoch 3: %v", kerr.ErrorForCode(c[0]))
	}
	got := ts.writeMarkers(t, 2, "tx", 1, 2, 5, true, 0, 1, 7)
	want := []int16{kerr.InvalidProducerEpoch.Code, 0, kerr.UnknownTopicOrPartition.Code}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("codes %v, want %v", got, want)
	}
	if got := ts.writeMarkers(t, 1, "tx", 1, 3, 4, true, 0); got[0] != kerr.TransactionCoordinatorFenced.Code {
		t.Fatalf("older coordinator epoch: %v", kerr.ErrorForCode(got[0]))
	}
}
