package server

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/coordinator/groups"
	"github.com/runnel-io/runnel/coordinator/txns"
	"github.com/runnel-io/runnel/internal/authz"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

// fakeTxns is a transaction coordinator that answers err to every change
// and records the partitions added.
type fakeTxns struct {
	mu        sync.Mutex
	err       error
	added     []txns.TopicPartition
	verify    []error
	verifyErr error
	txs       []txns.Txn
}

func (f *fakeTxns) Locate(string) (int32, error) { return 1, nil }
func (f *fakeTxns) InitProducerID(string, time.Duration, int64, int16) (int64, int16, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return -1, -1, f.err
	}
	return 42, 3, nil
}
func (f *fakeTxns) AddPartitions(_ string, _ int64, _ int16, parts []txns.TopicPartition) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added = append(f.added, parts...)
	return f.err
}
func (f *fakeTxns) VerifyPartitions(string, int64, int16, []txns.TopicPartition) ([]error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.verify, f.err
}
func (f *fakeTxns) EndTxn(string, int64, int16, bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
func (f *fakeTxns) Describe(id string) (txns.Txn, error) {
	for _, tx := range f.txs {
		if tx.ID == id {
			return tx, nil
		}
	}
	return txns.Txn{}, txns.ErrUnknownID
}
func (f *fakeTxns) List() []txns.Txn { return f.txs }
func (f *fakeTxns) Verify(string, int64, int16, txns.TopicPartition) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.verifyErr
}

func (f *fakeTxns) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func addPartitionsReq(v int16, id string, topics map[string][]int32) *kmsg.AddPartitionsToTxnRequest {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.SetVersion(v)
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, 42, 3
	for _, name := range []string{"t", "missing", "secret"} {
		if ps, ok := topics[name]; ok {
			rt := kmsg.NewAddPartitionsToTxnRequestTopic()
			rt.Topic, rt.Partitions = name, ps
			req.Topics = append(req.Topics, rt)
		}
	}
	return req
}

func apCodes(resp *kmsg.AddPartitionsToTxnResponse) map[string]int16 {
	out := map[string]int16{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[t.Topic+"-"+string(rune('0'+p.Partition))] = p.ErrorCode
		}
	}
	return out
}

