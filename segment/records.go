package segment

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/runnel-io/runnel/compression"
)

// The records section of a RecordBatch v2 (wire and disk format) follows the
// 61-byte header: recordCount records, each of them
//
//	length          varint   bytes of the record after this field
//	attributes      int8     unused
//	timestampDelta  varlong  from baseTimestamp
//	offsetDelta     varint   from baseOffset: 0, 1, … in order as producers
//	                         write them; increasing, with gaps, in a batch
//	                         the log cleaner rewrote (ForEachRecord reads both)
//	keyLength       varint   negative: a null key
//	key             keyLength bytes
//	valueLength     varint   negative: a null value
//	value           valueLength bytes
//	headerCount     varint   never negative
//	headers         headerCount × (keyLength varint >= 0, key,
//	                               valueLength varint (negative: null), value)
//
// with zigzag varints of at most 5 bytes (int32) and varlongs of at most 10
// (int64). In a compressed batch the section is that sequence compressed
// with the codec the attributes name.

// Errors of ValidateRecords. Each wraps the reason and the record's index.
var (
	// ErrInvalidRecord: the records do not parse, or do not agree with
	// the header (count, offset deltas), or bytes follow the last one.
	ErrInvalidRecord = errors.New("segment: invalid record in batch")
	// ErrRecordsCodec: the records section is not valid data of the codec
	// the batch attributes name.
	ErrRecordsCodec = errors.New("segment: compressed records do not decompress")
	// ErrRecordsTooLarge: a compressed records section inflates past the
	// limit given to ValidateRecords.
	ErrRecordsTooLarge = errors.New("segment: compressed records inflate past the limit")
	// ErrNullKey: a record without a key, for a compacted topic
	// (ValidateKeyedRecords). It matches ErrInvalidRecord too.
	ErrNullKey = fmt.Errorf("%w: a compacted topic takes no record without a key", ErrInvalidRecord)
)

// Smallest encodings, used to refuse counts that cannot fit before walking.
const (
	minRecordBody = 6 // attributes, four one-byte varints, headerCount
	maxVarint32   = 5
	maxVarint64   = binary.MaxVarintLen64
)

// ValidateRecords walks the records of batch, whose header h was parsed
// from it (ParseHeader or Validate), and checks them against the header as
// Kafka's broker does before an append: every record parses with the
// lengths it declares, offset deltas run 0, 1, … in order, there are exactly
// recordCount of them and nothing follows. A compressed section is
// decompressed as a stream, never held whole, and refused once it inflates
// past maxDecompressed bytes. batch must hold exactly the one batch.
//
// An uncompressed batch is walked in place without allocating.
func ValidateRecords(batch []byte, h *Header, maxDecompressed int64) error {
	return checkRecords(batch, h, maxDecompressed, false)
}

// ValidateKeyedRecords is ValidateRecords for a compacted topic: a record
// with a null key is refused too (ErrNullKey), in the same walk.
func ValidateKeyedRecords(batch []byte, h *Header, maxDecompressed int64) error {
	return checkRecords(batch, h, maxDecompressed, true)
}

func checkRecords(batch []byte, h *Header, maxDecompressed int64, keyed bool) error {
	if len(batch) != h.Size() || len(batch) < HeaderSize {
		return fmt.Errorf("%w: %d bytes for a %d-byte batch", ErrShortBatch, len(batch), h.Size())
	}
	if int64(h.RecordCount) != int64(h.LastOffsetDelta)+1 {
		return fmt.Errorf("%w: %d records, last offset delta %d", ErrInvalidRecord, h.RecordCount, h.LastOffsetDelta)
	}
	records := batch[HeaderSize:]
	codec := h.Compression()
	if codec == compression.None {
		return walkRecordBytes(records, h.RecordCount, nil, keyed)
	}
	rc, err := compression.NewReader(int8(codec), records, maxDecompressed)
	if err != nil {
		return streamError(err, 0)
	}
	defer rc.Close()
	s := streamPool.Get().(*recordStream)
	s.r.Reset(rc)
	s.keyed = keyed
	err = s.walk(h.RecordCount)
	s.r.Reset(nil)
	streamPool.Put(s)
	return err
}

