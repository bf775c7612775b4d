package segment_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strings"
	"testing"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

// batchSentinels are the errors ParseHeader and Validate return; every
// failure must match exactly one of them.
var batchSentinels = []error{
	segment.ErrShortBatch,
	segment.ErrBatchLength,
	segment.ErrMagic,
	segment.ErrCRC,
	segment.ErrRecordCount,
}

// checkBatchSentinel fails unless err matches want and no other batch sentinel.
func checkBatchSentinel(t *testing.T, what string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s: unexpected error %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
	for _, s := range batchSentinels {
		if s != want && errors.Is(err, s) {
			t.Fatalf("%s: %v also matches %v", what, err, s)
		}
	}
}

// restoreBatchCRC stores the correct CRC for a batch whose covered bytes changed.
func restoreBatchCRC(b []byte) {
	binary.BigEndian.PutUint32(b[segment.CRCOffset:], segment.ComputeCRC(b))
}

func headerTestBatch() []byte {
	return testbatch.Make(testbatch.Spec{
		BaseOffset:    1234,
		Timestamp:     1_700_000_000_000,
		Idempotent:    true,
		ProducerID:    42,
		ProducerEpoch: 3,
		BaseSequence:  17,
		Attributes:    segment.AttrTransactional | segment.AttrTimestampType,
		Values:        testbatch.Values(5, 10, 1),
	})
}

func TestParseHeaderValidBatch(t *testing.T) {
	b := headerTestBatch()
	want := segment.Header{
		BaseOffset:           1234,
		BatchLength:          int32(len(b) - segment.LogOverhead),
		PartitionLeaderEpoch: 0,
		Magic:                2,
		CRC:                  crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)),
		Attributes:           segment.AttrTransactional | segment.AttrTimestampType,
		LastOffsetDelta:      4,
		BaseTimestamp:        1_700_000_000_000,
		MaxTimestamp:         1_700_000_000_004,
		ProducerID:           42,
		ProducerEpoch:        3,
		BaseSequence:         17,
		RecordCount:          5,
	}
	// Header only: ParseHeader does not need the records.
	for _, n := range []int{segment.HeaderSize, len(b)} {
		h, err := segment.ParseHeader(b[:n])
		if err != nil {
			t.Fatalf("ParseHeader(%d bytes): %v", n, err)
		}
		if h != want {
			t.Fatalf("ParseHeader(%d bytes):\n got %+v\nwant %+v", n, h, want)
		}
	}
	// Validate checks the first batch of several.
	two := append(append([]byte(nil), b...), testbatch.Make(testbatch.Spec{BaseOffset: 1239, Values: testbatch.Values(1, 3, 9)})...)
	for name, in := range map[string][]byte{"one batch": b, "two batches": two} {
		h, err := segment.Validate(in)
		if err != nil {
			t.Fatalf("Validate(%s): %v", name, err)
		}
		if h != want {
			t.Fatalf("Validate(%s):\n got %+v\nwant %+v", name, h, want)
		}
	}
	h := want
	if h.Size() != len(b) || h.LastOffset() != 1238 || h.NextOffset() != 1239 {
		t.Fatalf("Size %d (want %d), LastOffset %d, NextOffset %d", h.Size(), len(b), h.LastOffset(), h.NextOffset())
	}
	if !h.IsTransactional() || h.IsControl() || h.Compression() != 0 {
		t.Fatalf("attributes: transactional %v control %v compression %d", h.IsTransactional(), h.IsControl(), h.Compression())
	}
	if got := segment.ComputeCRC(b); got != want.CRC {
		t.Fatalf("ComputeCRC %08x, want %08x", got, want.CRC)
	}
}

func TestAttributes(t *testing.T) {
	for _, tc := range []struct {
		attrs         int16
		compression   int
		transactional bool
		control       bool
	}{
		{0, 0, false, false},
		{4, 4, false, false},
		{segment.AttrControl | segment.AttrTransactional | 1, 1, true, true},
		{segment.AttrTimestampType | 3, 3, false, false},
	} {
		h := segment.Header{Attributes: tc.attrs}
		if h.Compression() != tc.compression || h.IsTransactional() != tc.transactional || h.IsControl() != tc.control {
			t.Errorf("attributes %#x: compression %d transactional %v control %v", tc.attrs, h.Compression(), h.IsTransactional(), h.IsControl())
		}
	}
}

