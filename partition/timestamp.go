package partition

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/runnel-io/runnel/compression"
	"github.com/runnel-io/runnel/segment"
)

// maxTimestampScan bounds the decompressed bytes read from one batch while
// looking for a timestamp. Past it (a batch that inflates beyond any
// producer's) the batch's first offset is the answer.
const maxTimestampScan = 64 << 20

// OffsetForTimestamp returns the offset and timestamp of the first record
// with a timestamp at or after ts, below the high watermark. The time index
// finds the batch; its records, decompressed if need be, give the exact
// record. If the records cannot be read (corrupt compressed data, or more
// than maxTimestampScan bytes of it) the batch's first offset is returned:
// never later than the exact answer, so a consumer starting there misses
// nothing.
func (p *Partition) OffsetForTimestamp(ts int64) (offset, recordTS int64, found bool, err error) {
	base, ok, err := p.log.OffsetForTimestamp(ts)
	if err != nil || !ok || base >= p.hw.Load() {
		return 0, 0, false, err
	}
	// The batch may begin below the log start (DeleteRecords moved it into
	// the batch): only its records from the log start on count.
	from := max(base, p.log.LogStartOffset())
	r, err := p.log.Read(from, 1, p.hw.Load())
	if err != nil || r.Length == 0 {
		return 0, 0, false, err
	}
	defer r.Release()
	buf := make([]byte, r.Length)
	if _, err := r.ReadAt(buf, r.Position); err != nil {
		return 0, 0, false, fmt.Errorf("partition: read batch at %d: %w", base, err)
	}
	h, err := segment.Validate(buf)
	if err != nil {
		return 0, 0, false, err
	}
	off, rts, ok := firstRecordAtOrAfter(buf[segment.HeaderSize:h.Size()], h, ts, from)
	if !ok {
		return max(h.BaseOffset, from), h.BaseTimestamp, true, nil
	}
	return off, rts, true, nil
}

// MaxTimestamp returns the offset and timestamp of the record with the
// largest timestamp in the log, the first such record if several have it,
// and the leader epoch of its batch (ListOffsets' -3, KIP-734). As in
// Kafka, the search covers the whole log and finds nothing (found false)
// when that record is at or past limit (the high watermark, or the last
// stable offset for read_committed): its timestamp is not yet visible.
// The batch's records give the exact record as for OffsetForTimestamp,
// and its first offset if they cannot be read.
func (p *Partition) MaxTimestamp(limit int64) (offset, recordTS int64, epoch int32, found bool, err error) {
	base, ts, ok, err := p.log.MaxTimestamp()
	if err != nil || !ok || base >= limit {
		return 0, 0, 0, false, err
	}
	from := max(base, p.log.LogStartOffset())
	r, err := p.log.Read(from, 1, limit)
	if err != nil || r.Length == 0 {
		return 0, 0, 0, false, err
	}
	defer r.Release()
	buf := make([]byte, r.Length)
	if _, err := r.ReadAt(buf, r.Position); err != nil {
		return 0, 0, 0, false, fmt.Errorf("partition: read batch at %d: %w", base, err)
	}
	h, err := segment.Validate(buf)
	if err != nil {
		return 0, 0, 0, false, err
	}
	off, rts, ok := firstRecordAtOrAfter(buf[segment.HeaderSize:h.Size()], h, ts, from)
	if !ok {
		off, rts = max(h.BaseOffset, from), ts
	}
	if off >= limit {
		return 0, 0, 0, false, nil
	}
	return off, rts, h.PartitionLeaderEpoch, true, nil
}

// firstRecordAtOrAfter walks a batch's records (decompressing them as the
// batch says) to the first at offset from or later with a timestamp at or
// after ts. A record is
// length, attributes, timestampDelta, offsetDelta, … with varint integers;
// only the first four are read, the rest is skipped.
func firstRecordAtOrAfter(records []byte, h segment.Header, ts, from int64) (int64, int64, bool) {
	rc, err := compression.NewReader(int8(h.Compression()), records, maxTimestampScan)
	if err != nil {
		return 0, 0, false
	}
	defer rc.Close()
	br := &countingReader{r: bufio.NewReaderSize(rc, 4096)}
	for i := int32(0); i < h.RecordCount; i++ {
		length, err := binary.ReadVarint(br)
		if err != nil || length < 1 {
			return 0, 0, false
		}
		start := br.n
		if _, err := br.ReadByte(); err != nil { // attributes
			return 0, 0, false
		}
		tsDelta, err := binary.ReadVarint(br)
		if err != nil {
			return 0, 0, false
		}
		offDelta, err := binary.ReadVarint(br)
		if err != nil {
			return 0, 0, false
		}
		read := br.n - start
		if read > length {
			return 0, 0, false
		}
		if rts := h.BaseTimestamp + tsDelta; rts >= ts && h.BaseOffset+offDelta >= from {
			return h.BaseOffset + offDelta, rts, true
		}
		if err := br.discard(length - read); err != nil {
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *countingReader) discard(n int64) error {
	for n > 0 {
		chunk := int(min(n, 1<<20))
		d, err := c.r.Discard(chunk)
		c.n += int64(d)
		n -= int64(d)
		if err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}
