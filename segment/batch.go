package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Byte positions of the RecordBatch v2 header fields. These are wire and disk
// format.
const (
	BaseOffsetOffset           = 0
	BatchLengthOffset          = 8
	PartitionLeaderEpochOffset = 12
	MagicOffset                = 16
	CRCOffset                  = 17
	AttributesOffset           = 21
	LastOffsetDeltaOffset      = 23
	BaseTimestampOffset        = 27
	MaxTimestampOffset         = 35
	ProducerIDOffset           = 43
	ProducerEpochOffset        = 51
	BaseSequenceOffset         = 53
	RecordCountOffset          = 57
	// HeaderSize is the size of the fixed batch header; records follow it.
	HeaderSize = 61
	// LogOverhead is the part of the header not counted in batchLength.
	LogOverhead = 12
	// Magic is the only batch format runnel stores.
	Magic = 2
)

// Attribute bits.
const (
	AttrCompressionMask = 0x07
	AttrTimestampType   = 0x08
	AttrTransactional   = 0x10
	AttrControl         = 0x20
)

// Errors found in a batch. A *CorruptError wraps one of them when the batch
// came from a segment file.
var (
	// ErrShortBatch: fewer bytes than the header or batchLength announce. At
	// the end of a segment this is a torn write.
	ErrShortBatch = errors.New("segment: batch shorter than its header or length says")
	// ErrBatchLength: batchLength is below the header size or absurdly large.
	ErrBatchLength = errors.New("segment: invalid batch length")
	// ErrMagic: the magic byte is not 2.
	ErrMagic = errors.New("segment: unsupported batch magic")
	// ErrCRC: the CRC-32C does not match the batch bytes.
	ErrCRC = errors.New("segment: batch CRC mismatch")
	// ErrRecordCount: recordCount disagrees with lastOffsetDelta.
	ErrRecordCount = errors.New("segment: record count disagrees with last offset delta")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is a decoded batch header.
type Header struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// Size is the whole batch size in bytes, header included.
func (h *Header) Size() int { return int(h.BatchLength) + LogOverhead }

// LastOffset is the offset of the batch's last record.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset that follows the batch.
func (h *Header) NextOffset() int64 { return h.LastOffset() + 1 }

// IsControl reports whether this is a control batch (transaction markers).
func (h *Header) IsControl() bool { return h.Attributes&AttrControl != 0 }

// IsTransactional reports whether the batch belongs to a transaction.
func (h *Header) IsTransactional() bool { return h.Attributes&AttrTransactional != 0 }

// Compression returns the codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
func (h *Header) Compression() int { return int(h.Attributes & AttrCompressionMask) }

// MaxBatchSize bounds batchLength when parsing, whatever the caller allows;
// it keeps a corrupt length from asking for gigabytes.
const MaxBatchSize = 1 << 30

// ParseHeader decodes the 61-byte header at the start of b and checks what
// can be checked without the records: magic, batchLength, and that the
// record count fits lastOffsetDelta. It does not need b to hold the records.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, ErrShortBatch
	}
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[BaseOffsetOffset:]))
	h.BatchLength = int32(binary.BigEndian.Uint32(b[BatchLengthOffset:]))
	h.PartitionLeaderEpoch = int32(binary.BigEndian.Uint32(b[PartitionLeaderEpochOffset:]))
	h.Magic = int8(b[MagicOffset])
	h.CRC = binary.BigEndian.Uint32(b[CRCOffset:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[AttributesOffset:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[LastOffsetDeltaOffset:]))
	h.BaseTimestamp = int64(binary.BigEndian.Uint64(b[BaseTimestampOffset:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[MaxTimestampOffset:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[ProducerIDOffset:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[ProducerEpochOffset:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[BaseSequenceOffset:]))
	h.RecordCount = int32(binary.BigEndian.Uint32(b[RecordCountOffset:]))

	if h.Magic != Magic {
		return h, fmt.Errorf("%w: %d", ErrMagic, h.Magic)
	}
	if h.BatchLength < HeaderSize-LogOverhead || h.BatchLength > MaxBatchSize {
		return h, fmt.Errorf("%w: %d", ErrBatchLength, h.BatchLength)
	}
	if h.LastOffsetDelta < 0 || h.RecordCount < 0 || int64(h.RecordCount) > int64(h.LastOffsetDelta)+1 {
		return h, fmt.Errorf("%w: count %d, last offset delta %d", ErrRecordCount, h.RecordCount, h.LastOffsetDelta)
	}
	return h, nil
}

// Validate parses the header at the start of b and verifies the CRC over the
// whole batch. b may hold more than one batch; only the first is checked. It
// returns the header and the batch size.
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	size := h.Size()
	if len(b) < size {
		return h, ErrShortBatch
	}
	if got := crc32.Checksum(b[AttributesOffset:size], castagnoli); got != h.CRC {
		return h, fmt.Errorf("%w: stored %08x, computed %08x", ErrCRC, h.CRC, got)
	}
	return h, nil
}

// ComputeCRC returns the CRC-32C of a batch's covered bytes (attributes to
// the end). b must hold the whole batch.
func ComputeCRC(b []byte) uint32 {
	return crc32.Checksum(b[AttributesOffset:], castagnoli)
}

// SetBaseOffset rewrites baseOffset in place. The field is outside the CRC.
func SetBaseOffset(b []byte, offset int64) {
	binary.BigEndian.PutUint64(b[BaseOffsetOffset:], uint64(offset))
}

// SetPartitionLeaderEpoch rewrites partitionLeaderEpoch in place. The field
// is outside the CRC.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[PartitionLeaderEpochOffset:], uint32(epoch))
}

// CorruptError reports a bad batch found in a segment file.
type CorruptError struct {
	Path     string // segment file
	Position int64  // byte position of the batch in the file
	Err      error  // one of ErrShortBatch, ErrBatchLength, ErrMagic, ErrCRC, ErrRecordCount, ErrOffsetSequence
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("segment: corrupt batch in %s at position %d: %v", e.Path, e.Position, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Is lets errors.Is(err, ErrCorrupt) match any CorruptError.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }
