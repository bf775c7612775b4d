package partition

import (
	"encoding/binary"
	"fmt"

	"github.com/runnel-io/runnel/segment"
)

// OffsetForTimestamp returns the offset and timestamp of the first record
// with a timestamp at or after ts, below the high watermark. For an
// uncompressed batch the records are read to find the exact record; for a
// compressed one the batch's first offset is returned (never later than the
// exact answer, so a consumer starting there misses nothing).
func (p *Partition) OffsetForTimestamp(ts int64) (offset, recordTS int64, found bool, err error) {
	base, ok, err := p.log.OffsetForTimestamp(ts)
	if err != nil || !ok || base >= p.hw.Load() {
		return 0, 0, false, err
	}
	r, err := p.log.Read(base, 1, p.hw.Load())
	if err != nil || r.Length == 0 {
		return 0, 0, false, err
	}
	defer r.Release()
	buf := make([]byte, r.Length)
	if _, err := r.File().ReadAt(buf, r.Position); err != nil {
		return 0, 0, false, fmt.Errorf("partition: read batch at %d: %w", base, err)
	}
	h, err := segment.Validate(buf)
	if err != nil {
		return 0, 0, false, err
	}
	if h.Compression() != 0 {
		return h.BaseOffset, h.BaseTimestamp, true, nil
	}
	off, rts, ok := firstRecordAtOrAfter(buf[segment.HeaderSize:h.Size()], h, ts)
	if !ok {
		return h.BaseOffset, h.MaxTimestamp, true, nil
	}
	return off, rts, true, nil
}

// firstRecordAtOrAfter walks uncompressed records: length, attributes,
// timestampDelta, offsetDelta, … (varints).
func firstRecordAtOrAfter(b []byte, h segment.Header, ts int64) (int64, int64, bool) {
	for i := int32(0); i < h.RecordCount && len(b) > 0; i++ {
		length, n := binary.Varint(b)
		if n <= 0 || length < 0 || int64(len(b)-n) < length {
			return 0, 0, false
		}
		rec := b[n : n+int(length)]
		b = b[n+int(length):]
		if len(rec) < 1 {
			return 0, 0, false
		}
		tsDelta, m := binary.Varint(rec[1:])
		if m <= 0 {
			return 0, 0, false
		}
		offDelta, k := binary.Varint(rec[1+m:])
		if k <= 0 {
			return 0, 0, false
		}
		if rts := h.BaseTimestamp + tsDelta; rts >= ts {
			return h.BaseOffset + offDelta, rts, true
		}
	}
	return 0, 0, false
}
