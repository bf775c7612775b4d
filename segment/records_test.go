package segment

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"

	"github.com/runnel-io/runnel/compression"
)

// testRecords encodes records as a producer would, offset deltas 0, 1, …,
// and a key and header on every third.
func testRecords(n, valueSize int) []byte {
	var out []byte
	for i := 0; i < n; i++ {
		r := kmsg.Record{TimestampDelta64: int64(i), OffsetDelta: int32(i), Value: bytes.Repeat([]byte{byte(i)}, valueSize)}
		if i%3 == 0 {
			r.Key = []byte(fmt.Sprint("key-", i))
			r.Headers = []kmsg.Header{{Key: "h", Value: []byte("v")}, {Key: "null"}}
		}
		out = appendRecord(out, &r)
	}
	return out
}

// appendRecord appends r with its length field filled in.
func appendRecord(dst []byte, r *kmsg.Record) []byte {
	r.Length = 0
	body := r.AppendTo(nil)[1:] // without the one-byte zero length
	dst = binary.AppendVarint(dst, int64(len(body)))
	return append(dst, body...)
}

func compress(t testing.TB, codec int, b []byte) []byte {
	var buf bytes.Buffer
	switch codec {
	case compression.None:
		return b
	case compression.Gzip:
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case compression.Snappy:
		return s2.EncodeSnappy(nil, b)
	case compression.LZ4:
		w := lz4.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case compression.Zstd:
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		w.Close()
	}
	return buf.Bytes()
}

// recordsBatch frames a records section (already compressed with codec, if
// any) as a batch of count records, with a valid CRC.
func recordsBatch(codec int, count int32, records []byte) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(records))
	b = append(b, records...)
	binary.BigEndian.PutUint32(b[BatchLengthOffset:], uint32(len(b)-LogOverhead))
	b[MagicOffset] = Magic
	binary.BigEndian.PutUint16(b[AttributesOffset:], uint16(codec))
	binary.BigEndian.PutUint32(b[LastOffsetDeltaOffset:], uint32(count-1))
	binary.BigEndian.PutUint64(b[ProducerIDOffset:], ^uint64(0))
	binary.BigEndian.PutUint32(b[RecordCountOffset:], uint32(count))
	binary.BigEndian.PutUint32(b[CRCOffset:], crc32.Checksum(b[AttributesOffset:], castagnoli))
	return b
}

func validateRecords(t testing.TB, b []byte, limit int64) error {
	h, err := Validate(b)
	if err != nil {
		t.Fatalf("the test batch's header: %v", err)
	}
	return ValidateRecords(b, &h, limit)
}

const testLimit = 1 << 20

