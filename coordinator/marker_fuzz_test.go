package coordinator

import (
	"encoding/binary"
	"testing"

	"github.com/runnel-io/runnel/segment"
)

// FuzzParseMarker: a control batch of any records, or any bytes that
// pass for a batch, never makes parseMarker fail the load: it yields a
// marker only for one record whose key is a commit or abort type, with
// the batch's producer.
func FuzzParseMarker(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1}, []byte{0, 0, 0, 0, 0, 7}, false, []byte{})
	f.Add([]byte{0, 0, 0, 0}, []byte{}, true, []byte{})
	f.Add([]byte{0, 0}, []byte{0}, false, []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, key, value []byte, two bool, raw []byte) {
		recs := []segment.Record{{Offset: 0, Key: key, Value: value}}
		if two {
			recs = append(recs, segment.Record{Offset: 1, Key: key, Value: value})
		}
		batch, err := segment.BuildBatch(nil, segment.BatchSpec{Attributes: segment.AttrTransactional | segment.AttrControl,
			LastOffsetDelta: int32(len(recs) - 1), ProducerID: 42, ProducerEpoch: 3, BaseSequence: -1}, recs)
		if err != nil {
			t.Fatal(err)
		}
		h, err := segment.ParseHeader(batch)
		if err != nil {
			t.Fatal(err)
		}
		m, ok := parseMarker(batch, &h)
		want := !two && len(key) >= 4 && binary.BigEndian.Uint16(key[2:]) <= 1
		if ok != want {
			t.Fatalf("key %x, %d records: marker %v, want %v", key, len(recs), ok, want)
		}
		if ok && (m.ProducerID != 42 || m.ProducerEpoch != 3 || m.Commit != (key[3] == 1)) {
			t.Fatalf("marker %+v from key %x", m, key)
		}
		// Bytes that parse as a batch header: no panic, whatever they say.
		if h, err := segment.ParseHeader(raw); err == nil && h.Size() <= len(raw) {
			parseMarker(raw[:h.Size()], &h)
		}
	})
}
