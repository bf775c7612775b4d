package server

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestListOffsetsV0: the version older clients (Burrow 1.2.1) send. Its
// answer is an array of offsets: one at most, see oldStyleOffsets.
func TestListOffsetsV0(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createTopic(t, "t", 1)
	ts.produce(t, "t", 0, 3, 2, 10) // offsets 0-5 at 1000, 1001, 1001, 1002, 1002, 1003
	p, _ := ts.parts.Get("t", 0)
	if hw := p.HighWatermark(); hw != 6 {
		t.Fatalf("high watermark %d, want 6", hw)
	}
	cases := []struct {
		partition int32
		timestamp int64
		max       int32
		want      string // offsets and error code
	}{
		{0, -1, 1, "[6]/0"},
		{0, -2, 1, "[0]/0"},
		{0, -1, 10, "[6]/0"},
		{0, -1, 0, "[]/0"},
		{0, -2, -1, "[]/0"},
		{0, -3, 1, "[]/0"},
		{0, 1001, 1, "[1]/0"}, // the first record at or after 1001
		{0, 5000, 1, "[6]/0"}, // nothing that late: the end
		{0, 0, 1, "[0]/0"},    // everything is later
		{1, -1, 1, fmt.Sprintf("[]/%d", kerr.UnknownTopicOrPartition.Code)},
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(0)
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "t"
	for _, c := range cases {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp, rp.MaxNumOffsets = c.partition, c.timestamp, c.max
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp := ts.call(t, req).(*kmsg.ListOffsetsResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != len(cases) {
		t.Fatalf("answer %+v", resp)
	}
	for i, c := range cases {
		sp := resp.Topics[0].Partitions[i]
		if got := fmt.Sprintf("%v/%d", sp.OldStyleOffsets, sp.ErrorCode); got != c.want {
			t.Errorf("partition %d at %d, max %d: %s, want %s", c.partition, c.timestamp, c.max, got, c.want)
		}
	}
}