// TestTxnFencedCodeByVersion: PRODUCER_FENCED is answered as such from
// the versions that know it (InitProducerId 4, the others 2) and as
// INVALID_PRODUCER_EPOCH before, as Kafka does.
func TestTxnFencedCodeByVersion(t *testing.T) {
	f := &fakeTxns{err: txns.ErrProducerFenced}
	ts := newTestServer(t, Config{Transactions: f})
	ts.createTopic(t, "t", 2)
	if _, err := ts.meta.CreateTopic(cluster.Topic{Name: groups.Topic, Partitions: 4, Configs: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	want := func(v, since int16) int16 {
		if v < since {
			return kerr.InvalidProducerEpoch.Code
		}
		return kerr.ProducerFenced.Code
	}
	for v := int16(0); v <= 4; v++ {
		ip := kmsg.NewPtrInitProducerIDRequest()
		ip.SetVersion(v)
		ip.TransactionalID, ip.TransactionTimeoutMillis = kmsg.StringPtr("x"), 1000
		if got := ts.call(t, ip).(*kmsg.InitProducerIDResponse); got.ErrorCode != want(v, 4) || got.ProducerID != -1 {
			t.Errorf("InitProducerId v%d: %+v", v, got)
		}
		et := kmsg.NewPtrEndTxnRequest()
		et.SetVersion(v)
		et.TransactionalID = "x"
		if got := ts.call(t, et).(*kmsg.EndTxnResponse).ErrorCode; got != want(v, 2) {
			t.Errorf("EndTxn v%d: %d", v, got)
		}
		ao := kmsg.NewPtrAddOffsetsToTxnRequest()
		ao.SetVersion(v)
		ao.TransactionalID, ao.Group = "x", "g"
		if got := ts.call(t, ao).(*kmsg.AddOffsetsToTxnResponse).ErrorCode; got != want(v, 2) {
			t.Errorf("AddOffsetsToTxn v%d: %d", v, got)
		}
		if v <= 3 {
			got := apCodes(ts.call(t, addPartitionsReq(v, "x", map[string][]int32{"t": {0}})).(*kmsg.AddPartitionsToTxnResponse))
			if got["t-0"] != want(v, 2) {
				t.Errorf("AddPartitionsToTxn v%d: %v", v, got)
			}
		}
	}
	// AddOffsetsToTxn adds the group's partition of __consumer_offsets.
	if tp := (txns.TopicPartition{Topic: groups.Topic, Partition: groups.PartitionFor("g", 4)}); !slices.Contains(f.added, tp) {
		t.Errorf("partitions added %v, want %v among them", f.added, tp)
	}

	f.setErr(nil)
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.TransactionalID, ip.TransactionTimeoutMillis = kmsg.StringPtr(""), 1000
	if got := ts.call(t, ip).(*kmsg.InitProducerIDResponse); got.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("InitProducerId with an empty transactional id: %+v", got)
	}
	ip.TransactionalID = kmsg.StringPtr("x")
	if got := ts.call(t, ip).(*kmsg.InitProducerIDResponse); got.ErrorCode != 0 || got.ProducerID != 42 || got.ProducerEpoch != 3 {
		t.Errorf("InitProducerId: %+v", got)
	}
}

// TestAddPartitionsToTxnRefusals: a partition that does not exist is
// UNKNOWN_TOPIC_OR_PARTITION, and then nothing is added and the others
// answer OPERATION_NOT_ATTEMPTED; the batched form of version 4 and up
// adds or verifies each transaction.
func TestAddPartitionsToTxnRefusals(t *testing.T) {
	f := &fakeTxns{}
	ts := newTestServer(t, Config{Transactions: f})
	ts.createTopic(t, "t", 2)
	got := apCodes(ts.call(t, addPartitionsReq(3, "x", map[string][]int32{"t": {0, 5}, "missing": {0}})).(*kmsg.AddPartitionsToTxnResponse))
	want := map[string]int16{"t-0": kerr.OperationNotAttempted.Code, "t-5": kerr.UnknownTopicOrPartition.Code,
		"missing-0": kerr.UnknownTopicOrPartition.Code}
	if len(got) != len(want) || got["t-0"] != want["t-0"] || got["t-5"] != want["t-5"] || got["missing-0"] != want["missing-0"] {
		t.Fatalf("codes %v, want %v", got, want)
	}
	if len(f.added) != 0 {
		t.Fatalf("added %v although a partition was refused", f.added)
	}

	f.verify = []error{nil, txns.ErrInvalidTxnState}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.SetVersion(5)
	for _, verify := range []bool{true, false} {
		tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = "v", 42, 3, verify
		rt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		rt.Topic, rt.Partitions = "t", []int32{0, 1}
		tx.Topics = append(tx.Topics, rt)
		req.Transactions = append(req.Transactions, tx)
	}
	resp := ts.call(t, req).(*kmsg.AddPartitionsToTxnResponse)
	if resp.ErrorCode != 0 || len(resp.Transactions) != 2 {
		t.Fatalf("batched: %+v", resp)
	}
	verified, added := resp.Transactions[0].Topics[0].Partitions, resp.Transactions[1].Topics[0].Partitions
	if verified[0].ErrorCode != 0 || verified[1].ErrorCode != kerr.InvalidTxnState.Code || added[0].ErrorCode != 0 || added[1].ErrorCode != 0 {
		t.Fatalf("batched codes: verified %+v, added %+v", verified, added)
	}
	if len(f.added) != 2 {
		t.Fatalf("added %v, want t-0 and t-1", f.added)
	}

	// FindCoordinator v4 for transactional ids: each key answered.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(4)
	fc.CoordinatorType, fc.CoordinatorKeys = 1, []string{"a", "b"}
	fr := ts.call(t, fc).(*kmsg.FindCoordinatorResponse)
	if len(fr.Coordinators) != 2 || fr.Coordinators[0].ErrorCode != 0 || fr.Coordinators[1].NodeID != 1 || fr.Coordinators[1].Key != "b" {
		t.Fatalf("FindCoordinator v4: %+v", fr.Coordinators)
	}
}

// TestTxnAuthorization: as Kafka, WRITE on the transactional id for the
// transaction APIs, WRITE on each topic added, DESCRIBE on the id to
// describe or list it, CLUSTER_ACTION for the brokers' AddPartitionsToTxn
// v4+.
func TestTxnAuthorization(t *testing.T) {
	f := &fakeTxns{txs: []txns.Txn{{ID: "mine", ProducerID: 42, State: txns.Ongoing, Timeout: time.Second, Start: time.UnixMilli(1),
		Partitions: []txns.TopicPartition{{Topic: "t", Partition: 0}, {Topic: "secret", Partition: 0}}}, {ID: "theirs", State: txns.Empty}}}
	meta := &aclMeta{fakeMeta: newFakeMeta(1), acls: map[cluster.AclBinding]bool{}}
	meta.az = authz.New(authz.Config{SuperUsers: []string{admin}})
	ts := &aclServer{testServer: newTestServerOver(t, Config{Metrics: NewMetrics(prometheus.NewRegistry()), Authorizer: meta.az,
		Transactions: f}, meta, meta.fakeMeta), meta: meta}
	for _, name := range []string{"t", "secret"} {
		if _, err := ts.meta.CreateTopic(cluster.Topic{Name: name, Partitions: 1, Configs: map[string]string{}}); err != nil {
			t.Fatal(err)
		}
	}
	const app = "User:app"
	// WRITE on transactional id "mine" and on topic t.
	if got := ts.createAcls(t, 3, creation(5, "mine", 3, app, 4, 3), creation(2, "t", 3, app, 4, 3)); got[0]+got[1] != 0 {
		t.Fatal(got)
	}
	et := kmsg.NewPtrEndTxnRequest()
	et.SetVersion(3)
	et.TransactionalID = "theirs"
	if got := ts.callAs(t, app, et).(*kmsg.EndTxnResponse).ErrorCode; got != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Errorf("EndTxn of another's id: %d", got)
	}
	et.TransactionalID = "mine"
	if got := ts.callAs(t, app, et).(*kmsg.EndTxnResponse).ErrorCode; got != 0 {
		t.Errorf("EndTxn of its own id: %d", got)
	}
	got := apCodes(ts.callAs(t, app, addPartitionsReq(3, "mine", map[string][]int32{"t": {0}, "secret": {0}})).(*kmsg.AddPartitionsToTxnResponse))
	if got["secret-0"] != kerr.TopicAuthorizationFailed.Code || got["t-0"] != kerr.OperationNotAttempted.Code {
		t.Errorf("AddPartitionsToTxn with a topic it may not write: %v", got)
	}
	got = apCodes(ts.callAs(t, app, addPartitionsReq(3, "theirs", map[string][]int32{"t": {0}})).(*kmsg.AddPartitionsToTxnResponse))
	if got["t-0"] != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Errorf("AddPartitionsToTxn to another's id: %v", got)
	}
	v4 := kmsg.NewPtrAddPartitionsToTxnRequest()
	v4.SetVersion(4)
	if c := ts.callAs(t, app, v4).(*kmsg.AddPartitionsToTxnResponse).ErrorCode; c != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("AddPartitionsToTxn v4 without CLUSTER_ACTION: %d", c)
	}
	if c := ts.callAs(t, admin, v4).(*kmsg.AddPartitionsToTxnResponse).ErrorCode; c != 0 {
		t.Errorf("AddPartitionsToTxn v4 from a super user: %d", c)
	}

	dt := kmsg.NewPtrDescribeTransactionsRequest()
	dt.TransactionalIDs = []string{"mine", "theirs"}
	states := ts.callAs(t, app, dt).(*kmsg.DescribeTransactionsResponse).TransactionStates
	if len(states) != 2 || states[0].ErrorCode != 0 || states[0].State != "Ongoing" || len(states[0].Topics) != 1 ||
		states[0].Topics[0].Topic != "t" || states[1].ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Errorf("DescribeTransactions: %+v", states)
	}
	lt := kmsg.NewPtrListTransactionsRequest()
	lt.SetVersion(1)
	lt.DurationFilterMillis = -1
	lr := ts.callAs(t, app, lt).(*kmsg.ListTransactionsResponse)
	if len(lr.TransactionStates) != 1 || lr.TransactionStates[0].TransactionalID != "mine" {
		t.Errorf("ListTransactions: %+v", lr.TransactionStates)
	}
	// Running longer than an hour: "mine" started at the epoch does,
	// "theirs" never started one and passes too, as in Kafka.
	lt.DurationFilterMillis = 3_600_000
	if lr := ts.callAs(t, admin, lt).(*kmsg.ListTransactionsResponse); len(lr.TransactionStates) != 2 {
		t.Errorf("ListTransactions by duration: %+v", lr.TransactionStates)
	}
	f.txs[0].Start = time.Now()
	if lr := ts.callAs(t, admin, lt).(*kmsg.ListTransactionsResponse); len(lr.TransactionStates) != 1 ||
		lr.TransactionStates[0].TransactionalID != "theirs" {
		t.Errorf("ListTransactions by duration, one just started: %+v", lr.TransactionStates)
	}
	lt.DurationFilterMillis = -1
	lt.SetVersion(2)
	lt.TransactionalIDPattern = kmsg.StringPtr("(")
	if c := ts.callAs(t, admin, lt).(*kmsg.ListTransactionsResponse).ErrorCode; c != kerr.InvalidRegularExpression.Code {
		t.Errorf("ListTransactions with an invalid pattern: %d", c)
	}
	lt.TransactionalIDPattern = kmsg.StringPtr("^th")
	if lr := ts.callAs(t, admin, lt).(*kmsg.ListTransactionsResponse); len(lr.TransactionStates) != 1 || lr.TransactionStates[0].TransactionalID != "theirs" {
		t.Errorf("ListTransactions by pattern: %+v", lr.TransactionStates)
	}
	lt.TransactionalIDPattern = nil
	lt.StateFilters = []string{"Ongoing", "Sleeping"}
	lr = ts.callAs(t, admin, lt).(*kmsg.ListTransactionsResponse)
	if len(lr.TransactionStates) != 1 || len(lr.UnknownStateFilters) != 1 || lr.UnknownStateFilters[0] != "Sleeping" {
		t.Errorf("ListTransactions by state: %+v", lr)
	}
}