// walkRecordBytes walks count uncompressed records filling b exactly. With
// v nil it checks them for ValidateRecords: offset deltas 0, 1, … With v
// set it decodes each into v.rec and hands it to v (ForEachRecord). keyed
// refuses a null key.
func walkRecordBytes(b []byte, count int32, v *recordVisitor, keyed bool) error {
	if int64(count) > int64(len(b))/(minRecordBody+1) {
		return fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrInvalidRecord, count, len(b))
	}
	var rec *Record
	if v != nil {
		rec = &v.rec
	}
	pos := 0
	for i := int32(0); i < count; i++ {
		length, n := varint(b[pos:], maxVarint32)
		if n <= 0 {
			return invalid(i, "no record length where %d of %d records are missing", count-i, count)
		}
		pos += n
		if length < minRecordBody || length > int64(len(b)-pos) {
			return invalid(i, "record length %d with %d bytes left", length, len(b)-pos)
		}
		delta, err := parseRecordBody(b[pos:pos+int(length)], i, rec, keyed)
		if err != nil {
			return err
		}
		if v == nil {
			if delta != int64(i) {
				return invalid(i, "offset delta %d", delta)
			}
		} else if err := v.visit(i, delta); err != nil {
			return err
		}
		pos += int(length)
	}
	if pos != len(b) {
		return fmt.Errorf("%w: %d bytes after the last of %d records", ErrInvalidRecord, len(b)-pos, count)
	}
	return nil
}

// Fields of a record after attributes, in order; the last two repeat for
// every header.
const (
	fieldTimestampDelta = iota
	fieldOffsetDelta
	fieldKey
	fieldValue
	fieldHeaderCount
	fieldHeaderKey
	fieldHeaderValue
)

// parseRecordBody checks the fields of record i, body being the length
// bytes its length field announced, and returns its offset delta. With rec
// set it also fills rec: Timestamp with the timestamp delta, Key, Value and
// Headers with slices of body (capacity cut to their length), nil for a
// null. It decodes every varint in one loop, without calls, as the produce
// path runs it for every record.
// keyed refuses a null key.
func parseRecordBody(body []byte, i int32, rec *Record, keyed bool) (offsetDelta int64, err error) {
	p := 1 // attributes
	headers := int64(0)
	for field := fieldTimestampDelta; ; {
		maxLen := maxVarint32
		if field == fieldTimestampDelta {
			maxLen = maxVarint64
		}
		if p >= len(body) {
			return 0, invalid(i, "the record ends before field %d", field)
		}
		u := uint64(body[p])
		p++
		if u >= 0x80 { // more bytes: most fields of most records have one
			u &= 0x7f
			for k := uint(1); ; k++ {
				if p >= len(body) || k == uint(maxLen) {
					return 0, invalid(i, "a varint field (%d) cut short or too long", field)
				}
				c := body[p]
				p++
				u |= uint64(c&0x7f) << (7 * k)
				if c < 0x80 {
					break
				}
			}
		}
		v := int64(u>>1) ^ -int64(u&1)
		if maxLen == maxVarint32 && (v < -1<<31 || v > 1<<31-1) {
			return 0, invalid(i, "varint field (%d) %d out of int32 range", field, v)
		}
		switch field {
		case fieldTimestampDelta:
			if rec != nil {
				rec.Timestamp = v
			}
		case fieldOffsetDelta:
			offsetDelta = v
		case fieldKey, fieldValue, fieldHeaderKey, fieldHeaderValue:
			if v < 0 && field == fieldHeaderKey {
				return 0, invalid(i, "header key length %d", v)
			}
			if v < 0 && field == fieldKey && keyed {
				return 0, fmt.Errorf("%w: record %d", ErrNullKey, i)
			}
			if v > int64(len(body)-p) {
				return 0, invalid(i, "a field of %d bytes with %d left in the record", v, len(body)-p)
			}
			if rec != nil {
				var f []byte // null
				if v >= 0 {
					f = body[p : p+int(v) : p+int(v)]
				}
				switch field {
				case fieldKey:
					rec.Key = f
				case fieldValue:
					rec.Value = f
				case fieldHeaderKey:
					rec.Headers = append(rec.Headers, RecordHeader{Key: f})
				default:
					rec.Headers[len(rec.Headers)-1].Value = f
				}
			}
			if v > 0 {
				p += int(v)
			}
		case fieldHeaderCount:
			if v < 0 {
				return 0, invalid(i, "header count %d", v)
			}
			headers = v
			if rec != nil {
				rec.Headers = rec.Headers[:0]
			}
		}
		// The next field.
		switch {
		case field < fieldHeaderCount:
			field++
		case headers == 0:
			if p != len(body) {
				return 0, invalid(i, "fields end after %d of the record's %d bytes", p, len(body))
			}
			return offsetDelta, nil
		case field == fieldHeaderValue:
			headers--
			field = fieldHeaderKey
			if headers == 0 {
				if p != len(body) {
					return 0, invalid(i, "fields end after %d of the record's %d bytes", p, len(body))
				}
				return offsetDelta, nil
			}
		default: // header count or header key
			field++
		}
	}
}