func TestEmptyBatchIsValid(t *testing.T) {
	// No records: batchLength is 49, the smallest allowed.
	b := testbatch.Make(testbatch.Spec{BaseOffset: 7})
	h, err := segment.Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.BatchLength != segment.HeaderSize-segment.LogOverhead || h.RecordCount != 0 || h.LastOffsetDelta != 0 || h.Size() != segment.HeaderSize {
		t.Fatalf("empty batch header %+v", h)
	}
}

func TestBatchErrors(t *testing.T) {
	put32 := func(off int, v int32) func([]byte) []byte {
		return func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[off:], uint32(v))
			restoreBatchCRC(b)
			return b
		}
	}
	setMagic := func(m byte) func([]byte) []byte {
		return func(b []byte) []byte {
			b[segment.MagicOffset] = m
			return b
		}
	}
	cut := func(n int) func([]byte) []byte { return func(b []byte) []byte { return b[:n] } }
	// headerTestBatch has lastOffsetDelta 4 and recordCount 5.
	for _, tc := range []struct {
		name     string
		mutate   func([]byte) []byte
		parse    error // from ParseHeader
		validate error // from Validate
	}{
		{"no bytes", cut(0), segment.ErrShortBatch, segment.ErrShortBatch},
		{"60 bytes", cut(segment.HeaderSize - 1), segment.ErrShortBatch, segment.ErrShortBatch},
		{"header only", cut(segment.HeaderSize), nil, segment.ErrShortBatch},
		{"one byte short", func(b []byte) []byte { return b[:len(b)-1] }, nil, segment.ErrShortBatch},
		{"batchLength one too many", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[segment.BatchLengthOffset:], uint32(len(b)-segment.LogOverhead+1))
			return b
		}, nil, segment.ErrShortBatch},
		{"batchLength MaxBatchSize", put32(segment.BatchLengthOffset, segment.MaxBatchSize), nil, segment.ErrShortBatch},
		{"batchLength 48", put32(segment.BatchLengthOffset, 48), segment.ErrBatchLength, segment.ErrBatchLength},
		{"batchLength 0", put32(segment.BatchLengthOffset, 0), segment.ErrBatchLength, segment.ErrBatchLength},
		{"batchLength -1", put32(segment.BatchLengthOffset, -1), segment.ErrBatchLength, segment.ErrBatchLength},
		{"batchLength min int32", put32(segment.BatchLengthOffset, math.MinInt32), segment.ErrBatchLength, segment.ErrBatchLength},
		{"batchLength MaxBatchSize+1", put32(segment.BatchLengthOffset, segment.MaxBatchSize+1), segment.ErrBatchLength, segment.ErrBatchLength},
		{"batchLength max int32", put32(segment.BatchLengthOffset, math.MaxInt32), segment.ErrBatchLength, segment.ErrBatchLength},
		{"magic 0", setMagic(0), segment.ErrMagic, segment.ErrMagic},
		{"magic 1", setMagic(1), segment.ErrMagic, segment.ErrMagic},
		{"magic 3", setMagic(3), segment.ErrMagic, segment.ErrMagic},
		{"magic 0xff", setMagic(0xff), segment.ErrMagic, segment.ErrMagic},
		{"magic 0 on a short header", func(b []byte) []byte { b[segment.MagicOffset] = 0; return b[:40] }, segment.ErrShortBatch, segment.ErrShortBatch},
		{"stored CRC off by one", func(b []byte) []byte { b[segment.CRCOffset+3]++; return b }, nil, segment.ErrCRC},
		{"last record byte changed", func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }, nil, segment.ErrCRC},
		{"recordCount lastOffsetDelta+2", put32(segment.RecordCountOffset, 6), segment.ErrRecordCount, segment.ErrRecordCount},
		{"recordCount max int32", put32(segment.RecordCountOffset, math.MaxInt32), segment.ErrRecordCount, segment.ErrRecordCount},
		{"recordCount -1", put32(segment.RecordCountOffset, -1), segment.ErrRecordCount, segment.ErrRecordCount},
		{"lastOffsetDelta -1", put32(segment.LastOffsetDeltaOffset, -1), segment.ErrRecordCount, segment.ErrRecordCount},
		{"lastOffsetDelta min int32", put32(segment.LastOffsetDeltaOffset, math.MinInt32), segment.ErrRecordCount, segment.ErrRecordCount},
		{"lastOffsetDelta 3 under 5 records", put32(segment.LastOffsetDeltaOffset, 3), segment.ErrRecordCount, segment.ErrRecordCount},
		// Fewer records than offsets is legal (compaction removes records).
		{"recordCount 0", put32(segment.RecordCountOffset, 0), nil, nil},
		{"lastOffsetDelta max int32", put32(segment.LastOffsetDeltaOffset, math.MaxInt32), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(headerTestBatch())
			_, err := segment.ParseHeader(b)
			checkBatchSentinel(t, "ParseHeader", err, tc.parse)
			_, err = segment.Validate(b)
			checkBatchSentinel(t, "Validate", err, tc.validate)
		})
	}
}

