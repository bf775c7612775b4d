package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/compression"
)

// copyRecord copies r out of the buffers ForEachRecord lends it.
func copyRecord(r *Record) Record {
	dup := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		return append([]byte{}, b...)
	}
	c := Record{Offset: r.Offset, Timestamp: r.Timestamp, Key: dup(r.Key), Value: dup(r.Value)}
	for _, h := range r.Headers {
		c.Headers = append(c.Headers, RecordHeader{Key: dup(h.Key), Value: dup(h.Value)})
	}
	return c
}

// readAll decodes every record of batch.
func readAll(t testing.TB, batch []byte) (Header, []Record, error) {
	t.Helper()
	h, err := Validate(batch)
	if err != nil {
		t.Fatalf("the built batch's header: %v", err)
	}
	var got []Record
	err = ForEachRecord(batch, &h, testLimit, func(r *Record) error {
		got = append(got, copyRecord(r))
		return nil
	})
	return h, got, err
}

// sampleRecords has null and empty keys and values, headers with null and
// empty values and an empty key, timestamps before the first.
func sampleRecords(base int64, offsets ...int64) []Record {
	var rs []Record
	for i, off := range offsets {
		r := Record{Offset: base + off, Timestamp: 1_700_000_000_000 + int64(i*7) - 3}
		switch i % 4 {
		case 0:
			r.Key, r.Value = nil, nil
		case 1:
			r.Key, r.Value = []byte{}, []byte{}
			r.Headers = []RecordHeader{{Key: []byte("h"), Value: []byte("v")}, {Key: []byte("null")}, {Key: []byte{}, Value: []byte{}}}
		case 2:
			r.Key, r.Value = []byte(fmt.Sprint("key-", i)), bytes.Repeat([]byte{byte(i)}, 300)
		case 3:
			r.Key, r.Value = []byte("k"), nil
			r.Headers = []RecordHeader{{Key: []byte("only"), Value: nil}}
		}
		rs = append(rs, r)
	}
	if len(rs) > 1 {
		rs[1].Timestamp = rs[0].Timestamp - 50 // a negative timestamp delta
	}
	return rs
}

func TestBuildBatchRoundTrip(t *testing.T) {
	cases := []struct {
		name      string
		offsets   []int64
		lastDelta int32
	}{
		{"one", []int64{0}, 0},
		{"dense", []int64{0, 1, 2, 3, 4, 5, 6, 7}, 7},
		{"gaps", []int64{1, 2, 5, 9}, 9},
		{"last record removed", []int64{0, 3}, 6},
		{"empty", nil, 4},
	}
	for codec := compression.None; codec <= compression.Zstd; codec++ {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("codec=%d/%s", codec, tc.name), func(t *testing.T) {
				const base = 1000
				want := sampleRecords(base, tc.offsets...)
				spec := BatchSpec{BaseOffset: base, PartitionLeaderEpoch: 7, Attributes: int16(codec) | AttrTransactional,
					LastOffsetDelta: tc.lastDelta, ProducerID: 42, ProducerEpoch: 3, BaseSequence: 11}
				prefix := []byte("prefix")
				out, err := BuildBatch(prefix, spec, want)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out[:len(prefix)], prefix) {
					t.Fatal("BuildBatch changed the bytes before the batch")
				}
				batch := out[len(prefix):]
				h, got, err := readAll(t, batch)
				if err != nil {
					t.Fatalf("ForEachRecord: %v", err)
				}
				if len(batch) != h.Size() {
					t.Fatalf("%d bytes, header says %d", len(batch), h.Size())
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("records differ:\n got %+v\nwant %+v", got, want)
				}
				wantCodec := codec
				if len(want) == 0 {
					wantCodec = compression.None
				}
				wantHeader := Header{BaseOffset: base, BatchLength: h.BatchLength, PartitionLeaderEpoch: 7, Magic: 2, CRC: h.CRC,
					Attributes: int16(wantCodec) | AttrTransactional, LastOffsetDelta: tc.lastDelta,
					BaseTimestamp: -1, MaxTimestamp: -1, ProducerID: 42, ProducerEpoch: 3, BaseSequence: 11, RecordCount: int32(len(want))}
				if len(want) > 0 {
					wantHeader.BaseTimestamp = want[0].Timestamp
					for _, r := range want {
						wantHeader.MaxTimestamp = max(wantHeader.MaxTimestamp, r.Timestamp)
					}
				}
				if h != wantHeader {
					t.Fatalf("header %+v, want %+v", h, wantHeader)
				}
				dense := len(want) == int(tc.lastDelta)+1
				if err := ValidateRecords(batch, &h, testLimit); dense != (err == nil) {
					t.Fatalf("ValidateRecords of a batch with %d records and last offset delta %d: %v", len(want), tc.lastDelta, err)
				}
				checkFranzGo(t, batch, want)
			})
		}
	}
}

// checkFranzGo decodes batch as franz-go's consumer does: kmsg.RecordBatch,
// kgo's decompressor, then kmsg.Record for each record.
func checkFranzGo(t *testing.T, batch []byte, want []Record) {
	t.Helper()
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(batch); err != nil {
		t.Fatalf("franz-go: %v", err)
	}
	records := rb.Records
	if codec := kgo.CompressionCodecType(rb.Attributes & 7); codec != kgo.CodecNone {
		var err error
		if records, err = kgo.DefaultDecompressor().Decompress(rb.Records, codec); err != nil {
			t.Fatalf("franz-go decompresses: %v", err)
		}
	}
	if int(rb.NumRecords) != len(want) {
		t.Fatalf("franz-go reads %d records, want %d", rb.NumRecords, len(want))
	}
	for i, w := range want {
		length, n := binary.Varint(records)
		if n <= 0 || int64(len(records)-n) < length {
			t.Fatalf("franz-go: record %d has no length", i)
		}
		var r kmsg.Record
		if err := r.ReadFrom(records[:n+int(length)]); err != nil {
			t.Fatalf("franz-go: record %d: %v", i, err)
		}
		records = records[n+int(length):]
		if off := rb.FirstOffset + int64(r.OffsetDelta); off != w.Offset {
			t.Errorf("franz-go: record %d at offset %d, want %d", i, off, w.Offset)
		}
		if ts := rb.FirstTimestamp + r.TimestampDelta64; ts != w.Timestamp {
			t.Errorf("franz-go: record %d timestamp %d, want %d", i, ts, w.Timestamp)
		}
		if (r.Key == nil) != (w.Key == nil) || !bytes.Equal(r.Key, w.Key) || (r.Value == nil) != (w.Value == nil) || !bytes.Equal(r.Value, w.Value) {
			t.Errorf("franz-go: record %d key %q value %q, want %q %q", i, r.Key, r.Value, w.Key, w.Value)
		}
		if len(r.Headers) != len(w.Headers) {
			t.Fatalf("franz-go: record %d has %d headers, want %d", i, len(r.Headers), len(w.Headers))
		}
		for j, h := range r.Headers {
			if h.Key != string(w.Headers[j].Key) || (h.Value == nil) != (w.Headers[j].Value == nil) || !bytes.Equal(h.Value, w.Headers[j].Value) {
				t.Errorf("franz-go: record %d header %d is %q=%q, want %q=%q", i, j, h.Key, h.Value, w.Headers[j].Key, w.Headers[j].Value)
			}
		}
	}
	if len(records) != 0 {
		t.Fatalf("franz-go: %d bytes after the last record", len(records))
	}
}

// TestBuildBatchMatchesKmsg: an uncompressed batch is byte for byte what
// franz-go's own encoder writes for the same fields.
func TestBuildBatchMatchesKmsg(t *testing.T) {
	recs := sampleRecords(50, 0, 1, 2, 3, 4, 5)
	batch, err := BuildBatch(nil, BatchSpec{BaseOffset: 50, PartitionLeaderEpoch: 2, Attributes: AttrTimestampType,
		LastOffsetDelta: 5, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, MaxTimestamp: 1_800_000_000_000}, recs)
	if err != nil {
		t.Fatal(err)
	}
	var section []byte
	for _, r := range recs {
		kr := kmsg.Record{TimestampDelta64: r.Timestamp - recs[0].Timestamp, OffsetDelta: int32(r.Offset - 50), Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: string(h.Key), Value: h.Value})
		}
		section = appendRecord(section, &kr)
	}
	rb := kmsg.RecordBatch{FirstOffset: 50, Length: int32(len(section) + HeaderSize - LogOverhead), PartitionLeaderEpoch: 2,
		Magic: 2, Attributes: AttrTimestampType, LastOffsetDelta: 5, FirstTimestamp: recs[0].Timestamp, MaxTimestamp: 1_800_000_000_000,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 6, Records: section}
	want := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(want[CRCOffset:], ComputeCRC(want))
	if !bytes.Equal(batch, want) {
		t.Fatalf("BuildBatch:\n%x\nfranz-go:\n%x", batch, want)
	}
	if _, err := Validate(batch); err != nil {
		t.Fatal(err)
	}
}

