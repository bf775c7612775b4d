package server

import (
	"fmt"
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func createTopicsRequest(validateOnly bool, topics map[string]int32) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.ValidateOnly = validateOnly
	for name, n := range topics {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, n, -1
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func createPartitionsRequest(validateOnly bool, topic string, count int32) *kmsg.CreatePartitionsRequest {
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.SetVersion(3)
	req.ValidateOnly = validateOnly
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, count
	req.Topics = append(req.Topics, rt)
	return req
}

// TestPartitionLimits: a partition count above the per-topic limit is
// INVALID_PARTITIONS and one that would take the cluster above the
// per-broker limit POLICY_VIOLATION, for CreateTopics, CreatePartitions and
// auto-created topics, validate-only or not, before the metadata store is
// asked for anything; counts within the limits still work.
func TestPartitionLimits(t *testing.T) {
	ts := newTestServer(t, Config{MaxPartitionsPerTopic: 50, MaxPartitionsPerBroker: 60, AutoCreateTopics: true, DefaultPartitions: 8})
	ts.createTopic(t, "a", 40)

	// Auto-creation takes DefaultPartitions (8): one topic makes 48
	// replicas of 60, a second 56, a third would make 64.
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	md.AllowAutoTopicCreation = true
	for _, name := range []string{"auto1", "auto2", "auto3"} {
		md.Topics = append(md.Topics, kmsg.MetadataRequestTopic{Topic: kmsg.StringPtr(name)})
	}
	resp := ts.call(t, md).(*kmsg.MetadataResponse)
	for i, want := range []int16{0, 0, kerr.PolicyViolation.Code} {
		if got := resp.Topics[i].ErrorCode; got != want {
			t.Errorf("auto-created topic %d: error %d, want %d", i, got, want)
		}
	}

	calls := ts.meta.storeCalls()
	cases := []struct {
		name     string
		req      kmsg.Request
		wantCode int16
	}{
		{"create 2^31-1", createTopicsRequest(false, map[string]int32{"huge": math.MaxInt32}), kerr.InvalidPartitions.Code},
		{"validate 2^31-1", createTopicsRequest(true, map[string]int32{"huge": math.MaxInt32}), kerr.InvalidPartitions.Code},
		{"create above the topic limit", createTopicsRequest(false, map[string]int32{"b": 51}), kerr.InvalidPartitions.Code},
		{"create above the broker limit", createTopicsRequest(false, map[string]int32{"b": 5}), kerr.PolicyViolation.Code},
		{"validate above the broker limit", createTopicsRequest(true, map[string]int32{"b": 5}), kerr.PolicyViolation.Code},
		{"grow to 2^31-1", createPartitionsRequest(false, "a", math.MaxInt32), kerr.InvalidPartitions.Code},
		{"validate growing to 2^31-1", createPartitionsRequest(true, "a", math.MaxInt32), kerr.InvalidPartitions.Code},
		{"grow above the topic limit", createPartitionsRequest(false, "a", 51), kerr.InvalidPartitions.Code},
		{"grow above the broker limit", createPartitionsRequest(false, "a", 45), kerr.PolicyViolation.Code},
		{"validate growing above the broker limit", createPartitionsRequest(true, "a", 45), kerr.PolicyViolation.Code},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var code int16
			switch resp := ts.call(t, c.req).(type) {
			case *kmsg.CreateTopicsResponse:
				code = resp.Topics[0].ErrorCode
			case *kmsg.CreatePartitionsResponse:
				code = resp.Topics[0].ErrorCode
			}
			if code != c.wantCode {
				t.Fatalf("error %d, want %d", code, c.wantCode)
			}
			if got := ts.meta.storeCalls(); got != calls {
				t.Fatalf("the metadata store was asked %d times", got-calls)
			}
		})
	}

	// Within the limits: 56 held, 4 more fit exactly.
	if resp := ts.call(t, createPartitionsRequest(false, "a", 44)).(*kmsg.CreatePartitionsResponse); resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("growing within the limits: error %d", resp.Topics[0].ErrorCode)
	}
	if topic, _ := ts.meta.Topic("a"); topic.Partitions != 44 {
		t.Fatalf("topic a has %d partitions, want 44", topic.Partitions)
	}
	if p, err := ts.parts.Get("a", 43); err != nil || p == nil {
		t.Fatalf("new partition not opened: %v", err)
	}
}

// TestPartitionLimitsScaleWithBrokers: the per-broker limit is a cluster's
// capacity, the limit times the registered brokers.
func TestPartitionLimitsScaleWithBrokers(t *testing.T) {
	ts := newTestServer(t, Config{MaxPartitionsPerBroker: 10})
	ts.meta.brokers = newFakeMeta(3).brokers
	for _, c := range []struct {
		partitions int32
		want       int16
	}{{30, 0}, {31, kerr.PolicyViolation.Code}} {
		resp := ts.call(t, createTopicsRequest(true, map[string]int32{"t": c.partitions})).(*kmsg.CreateTopicsResponse)
		if got := resp.Topics[0].ErrorCode; got != c.want {
			t.Errorf("%d partitions on 3 brokers of 10: error %d, want %d", c.partitions, got, c.want)
		}
	}
}

