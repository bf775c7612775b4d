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

// The group side of transactions, driven request by request as a
// transactional client sends them: InitProducerId, AddOffsetsToTxn,
// TxnOffsetCommit and EndTxn, and OffsetFetch to see what is committed.

// txnRequest sends a request of the transaction protocol until it is not
// refused for a coordinator that is loading, moving or still completing
// the last transaction, and returns the answer and its error code.
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

// txnClient drives the transactions of one transactional id.
type txnClient struct {
	t     *testing.T
	cl    *kgo.Client
	id    string
	pid   int64
	epoch int16
}

// initTxn runs InitProducerId for id: a new producer id, or the next
// epoch of the id's producer.
func initTxn(t *testing.T, cl *kgo.Client, id string) *txnClient {
	t.Helper()
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = kmsg.StringPtr(id), 60000
	resp, c := txnRequest(t, cl, init, func(r kmsg.Response) int16 { return r.(*kmsg.InitProducerIDResponse).ErrorCode })
	if c != 0 {
		t.Fatalf("InitProducerId %s: %v", id, kerr.ErrorForCode(c))
	}
	r := resp.(*kmsg.InitProducerIDResponse)
	return &txnClient{t: t, cl: cl, id: id, pid: r.ProducerID, epoch: r.ProducerEpoch}
}

// addOffsets puts the group's offsets in the transaction
// (AddOffsetsToTxn).
func (x *txnClient) addOffsets(g string) {
	x.t.Helper()
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = x.id, x.pid, x.epoch, g
	if _, c := txnRequest(x.t, x.cl, add, func(r kmsg.Response) int16 { return r.(*kmsg.AddOffsetsToTxnResponse).ErrorCode }); c != 0 {
		x.t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(c))
	}
}

// commitOffset commits offset for partition p of topic in the
// transaction at epoch and returns the partition's error code.
func (x *txnClient) commitOffset(g string, epoch int16, topic string, p int32, offset int64) int16 {
	x.t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = x.id, g, x.pid, epoch
	req.Generation = -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = p, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	_, c := txnRequest(x.t, x.cl, req, func(r kmsg.Response) int16 {
		return r.(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	})
	return c
}

// end ends the transaction (EndTxn).
func (x *txnClient) end(commit bool) {
	x.t.Helper()
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = x.id, x.pid, x.epoch, commit
	if _, c := txnRequest(x.t, x.cl, end, func(r kmsg.Response) int16 { return r.(*kmsg.EndTxnResponse).ErrorCode }); c != 0 {
		x.t.Fatalf("EndTxn: %v", kerr.ErrorForCode(c))
	}
}

// fetchOffset returns the committed offset of partition p of topic and
// its error code, asking with RequireStable or not, once the group's
// coordinator answers.
func fetchOffset(t *testing.T, cl *kgo.Client, g, topic string, p int32, stable bool) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 7
	req.Group, req.RequireStable = g, stable
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{p}
	req.Topics = append(req.Topics, rt)
	var off int64
	_, code := txnRequest(t, cl, req, func(r kmsg.Response) int16 {
		resp := r.(*kmsg.OffsetFetchResponse)
		if resp.ErrorCode != 0 {
			return resp.ErrorCode
		}
		off = resp.Topics[0].Partitions[0].Offset
		return resp.Topics[0].Partitions[0].ErrorCode
	})
	return off, code
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

func wantOffset(t *testing.T, what string, cl *kgo.Client, g, topic string, p int32, stable bool, want int64, wantCode int16) {
	t.Helper()
	off, code := fetchOffset(t, cl, g, topic, p, stable)
	if off != want || code != wantCode {
		t.Fatalf("%s: offset %d (%v), want %d (%v)", what, off, kerr.ErrorForCode(code), want, kerr.ErrorForCode(wantCode))
	}
}

func wantCode(t *testing.T, what string, got, want int16) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(got), kerr.ErrorForCode(want))
	}
}

