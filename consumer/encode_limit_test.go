package consumer

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/runnel-io/runnel/segment"
)

// TestEncodeNeverOverflowsSize: record sets that together pass what an
// int32 size prefix can count are cut from the end, and the prefix stays
// the true, positive size. The regions here have no file: only their
// lengths are encoded.
func TestEncodeNeverOverflowsSize(t *testing.T) {
	for _, v := range []int16{4, 11, 12, 16} {
		r := &Response{Version: v, CorrelationID: 3}
		for p := int32(0); p < 3; p++ {
			r.Topics = append(r.Topics, TopicData{Topic: "t", Partitions: []PartitionData{{Partition: p,
				Records: segment.Region{Length: 1 << 30}}}})
		}
		e := Encode(r, nil)
		if e.Size() > MaxSize {
			t.Fatalf("v%d: %d bytes, above %d", v, e.Size(), int64(MaxSize))
		}
		if n := int32(binary.BigEndian.Uint32(e.buf)); n < 0 || int64(n) != e.Size()-4 {
			t.Fatalf("v%d: size prefix %d for %d bytes", v, n, e.Size()-4)
		}
		// Two regions of 1 GiB do not fit in 2 GiB - 1 with the protocol
		// bytes: only the first is sent.
		if len(e.splices) != 1 || e.splices[0].region != &r.Topics[0].Partitions[0].Records {
			t.Fatalf("v%d: %d record sets sent, want the first alone", v, len(e.splices))
		}
		for p := 1; p < 3; p++ {
			if l := r.Topics[p].Partitions[0].Records.Length; l != 0 {
				t.Fatalf("v%d: partition %d still has %d record bytes", v, p, l)
			}
		}
		e.Release()
	}
	// Just below the limit everything is sent.
	r := &Response{Version: 12, Topics: []TopicData{{Topic: "t", Partitions: []PartitionData{
		{Records: segment.Region{Length: 1 << 30}}, {Partition: 1, Records: segment.Region{Length: 1<<30 - 200}}}}}}
	if e := Encode(r, nil); len(e.splices) != 2 || e.Size() > MaxSize || e.Size() < math.MaxInt32-200 {
		t.Fatalf("%d record sets in %d bytes, want both", len(e.splices), e.Size())
	}
}
