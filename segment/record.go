package segment

// Reading the records of one batch.
//
// ForEachRecord decodes the records of a RecordBatch v2, whatever its codec,
// and hands each to a callback as a *Record: absolute offset and timestamp,
// key, value and headers, with nil meaning null (as opposed to empty). The
// Record and every slice in it are valid only during the callback: for an
// uncompressed batch they alias the batch bytes (the walk is in place and
// does not allocate), for a compressed one a buffer that the next record
// reuses. A callback that keeps anything copies it. Offset deltas may have
// gaps, as in a batch the log cleaner rewrote, but must increase and stay
// within lastOffsetDelta. Refusals are the errors of ValidateRecords
// (ErrInvalidRecord, ErrRecordsCodec, ErrRecordsTooLarge, ErrShortBatch);
// an error returned by the callback stops the walk and is returned as it is.
// BuildBatch (build.go) writes batches that ForEachRecord reads back.

import (
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/runnel-io/runnel/compression"
)

// Record is one record of a batch, as ForEachRecord decodes it or
// BuildBatch encodes it.
type Record struct {
	// Offset is baseOffset + offsetDelta.
	Offset int64
	// Timestamp is baseTimestamp + timestampDelta. In a batch whose
	// attributes set AttrTimestampType (log append time) Kafka's clients
	// report the batch's MaxTimestamp instead; callers that show a time
	// apply that rule, so that a rewritten batch keeps its deltas.
	Timestamp int64
	Key       []byte // nil: a null key; empty and non-nil: an empty one
	Value     []byte // nil: a null value (a tombstone)
	Headers   []RecordHeader
}

// RecordHeader is one header of a record. Kafka's header keys are never
// null: a nil Key is written as an empty one.
type RecordHeader struct {
	Key   []byte
	Value []byte // nil: null
}

// recordVisitor decodes records for ForEachRecord; it is pooled, so that a
// walk allocates nothing, and Headers keeps its capacity between walks.
type recordVisitor struct {
	h    *Header
	rec  Record
	prev int64 // offset delta of the previous record, -1 before the first
	fn   func(*Record) error
}

var visitorPool = sync.Pool{New: func() any { return new(recordVisitor) }}

// visit completes record i, of offset delta delta, and hands it on.
func (v *recordVisitor) visit(i int32, delta int64) error {
	if delta <= v.prev || delta > int64(v.h.LastOffsetDelta) {
		return invalid(i, "offset delta %d after %d, last offset delta %d", delta, v.prev, v.h.LastOffsetDelta)
	}
	v.prev = delta
	v.rec.Offset = v.h.BaseOffset + delta
	v.rec.Timestamp += v.h.BaseTimestamp
	return v.fn(&v.rec)
}

// maxPooledHeaders bounds the header slice a pooled visitor keeps.
const maxPooledHeaders = 64

// ForEachRecord calls fn for each record of batch, in order. h is the
// batch's header, parsed from it (ParseHeader or Validate; ForEachRecord
// does not check the CRC); batch must hold exactly that one batch. A
// compressed records section is decompressed as a stream through
// compression.NewReader, refused once it inflates past maxDecompressed
// bytes, and only one record is held at a time.
//
// The *Record and its slices are valid only until fn returns. For an
// uncompressed batch Key, Value and the headers alias batch (with capacity
// cut to their length, so appending to one never writes into the batch),
// and the walk does not allocate.
func ForEachRecord(batch []byte, h *Header, maxDecompressed int64, fn func(*Record) error) error {
	if len(batch) != h.Size() || len(batch) < HeaderSize {
		return fmt.Errorf("%w: %d bytes for a %d-byte batch", ErrShortBatch, len(batch), h.Size())
	}
	if h.RecordCount < 0 || int64(h.RecordCount) > int64(h.LastOffsetDelta)+1 {
		return fmt.Errorf("%w: %d records, last offset delta %d", ErrInvalidRecord, h.RecordCount, h.LastOffsetDelta)
	}
	v := visitorPool.Get().(*recordVisitor)
	v.h, v.prev, v.fn = h, -1, fn
	defer func() {
		headers := v.rec.Headers[:0]
		if cap(headers) > maxPooledHeaders {
			headers = nil
		}
		clear(headers[:cap(headers)])
		*v = recordVisitor{rec: Record{Headers: headers}}
		visitorPool.Put(v)
	}()
	records := batch[HeaderSize:]
	codec := h.Compression()
	if codec == compression.None {
		return walkRecordBytes(records, h.RecordCount, v, false)
	}
	rc, err := compression.NewReader(int8(codec), records, maxDecompressed)
	if err != nil {
		return streamError(err, 0)
	}
	defer rc.Close()
	s := streamPool.Get().(*recordStream)
	s.r.Reset(rc)
	s.n = 0
	err = s.decode(h.RecordCount, v)
	s.r.Reset(nil)
	if cap(s.buf) > streamBuffer {
		s.buf = nil
	}
	streamPool.Put(s)
	return err
}

// decode reads count records, each whole into buf, and decodes them there.
func (s *recordStream) decode(count int32, v *recordVisitor) error {
	for i := int32(0); i < count; i++ {
		length, err := s.varint(maxVarint32)
		if err != nil {
			if err == io.EOF {
				return invalid(i, "no record length where %d of %d records are missing", count-i, count)
			}
			return streamError(err, i)
		}
		if length < minRecordBody {
			return invalid(i, "record length %d", length)
		}
		if err := s.readRecord(int(length)); err != nil {
			return streamError(err, i)
		}
		delta, err := parseRecordBody(s.buf, i, &v.rec, false)
		if err != nil {
			return err
		}
		if err := v.visit(i, delta); err != nil {
			return err
		}
	}
	switch _, err := s.r.ReadByte(); {
	case err == nil:
		return fmt.Errorf("%w: bytes after the last of %d records", ErrInvalidRecord, count)
	case err != io.EOF:
		return streamError(err, count)
	}
	return nil
}

// readRecord reads length bytes into buf. It grows buf as the bytes
// arrive, so that a length a corrupt stream announces costs no more memory
// than the stream really holds.
func (s *recordStream) readRecord(length int) error {
	s.buf = s.buf[:0]
	for len(s.buf) < length {
		chunk := min(length-len(s.buf), streamBuffer)
		s.buf = slices.Grow(s.buf, chunk)
		n, err := io.ReadFull(s.r, s.buf[len(s.buf):len(s.buf)+chunk])
		s.buf = s.buf[:len(s.buf)+n]
		s.n += int64(n)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}