func TestBuildBatchRefuses(t *testing.T) {
	cases := []struct {
		name    string
		spec    BatchSpec
		offsets []int64
	}{
		{"negative last offset delta", BatchSpec{LastOffsetDelta: -1}, nil},
		{"record past last offset delta", BatchSpec{LastOffsetDelta: 2}, []int64{0, 3}},
		{"record before the base offset", BatchSpec{BaseOffset: 10, LastOffsetDelta: 2}, []int64{-1}},
		{"offsets out of order", BatchSpec{LastOffsetDelta: 5}, []int64{2, 1}},
		{"offset repeated", BatchSpec{LastOffsetDelta: 5}, []int64{1, 1}},
		{"unknown codec", BatchSpec{Attributes: 5, LastOffsetDelta: 0}, []int64{0}},
	}
	for _, tc := range cases {
		recs := sampleRecords(0, tc.offsets...)
		for i := range recs {
			recs[i].Offset = tc.offsets[i]
		}
		out, err := BuildBatch([]byte("x"), tc.spec, recs)
		if !errors.Is(err, ErrBatchSpec) {
			t.Errorf("%s: %v, want ErrBatchSpec", tc.name, err)
		}
		if string(out) != "x" {
			t.Errorf("%s: dst is %q after the refusal", tc.name, out)
		}
	}
}

