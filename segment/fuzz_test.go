package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/runnel-io/runnel/internal/testbatch"
)

// fuzzSeeds returns valid batches and a few damaged ones.
func fuzzSeeds() [][]byte {
	valid := [][]byte{
		testbatch.Make(testbatch.Spec{}),
		testbatch.Make(testbatch.Spec{BaseOffset: 5, Timestamp: 1000, Values: testbatch.Values(3, 8, 1)}),
		testbatch.Make(testbatch.Spec{BaseOffset: 1 << 40, Timestamp: -1, Idempotent: true, ProducerID: 9, ProducerEpoch: 2,
			BaseSequence: 100, Attributes: AttrTransactional | AttrControl, Values: testbatch.Values(1, 0, 0)}),
		testbatch.Make(testbatch.Spec{BaseOffset: 100, Timestamp: 1_700_000_000_000, Values: testbatch.Values(6, 20, 3)}),
	}
	seeds := append([][]byte(nil), valid...)
	two := append(append([]byte(nil), valid[0]...), valid[1]...)
	seeds = append(seeds, two, nil, valid[1][:HeaderSize-1], valid[1][:HeaderSize], valid[1][:len(valid[1])-1])
	mutate := func(f func(b []byte)) {
		b := append([]byte(nil), valid[1]...)
		f(b)
		seeds = append(seeds, b)
	}
	mutate(func(b []byte) { b[MagicOffset] = 1 })
	mutate(func(b []byte) { binary.BigEndian.PutUint32(b[BatchLengthOffset:], 48) })
	mutate(func(b []byte) { binary.BigEndian.PutUint32(b[BatchLengthOffset:], MaxBatchSize+1) })
	mutate(func(b []byte) { binary.BigEndian.PutUint32(b[RecordCountOffset:], 0xffffffff) })
	mutate(func(b []byte) { b[len(b)-1] ^= 1 })
	mutate(func(b []byte) { b[CRCOffset] ^= 0x10 })
	return seeds
}

// checkBatchError fails unless err matches exactly one batch sentinel.
func checkBatchError(t *testing.T, what string, err error) {
	t.Helper()
	n := 0
	for _, s := range []error{ErrShortBatch, ErrBatchLength, ErrMagic, ErrCRC, ErrRecordCount} {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%s: error %v matches %d sentinels, want 1", what, err, n)
	}
}

// capped returns a copy of b whose capacity is its length, so that reading
// past the end, even by reslicing, panics.
func capped(b []byte) []byte {
	c := append([]byte(nil), b...)
	return c[:len(c):len(c)]
}

func FuzzParseHeader(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := capped(data)
		h, err := ParseHeader(in)
		if !bytes.Equal(in, data) {
			t.Fatal("ParseHeader modified its input")
		}
		if len(in) < HeaderSize {
			if !errors.Is(err, ErrShortBatch) {
				t.Fatalf("%d bytes: got %v, want ErrShortBatch", len(in), err)
			}
			return
		}
		// Only the 61 header bytes count.
		h2, err2 := ParseHeader(capped(in[:HeaderSize]))
		if h2 != h || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("bytes past the header changed the result: %+v %v / %+v %v", h, err, h2, err2)
		}
		if err != nil {
			checkBatchError(t, "ParseHeader", err)
			return
		}
		if h.Magic != Magic || h.BatchLength < HeaderSize-LogOverhead || h.BatchLength > MaxBatchSize ||
			h.LastOffsetDelta < 0 || h.RecordCount < 0 || int64(h.RecordCount) > int64(h.LastOffsetDelta)+1 {
			t.Fatalf("accepted a header that breaks its own rules: %+v", h)
		}
		if h.Size() < HeaderSize {
			t.Fatalf("Size %d below the header size", h.Size())
		}
		if h.BaseOffset != int64(binary.BigEndian.Uint64(in)) || h.CRC != binary.BigEndian.Uint32(in[CRCOffset:]) ||
			h.RecordCount != int32(binary.BigEndian.Uint32(in[RecordCountOffset:])) {
			t.Fatalf("fields decoded wrong: %+v", h)
		}
	})
}

func FuzzValidate(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, fixFraming bool) {
		if fixFraming && len(data) >= HeaderSize && len(data)-LogOverhead <= MaxBatchSize {
			// Make length, magic and CRC agree with the bytes, so the fuzzer
			// gets past them: then only the record count can be wrong.
			data = append([]byte(nil), data...)
			binary.BigEndian.PutUint32(data[BatchLengthOffset:], uint32(len(data)-LogOverhead))
			data[MagicOffset] = Magic
			binary.BigEndian.PutUint32(data[CRCOffset:], ComputeCRC(data))
		}
		in := capped(data)
		h, err := Validate(in)
		if !bytes.Equal(in, data) {
			t.Fatal("Validate modified its input")
		}
		if err != nil {
			checkBatchError(t, "Validate", err)
			if fixFraming && len(data) >= HeaderSize && !errors.Is(err, ErrRecordCount) {
				t.Fatalf("consistent framing, yet %v", err)
			}
			if _, perr := ParseHeader(in); perr == nil && !errors.Is(err, ErrShortBatch) && !errors.Is(err, ErrCRC) {
				t.Fatalf("the header parses, yet Validate says %v", err)
			}
			return
		}
		size := h.Size()
		if size < HeaderSize || size > len(in) {
			t.Fatalf("valid batch of size %d in %d bytes", size, len(in))
		}
		if ph, perr := ParseHeader(in); perr != nil || ph != h {
			t.Fatalf("Validate accepted what ParseHeader says is %+v %v", ph, perr)
		}
		if h2, err := Validate(capped(in[:size])); err != nil || h2 != h {
			t.Fatalf("the batch alone (%d bytes) does not validate the same: %+v %v", size, h2, err)
		}
		if _, err := Validate(capped(in[:size-1])); !errors.Is(err, ErrShortBatch) {
			t.Fatalf("one byte short: %v, want ErrShortBatch", err)
		}
		if ComputeCRC(in[:size]) != h.CRC {
			t.Fatal("ComputeCRC disagrees with the stored CRC")
		}
		// The broker's in-place rewrites keep the batch valid.
		b := capped(in[:size])
		SetBaseOffset(b, int64(h.CRC)<<8|int64(size))
		SetPartitionLeaderEpoch(b, int32(h.CRC))
		if h3, err := Validate(b); err != nil || h3.BaseOffset != int64(h.CRC)<<8|int64(size) || h3.PartitionLeaderEpoch != int32(h.CRC) {
			t.Fatalf("after rewriting offset and epoch: %+v %v", h3, err)
		}
	})
}

// FuzzParseLogStart: no content of the log-start-offset file makes its
// parser panic; what parses is a non-negative offset that formats and
// parses again to the same.
func FuzzParseLogStart(f *testing.F) {
	for _, s := range []string{"0\n", "4100\n", " 7 ", "-1\n", "", "9223372036854775807\n", "9223372036854775808", "1e3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseLogStart(b)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("%q parses to %d", b, v)
		}
		if again, err := parseLogStart(formatLogStart(v)); err != nil || again != v {
			t.Fatalf("%q: %d formats to %q, parses to %d, %v", b, v, formatLogStart(v), again, err)
		}
	})
}
