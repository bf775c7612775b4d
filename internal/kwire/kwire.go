// Package kwire reads and writes the fields of Kafka's generated message
// schemas as Kafka encodes them: big-endian integers, int16- or
// int32-prefixed strings and arrays (or, in the flexible form of newer
// versions, unsigned-varint lengths plus one and tagged fields). The
// record codecs of the internal topics (group/offsetsfmt for
// __consumer_offsets, coordinator/txns/txnlogfmt for __transaction_state)
// build on it; each gives its own sentinel errors, so a caller matches
// errors.Is against the codec it used.
//
// Decoding is for untrusted bytes: every length and count is checked
// against the bytes left before anything is allocated, and the first
// failure sticks, every later read returning a zero value.
package kwire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Reader decodes fields in order. Set B, Record (what is read, for
// errors), Flexible and Malformed (the sentinel every failure wraps).
type Reader struct {
	B         []byte
	Record    string
	Flexible  bool
	Malformed error
	Err       error // the first failure
}

// Fail records a failure of field, unless one is recorded already.
func (r *Reader) Fail(field, format string, args ...any) {
	if r.Err == nil {
		r.Err = fmt.Errorf("%w: %s: %s: %s", r.Malformed, r.Record, field, fmt.Sprintf(format, args...))
	}
}

// Take returns the next n bytes, or nil after a failure.
func (r *Reader) Take(field string, n int) []byte {
	if r.Err != nil {
		return nil
	}
	if n < 0 || n > len(r.B) {
		r.Fail(field, "%d bytes with %d left", n, len(r.B))
		return nil
	}
	out := r.B[:n:n]
	r.B = r.B[n:]
	return out
}

// Int8 reads an int8.
func (r *Reader) Int8(field string) int8 {
	if b := r.Take(field, 1); b != nil {
		return int8(b[0])
	}
	return 0
}

// Int16 reads an int16.
func (r *Reader) Int16(field string) int16 {
	if b := r.Take(field, 2); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

// Int32 reads an int32.
func (r *Reader) Int32(field string) int32 {
	if b := r.Take(field, 4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

// Int64 reads an int64.
func (r *Reader) Int64(field string) int64 {
	if b := r.Take(field, 8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

// Uvarint reads an unsigned varint of at most 32 bits.
func (r *Reader) Uvarint(field string) uint32 {
	if r.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.B)
	if n <= 0 || n > binary.MaxVarintLen32 || v > math.MaxUint32 {
		r.Fail(field, "no unsigned varint")
		return 0
	}
	r.B = r.B[n:]
	return uint32(v)
}

// Length reads a string, bytes or array length: -1 (null) or more. In the
// flexible form that is an unsigned varint of length+1; otherwise an int16
// for strings (wide false) or an int32 for bytes and arrays.
func (r *Reader) Length(field string, wide bool) int {
	var n int
	switch {
	case r.Flexible:
		n = int(r.Uvarint(field)) - 1
	case wide:
		n = int(r.Int32(field))
	default:
		n = int(r.Int16(field))
	}
	if r.Err == nil && n < -1 {
		r.Fail(field, "length %d", n)
	}
	return n
}

// NullableString reads a string that may be null (nil).
func (r *Reader) NullableString(field string) *string {
	n := r.Length(field, false)
	if r.Err != nil || n < 0 {
		return nil
	}
	s := string(r.Take(field, n))
	return &s
}

// String reads a string that must not be null.
func (r *Reader) String(field string) string {
	n := r.Length(field, false)
	if r.Err == nil && n < 0 {
		r.Fail(field, "null in a non-nullable field")
	}
	if r.Err != nil {
		return ""
	}
	return string(r.Take(field, n))
}

// Bytes reads bytes that must not be null, copied.
func (r *Reader) Bytes(field string) []byte {
	n := r.Length(field, true)
	if r.Err == nil && n < 0 {
		r.Fail(field, "null in a non-nullable field")
	}
	b := r.Take(field, max(n, 0))
	if r.Err != nil {
		return nil
	}
	return append([]byte{}, b...)
}

// Count reads an array count. A null one is -1 when nullable, refused
// otherwise; one the bytes left cannot hold, each element taking at least
// minElem bytes, is refused.
func (r *Reader) Count(field string, minElem int, nullable bool) int {
	n := r.Length(field, true)
	if r.Err != nil {
		return 0
	}
	if n < 0 {
		if !nullable {
			r.Fail(field, "null or negative count %d", n)
			return 0
		}
		return -1
	}
	if n > len(r.B)/minElem {
		r.Fail(field, "%d elements cannot fit in %d bytes", n, len(r.B))
		return 0
	}
	return n
}

// Tags reads the tagged fields that end a struct in the flexible form,
// giving each to f (nil: skip them all).
func (r *Reader) Tags(f func(tag uint32, b []byte)) {
	if !r.Flexible {
		return
	}
	n := r.Uvarint("tagged fields")
	if r.Err == nil && int64(n) > int64(len(r.B))/2 {
		r.Fail("tagged fields", "%d tags cannot fit in %d bytes", n, len(r.B))
		return
	}
	for i := uint32(0); i < n && r.Err == nil; i++ {
		tag := r.Uvarint("tag")
		b := r.Take("tag", int(r.Uvarint("tag size")))
		if r.Err == nil && f != nil {
			f(tag, b)
		}
	}
}

// Writer encodes fields. Set B (appended to), Flexible and TooLong (the
// sentinel of a string or bytes too long for its length).
type Writer struct {
	B        []byte
	Flexible bool
	TooLong  error
	Err      error // the first failure
}

// Int8 writes an int8.
func (w *Writer) Int8(v int8) { w.B = append(w.B, byte(v)) }

// Int16 writes an int16.
func (w *Writer) Int16(v int16) { w.B = binary.BigEndian.AppendUint16(w.B, uint16(v)) }

// Int32 writes an int32.
func (w *Writer) Int32(v int32) { w.B = binary.BigEndian.AppendUint32(w.B, uint32(v)) }

// Int64 writes an int64.
func (w *Writer) Int64(v int64) { w.B = binary.BigEndian.AppendUint64(w.B, uint64(v)) }

// Uvarint writes an unsigned varint.
func (w *Writer) Uvarint(v uint64) { w.B = binary.AppendUvarint(w.B, v) }

// Length writes a string, bytes or array length (-1: null), as Reader.Length
// reads it.
func (w *Writer) Length(n int, wide bool) {
	switch {
	case w.Flexible:
		w.Uvarint(uint64(n + 1))
	case wide:
		w.Int32(int32(n))
	default:
		w.Int16(int16(n))
	}
}

func (w *Writer) tooLong(field string, n int) {
	if w.Err == nil {
		w.Err = fmt.Errorf("%w: %s of %d bytes", w.TooLong, field, n)
	}
}

// String writes a string; one longer than an int16 length can carry fails.
func (w *Writer) String(field, s string) {
	if len(s) > math.MaxInt16 {
		w.tooLong(field, len(s))
		return
	}
	w.Length(len(s), false)
	w.B = append(w.B, s...)
}

// NullableString writes a string that may be null (nil).
func (w *Writer) NullableString(field string, s *string) {
	if s == nil {
		w.Length(-1, false)
		return
	}
	w.String(field, *s)
}

// Bytes writes bytes; more than an int32 length can carry fails.
func (w *Writer) Bytes(field string, b []byte) {
	if len(b) > math.MaxInt32 {
		w.tooLong(field, len(b))
		return
	}
	w.Length(len(b), true)
	w.B = append(w.B, b...)
}
