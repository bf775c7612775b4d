package partition

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/runnel-io/runnel/compression"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

func compressRecords(t testing.TB, codec int, records []byte) []byte {
	var buf bytes.Buffer
	switch codec {
	case compression.None:
		return records
	case compression.Gzip:
		w := gzip.NewWriter(&buf)
		w.Write(records)
		w.Close()
	case compression.Snappy:
		return s2.EncodeSnappy(nil, records)
	case compression.LZ4:
		w := lz4.NewWriter(&buf)
		w.Write(records)
		w.Close()
	case compression.Zstd:
		w, _ := zstd.NewWriter(&buf)
		w.Write(records)
		w.Close()
	}
	return buf.Bytes()
}

// batchWithCodec returns the header and the (compressed) records section of
// a batch of n records at base offset 100, timestamps 1000, 1001, ...
func batchWithCodec(t testing.TB, codec, n int) (segment.Header, []byte) {
	b := testbatch.Make(testbatch.Spec{BaseOffset: 100, Timestamp: 1000, ProducerID: -1, Values: testbatch.Values(n, 30, 1)})
	h, err := segment.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	h.Attributes |= int16(codec)
	return h, compressRecords(t, codec, b[segment.HeaderSize:])
}

func TestFirstRecordAtOrAfter(t *testing.T) {
	for codec := compression.None; codec <= compression.Zstd; codec++ {
		t.Run(fmt.Sprint("codec", codec), func(t *testing.T) {
			h, records := batchWithCodec(t, codec, 50)
			for ts := int64(990); ts < 1050; ts++ {
				off, rts, ok := firstRecordAtOrAfter(records, h, ts, 0)
				want := max(ts-1000, 0)
				if !ok || off != 100+want || rts != 1000+want {
					t.Fatalf("ts %d: %d %d %v, want offset %d", ts, off, rts, ok, 100+want)
				}
			}
			// The log start inside the batch: records below it do not count.
			if off, rts, ok := firstRecordAtOrAfter(records, h, 990, 120); !ok || off != 120 || rts != 1020 {
				t.Fatalf("from 120: %d %d %v, want offset 120", off, rts, ok)
			}
			if off, _, ok := firstRecordAtOrAfter(records, h, 1030, 120); !ok || off != 130 {
				t.Fatalf("ts 1030 from 120: %d %v, want offset 130", off, ok)
			}
			if _, _, ok := firstRecordAtOrAfter(records, h, 1050, 0); ok {
				t.Fatal("found a record after the last timestamp")
			}
			if codec != compression.None {
				if _, _, ok := firstRecordAtOrAfter(records[:len(records)/2], h, 1040, 0); ok {
					t.Fatal("found a record in truncated compressed data")
				}
			}
		})
	}
}

// FuzzFirstRecordAtOrAfter: the records section of a stored batch came from
// a producer; walking it, compressed or not, must not panic.
func FuzzFirstRecordAtOrAfter(f *testing.F) {
	for codec := compression.None; codec <= compression.Zstd; codec++ {
		h, records := batchWithCodec(f, codec, 5)
		f.Add(uint8(codec), h.RecordCount, int64(1002), records)
	}
	f.Fuzz(func(t *testing.T, codec uint8, count int32, ts int64, records []byte) {
		h := segment.Header{BaseOffset: 100, BaseTimestamp: 1000, RecordCount: count, Attributes: int16(codec % 5)}
		firstRecordAtOrAfter(records, h, ts, 0)
	})
}
