package server

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// createTopicsAs creates topics of one partition as principal.
func (ts *aclServer) createTopicsAs(t *testing.T, principal string, names ...string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	for _, name := range names {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
		req.Topics = append(req.Topics, rt)
	}
	for _, rt := range ts.callAs(t, principal, req).(*kmsg.CreateTopicsResponse).Topics {
		if rt.ErrorCode != 0 {
			t.Fatalf("create %s: %v", rt.Topic, kerr.ErrorForCode(rt.ErrorCode))
		}
	}
}

func txnOffsetCommitReq(group string, topics ...string) *kmsg.TxnOffsetCommitRequest {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.SetVersion(3)
	req.TransactionalID, req.Group, req.ProducerID, req.Generation = "tx", group, 9, -1
	for _, name := range topics {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = name
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Offset = 1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// TestTxnOffsetCommitAuthorized: as Kafka, WRITE on the transactional id
// first, then READ on the group, each failing every partition, then READ
// on each topic, failing that topic's.
func TestTxnOffsetCommitAuthorized(t *testing.T) {
	ts := newAclServer(t, true, admin)
	ts.createTopicsAs(t, admin, "orders", "secret")
	const app = "User:app"
	const read, write, literal, allow = 3, 4, 3, 3
	const topicRes, groupRes, txnRes = 2, 3, 5
	codes := func(g string) []int16 {
		t.Helper()
		resp := ts.callAs(t, app, txnOffsetCommitReq(g, "orders", "secret")).(*kmsg.TxnOffsetCommitResponse)
		var out []int16
		for _, rt := range resp.Topics {
			out = append(out, rt.Partitions[0].ErrorCode)
		}
		return out
	}
	want := func(what string, got []int16, want ...int16) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: %v, want %v", what, got, want)
			}
		}
	}
	want("no ACL", codes("g"), kerr.TransactionalIDAuthorizationFailed.Code, kerr.TransactionalIDAuthorizationFailed.Code)
	ts.createAcls(t, 3, creation(txnRes, "tx", literal, app, write, allow))
	want("WRITE on the transactional id", codes("g"), kerr.GroupAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code)
	ts.createAcls(t, 3, creation(groupRes, "g", literal, app, read, allow), creation(topicRes, "orders", literal, app, read, allow))
	// The test server's offset store takes no transactional commits:
	// past the authorizer, its coordinator says it is not available.
	want("READ on the group and orders", codes("g"), kerr.CoordinatorNotAvailable.Code, kerr.TopicAuthorizationFailed.Code)
}

// TestDescribeProducers: the producers of a partition led here, with the
// first offset of an open transaction and the coordinator epoch of the
// last marker; READ on the topic is needed.
func TestDescribeProducers(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createTopic(t, "orders", 1)
	first := ts.produceTxn(t, "orders", 7, 0, "a", "b")
	ts.produceTxn(t, "orders", 8, 0, "c")
	if codes := ts.writeMarkers(t, 1, "orders", 8, 0, 4, true, 0); codes[0] != 0 {
		t.Fatalf("marker: %v", codes)
	}
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic, rt.Partitions = "orders", []int32{0, 5}
	req.Topics = append(req.Topics, rt)
	resp := ts.call(t, req).(*kmsg.DescribeProducersResponse)
	orders, missing := resp.Topics[0].Partitions[0], resp.Topics[0].Partitions[1]
	if orders.ErrorCode != 0 || len(orders.ActiveProducers) != 2 || missing.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("partition 0 %+v, partition 5 %+v", orders, missing)
	}
	p7, p8 := orders.ActiveProducers[0], orders.ActiveProducers[1]
	if p7.ProducerID != 7 || p7.LastSequence != 1 || p7.CurrentTxnStartOffset != first || p7.LastTimestamp != -1 {
		t.Errorf("producer 7: %+v", p7)
	}
	if p8.ProducerID != 8 || p8.LastSequence != 0 || p8.CurrentTxnStartOffset != -1 || p8.CoordinatorEpoch != 4 {
		t.Errorf("producer 8: %+v", p8)
	}

	as := newAclServer(t, true, admin)
	as.createTopicsAs(t, admin, "orders", "secret")
	as.createAcls(t, 3, creation(2, "orders", 3, "User:app", 3, 3))
	req = kmsg.NewPtrDescribeProducersRequest()
	for _, name := range []string{"orders", "secret"} {
		rt := kmsg.NewDescribeProducersRequestTopic()
		rt.Topic, rt.Partitions = name, []int32{0}
		req.Topics = append(req.Topics, rt)
	}
	resp = as.callAs(t, "User:app", req).(*kmsg.DescribeProducersResponse)
	if a, b := resp.Topics[0].Partitions[0].ErrorCode, resp.Topics[1].Partitions[0].ErrorCode; a != 0 || b != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("orders %v, secret %v", kerr.ErrorForCode(a), kerr.ErrorForCode(b))
	}
}
