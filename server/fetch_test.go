package server

import (
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// repeatedFetch is the shape of a fetch that once made a 2.15 GB answer
// with a negative size from a 2.8 MB request: every partition of topic
// named again and again, each entry asking for everything.
func repeatedFetch(version int16, topic string, id [16]byte, partitions int32, repeats int) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(version)
	req.ReplicaID, req.SessionEpoch = -1, -1
	req.MaxBytes = math.MaxInt32
	for i := 0; i < repeats; i++ {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, id
		for p := int32(0); p < partitions; p++ {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.PartitionMaxBytes = p, math.MaxInt32
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func fetchRecordBytes(resp *kmsg.FetchResponse) (partitions int, bytes int) {
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			partitions++
			bytes += len(rp.RecordBatches)
		}
	}
	return partitions, bytes
}

// TestFetchRepeatedPartitions: a partition named many times is answered
// once, so the answer is the size of the data, not of the data times the
// repetitions; the answer decodes and its size prefix is positive.
func TestFetchRepeatedPartitions(t *testing.T) {
	ts := newTestServer(t, Config{})
	topic := ts.createTopic(t, "t", 4)
	for p := int32(0); p < 4; p++ {
		ts.produce(t, "t", p, 4, 10, 1000) // about 40 kB a partition
	}
	for _, v := range []int16{4, 12, 13, 16} {
		resp := ts.call(t, repeatedFetch(v, "t", topic.ID, 4, 300)).(*kmsg.FetchResponse)
		parts, n := fetchRecordBytes(resp)
		if parts != 4 || n < 4*40_000 || n > 4*50_000 {
			t.Errorf("v%d: %d partitions answered with %d record bytes, want 4 of about 40 kB each", v, parts, n)
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != 0 {
					t.Errorf("v%d: partition %d: error %d", v, rp.Partition, rp.ErrorCode)
				}
			}
		}
	}
}

// TestFetchRepeatedPartitionLastEntryWins: as in Kafka, a partition named
// twice is answered where it was first named, from its last entry's
// offset.
func TestFetchRepeatedPartitionLastEntryWins(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createTopic(t, "t", 2)
	ts.produce(t, "t", 0, 3, 1, 10)
	ts.produce(t, "t", 1, 3, 1, 10)
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID, req.SessionEpoch, req.MaxBytes = -1, -1, 1<<20
	entry := func(topic string, part int32, offset int64) kmsg.FetchRequestTopic {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = part, offset, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		return rt
	}
	req.Topics = []kmsg.FetchRequestTopic{entry("t", 1, 0), entry("t", 0, 0), entry("t", 1, 2), entry("nope", 0, 0), entry("nope", 0, 0)}
	resp := ts.call(t, req).(*kmsg.FetchResponse)
	type answer struct {
		topic     string
		partition int32
		first     int64 // first offset of the first batch, -1 for none
		code      int16
	}
	var got []answer
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			a := answer{rt.Topic, rp.Partition, -1, rp.ErrorCode}
			var b kmsg.RecordBatch
			if len(rp.RecordBatches) > 0 && b.ReadFrom(rp.RecordBatches) == nil {
				a.first = b.FirstOffset
			}
			got = append(got, a)
		}
	}
	want := []answer{{"t", 1, 2, 0}, {"t", 0, 0, 0}, {"nope", 0, -1, 3}}
	if len(got) != len(want) {
		t.Fatalf("answers %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("answers %+v, want %+v", got, want)
		}
	}
}

// TestFetchMaxBytes: a response carries at most FetchMaxBytes of records
// whatever the request's MaxBytes, except that the first partition with
// data gets its first batch whole (KIP-74).
func TestFetchMaxBytes(t *testing.T) {
	const limit = 100_000
	ts := newTestServer(t, Config{FetchMaxBytes: limit})
	topic := ts.createTopic(t, "t", 8)
	for p := int32(0); p < 8; p++ {
		ts.produce(t, "t", p, 10, 10, 1000) // 10 batches of about 10 kB
	}
	resp := ts.call(t, repeatedFetch(13, "t", topic.ID, 8, 1)).(*kmsg.FetchResponse)
	if _, n := fetchRecordBytes(resp); n > limit || n < limit/2 {
		t.Fatalf("%d record bytes, want at most %d and not far below", n, limit)
	}

	// One batch larger than the whole limit is still sent, alone.
	ts.createTopic(t, "big", 1)
	ts.produce(t, "big", 0, 2, 1, 3*limit)
	big, _ := ts.meta.Topic("big")
	resp = ts.call(t, repeatedFetch(13, "big", big.ID, 1, 1)).(*kmsg.FetchResponse)
	if _, n := fetchRecordBytes(resp); n < 3*limit || n > 4*limit {
		t.Fatalf("%d record bytes, want the one batch of about %d", n, 3*limit)
	}
}

// TestFetchBudget: the request's MaxBytes bounds the response below
// FetchMaxBytes; 0 and below ask for no bound of their own.
func TestFetchBudget(t *testing.T) {
	s := &Server{cfg: Config{FetchMaxBytes: 1000}.withDefaults()}
	for _, c := range []struct{ max, want int32 }{{500, 500}, {1000, 1000}, {1001, 1000}, {math.MaxInt32, 1000}, {0, 1000}, {-1, 1000}} {
		if got := s.fetchBudget(c.max); got != int64(c.want) {
			t.Errorf("MaxBytes %d: budget %d, want %d", c.max, got, c.want)
		}
	}
}
