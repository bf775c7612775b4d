package server

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/testbatch"
)

// TestInternalTopics: __consumer_offsets and __transaction_state are shown
// as internal; clients may not produce to them, create them, delete them,
// or have a metadata request create them.
func TestInternalTopics(t *testing.T) {
	for _, name := range []string{"__consumer_offsets", "__transaction_state"} {
		t.Run(name, func(t *testing.T) { testInternalTopic(t, name) })
	}
}

func testInternalTopic(t *testing.T, name string) {
	ts := newTestServer(t, Config{NodeID: 1, AutoCreateTopics: true})

	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	md.AllowAutoTopicCreation = true
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(name)
	md.Topics = append(md.Topics, mt)
	if resp := ts.call(t, md).(*kmsg.MetadataResponse); resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("metadata for a missing internal topic: error %d, want UNKNOWN_TOPIC_OR_PARTITION", resp.Topics[0].ErrorCode)
	}
	if _, ok := ts.meta.Topic(name); ok {
		t.Fatal("a metadata request created the internal topic")
	}

	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.SetVersion(5)
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
	ct.Topics = append(ct.Topics, rt)
	if resp := ts.call(t, ct).(*kmsg.CreateTopicsResponse); resp.Topics[0].ErrorCode != kerr.InvalidTopicException.Code {
		t.Fatalf("CreateTopics of the internal topic: error %d, want INVALID_TOPIC_EXCEPTION", resp.Topics[0].ErrorCode)
	}

	// As the coordinators create it.
	if _, err := ts.meta.CreateTopic(cluster.Topic{Name: name, Partitions: 2, Configs: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	if err := ts.replicas.Reconcile(); err != nil {
		t.Fatal(err)
	}
	resp := ts.call(t, md).(*kmsg.MetadataResponse)
	if got := resp.Topics[0]; got.ErrorCode != 0 || !got.IsInternal || len(got.Partitions) != 2 {
		t.Fatalf("metadata of the internal topic: error %d, internal %v, %d partitions", got.ErrorCode, got.IsInternal, len(got.Partitions))
	}
	md.Topics[0].Topic = kmsg.StringPtr("ordinary")
	if got := ts.call(t, md).(*kmsg.MetadataResponse).Topics[0]; got.IsInternal {
		t.Fatal("an ordinary topic shown as internal")
	}

	pr := kmsg.NewPtrProduceRequest()
	pr.SetVersion(9)
	pr.Acks, pr.TimeoutMillis = -1, 1000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = name
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = testbatch.Make(testbatch.Spec{Timestamp: 1, ProducerID: -1, Values: testbatch.Values(1, 8, 1)})
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)
	if got := ts.call(t, pr).(*kmsg.ProduceResponse).Topics[0].Partitions[0]; got.ErrorCode != kerr.InvalidTopicException.Code {
		t.Fatalf("produce to the internal topic: error %d, want INVALID_TOPIC_EXCEPTION", got.ErrorCode)
	}

	dt := kmsg.NewPtrDeleteTopicsRequest()
	dt.SetVersion(5)
	dt.TopicNames = []string{name}
	if got := ts.call(t, dt).(*kmsg.DeleteTopicsResponse).Topics[0]; got.ErrorCode != kerr.InvalidTopicException.Code {
		t.Fatalf("delete of the internal topic: error %d, want INVALID_TOPIC_EXCEPTION", got.ErrorCode)
	}
	if _, ok := ts.meta.Topic(name); !ok {
		t.Fatal("the internal topic was deleted")
	}
}
