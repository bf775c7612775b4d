package txnlogfmt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Errors of the decoders and encoders.
var (
	// ErrMalformed: the bytes do not parse with the schema of their
	// version.
	ErrMalformed = errors.New("txnlogfmt: malformed record")
	// ErrUnknownVersion matches every *UnknownVersionError.
	ErrUnknownVersion = errors.New("txnlogfmt: unknown record version")
	// ErrTooLong: an encoder was given a string longer than an int16
	// length can carry.
	ErrTooLong = errors.New("txnlogfmt: string too long for the record")
)

// UnknownVersionError reports a key or value of a version this package
// does not read.
type UnknownVersionError struct {
	Record  string // "key" or "value"
	Version int16
}

func (e *UnknownVersionError) Error() string {
	return fmt.Sprintf("txnlogfmt: unknown %s version %d", e.Record, e.Version)
}

// Is lets errors.Is(err, ErrUnknownVersion) match.
func (e *UnknownVersionError) Is(target error) bool { return target == ErrUnknownVersion }

// reader decodes fields in order; the first failure sticks in err and every
// later read returns a zero value.
type reader struct {
	b        []byte
	record   string
	flexible bool
	err      error
}

func (r *reader) fail(field, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s: %s: %s", ErrMalformed, r.record, field, fmt.Sprintf(format, args...))
	}
}

func (r *reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail(field, "%d bytes with %d left", n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) int8(field string) int8 {
	if b := r.take(field, 1); b != nil {
		return int8(b[0])
	}
	return 0
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

// length reads a string or array length, -1 for null.
func (r *reader) length(field string, wide bool) int {
	var n int
	switch {
	case r.flexible:
		n = int(r.uvarint(field)) - 1
	case wide:
		n = int(r.int32(field))
	default:
		n = int(r.int16(field))
	}
	if r.err == nil && n < -1 {
		r.fail(field, "length %d", n)
	}
	return n
}

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

// count reads an array count; null is -1 when nullable, else refused. A
// count the bytes left cannot hold, minElem bytes an element, is refused.
func (r *reader) count(field string, minElem int, nullable bool) int {
	n := r.length(field, true)
	if r.err != nil {
		return 0
	}
	if n < 0 {
		if !nullable {
			r.fail(field, "null in a non-nullable field")
		}
		return -1
	}
	if n > len(r.b)/minElem {
		r.fail(field, "%d elements cannot fit in %d bytes", n, len(r.b))
		return 0
	}
	return n
}

// tags reads the tagged fields that end a struct in the flexible form,
// giving each to f (nil: skip them all).
func (r *reader) tags(f func(tag uint32, b []byte)) {
	if !r.flexible {
		return
	}
	n := r.uvarint("tagged fields")
	if r.err == nil && int64(n) > int64(len(r.b))/2 {
		r.fail("tagged fields", "%d tags cannot fit in %d bytes", n, len(r.b))
		return
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		tag := r.uvarint("tag")
		b := r.take("tag", int(r.uvarint("tag size")))
		if r.err == nil && f != nil {
			f(tag, b)
		}
	}
}

// writer encodes fields; the first failure sticks in err.
type writer struct {
	b        []byte
	flexible bool
	err      error
}

func (w *writer) int8(v int8)   { w.b = append(w.b, byte(v)) }
func (w *writer) int16(v int16) { w.b = binary.BigEndian.AppendUint16(w.b, uint16(v)) }
func (w *writer) int32(v int32) { w.b = binary.BigEndian.AppendUint32(w.b, uint32(v)) }
func (w *writer) int64(v int64) { w.b = binary.BigEndian.AppendUint64(w.b, uint64(v)) }

// length writes a string or array length (-1: null).
func (w *writer) length(n int, wide bool) {
	switch {
	case w.flexible:
		w.b = binary.AppendUvarint(w.b, uint64(n+1))
	case wide:
		w.int32(int32(n))
	default:
		w.int16(int16(n))
	}
}

func (w *writer) string(field, s string) {
	if len(s) > math.MaxInt16 {
		if w.err == nil {
			w.err = fmt.Errorf("%w: %s of %d bytes", ErrTooLong, field, len(s))
		}
		return
	}
	w.length(len(s), false)
	w.b = append(w.b, s...)
}