func txnProduceReq(id string, seq int32) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis, req.TransactionID = -1, 5000, kmsg.StringPtr(id)
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = testbatch.Make(testbatch.Spec{Timestamp: 1, Idempotent: true, ProducerID: 42, ProducerEpoch: 3,
		BaseSequence: seq, Attributes: segment.AttrTransactional, Values: testbatch.Values(1, 8, 1)})
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// TestProduceVerifiesTransaction: the batch that would open a producer's
// transaction on a partition is written only if the coordinator has the
// partition in that transaction (KIP-890); INVALID_TXN_STATE otherwise,
// NOT_ENOUGH_REPLICAS (retriable) when the coordinator cannot answer.
func TestProduceVerifiesTransaction(t *testing.T) {
	f := &fakeTxns{}
	ts := newTestServer(t, Config{Transactions: f})
	ts.createTopic(t, "t", 1)
	code := func(seq int32) int16 {
		return ts.call(t, txnProduceReq("x", seq)).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	for _, tc := range []struct {
		err  error
		want int16
	}{
		{txns.ErrInvalidTxnState, kerr.InvalidTxnState.Code},
		{txns.ErrProducerFenced, kerr.InvalidProducerEpoch.Code},
		{coordinator.ErrNotAvailable, kerr.NotEnoughReplicas.Code},
	} {
		f.mu.Lock()
		f.verifyErr = tc.err
		f.mu.Unlock()
		if got := code(0); got != tc.want {
			t.Errorf("verification %v: code %d, want %d", tc.err, got, tc.want)
		}
	}
	p, err := ts.parts.Get("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	if end := p.LogEndOffset(); end != 0 {
		t.Fatalf("refused batches written: log end %d", end)
	}
	f.mu.Lock()
	f.verifyErr = nil
	f.mu.Unlock()
	if got := code(0); got != 0 {
		t.Fatalf("verified batch: %d", got)
	}
	// The transaction is open on the partition: the next batch is not
	// verified again.
	f.mu.Lock()
	f.verifyErr = txns.ErrInvalidTxnState
	f.mu.Unlock()
	if got := code(1); got != 0 {
		t.Fatalf("second batch of an open transaction: %d", got)
	}
}