// TestTxnOffsetCommit: offsets committed in a transaction are invisible
// to OffsetFetch (UNSTABLE_OFFSET_COMMIT with RequireStable) until EndTxn's
// commit marker reaches the group's partition, then committed; an abort
// drops them; a transaction open across a restart of the broker keeps
// them pending until it ends; a TxnOffsetCommit whose group the
// transaction does not hold (no AddOffsetsToTxn) is refused with
// INVALID_TXN_STATE and one at an older producer epoch with
// INVALID_PRODUCER_EPOCH, leaving nothing pending; DescribeProducers lists
// the producers of the offsets partition; all of it survives a kill -9.
func TestTxnOffsetCommit(t *testing.T) {
	b := startBroker(t, "")
	cl := b.client()
	ctx := ctxTimeout(t, 60*time.Second)
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 2, 1, nil, "in"); err != nil {
		t.Fatal(err)
	}
	const g = "etl"

	a := initTxn(t, cl, "tx-a")
	a.addOffsets(g)
	wantCode(t, "TxnOffsetCommit", a.commitOffset(g, a.epoch, "in", 0, 10), 0)
	wantCode(t, "TxnOffsetCommit of a missing topic", a.commitOffset(g, a.epoch, "missing", 0, 1), kerr.UnknownTopicOrPartition.Code)
	wantOffset(t, "pending", cl, g, "in", 0, false, -1, 0)
	wantOffset(t, "pending, stable asked", cl, g, "in", 0, true, -1, kerr.UnstableOffsetCommit.Code)
	a.end(true)
	if off := stableOffset(t, cl, g, "in", 0); off != 10 {
		t.Fatalf("after the commit: offset %d, want 10", off)
	}

	bt := initTxn(t, cl, "tx-b")
	bt.addOffsets(g)
	wantCode(t, "TxnOffsetCommit", bt.commitOffset(g, bt.epoch, "in", 1, 20), 0)
	bt.end(false)
	if off := stableOffset(t, cl, g, "in", 1); off != -1 {
		t.Fatalf("after the abort: offset %d, want none", off)
	}

	// A zombie: no AddOffsetsToTxn, so the group's partition is not in
	// any transaction of the producer.
	z := initTxn(t, cl, "tx-z")
	wantCode(t, "TxnOffsetCommit outside the transaction", z.commitOffset(g, z.epoch, "in", 1, 99), kerr.InvalidTxnState.Code)
	// A fenced producer: the id's next InitProducerId bumped the epoch.
	f := initTxn(t, cl, "tx-f")
	old := f.epoch
	f = initTxn(t, cl, "tx-f")
	f.addOffsets(g)
	wantCode(t, "TxnOffsetCommit at an older epoch", f.commitOffset(g, old, "in", 1, 98), kerr.InvalidProducerEpoch.Code)
	wantOffset(t, "after the refusals", cl, g, "in", 1, true, -1, 0)
	f.end(false)

	e := initTxn(t, cl, "tx-e")
	e.addOffsets(g)
	wantCode(t, "TxnOffsetCommit", e.commitOffset(g, e.epoch, "in", 0, 30), 0)
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
	if pe, pa := seen[e.pid], seen[a.pid]; pe.CurrentTxnStartOffset < 0 || pe.ProducerEpoch != int32(e.epoch) ||
		pa.ProducerID != a.pid || pa.CurrentTxnStartOffset != -1 {
		t.Fatalf("DescribeProducers of the offsets partition: %+v", parts[0].ActiveProducers)
	}

	b.stop()
	b.restart()
	cl = b.client()
	e.cl = cl
	wantOffset(t, "restarted, pending", cl, g, "in", 0, true, -1, kerr.UnstableOffsetCommit.Code)
	wantOffset(t, "restarted, pending, not stable", cl, g, "in", 0, false, 10, 0)
	e.end(true)
	if off := stableOffset(t, cl, g, "in", 0); off != 30 {
		t.Fatalf("restarted, committed: offset %d, want 30", off)
	}

	b.kill()
	b.restart()
	cl = b.client()
	wantOffset(t, "after kill -9", cl, g, "in", 0, true, 30, 0)
	wantOffset(t, "after kill -9, aborted", cl, g, "in", 1, true, -1, 0)
}