func TestValidateRecordsAccepts(t *testing.T) {
	for codec := compression.None; codec <= compression.Zstd; codec++ {
		for _, n := range []int{1, 2, 100} {
			for _, size := range []int{0, 100, 1024} {
				name := fmt.Sprintf("codec=%d/records=%d/value=%d", codec, n, size)
				b := recordsBatch(codec, int32(n), compress(t, codec, testRecords(n, size)))
				if err := validateRecords(t, b, testLimit); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		}
	}
	// Null key and value, a negative length other than -1 (Kafka reads any
	// negative length as null), and a 10-byte timestamp delta.
	r := kmsg.Record{TimestampDelta64: -1 << 62}
	rec := appendRecord(nil, &r)
	if err := validateRecords(t, recordsBatch(0, 1, rec), testLimit); err != nil {
		t.Errorf("null key and value: %v", err)
	}
	odd := []byte{0, 0, 0, 3, 3, 0}                                 // attributes, ts, offset, key -2, value -2, headers
	odd = append(binary.AppendVarint(nil, int64(len(odd))), odd...) // length
	if err := validateRecords(t, recordsBatch(0, 1, odd), testLimit); err != nil {
		t.Errorf("key and value length -2: %v", err)
	}
}

func TestValidateRecordsRefuses(t *testing.T) {
	one := testRecords(1, 10)
	three := testRecords(3, 10)
	// record builds one record from its fields after the length.
	record := func(fields ...[]byte) []byte {
		body := bytes.Join(fields, nil)
		return append(binary.AppendVarint(nil, int64(len(body))), body...)
	}
	v := func(x int64) []byte { return binary.AppendVarint(nil, x) }
	zero := []byte{0}
	gzipBadTrailer := compress(t, compression.Gzip, three)
	gzipBadTrailer[len(gzipBadTrailer)-5] ^= 0xff // the CRC-32 of the data
	random := make([]byte, 300)
	for i := range random {
		random[i] = byte(i*131 + 7)
	}
	cases := []struct {
		name  string
		batch []byte
		want  error
	}{
		{"zstd attribute over plain records", recordsBatch(compression.Zstd, 3, three), ErrRecordsCodec},
		{"gzip attribute over plain records", recordsBatch(compression.Gzip, 3, three), ErrRecordsCodec},
		{"lz4 attribute over plain records", recordsBatch(compression.LZ4, 3, three), ErrRecordsCodec},
		{"snappy attribute over plain records", recordsBatch(compression.Snappy, 3, three), ErrRecordsCodec},
		{"gzip with a bad trailer", recordsBatch(compression.Gzip, 3, gzipBadTrailer), ErrRecordsCodec},
		{"truncated zstd", recordsBatch(compression.Zstd, 3, compress(t, compression.Zstd, three)[:20]), ErrRecordsCodec},
		{"random bytes as records", recordsBatch(0, 3, random), ErrInvalidRecord},
		{"random bytes as 1 record", recordsBatch(0, 1, random), ErrInvalidRecord},
		{"record length of 1 GiB", recordsBatch(0, 1, append(v(1<<30), one[1:]...)), ErrInvalidRecord},
		{"count 3 with 1 record", recordsBatch(0, 3, one), ErrInvalidRecord},
		{"count 2^31-1 with 1 record", recordsBatch(0, 1<<31-1, one), ErrInvalidRecord},
		{"zstd: count 3 with 1 record", recordsBatch(compression.Zstd, 3, compress(t, compression.Zstd, one)), ErrInvalidRecord},
		{"zstd: count 2^31-1 with 1 record", recordsBatch(compression.Zstd, 1<<31-1, compress(t, compression.Zstd, one)), ErrInvalidRecord},
		{"count 1 with 3 records", recordsBatch(0, 1, three), ErrInvalidRecord},
		{"gzip: count 1 with 3 records", recordsBatch(compression.Gzip, 1, compress(t, compression.Gzip, three)), ErrInvalidRecord},
		{"a byte after the last record", recordsBatch(0, 1, append(one, 0)), ErrInvalidRecord},
		{"offset deltas 0, 2", recordsBatch(0, 2, append(record(zero, zero, v(0), v(-1), v(-1), v(0)), record(zero, zero, v(2), v(-1), v(-1), v(0))...)), ErrInvalidRecord},
		{"offset deltas 1, 0", recordsBatch(0, 2, append(record(zero, zero, v(1), v(-1), v(-1), v(0)), record(zero, zero, v(0), v(-1), v(-1), v(0))...)), ErrInvalidRecord},
		{"snappy: offset deltas 1, 0", recordsBatch(compression.Snappy, 2, compress(t, compression.Snappy, append(record(zero, zero, v(1), v(-1), v(-1), v(0)), record(zero, zero, v(0), v(-1), v(-1), v(0))...))), ErrInvalidRecord},
		{"record length past its fields", recordsBatch(0, 1, record(zero, zero, v(0), v(-1), v(-1), v(0), zero)), ErrInvalidRecord},
		{"value past the record", recordsBatch(0, 1, record(zero, zero, v(0), v(-1), v(50), v(0))), ErrInvalidRecord},
		{"negative header count", recordsBatch(0, 1, record(zero, zero, v(0), v(-1), v(-1), v(-1))), ErrInvalidRecord},
		{"negative header key length", recordsBatch(0, 1, record(zero, zero, v(0), v(-1), v(-1), v(1), v(-1), v(-1))), ErrInvalidRecord},
		{"header count past the record", recordsBatch(0, 1, record(zero, zero, v(0), v(-1), v(-1), v(1000))), ErrInvalidRecord},
		{"6-byte varint offset delta", recordsBatch(0, 1, record(zero, zero, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0}, v(-1), v(-1), v(0))), ErrInvalidRecord},
		{"record length shorter than the fields", recordsBatch(0, 1, append(v(3), zero[0], 0, 0, 1, 1, 0)), ErrInvalidRecord},
		{"inflates past the limit", recordsBatch(compression.Zstd, 1, compress(t, compression.Zstd, testRecords(1, 2*testLimit))), ErrRecordsTooLarge},
		{"gzip inflates past the limit", recordsBatch(compression.Gzip, 1, compress(t, compression.Gzip, testRecords(1, 2*testLimit))), ErrRecordsTooLarge},
	}
	for _, tc := range cases {
		err := validateRecords(t, tc.batch, testLimit)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		n := 0
		for _, s := range []error{ErrInvalidRecord, ErrRecordsCodec, ErrRecordsTooLarge} {
			if errors.Is(err, s) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %v matches %d record sentinels", tc.name, err, n)
		}
	}
}

