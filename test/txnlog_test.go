package test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

// The log side of transactions, driven by hand: transactional batches
// through Produce and markers through WriteTxnMarkers, as a transaction
// coordinator would send them.

// txnProduce sends one transactional (or, with txn false, idempotent)
// batch of producer pid to partition 0 of topic and returns its offset.
func txnProduce(t *testing.T, cl kmsg.Requestor, topic string, pid int64, seq int32, txn bool, values ...string) int64 {
	t.Helper()
	var vs [][]byte
	for _, v := range values {
		vs = append(vs, []byte(v))
	}
	spec := testbatch.Spec{Timestamp: time.Now().UnixMilli(), Idempotent: true, ProducerID: pid, BaseSequence: seq, Values: vs}
	if txn {
		spec.Attributes = segment.AttrTransactional
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = testbatch.Make(spec)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctxTimeout(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		t.Fatalf("produce of producer %d: %v", pid, err)
	}
	return p.BaseOffset
}

// txnMarker ends producer pid's transaction on partition 0 of topic.
func txnMarker(t *testing.T, cl kmsg.Requestor, topic string, pid int64, commit bool) {
	t.Helper()
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.Committed = pid, commit
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = topic, []int32{0}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	resp, err := req.RequestWith(ctxTimeout(t, 30*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Markers[0].Topics[0].Partitions[0].ErrorCode); err != nil {
		t.Fatalf("marker of producer %d: %v", pid, err)
	}
}

// lastStable returns partition 0's LSO as ListOffsets read_committed and a
// read_committed Fetch report it.
func lastStable(t *testing.T, cl kmsg.Requestor, topic string) (listed, fetched int64) {
	t.Helper()
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.ReplicaID, lo.IsolationLevel = -1, 1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp, lp.CurrentLeaderEpoch = -1, -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	lr, err := lo.RequestWith(ctxTimeout(t, 30*time.Second), cl)
	if err != nil || lr.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("ListOffsets: %v %+v", err, lr)
	}
	mr := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mr.Topics = append(mr.Topics, mt)
	meta, err := mr.RequestWith(ctxTimeout(t, 30*time.Second), cl)
	if err != nil || len(meta.Topics) != 1 {
		t.Fatalf("Metadata: %v %+v", err, meta)
	}
	f := kmsg.NewPtrFetchRequest()
	f.ReplicaID, f.MaxBytes, f.IsolationLevel = -1, 1<<20, 1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = topic, meta.Topics[0].TopicID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	f.Topics = append(f.Topics, ft)
	fr, err := f.RequestWith(ctxTimeout(t, 30*time.Second), cl)
	if err != nil || fr.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("Fetch: %v %+v", err, fr)
	}
	return lr.Topics[0].Partitions[0].Offset, fr.Topics[0].Partitions[0].LastStableOffset
}

// consumeValues reads partition 0 of topic from the start at an isolation
// level until n records.
func consumeValues(t *testing.T, b *broker, topic string, iso kgo.IsolationLevel, n int) []string {
	t.Helper()
	cl := b.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso))
	ctx := ctxTimeout(t, 60*time.Second)
	var out []string
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %v, want %d records: %v", out, n, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

