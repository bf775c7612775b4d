package offsetsfmt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Errors of the decoders and encoders.
var (
	// ErrMalformed: the bytes do not parse with the schema of their
	// version (a length or count past the input, a null where the schema
	// allows none, a negative count).
	ErrMalformed = errors.New("offsetsfmt: malformed record")
	// ErrUnknownVersion matches every *UnknownVersionError.
	ErrUnknownVersion = errors.New("offsetsfmt: unknown record version")
	// ErrTooLong: an encoder was given a string longer than an int16
	// length can carry (or bytes longer than an int32 one).
	ErrTooLong = errors.New("offsetsfmt: string too long for the record")
)

// UnknownVersionError reports a key or value whose version this package does
// not read. Kafka writes keys of versions above 2 for its newer group types;
// a loader skips such records with a log line.
type UnknownVersionError struct {
	Record  string // "key", "offset commit value" or "group metadata value"
	Version int16
}

func (e *UnknownVersionError) Error() string {
	return fmt.Sprintf("offsetsfmt: unknown %s version %d", e.Record, e.Version)
}

// Is lets errors.Is(err, ErrUnknownVersion) match.
func (e *UnknownVersionError) Is(target error) bool { return target == ErrUnknownVersion }

// reader decodes fields in order; the first failure sticks in err and every
// later read returns a zero value.
type reader struct {
	b        []byte
	record   string // what is being read, for errors
	flexible bool   // compact lengths and tagged fields (version 4)
	err      error
}

func (r *reader) fail(field, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s: %s: %s", ErrMalformed, r.record, field, fmt.Sprintf(format, args...))
	}
}

// take returns the next n bytes, or nil after a failure.
func (r *reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.fail(field, "%d bytes with %d left", n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) int16(field string) int16 {
	if b := r.take(field, 2); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (r *reader) int32(field string) int32 {
	if b := r.take(field, 4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (r *reader) int64(field string) int64 {
	if b := r.take(field, 8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

// uvarint reads an unsigned varint of at most 32 bits.
func (r *reader) uvarint(field string) uint32 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n > binary.MaxVarintLen32 || v > math.MaxUint32 {
		r.fail(field, "no unsigned varint")
		return 0
	}
	r.b = r.b[n:]
	return uint32(v)
}

// length reads a string, bytes or array length: -1 (null) or more. In the
// flexible form that is an unsigned varint of length+1; otherwise an int16
// for strings or an int32 for bytes and arrays.
func (r *reader) length(field string, wide bool) int {
	switch {
	case r.flexible:
		return int(r.uvarint(field)) - 1
	case wide:
		n := int(r.int32(field))
		if n < -1 {
			r.fail(field, "length %d", n)
		}
		return n
	default:
		n := int(r.int16(field))
		if n < -1 {
			r.fail(field, "length %d", n)
		}
		return n
	}
}

// nullableString reads a string that may be null (nil).
func (r *reader) nullableString(field string) *string {
	n := r.length(field, false)
	if r.err != nil || n < 0 {
		return nil
	}
	s := string(r.take(field, n))
	return &s
}

// string reads a string that must not be null.
func (r *reader) string(field string) string {
	n := r.length(field, false)
	if r.err == nil && n < 0 {
		r.fail(field, "null in a non-nullable field")
	}
	if r.err != nil {
		return ""
	}
	return string(r.take(field, n))
}

// bytes reads bytes that must not be null, copied.
func (r *reader) bytes(field string) []byte {
	n := r.length(field, true)
	if r.err == nil && n < 0 {
		r.fail(field, "null in a non-nullable field")
	}
	b := r.take(field, max(n, 0))
	if r.err != nil {
		return nil
	}
	return append([]byte{}, b...)
}

// count reads an array count that must not be null, and refuses one that
// cannot fit in the bytes left when each element takes at least minElem.
func (r *reader) count(field string, minElem int) int {
	n := r.length(field, true)
	if r.err != nil {
		return 0
	}
	if n < 0 {
		r.fail(field, "null or negative count %d", n)
		return 0
	}
	if n > len(r.b)/minElem {
		r.fail(field, "%d elements cannot fit in %d bytes", n, len(r.b))
		return 0
	}
	return n
}

// tags skips the tagged fields that end a struct in the flexible form.
func (r *reader) tags() {
	if !r.flexible {
		return
	}
	n := r.uvarint("tagged fields")
	if r.err == nil && int64(n) > int64(len(r.b))/2 {
		r.fail("tagged fields", "%d tags cannot fit in %d bytes", n, len(r.b))
		return
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.uvarint("tag")
		r.take("tag", int(r.uvarint("tag size")))
	}
}

// writer encodes fields in the non-flexible form, the only one the
// encoders write; the first failure sticks in err.
type writer struct {
	b   []byte
	err error
}

func (w *writer) int16(v int16) { w.b = binary.BigEndian.AppendUint16(w.b, uint16(v)) }
func (w *writer) int32(v int32) { w.b = binary.BigEndian.AppendUint32(w.b, uint32(v)) }
func (w *writer) int64(v int64) { w.b = binary.BigEndian.AppendUint64(w.b, uint64(v)) }

func (w *writer) string(field, s string) {
	if len(s) > math.MaxInt16 {
		if w.err == nil {
			w.err = fmt.Errorf("%w: %s of %d bytes", ErrTooLong, field, len(s))
		}
		return
	}
	w.int16(int16(len(s)))
	w.b = append(w.b, s...)
}

func (w *writer) nullableString(field string, s *string) {
	if s == nil {
		w.int16(-1)
		return
	}
	w.string(field, *s)
}

func (w *writer) bytes(field string, b []byte) {
	if len(b) > math.MaxInt32 {
		if w.err == nil {
			w.err = fmt.Errorf("%w: %s of %d bytes", ErrTooLong, field, len(b))
		}
		return
	}
	w.int32(int32(len(b)))
	w.b = append(w.b, b...)
}