// TestForEachRecordRefuses: damaged batches give the errors ValidateRecords
// gives, mapped to the same Kafka codes; and fn's own error comes back.
func TestForEachRecordRefuses(t *testing.T) {
	rec := func(delta int64) []byte {
		body := append([]byte{0, 0}, binary.AppendVarint(nil, delta)...)
		body = append(body, 1, 1, 0) // null key, null value, no headers
		return append(binary.AppendVarint(nil, int64(len(body))), body...)
	}
	withDelta := func(codec int, lastDelta int32, count int32, records []byte) []byte {
		b := recordsBatch(codec, count, compress(t, codec, records))
		binary.BigEndian.PutUint32(b[LastOffsetDeltaOffset:], uint32(lastDelta))
		binary.BigEndian.PutUint32(b[CRCOffset:], ComputeCRC(b))
		return b
	}
	three := testRecords(3, 10)
	cases := []struct {
		name  string
		batch []byte
		want  error
	}{
		{"offset deltas 1, 0", withDelta(0, 5, 2, append(rec(1), rec(0)...)), ErrInvalidRecord},
		{"offset deltas 2, 2", withDelta(0, 5, 2, append(rec(2), rec(2)...)), ErrInvalidRecord},
		{"offset delta past the last", withDelta(0, 5, 1, rec(6)), ErrInvalidRecord},
		{"negative offset delta", withDelta(0, 5, 1, rec(-1)), ErrInvalidRecord},
		{"zstd: offset deltas 1, 0", withDelta(compression.Zstd, 5, 2, append(rec(1), rec(0)...)), ErrInvalidRecord},
		{"count 3 with 1 record", recordsBatch(0, 3, testRecords(1, 10)), ErrInvalidRecord},
		{"lz4: count 3 with 1 record", recordsBatch(compression.LZ4, 3, compress(t, compression.LZ4, testRecords(1, 10))), ErrInvalidRecord},
		{"a byte after the last record", recordsBatch(0, 3, append(three, 0)), ErrInvalidRecord},
		{"gzip: a byte after the last record", recordsBatch(compression.Gzip, 3, compress(t, compression.Gzip, append(three, 0))), ErrInvalidRecord},
		{"snappy: record cut short", recordsBatch(compression.Snappy, 3, compress(t, compression.Snappy, three[:len(three)-4])), ErrInvalidRecord},
		{"zstd attribute over plain records", recordsBatch(compression.Zstd, 3, three), ErrRecordsCodec},
		{"inflates past the limit", recordsBatch(compression.Zstd, 1, compress(t, compression.Zstd, testRecords(1, 2*testLimit))), ErrRecordsTooLarge},
		{"record of 1 GiB announced in a small stream", recordsBatch(compression.Gzip, 1, compress(t, compression.Gzip, append(binary.AppendVarint(nil, 1<<30), three[1:]...))), ErrInvalidRecord},
	}
	for _, tc := range cases {
		h, err := Validate(tc.batch)
		if err != nil {
			t.Fatalf("%s: header: %v", tc.name, err)
		}
		err = ForEachRecord(tc.batch, &h, testLimit, func(*Record) error { return nil })
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	b, _ := BuildBatch(nil, BatchSpec{LastOffsetDelta: 2}, sampleRecords(0, 0, 1, 2))
	h, _ := Validate(b)
	if err := ForEachRecord(b[:len(b)-1], &h, testLimit, func(*Record) error { return nil }); !errors.Is(err, ErrShortBatch) {
		t.Errorf("a short batch: %v, want ErrShortBatch", err)
	}
	stop := errors.New("stop")
	n := 0
	if err := ForEachRecord(b, &h, testLimit, func(*Record) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("fn's error: %v after %d records, want it as it is after 1", err, n)
	}
}

// FuzzForEachRecord decodes arbitrary batches. Whatever it accepts must
// also pass Validate's header checks, give recordCount records with
// increasing offsets within the batch, and build back into a batch that
// decodes to the same records.
func FuzzForEachRecord(f *testing.F) {
	for codec := compression.None; codec <= compression.Zstd; codec++ {
		for _, offsets := range [][]int64{{0}, {0, 1, 2, 3}, {1, 4, 5}} {
			b, err := BuildBatch(nil, BatchSpec{BaseOffset: 77, Attributes: int16(codec), LastOffsetDelta: 6, ProducerID: -1}, sampleRecords(77, offsets...))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := capped(data)
		h, err := ParseHeader(in)
		if err != nil || h.Size() != len(in) {
			return
		}
		var got []Record
		err = ForEachRecord(in, &h, 1<<20, func(r *Record) error {
			got = append(got, copyRecord(r))
			return nil
		})
		if !bytes.Equal(in, data) {
			t.Fatal("ForEachRecord modified its input")
		}
		if err != nil {
			n := 0
			for _, s := range []error{ErrInvalidRecord, ErrRecordsCodec, ErrRecordsTooLarge, ErrShortBatch} {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %v matches %d sentinels", err, n)
			}
			return
		}
		if len(got) != int(h.RecordCount) {
			t.Fatalf("%d records, recordCount %d", len(got), h.RecordCount)
		}
		for i, r := range got {
			if r.Offset < h.BaseOffset || r.Offset > h.LastOffset() || (i > 0 && r.Offset <= got[i-1].Offset) {
				t.Fatalf("record %d at offset %d in a batch of %d to %d", i, r.Offset, h.BaseOffset, h.LastOffset())
			}
		}
		spec := BatchSpec{BaseOffset: h.BaseOffset, Attributes: h.Attributes &^ AttrCompressionMask, LastOffsetDelta: h.LastOffsetDelta,
			FirstTimestamp: h.BaseTimestamp, MaxTimestamp: h.MaxTimestamp}
		if spec.FirstTimestamp == 0 && len(got) > 0 && got[0].Timestamp != 0 {
			return // 0 asks BuildBatch for the first record's timestamp
		}
		rebuilt, err := BuildBatch(nil, spec, got)
		if err != nil {
			t.Fatalf("the accepted records do not build: %v", err)
		}
		_, again, err := readAll(t, rebuilt)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("rebuilt batch: %v, %+v, want %+v", err, again, got)
		}
	})
}

// BenchmarkForEachRecord walks a 1 MiB uncompressed batch of 100-byte
// records, and the same records zstd-compressed.
func BenchmarkForEachRecord(b *testing.B) {
	const size = 100
	n := 1 << 20 / (size + 10)
	recs := make([]Record, n)
	value := bytes.Repeat([]byte("v"), size)
	for i := range recs {
		recs[i] = Record{Offset: int64(i), Timestamp: int64(i), Value: value}
	}
	for _, codec := range []int16{compression.None, compression.Zstd} {
		batch, err := BuildBatch(nil, BatchSpec{Attributes: codec, LastOffsetDelta: int32(n - 1), ProducerID: -1}, recs)
		if err != nil {
			b.Fatal(err)
		}
		h, err := Validate(batch)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("codec=%d/value=%dB", codec, size), func(b *testing.B) {
			b.SetBytes(int64(n * (size + 10)))
			b.ReportAllocs()
			var total int
			sum := func(r *Record) error {
				total += len(r.Value)
				return nil
			}
			for b.Loop() {
				if err := ForEachRecord(batch, &h, 2<<20, sum); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/record")
		})
	}
}