// TestPartitionLimitDefaults: the defaults take the 10,000-partition topic
// of scripts/bench-scale.sh on one broker.
func TestPartitionLimitDefaults(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, c := range []struct {
		partitions int32
		want       int16
	}{{10_000, 0}, {20_000, 0}, {20_001, kerr.PolicyViolation.Code}, {100_001, kerr.InvalidPartitions.Code}} {
		resp := ts.call(t, createTopicsRequest(true, map[string]int32{"t": c.partitions})).(*kmsg.CreateTopicsResponse)
		if got := resp.Topics[0].ErrorCode; got != c.want {
			t.Errorf("%d partitions: error %d, want %d", c.partitions, got, c.want)
		}
	}
}

// TestMetadataTopicsAreASet: a topic named many times, by name or by id,
// is answered once; the answer no longer grows with the repetitions.
func TestMetadataTopicsAreASet(t *testing.T) {
	ts := newTestServer(t, Config{})
	topic := ts.createTopic(t, "t", 20)
	unknownID := [16]byte{9, 9, 9}
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(12)
	for i := 0; i < 5000; i++ {
		req.Topics = append(req.Topics,
			kmsg.MetadataRequestTopic{Topic: kmsg.StringPtr("t")},
			kmsg.MetadataRequestTopic{TopicID: topic.ID},
			kmsg.MetadataRequestTopic{Topic: kmsg.StringPtr("missing")},
			kmsg.MetadataRequestTopic{TopicID: unknownID},
		)
	}
	resp := ts.call(t, req).(*kmsg.MetadataResponse)
	var got []string
	for _, rt := range resp.Topics {
		name := "<nil>"
		if rt.Topic != nil {
			name = *rt.Topic
		}
		got = append(got, fmt.Sprintf("%s/%d/%d", name, len(rt.Partitions), rt.ErrorCode))
	}
	want := []string{
		fmt.Sprintf("<nil>/0/%d", kerr.UnknownTopicID.Code),
		"t/20/0",
		fmt.Sprintf("missing/0/%d", kerr.UnknownTopicOrPartition.Code),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		if len(got) > len(want) {
			got = append(got[:len(want)], fmt.Sprintf("... (%d in all)", len(got)))
		}
		t.Fatalf("topics answered %v, want %v", got, want)
	}
	if n, reqBytes := len(resp.AppendTo(nil)), len(req.AppendTo(nil)); n > reqBytes/100 {
		t.Fatalf("a %d-byte request got a %d-byte answer", reqBytes, n)
	}
}

// TestCreateTopicInFlightHoldsNoLock: while one topic's create waits on the
// metadata store (a proposal forwarded to the Raft leader), creating
// another topic, deleting one and the capacity check all go on; the
// replicas of the create in flight count against the per-broker limit.
func TestCreateTopicInFlightHoldsNoLock(t *testing.T) {
	ts := newTestServer(t, Config{MaxPartitionsPerBroker: 30})
	ts.createTopic(t, "gone", 1)
	entered, release := make(chan struct{}), make(chan struct{})
	ts.meta.beforeCreate = func(name string) {
		if name == "slow" {
			close(entered)
			<-release
		}
	}
	slow := make(chan kmsg.Response, 1)
	go func() { slow <- ts.call(t, createTopicsRequest(false, map[string]int32{"slow": 20})) }()
	<-entered

	// 1 + 20 in flight + 10 = 31 > 30: refused while "slow" is pending.
	resp := ts.call(t, createTopicsRequest(false, map[string]int32{"big": 10})).(*kmsg.CreateTopicsResponse)
	if got := resp.Topics[0].ErrorCode; got != kerr.PolicyViolation.Code {
		t.Errorf("create past the limit with a create in flight: error %d, want POLICY_VIOLATION", got)
	}
	resp = ts.call(t, createTopicsRequest(false, map[string]int32{"small": 5})).(*kmsg.CreateTopicsResponse)
	if got := resp.Topics[0].ErrorCode; got != 0 {
		t.Errorf("create within the limit with a create in flight: error %d", got)
	}
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.SetVersion(4)
	del.TopicNames = []string{"gone"}
	if got := ts.call(t, del).(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode; got != 0 {
		t.Errorf("delete with a create in flight: error %d", got)
	}
	close(release)
	if got := (<-slow).(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode; got != 0 {
		t.Errorf("the slow create: error %d", got)
	}
	if ts.reservedReplicas() != 0 {
		t.Errorf("%d replicas still reserved after every create ended", ts.reservedReplicas())
	}
}

func (s *Server) reservedReplicas() int64 {
	s.topics.Lock()
	defer s.topics.Unlock()
	return s.topics.reserved
}
