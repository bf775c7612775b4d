package segment

// Writing one batch.
//
// BuildBatch(dst, spec, records) appends a RecordBatch v2 to dst: the header
// from spec (base offset, partition leader epoch, attributes with codec,
// timestamp type, transactional and control bits, producer id and epoch,
// base sequence, first and max timestamps, lastOffsetDelta), recordCount,
// the CRC-32C of attributes to the end, and the records encoded with offset
// delta = Record.Offset - BaseOffset and timestamp delta = Record.Timestamp -
// first timestamp, compressed with compression.Compress when the attributes
// name a codec. Offsets may have gaps and lastOffsetDelta may lie beyond the
// last record, so the log cleaner can rewrite a batch and keep its offsets.
// A gap-free batch passes Validate and ValidateRecords; any batch it builds
// passes Validate and reads back through ForEachRecord.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/runnel-io/runnel/compression"
)

// ErrBatchSpec: BuildBatch was given records that do not fit its spec.
var ErrBatchSpec = errors.New("segment: records do not fit the batch spec")

// BatchSpec is the header of a batch BuildBatch writes.
type BatchSpec struct {
	BaseOffset           int64
	PartitionLeaderEpoch int32
	// Attributes: the codec (AttrCompressionMask), AttrTimestampType,
	// AttrTransactional, AttrControl. A batch without records is written
	// uncompressed whatever the codec, as Kafka does.
	Attributes int16
	// LastOffsetDelta is written as given; it must be at least the offset
	// delta of the last record. A rewritten batch keeps its original one.
	LastOffsetDelta int32
	ProducerID      int64 // -1: none
	ProducerEpoch   int16 // -1: none
	BaseSequence    int32 // -1: none
	// FirstTimestamp is baseTimestamp; 0 means the first record's
	// timestamp (-1 if there is none).
	FirstTimestamp int64
	// MaxTimestamp is maxTimestamp; 0 means the largest record timestamp
	// (-1 if there is none).
	MaxTimestamp int64
}

// scratchPool holds the buffers in which compressed batches' records are
// encoded before compression.
var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledScratch bounds the scratch buffer kept in the pool.
const maxPooledScratch = 4 << 20

// BuildBatch appends to dst one batch of records, described by spec, and
// returns the extended slice. Record offsets must increase and lie within
// [BaseOffset, BaseOffset+LastOffsetDelta]; anything else is ErrBatchSpec,
// and dst is then returned unextended.
func BuildBatch(dst []byte, spec BatchSpec, records []Record) ([]byte, error) {
	if spec.LastOffsetDelta < 0 {
		return dst, fmt.Errorf("%w: last offset delta %d", ErrBatchSpec, spec.LastOffsetDelta)
	}
	codec := spec.Attributes & AttrCompressionMask
	if codec > compression.Zstd {
		return dst, fmt.Errorf("%w: %w: %d", ErrBatchSpec, compression.ErrUnknownCodec, codec)
	}
	if len(records) == 0 {
		spec.Attributes &^= AttrCompressionMask
		codec = compression.None
	}
	first, maxTS := spec.FirstTimestamp, spec.MaxTimestamp
	if first == 0 {
		first = -1
		if len(records) > 0 {
			first = records[0].Timestamp
		}
	}
	if maxTS == 0 {
		maxTS = -1
		for i := range records {
			maxTS = max(maxTS, records[i].Timestamp)
		}
	}
	prev := int64(-1)
	for i := range records {
		delta := records[i].Offset - spec.BaseOffset
		if delta <= prev || delta > int64(spec.LastOffsetDelta) {
			return dst, fmt.Errorf("%w: record %d at offset %d, after delta %d, in a batch of offsets %d to %d",
				ErrBatchSpec, i, records[i].Offset, prev, spec.BaseOffset, spec.BaseOffset+int64(spec.LastOffsetDelta))
		}
		prev = delta
	}

	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	if codec == compression.None {
		dst = appendRecords(dst, spec.BaseOffset, first, records)
	} else {
		scratch := scratchPool.Get().(*[]byte)
		*scratch = appendRecords((*scratch)[:0], spec.BaseOffset, first, records)
		out, err := compression.Compress(int8(codec), dst, *scratch)
		if cap(*scratch) > maxPooledScratch {
			*scratch = nil
		}
		scratchPool.Put(scratch)
		if err != nil {
			return dst[:start], fmt.Errorf("%w: %w", ErrBatchSpec, err)
		}
		dst = out
	}
	b := dst[start:]
	if len(b)-LogOverhead > MaxBatchSize {
		return dst[:start], fmt.Errorf("%w: %d bytes, more than a batch may hold", ErrBatchSpec, len(b))
	}
	binary.BigEndian.PutUint64(b[BaseOffsetOffset:], uint64(spec.BaseOffset))
	binary.BigEndian.PutUint32(b[BatchLengthOffset:], uint32(len(b)-LogOverhead))
	binary.BigEndian.PutUint32(b[PartitionLeaderEpochOffset:], uint32(spec.PartitionLeaderEpoch))
	b[MagicOffset] = Magic
	binary.BigEndian.PutUint16(b[AttributesOffset:], uint16(spec.Attributes))
	binary.BigEndian.PutUint32(b[LastOffsetDeltaOffset:], uint32(spec.LastOffsetDelta))
	binary.BigEndian.PutUint64(b[BaseTimestampOffset:], uint64(first))
	binary.BigEndian.PutUint64(b[MaxTimestampOffset:], uint64(maxTS))
	binary.BigEndian.PutUint64(b[ProducerIDOffset:], uint64(spec.ProducerID))
	binary.BigEndian.PutUint16(b[ProducerEpochOffset:], uint16(spec.ProducerEpoch))
	binary.BigEndian.PutUint32(b[BaseSequenceOffset:], uint32(spec.BaseSequence))
	binary.BigEndian.PutUint32(b[RecordCountOffset:], uint32(len(records)))
	binary.BigEndian.PutUint32(b[CRCOffset:], crc32.Checksum(b[AttributesOffset:], castagnoli))
	return dst, nil
}

// appendRecords appends the uncompressed records section.
func appendRecords(dst []byte, baseOffset, firstTimestamp int64, records []Record) []byte {
	for i := range records {
		r := &records[i]
		tsDelta := r.Timestamp - firstTimestamp
		offDelta := r.Offset - baseOffset
		size := 1 + varintLen(tsDelta) + varintLen(offDelta) + bytesLen(r.Key) + bytesLen(r.Value) + varintLen(int64(len(r.Headers)))
		for _, h := range r.Headers {
			size += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
		}
		dst = binary.AppendVarint(dst, int64(size))
		dst = append(dst, 0) // attributes
		dst = binary.AppendVarint(dst, tsDelta)
		dst = binary.AppendVarint(dst, offDelta)
		dst = appendBytes(dst, r.Key)
		dst = appendBytes(dst, r.Value)
		dst = binary.AppendVarint(dst, int64(len(r.Headers)))
		for _, h := range r.Headers {
			dst = binary.AppendVarint(dst, int64(len(h.Key)))
			dst = append(dst, h.Key...)
			dst = appendBytes(dst, h.Value)
		}
	}
	return dst
}

// varintLen is the size of v as a zigzag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// bytesLen is the size of b with its length field, -1 for nil.
func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

// appendBytes appends b with its length, -1 for nil.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}