// varint decodes a zigzag varint of at most maxLen bytes that fits the
// range maxLen implies; n <= 0 if there is none.
func varint(b []byte, maxLen int) (v int64, n int) {
	v, n = binary.Varint(b)
	if n > maxLen || (maxLen == maxVarint32 && (v < -1<<31 || v > 1<<31-1)) {
		return 0, -1
	}
	return v, n
}

// invalid builds an ErrInvalidRecord for record i. It runs only on refusals.
func invalid(i int32, format string, args ...any) error {
	return fmt.Errorf("%w: record %d: %s", ErrInvalidRecord, i, fmt.Sprintf(format, args...))
}

// streamBuffer is the read buffer of a decompressed records stream.
const streamBuffer = 16 << 10

var streamPool = sync.Pool{New: func() any {
	return &recordStream{r: bufio.NewReaderSize(nil, streamBuffer)}
}}

// recordStream walks decompressed records as they are produced, skipping
// keys and values without keeping them.
type recordStream struct {
	r     *bufio.Reader
	n     int64  // bytes consumed
	buf   []byte // the record being decoded, for ForEachRecord
	keyed bool   // walk: a null key is refused
}

func (s *recordStream) walk(count int32) error {
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
		start := s.n
		if err := s.body(i); err != nil {
			return streamError(err, i)
		}
		if got := s.n - start; got != length {
			return invalid(i, "fields take %d bytes, the record length says %d", got, length)
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

// body reads the fields of record i after its length.
func (s *recordStream) body(i int32) error {
	if _, err := s.readByte(); err != nil { // attributes
		return err
	}
	if _, err := s.varint(maxVarint64); err != nil {
		return err
	}
	delta, err := s.varint(maxVarint32)
	if err != nil {
		return err
	}
	if delta != int64(i) {
		return invalid(i, "offset delta %d", delta)
	}
	for f := 0; f < 2; f++ { // key, value
		null, err := s.lengthAndSkip(false)
		if err != nil {
			return err
		}
		if null && f == 0 && s.keyed {
			return fmt.Errorf("%w: record %d", ErrNullKey, i)
		}
	}
	headers, err := s.varint(maxVarint32)
	if err != nil {
		return err
	}
	if headers < 0 {
		return invalid(i, "header count %d", headers)
	}
	for j := int64(0); j < headers; j++ {
		if _, err := s.lengthAndSkip(true); err != nil {
			return err
		}
		if _, err := s.lengthAndSkip(false); err != nil {
			return err
		}
	}
	return nil
}

// lengthAndSkip reads a length and skips that many bytes; null reports a
// negative length (a null field).
func (s *recordStream) lengthAndSkip(nonNegative bool) (null bool, err error) {
	l, err := s.varint(maxVarint32)
	if err != nil {
		return false, err
	}
	if l < 0 {
		if nonNegative {
			return true, fmt.Errorf("%w: negative header key length %d", ErrInvalidRecord, l)
		}
		return true, nil
	}
	d, err := s.r.Discard(int(l))
	s.n += int64(d)
	return false, err
}

func (s *recordStream) readByte() (byte, error) {
	b, err := s.r.ReadByte()
	if err == nil {
		s.n++
	}
	return b, err
}

// varint reads a zigzag varint of at most maxLen bytes.
func (s *recordStream) varint(maxLen int) (int64, error) {
	var u uint64
	for k := 0; k < maxLen; k++ {
		c, err := s.readByte()
		if err != nil {
			if k > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		u |= uint64(c&0x7f) << (7 * k)
		if c < 0x80 {
			v := int64(u>>1) ^ -int64(u&1)
			if maxLen == maxVarint32 && (v < -1<<31 || v > 1<<31-1) {
				return 0, fmt.Errorf("%w: varint out of int32 range", ErrInvalidRecord)
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: varint longer than %d bytes", ErrInvalidRecord, maxLen)
}

// streamError names what went wrong reading record i of a compressed stream.
func streamError(err error, i int32) error {
	switch {
	case errors.Is(err, ErrInvalidRecord):
		return err
	case errors.Is(err, compression.ErrTooLarge):
		return fmt.Errorf("%w: at record %d: %w", ErrRecordsTooLarge, i, err)
	case errors.Is(err, compression.ErrCorrupt):
		return fmt.Errorf("%w: at record %d: %w", ErrRecordsCodec, i, err)
	case err == io.EOF, err == io.ErrUnexpectedEOF:
		return invalid(i, "the records end inside it")
	}
	return fmt.Errorf("%w: at record %d: %w", ErrRecordsCodec, i, err)
}
