package test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/group/offsetsfmt"
)

// The group side of transactions, driven by hand: TxnOffsetCommit to the
// group's coordinator, and WriteTxnMarkers to its partition of
// __consumer_offsets as the transaction coordinator sends them.

// retryCoordinator repeats a request while the group's coordinator is
// loading or moving.
func retryCoordinator(t *testing.T, code func() int16) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c := code()
		switch c {
		case kerr.CoordinatorLoadInProgress.Code, kerr.CoordinatorNotAvailable.Code, kerr.NotCoordinator.Code:
			if time.Now().After(deadline) {
				t.Fatalf("coordinator still answers %v", kerr.ErrorForCode(c))
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		return
	}
}

// txnOffsetCommit commits offset for partition p of topic in producer
// pid's transaction and returns the partition's error code.
func txnOffsetCommit(t *testing.T, cl *kgo.Client, g string, pid int64, epoch int16, topic string, p int32, offset int64) int16 {
	t.Helper()
	var code int16
	retryCoordinator(t, func() int16 {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = "etl-tx", g, pid, epoch
		req.Generation = -1
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, offset
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctxTimeout(t, 30*time.Second), cl)
		if err != nil {
			t.Fatal(err)
		}
		code = resp.Topics[0].Partitions[0].ErrorCode
		return code
	})
	return code
}

// fetchOffset returns the committed offset of partition p of topic and
// its error code, asking with RequireStable or not.
func fetchOffset(t *testing.T, cl *kgo.Client, g, topic string, p int32, stable bool) (int64, int16) {
	t.Helper()
	var off int64
	var code int16
	retryCoordinator(t, func() int16 {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = 7
		req.Group, req.RequireStable = g, stable
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{p}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctxTimeout(t, 30*time.Second), cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != 0 {
			return resp.ErrorCode
		}
		rp := resp.Topics[0].Partitions[0]
		off, code = rp.Offset, rp.ErrorCode
		return code
	})
	return off, code
}

// groupMarker writes producer pid's marker to the group's partition of
// __consumer_offsets.
func groupMarker(t *testing.T, cl *kgo.Client, g string, pid int64, epoch int16, commit bool) {
	t.Helper()
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = pid, epoch, commit
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = offsetsTopic, []int32{offsetsfmt.PartitionFor(g, 50)}
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

func wantOffset(t *testing.T, what string, cl *kgo.Client, g, topic string, p int32, stable bool, want int64, wantCode int16) {
	t.Helper()
	off, code := fetchOffset(t, cl, g, topic, p, stable)
	if off != want || code != wantCode {
		t.Fatalf("%s: offset %d (%v), want %d (%v)", what, off, kerr.ErrorForCode(code), want, kerr.ErrorForCode(wantCode))
	}
}

// TestTxnOffsetCommit: offsets committed with TxnOffsetCommit are
// invisible to OffsetFetch (UNSTABLE_OFFSET_COMMIT with RequireStable)
// until the producer's commit marker lands on the group's partition,
// dropped by its abort marker, and stay pending across a restart of the
// broker until their marker; an older producer epoch is refused with
// INVALID_PRODUCER_EPOCH; DescribeProducers lists the producers of the
// offsets partition.
func TestTxnOffsetCommit(t *testing.T) {
	b := startBroker(t, "")
	cl := b.client()
	ctx := ctxTimeout(t, 60*time.Second)
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 2, 1, nil, "in"); err != nil {
		t.Fatal(err)
	}
	const g = "etl"
	if c := txnOffsetCommit(t, cl, g, 4242, 0, "in", 0, 10); c != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(c))
	}
	wantOffset(t, "pending", cl, g, "in", 0, false, -1, 0)
	wantOffset(t, "pending, stable asked", cl, g, "in", 0, true, -1, kerr.UnstableOffsetCommit.Code)
	groupMarker(t, cl, g, 4242, 0, true)
	wantOffset(t, "committed", cl, g, "in", 0, true, 10, 0)

	if c := txnOffsetCommit(t, cl, g, 4243, 0, "in", 1, 20); c != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(c))
	}
	groupMarker(t, cl, g, 4243, 0, false)
	wantOffset(t, "aborted", cl, g, "in", 1, true, -1, 0)

	if c := txnOffsetCommit(t, cl, g, 4244, 3, "in", 0, 30); c != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(c))
	}
	if c := txnOffsetCommit(t, cl, g, 4244, 2, "in", 1, 31); c != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("TxnOffsetCommit at an older epoch: %v", kerr.ErrorForCode(c))
	}
	if c := txnOffsetCommit(t, cl, g, 4245, 0, "missing", 0, 1); c != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("TxnOffsetCommit of a missing topic: %v", kerr.ErrorForCode(c))
	}

	dp := kmsg.NewPtrDescribeProducersRequest()
	dt := kmsg.NewDescribeProducersRequestTopic()
	dt.Topic, dt.Partitions = offsetsTopic, []int32{offsetsfmt.PartitionFor(g, 50)}
	dp.Topics = append(dp.Topics, dt)
	dr, err := dp.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	parts := dr.Topics[0].Partitions
	if len(parts) != 1 || parts[0].ErrorCode != 0 {
		t.Fatalf("DescribeProducers: %+v", parts)
	}
	seen := map[int64]kmsg.DescribeProducersResponseTopicPartitionActiveProducer{}
	for _, p := range parts[0].ActiveProducers {
		seen[p.ProducerID] = p
	}
	if len(seen) != 3 || seen[4242].CurrentTxnStartOffset != -1 || seen[4244].CurrentTxnStartOffset < 0 ||
		seen[4244].ProducerEpoch != 3 || seen[4244].LastSequence != 0 {
		t.Fatalf("DescribeProducers of the offsets partition: %+v", parts[0].ActiveProducers)
	}

	b.stop()
	b.restart()
	cl = b.client()
	wantOffset(t, "restarted, pending", cl, g, "in", 0, true, -1, kerr.UnstableOffsetCommit.Code)
	wantOffset(t, "restarted, pending, not stable", cl, g, "in", 0, false, 10, 0)
	wantOffset(t, "restarted, aborted", cl, g, "in", 1, false, -1, 0)
	groupMarker(t, cl, g, 4244, 3, true)
	wantOffset(t, "restarted, committed", cl, g, "in", 0, true, 30, 0)

	b.kill()
	b.restart()
	cl = b.client()
	wantOffset(t, "after kill -9", cl, g, "in", 0, true, 30, 0)
	wantOffset(t, "after kill -9, aborted", cl, g, "in", 1, true, -1, 0)
}