// TestEveryBitFlip flips each bit of a batch in turn: bits of baseOffset and
// partitionLeaderEpoch are outside the CRC and change nothing else; any
// other flip is caught, by the header checks or by the CRC.
func TestEveryBitFlip(t *testing.T) {
	orig := headerTestBatch()
	for i := 0; i < len(orig)*8; i++ {
		b := append([]byte(nil), orig...)
		b[i/8] ^= 1 << (i % 8)
		byteAt := i / 8
		what := fmt.Sprintf("bit %d (byte %d)", i, byteAt)
		_, perr := segment.ParseHeader(b)
		_, verr := segment.Validate(b)
		switch {
		case byteAt < segment.BatchLengthOffset,
			byteAt >= segment.PartitionLeaderEpochOffset && byteAt < segment.MagicOffset:
			checkBatchSentinel(t, what, verr, nil)
		case byteAt < segment.PartitionLeaderEpochOffset: // batchLength
			if verr == nil {
				t.Fatalf("%s: batchLength flip not detected", what)
			}
		case byteAt == segment.MagicOffset:
			checkBatchSentinel(t, what, verr, segment.ErrMagic)
		case byteAt < segment.AttributesOffset: // the CRC itself
			checkBatchSentinel(t, what, verr, segment.ErrCRC)
		case perr != nil: // a header field the header checks reject
			if !errors.Is(perr, segment.ErrRecordCount) {
				t.Fatalf("%s: ParseHeader: %v", what, perr)
			}
			checkBatchSentinel(t, what, verr, segment.ErrRecordCount)
		default:
			checkBatchSentinel(t, what, verr, segment.ErrCRC)
		}
	}
}

func TestRewriteOutsideCRC(t *testing.T) {
	for _, tc := range []struct {
		offset int64
		epoch  int32
	}{{0, 0}, {1 << 40, 7}, {math.MaxInt64, math.MaxInt32}, {-1, -1}} {
		b := headerTestBatch()
		crc := segment.ComputeCRC(b)
		stored := append([]byte(nil), b[segment.CRCOffset:segment.AttributesOffset]...)
		segment.SetBaseOffset(b, tc.offset)
		segment.SetPartitionLeaderEpoch(b, tc.epoch)
		h, err := segment.Validate(b)
		if err != nil {
			t.Fatalf("offset %d epoch %d: %v", tc.offset, tc.epoch, err)
		}
		if h.BaseOffset != tc.offset || h.PartitionLeaderEpoch != tc.epoch {
			t.Fatalf("rewrote offset %d epoch %d, read %d %d", tc.offset, tc.epoch, h.BaseOffset, h.PartitionLeaderEpoch)
		}
		if segment.ComputeCRC(b) != crc || !bytes.Equal(b[segment.CRCOffset:segment.AttributesOffset], stored) {
			t.Fatalf("offset %d epoch %d: CRC changed", tc.offset, tc.epoch)
		}
		if want := headerTestBatch(); !bytes.Equal(b[segment.MagicOffset:], want[segment.MagicOffset:]) || !bytes.Equal(b[segment.BatchLengthOffset:segment.PartitionLeaderEpochOffset], want[segment.BatchLengthOffset:segment.PartitionLeaderEpochOffset]) {
			t.Fatalf("offset %d epoch %d: bytes besides the two fields changed", tc.offset, tc.epoch)
		}
	}
}