// TestReadCommittedConsumer: a franz-go read_committed consumer sees the
// committed transactions' records and the others', never an aborted
// one's, and nothing past an open transaction until its commit; a
// read_uncommitted consumer sees every record.
func TestReadCommittedConsumer(t *testing.T) {
	b := startBroker(t, "")
	createTopic(t, b, "txc", 1)
	cl := b.client()
	txnProduce(t, cl, "txc", 1, 0, true, "a1", "a2")
	txnProduce(t, cl, "txc", 2, 0, true, "b1")
	txnMarker(t, cl, "txc", 1, true)
	txnProduce(t, cl, "txc", 2, 1, true, "b2")
	txnMarker(t, cl, "txc", 2, false)
	open := txnProduce(t, cl, "txc", 1, 2, true, "a3")
	txnProduce(t, cl, "txc", 3, 0, false, "p1")
	if listed, fetched := lastStable(t, cl, "txc"); listed != open || fetched != open {
		t.Fatalf("LSO listed %d, fetched %d; want %d, producer 1's open transaction", listed, fetched, open)
	}
	if got := consumeValues(t, b, "txc", kgo.ReadCommitted(), 2); len(got) != 2 || got[0] != "a1" || got[1] != "a2" {
		t.Fatalf("read_committed before the commit: %v, want [a1 a2]", got)
	}
	txnMarker(t, cl, "txc", 1, true)
	want := []string{"a1", "a2", "a3", "p1"}
	if got := consumeValues(t, b, "txc", kgo.ReadCommitted(), 4); !equalStrings(got, want) {
		t.Fatalf("read_committed: %v, want %v", got, want)
	}
	want = []string{"a1", "a2", "b1", "b2", "a3", "p1"}
	if got := consumeValues(t, b, "txc", kgo.ReadUncommitted(), 6); !equalStrings(got, want) {
		t.Fatalf("read_uncommitted: %v, want %v", got, want)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestOpenTransactionSurvivesKill: a broker killed with -9 while a
// transaction is open (and one aborted) comes back with the LSO still at
// the open transaction's first offset and the abort still listed; the
// marker written after the restart moves the LSO to the end.
func TestOpenTransactionSurvivesKill(t *testing.T) {
	b := startBroker(t, "")
	createTopic(t, b, "txk", 1)
	cl := b.client()
	txnProduce(t, cl, "txk", 1, 0, true, "x1")
	txnMarker(t, cl, "txk", 1, false)
	open := txnProduce(t, cl, "txk", 2, 0, true, "y1")
	txnProduce(t, cl, "txk", 3, 0, false, "z1")
	if listed, _ := lastStable(t, cl, "txk"); listed != open {
		t.Fatalf("LSO %d before the kill, want %d", listed, open)
	}
	b.kill()
	b.restart()
	cl = b.client()
	if listed, fetched := lastStable(t, cl, "txk"); listed != open || fetched != open {
		t.Fatalf("LSO after the kill listed %d, fetched %d; want %d", listed, fetched, open)
	}
	txnMarker(t, cl, "txk", 2, true)
	if listed, _ := lastStable(t, cl, "txk"); listed != open+3 {
		t.Fatalf("LSO %d after the commit, want %d", listed, open+3)
	}
	if got := consumeValues(t, b, "txk", kgo.ReadCommitted(), 2); !equalStrings(got, []string{"y1", "z1"}) {
		t.Fatalf("read_committed after the restart: %v, want [y1 z1]", got)
	}
}

// TestOpenTransactionSurvivesLeaderFailover: over three brokers, the
// leader of a partition with an open transaction (and an aborted one) is
// killed; the new leader holds the LSO at the open transaction, lists the
// abort, and its own marker (as the coordinator would send it to the new
// leader) ends the transaction for read_committed consumers.
func TestOpenTransactionSurvivesLeaderFailover(t *testing.T) {
	c := startCluster(t, append(slices.Clone(fastFailover), "--replica-lag-time-max", "2s")...)
	c.createTopic("txf", 1, 3, nil)
	cl := c.client()
	old := c.leader("txf", 0)
	lb := cl.Broker(int(old))
	txnProduce(t, lb, "txf", 1, 0, true, "x1")
	txnMarker(t, lb, "txf", 1, false)
	open := txnProduce(t, lb, "txf", 2, 0, true, "y1")
	txnProduce(t, lb, "txf", 3, 0, false, "z1")
	if listed, _ := lastStable(t, lb, "txf"); listed != open {
		t.Fatalf("LSO %d on the first leader, want %d", listed, open)
	}
	c.waitLogEndsEqual("txf", 1)
	c.node(old).kill()
	now := c.waitLeader("txf", 0, func(id int32) bool { return id != old })
	nb := cl.Broker(int(now))
	c.eventually(30*time.Second, "the new leader's LSO at the open transaction", func() error {
		if listed, fetched := lastStable(t, nb, "txf"); listed != open || fetched != open {
			return fmt.Errorf("LSO listed %d, fetched %d on broker %d; want %d", listed, fetched, now, open)
		}
		return nil
	})
	txnMarker(t, nb, "txf", 2, true)
	if listed, _ := lastStable(t, nb, "txf"); listed != open+3 {
		t.Fatalf("LSO %d after the new leader's commit, want %d", listed, open+3)
	}
	rc := c.client(kgo.ConsumeTopics("txf"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ctx := ctxTimeout(t, 60*time.Second)
	var got []string
	for len(got) < 2 {
		fs := rc.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read_committed after the failover: %v: %v", got, err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if !equalStrings(got, []string{"y1", "z1"}) {
		t.Fatalf("read_committed after the failover: %v, want [y1 z1]", got)
	}
}
