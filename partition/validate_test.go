package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runnel-io/runnel/compression"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// reframe returns a client batch of count records (lastOffsetDelta
// count-1) whose records section is records, with codec in the attributes
// and a valid CRC: a batch whose header is sound, whatever the records say.
func reframe(codec int, count int32, records []byte) []byte {
	b := testbatch.Make(testbatch.Spec{Timestamp: 1000})[:segment.HeaderSize]
	b = append(b, records...)
	binary.BigEndian.PutUint32(b[segment.BatchLengthOffset:], uint32(len(b)-segment.LogOverhead))
	binary.BigEndian.PutUint16(b[segment.AttributesOffset:], uint16(codec))
	binary.BigEndian.PutUint32(b[segment.LastOffsetDeltaOffset:], uint32(count-1))
	binary.BigEndian.PutUint32(b[segment.RecordCountOffset:], uint32(count))
	binary.BigEndian.PutUint32(b[segment.CRCOffset:], crc32.Checksum(b[segment.AttributesOffset:], crcTable))
	return b
}

// recordsOf returns the records section of a plain batch of n records.
func recordsOf(n, size int) []byte {
	return testbatch.Make(testbatch.Spec{Timestamp: 1000, Values: testbatch.Values(n, size, 1)})[segment.HeaderSize:]
}

// TestAppendValidatesRecords: batches whose header is sound but whose
// records are not are refused before anything is appended, and good
// batches of every codec are taken.
func TestAppendValidatesRecords(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncNever)
	p := openReplica(t, m, testTopic(nil), leaderRole(1, 1, []int32{1}, 1))
	p.inflate = 1 << 20 // so that a 2 MiB record is past it
	three := recordsOf(3, 10)
	one := recordsOf(1, 10)
	garbage := make([]byte, 200)
	for i := range garbage {
		garbage[i] = byte(i*37 + 11)
	}
	huge := binary.AppendVarint(nil, 1<<30)
	huge = append(huge, one[1:]...)
	for _, tc := range []struct {
		name  string
		batch []byte
		want  error
	}{
		{"zstd attribute over plain records", reframe(compression.Zstd, 3, three), segment.ErrRecordsCodec},
		{"gzip attribute over plain records", reframe(compression.Gzip, 3, three), segment.ErrRecordsCodec},
		{"random bytes as records", reframe(compression.None, 3, garbage), segment.ErrInvalidRecord},
		{"a record length of 1 GiB", reframe(compression.None, 1, huge), segment.ErrInvalidRecord},
		{"a count of 3 with 1 record", reframe(compression.None, 3, one), segment.ErrInvalidRecord},
		{"a count of 2^31-1 with 1 record", reframe(compression.None, 1<<31-1, one), segment.ErrInvalidRecord},
		{"zstd: a count of 3 with 1 record", reframe(compression.Zstd, 3, compressRecords(t, compression.Zstd, one)), segment.ErrInvalidRecord},
		{"inflating past the limit", reframe(compression.Zstd, 1, compressRecords(t, compression.Zstd, recordsOf(1, 2<<20))), segment.ErrRecordsTooLarge},
	} {
		_, err := p.Append(tc.batch, 1)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if end := p.LogEndOffset(); end != 0 {
			t.Fatalf("%s: log end %d after refused batches, want 0", tc.name, end)
		}
	}
	var next int64
	for codec := compression.None; codec <= compression.Zstd; codec++ {
		r, err := p.Append(reframe(codec, 3, compressRecords(t, codec, three)), 1)
		if err != nil || r.BaseOffset != next {
			t.Fatalf("codec %d: %+v %v, want base offset %d", codec, r, err, next)
		}
		next += 3
	}
}

// BenchmarkProduceValidation measures the CPU a producer's batch costs
// before it is appended (header, CRC-32C, and the walk over its records,
// decompressing them if need be), per MB of batch as produced.
func BenchmarkProduceValidation(b *testing.B) {
	m, err := OpenManager(Options{DataDir: b.TempDir(), Fsync: fsyncNever, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	p, err := m.Open(testTopic(nil), 0, leaderRole(1, 1, []int32{1}, 1))
	if err != nil {
		b.Fatal(err)
	}
	for _, rec := range []struct {
		name string
		size int
		n    int
	}{{"100B", 100, 600}, {"1KiB", 1024, 60}} { // about 64 KiB of records
		plain := testbatch.Make(testbatch.Spec{Timestamp: 1000, Values: eventValues(rec.n, rec.size)})[segment.HeaderSize:]
		for codec := compression.None; codec <= compression.Zstd; codec++ {
			batch := reframe(codec, int32(rec.n), compressRecords(b, codec, plain))
			b.Run(fmt.Sprintf("records=%s/codec=%s", rec.name, codecName[codec]), func(b *testing.B) {
				b.SetBytes(int64(len(batch)))
				b.ReportAllocs()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu := threadCPU()
				for b.Loop() {
					if _, err := p.checkClientBatch(batch); err != nil {
						b.Fatal(err)
					}
				}
				// Thread CPU time, not wall time: the machine is shared.
				us := float64(threadCPU()-cpu) / 1e3 / float64(b.N)
				b.ReportMetric(us/(float64(len(batch))/1e6), "µs/MB-produced")
				b.ReportMetric(us/(float64(len(plain))/1e6), "µs/MB-records")
			})
		}
	}
}

// eventValues returns n values of size bytes that compress about as
// application events do (2-3x): JSON-like text with a random part.
func eventValues(n, size int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	events := []string{"click", "view", "purchase", "signup"}
	out := make([][]byte, n)
	for i := range out {
		v := fmt.Appendf(nil, `{"id":%d,"user":"user-%d","event":%q,"session":"`, i, r.IntN(1000), events[r.IntN(len(events))])
		for len(v) < size-2 {
			v = append(v, "0123456789abcdef"[r.IntN(16)])
		}
		out[i] = append(v, `"}`...)[:size]
	}
	return out
}

// threadCPU is the CPU time of the calling thread (locked by the caller).
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

var codecName = []string{"none", "gzip", "snappy", "lz4", "zstd"}