// txnRequest sends a request of the transaction protocol until it is not
// refused for a coordinator that is loading, moving or still completing
// the last transaction, and returns its error code.
func txnRequest(t *testing.T, cl *kgo.Client, req kmsg.Request, code func(kmsg.Response) int16) (kmsg.Response, int16) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := cl.Request(ctxTimeout(t, 30*time.Second), req)
		if err != nil {
			t.Fatal(err)
		}
		c := code(resp)
		switch c {
		case kerr.CoordinatorLoadInProgress.Code, kerr.CoordinatorNotAvailable.Code, kerr.NotCoordinator.Code,
			kerr.ConcurrentTransactions.Code:
			if time.Now().After(deadline) {
				t.Fatalf("%s still answers %v", kmsg.NameForKey(req.Key()), kerr.ErrorForCode(c))
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		return resp, c
	}
}

// stableOffset waits until the group's offset of partition p of topic is
// stable (no transaction pending) and returns it.
func stableOffset(t *testing.T, cl *kgo.Client, g, topic string, p int32) int64 {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		off, code := fetchOffset(t, cl, g, topic, p, true)
		if code != kerr.UnstableOffsetCommit.Code {
			if code != 0 {
				t.Fatalf("OffsetFetch: %v", kerr.ErrorForCode(code))
			}
			return off
		}
		if time.Now().After(deadline) {
			t.Fatal("the offset is still unstable a minute after EndTxn")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTxnOffsetCommitThroughCoordinator: offsets committed in a
// transaction of the transaction coordinator (InitProducerId,
// AddOffsetsToTxn, TxnOffsetCommit, EndTxn, as a transactional client
// sends them) are unstable until EndTxn's markers reach the group's
// partition, then committed, or dropped when the transaction aborts.
func TestTxnOffsetCommitThroughCoordinator(t *testing.T) {
	b := startBroker(t, "")
	cl := b.client()
	ctx := ctxTimeout(t, 60*time.Second)
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 1, 1, nil, "src"); err != nil {
		t.Fatal(err)
	}
	const g, txnID = "etl-c", "tx-offsets"
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = kmsg.StringPtr(txnID), 60000
	resp, c := txnRequest(t, cl, init, func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode })
	if c != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(c))
	}
	pid, epoch := resp.(*kmsg.InitProducerIDResponse).ProducerID, resp.(*kmsg.InitProducerIDResponse).ProducerEpoch

	txn := func(offset int64, commit bool) {
		t.Helper()
		add := kmsg.NewPtrAddOffsetsToTxnRequest()
		add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txnID, pid, epoch, g
		if _, c := txnRequest(t, cl, add, func(r kmsg.Response) int16 { return r.(*kmsg.AddOffsetsToTxnResponse).ErrorCode }); c != 0 {
			t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(c))
		}
		commitReq := kmsg.NewPtrTxnOffsetCommitRequest()
		commitReq.TransactionalID, commitReq.Group, commitReq.ProducerID, commitReq.ProducerEpoch = txnID, g, pid, epoch
		commitReq.Generation = -1
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = "src"
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Offset = offset
		rt.Partitions = append(rt.Partitions, rp)
		commitReq.Topics = append(commitReq.Topics, rt)
		if _, c := txnRequest(t, cl, commitReq, func(r kmsg.Response) int16 {
			return r.(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
		}); c != 0 {
			t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(c))
		}
		if _, code := fetchOffset(t, cl, g, "src", 0, true); code != kerr.UnstableOffsetCommit.Code {
			t.Fatalf("OffsetFetch while the transaction is open: %v, want UNSTABLE_OFFSET_COMMIT", kerr.ErrorForCode(code))
		}
		end := kmsg.NewPtrEndTxnRequest()
		end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = txnID, pid, epoch, commit
		if _, c := txnRequest(t, cl, end, func(r kmsg.Response) int16 { return r.(*kmsg.EndTxnResponse).ErrorCode }); c != 0 {
			t.Fatalf("EndTxn: %v", kerr.ErrorForCode(c))
		}
	}
	txn(40, false)
	if off := stableOffset(t, cl, g, "src", 0); off != -1 {
		t.Fatalf("after an aborted transaction: offset %d, want none", off)
	}
	txn(50, true)
	if off := stableOffset(t, cl, g, "src", 0); off != 50 {
		t.Fatalf("after a committed transaction: offset %d, want 50", off)
	}
	b.kill()
	b.restart()
	cl = b.client()
	if off := stableOffset(t, cl, g, "src", 0); off != 50 {
		t.Fatalf("after kill -9: offset %d, want 50", off)
	}
}