func TestValidateRecordsAllocations(t *testing.T) {
	b := recordsBatch(0, 150, testRecords(150, 100))
	h, err := Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := ValidateRecords(b, &h, testLimit); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per uncompressed batch, want 0", n)
	}
}

// FuzzValidateRecords walks arbitrary records sections, plain or
// compressed. Whatever it accepts must decode with franz-go's record
// decoder into exactly recordCount records, offset deltas 0, 1, …, with no
// byte left over.
func FuzzValidateRecords(f *testing.F) {
	for codec := compression.None; codec <= compression.Zstd; codec++ {
		f.Add(uint8(codec), int32(3), compress(f, codec, testRecords(3, 20)))
		f.Add(uint8(codec), int32(1), compress(f, codec, testRecords(1, 0)))
	}
	f.Add(uint8(0), int32(3), testRecords(1, 5))
	f.Add(uint8(0), int32(1<<31-1), testRecords(1, 5))
	f.Add(uint8(4), int32(2), testRecords(2, 5))
	f.Fuzz(func(t *testing.T, codec uint8, count int32, records []byte) {
		codec %= 5
		if count < 1 {
			count = 1
		}
		b := capped(recordsBatch(int(codec), count, records))
		h, err := Validate(b)
		if err != nil {
			t.Fatalf("the fuzz batch's header: %v", err)
		}
		if ValidateRecords(b, &h, 1<<20) != nil {
			return
		}
		plain := records
		if codec != compression.None {
			rc, err := compression.NewReader(int8(codec), records, 1<<20)
			if err != nil {
				t.Fatalf("accepted, but the codec refuses it: %v", err)
			}
			var buf bytes.Buffer
			if _, err := buf.ReadFrom(rc); err != nil {
				t.Fatalf("accepted, but it does not decompress: %v", err)
			}
			rc.Close()
			plain = buf.Bytes()
		}
		for i := int32(0); i < count; i++ {
			length, n := binary.Varint(plain)
			if n <= 0 || length < 0 || int64(len(plain)-n) < length {
				t.Fatalf("accepted, but record %d has no length", i)
			}
			var r kmsg.Record
			if err := r.ReadFrom(plain[:n+int(length)]); err != nil {
				t.Fatalf("accepted, but franz-go cannot decode record %d: %v", i, err)
			}
			if r.OffsetDelta != i {
				t.Fatalf("accepted record %d with offset delta %d", i, r.OffsetDelta)
			}
			plain = plain[n+int(length):]
		}
		if len(plain) != 0 {
			t.Fatalf("accepted with %d bytes after the last record", len(plain))
		}
	})
}

// BenchmarkValidateRecords is the record walk alone over an uncompressed
// batch of 64 KiB.
func BenchmarkValidateRecords(b *testing.B) {
	for _, size := range []int{100, 1024} {
		n := 64 << 10 / (size + 10)
		batch := recordsBatch(0, int32(n), testRecords(n, size))
		h, err := Validate(batch)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("value=%dB", size), func(b *testing.B) {
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu := threadCPU()
			for b.Loop() {
				if err := ValidateRecords(batch, &h, testLimit); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(threadCPU()-cpu)/float64(b.N)/float64(n), "cpu-ns/record")
		})
	}
}

// threadCPU is the CPU time of the calling thread: benchmarks that lock
// their thread report it, as wall time on a shared machine says little.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