func TestCorruptError(t *testing.T) {
	for _, sentinel := range []error{
		segment.ErrShortBatch, segment.ErrBatchLength, segment.ErrMagic,
		segment.ErrCRC, segment.ErrRecordCount, segment.ErrOffsetSequence,
	} {
		t.Run(sentinel.Error(), func(t *testing.T) {
			inner := fmt.Errorf("%w: detail", sentinel)
			ce := &segment.CorruptError{Path: "/data/t-0/00000000000000000000.log", Position: 4096, Err: inner}
			err := fmt.Errorf("open log: %w", ce)
			if !errors.Is(err, segment.ErrCorrupt) {
				t.Fatal("does not match ErrCorrupt")
			}
			if !errors.Is(err, sentinel) {
				t.Fatalf("does not match its sentinel %v", sentinel)
			}
			for _, other := range []error{segment.ErrShortBatch, segment.ErrCRC, segment.ErrOffsetSequence, segment.ErrClosed, segment.ErrOffsetOutOfRange} {
				if other != sentinel && errors.Is(err, other) {
					t.Fatalf("also matches %v", other)
				}
			}
			if got := errors.Unwrap(ce); got != inner {
				t.Fatalf("Unwrap = %v, want %v", got, inner)
			}
			var got *segment.CorruptError
			if !errors.As(err, &got) || got.Path != ce.Path || got.Position != 4096 {
				t.Fatalf("errors.As: %+v", got)
			}
			msg := err.Error()
			if !strings.Contains(msg, ce.Path) || !strings.Contains(msg, "4096") || !strings.Contains(msg, sentinel.Error()) {
				t.Fatalf("message %q lacks path, position or cause", msg)
			}
		})
	}
	if errors.Is(segment.ErrCRC, segment.ErrCorrupt) {
		t.Fatal("a bare sentinel matches ErrCorrupt")
	}
}

func TestFileName(t *testing.T) {
	for _, tc := range []struct {
		base int64
		name string
	}{
		{0, "00000000000000000000.log"},
		{1, "00000000000000000001.log"},
		{1048576, "00000000000001048576.log"},
		{math.MaxInt64, "09223372036854775807.log"},
	} {
		if got := segment.FileName(tc.base); got != tc.name {
			t.Errorf("FileName(%d) = %q, want %q", tc.base, got, tc.name)
		}
		if got, ok := segment.ParseFileName(tc.name); !ok || got != tc.base {
			t.Errorf("ParseFileName(%q) = %d, %v; want %d", tc.name, got, ok, tc.base)
		}
	}
	for _, name := range []string{
		"",
		".log",
		"0.log",
		"0000000000000000000.log",   // 19 digits
		"000000000000000000000.log", // 21 digits
		"0000000000000000000a.log",
		"0000000000 000000000.log",
		"00000000000000000000",
		"00000000000000000000.index",
		"00000000000000000000.log.tmp",
		"00000000000000000000.LOG",
		"x00000000000000000000.log",
		segment.FileName(-1),       // "-0000000000000000001.log"
		"-0000000000000000000.log", // minus zero
		"+0000000000000000001.log", // a sign is not a digit
		"99999999999999999999.log", // overflows int64
		"09223372036854775808.log", // MaxInt64+1
	} {
		if base, ok := segment.ParseFileName(name); ok {
			t.Errorf("ParseFileName(%q) accepted it as %d", name, base)
		}
	}
}
