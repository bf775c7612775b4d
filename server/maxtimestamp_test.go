package server

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/testbatch"
)

// createTopicWith creates a one-partition topic with configs through the
// CreateTopics handler.
func (ts *testServer) createTopicWith(t testing.TB, name string, configs map[string]string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	if c := ts.call(t, req).(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode; c != 0 {
		t.Fatalf("create %s: error %d", name, c)
	}
}

func (ts *testServer) listOffsets(t testing.TB, version int16, topic string, timestamps ...int64) []kmsg.ListOffsetsResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(version)
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, ts := range timestamps {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = ts
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return ts.call(t, req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions
}

// TestListOffsetsMaxTimestamp: -3 finds the first record with the log's
// largest timestamp, across segments (one batch a segment here), not the
// log end and not the last segment; the log start moving past it finds
// the next one. -4 is the log start and -5 nothing, as a broker without
// tiered storage answers.
func TestListOffsetsMaxTimestamp(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createTopicWith(t, "t", map[string]string{"segment.bytes": "200"})
	p, err := ts.parts.Get("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Three records a batch, 1 ms apart: a batch's largest timestamp is
	// its last record's.
	for i, first := range []int64{1000, 5000, 3000, 5000, 2000} {
		b := testbatch.Make(testbatch.Spec{Timestamp: first, ProducerID: -1, Values: testbatch.Values(3, 10, byte(i))})
		if _, err := p.Append(b, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(p.Log().Segments()); n < 5 {
		t.Fatalf("%d segments, want one a batch", n)
	}
	show := func(sp kmsg.ListOffsetsResponseTopicPartition) string {
		return fmt.Sprintf("offset %d ts %d epoch %d err %d", sp.Offset, sp.Timestamp, sp.LeaderEpoch, sp.ErrorCode)
	}
	got := ts.listOffsets(t, 9, "t", -3, -4, -5)
	want := []string{
		"offset 5 ts 5002 epoch 0 err 0", // batch 1's last record; batch 3 ties later
		"offset 0 ts -1 epoch 0 err 0",
		"offset -1 ts -1 epoch -1 err 0",
	}
	for i := range want {
		if s := show(got[i]); s != want[i] {
			t.Errorf("timestamp %d: %s, want %s", []int64{-3, -4, -5}[i], s, want[i])
		}
	}
	if _, err := p.DeleteRecords(6); err != nil {
		t.Fatal(err)
	}
	got = ts.listOffsets(t, 8, "t", -3, -4)
	if s, w := show(got[0]), "offset 11 ts 5002 epoch 0 err 0"; s != w {
		t.Errorf("-3 after the log start moved to 6: %s, want %s", s, w)
	}
	if got[1].Offset != 6 {
		t.Errorf("-4 after the log start moved to 6: %s", show(got[1]))
	}
	// The versions bind the clients only: an older version is answered
	// the same.
	if s, w := show(ts.listOffsets(t, 1, "t", -3)[0]), "offset 11 ts 5002 epoch -1 err 0"; s != w { // no epoch before v4
		t.Errorf("-3 at v1: %s, want %s", s, w)
	}
}
