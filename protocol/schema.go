// Package protocol checks Kafka request bodies against runnel's own
// description of each request's schema before anything decodes them.
//
// A request body is untrusted bytes. A decoder that believes a count it read
// (an array length, a tagged-field count) before it knows the bytes are there
// can be made to loop or allocate far beyond the size of the frame. Check
// walks a body field by field, bounds every count by the bytes left, and
// stops at the first field that does not fit. It allocates nothing. Only a
// body that walks cleanly is handed to a decoder, and that decoder then reads
// exactly the structure that was walked.
//
// The schemas follow the Kafka protocol's message definitions: each field
// has the versions it is present in, flexible versions (KIP-482) use compact
// lengths and end every structure with a tagged-field section, and tagged
// fields known to a version are walked inside their declared size.
package protocol

import (
	"errors"
	"fmt"
	"math"
)

// Errors from Check.
var (
	// ErrUnknownRequest: there is no schema for this API key and version.
	ErrUnknownRequest = errors.New("protocol: no schema for request")
	// ErrMalformed: the body does not match the schema. The wrapping error
	// names the field and the byte position.
	ErrMalformed = errors.New("protocol: malformed request body")
)

type kind uint8

const (
	kBool kind = iota + 1
	kInt8
	kInt16
	kInt32
	kInt64
	kFloat64
	kUUID
	kString
	kNullableString
	kBytes
	kNullableBytes
	kArray   // of a primitive: elem[0] is the element, no tags per element
	kStructs // array of structures: elem are the fields of each element
	kStruct  // a single nested structure (only as a tagged field)
)

// field is one field of a request schema.
type field struct {
	name     string
	kind     kind
	min, max int16 // versions the field is present in
	tag      int32 // tagged field number, or -1
	elem     []field
}

func newField(name string, k kind) field {
	return field{name: name, kind: k, max: math.MaxInt16, tag: -1}
}

// since returns f present from version v on.
func (f field) since(v int16) field { f.min = v; return f }

// until returns f present up to and including version v.
func (f field) until(v int16) field { f.max = v; return f }

// tagged returns f as tagged field number t.
// Known tagged fields are walked at every flexible version, whatever the
// version their definition names: a decoder that knows a tag reads it
// wherever it appears, so the walk must too.
func (f field) tagged(t int32) field { f.tag = t; return f }

func (f field) in(v int16) bool { return v >= f.min && v <= f.max }

func boolean(name string) field   { return newField(name, kBool) }
func int8f(name string) field     { return newField(name, kInt8) }
func int16f(name string) field    { return newField(name, kInt16) }
func int32f(name string) field    { return newField(name, kInt32) }
func int64f(name string) field    { return newField(name, kInt64) }
func float64f(name string) field  { return newField(name, kFloat64) }
func uuid(name string) field      { return newField(name, kUUID) }
func str(name string) field       { return newField(name, kString) }
func nullStr(name string) field   { return newField(name, kNullableString) }
func bytesf(name string) field    { return newField(name, kBytes) }
func nullBytes(name string) field { return newField(name, kNullableBytes) }

// array is an array of one primitive.
func array(name string, elem field) field {
	f := newField(name, kArray)
	f.elem = []field{elem}
	return f
}

// structs is an array of structures with the given fields.
func structs(name string, fields ...field) field {
	f := newField(name, kStructs)
	f.elem = fields
	return f
}

// object is a single nested structure; requests carry these only as tagged
// fields.
func object(name string, fields ...field) field {
	f := newField(name, kStruct)
	f.elem = fields
	return f
}

// request is one API's schema over every version runnel may be asked to
// check.
type request struct {
	name         string
	min, max     int16 // versions described
	flexibleFrom int16
	fields       []field
}

// Check reports whether body is a well-formed request for key at version.
// Bytes after the last field are allowed, as Kafka's own parsers allow them.
func Check(key, version int16, body []byte) error {
	r, ok := requests[key]
	if !ok || version < r.min || version > r.max {
		return fmt.Errorf("%w: key %d version %d", ErrUnknownRequest, key, version)
	}
	w := walker{src: body, version: version, flexible: version >= r.flexibleFrom}
	if err := w.structure(r.fields); err != nil {
		return fmt.Errorf("%w: %s v%d: %v", ErrMalformed, r.name, version, err)
	}
	return nil
}

// Versions returns the versions Check describes for key.
func Versions(key int16) (min, max int16, ok bool) {
	r, ok := requests[key]
	return r.min, r.max, ok
}

// walker reads a body without decoding it.
type walker struct {
	src      []byte
	pos      int
	version  int16
	flexible bool
}

type walkError struct {
	field string
	pos   int
	what  string
}

func (e *walkError) Error() string {
	return fmt.Sprintf("field %s at byte %d: %s", e.field, e.pos, e.what)
}

func (w *walker) fail(f *field, what string) error {
	return &walkError{field: f.name, pos: w.pos, what: what}
}

func (w *walker) left() int { return len(w.src) - w.pos }

func (w *walker) skip(f *field, n int) error {
	if n < 0 || n > w.left() {
		return w.fail(f, fmt.Sprintf("needs %d bytes, %d left", n, w.left()))
	}
	w.pos += n
	return nil
}

func (w *walker) int16v(f *field) (int16, error) {
	if w.left() < 2 {
		return 0, w.fail(f, "truncated")
	}
	v := int16(uint16(w.src[w.pos])<<8 | uint16(w.src[w.pos+1]))
	w.pos += 2
	return v, nil
}

func (w *walker) int32v(f *field) (int32, error) {
	if w.left() < 4 {
		return 0, w.fail(f, "truncated")
	}
	b := w.src[w.pos:]
	v := int32(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
	w.pos += 4
	return v, nil
}

// uvarint reads an unsigned varint of at most 32 bits: at most five bytes,
// the fifth no larger than 0x0f.
func (w *walker) uvarint(f *field) (uint32, error) {
	var x uint32
	for i := 0; i < 5; i++ {
		if w.pos >= len(w.src) {
			return 0, w.fail(f, "truncated varint")
		}
		c := w.src[w.pos]
		w.pos++
		if i == 4 {
			if c > 0x0f {
				return 0, w.fail(f, "varint overflows 32 bits")
			}
			return x | uint32(c)<<28, nil
		}
		x |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return x, nil
		}
	}
	panic("unreachable")
}

// length reads the length of a string, bytes or array: compact (varint,
// plus one) in flexible versions, fixed-width otherwise. It returns -1 for
// null.
func (w *walker) length(f *field, wide bool) (int, error) {
	if w.flexible {
		n, err := w.uvarint(f)
		if err != nil {
			return 0, err
		}
		return int(n) - 1, nil
	}
	if wide {
		n, err := w.int32v(f)
		return int(n), err
	}
	n, err := w.int16v(f)
	return int(n), err
}

func (w *walker) structure(fields []field) error {
	for i := range fields {
		f := &fields[i]
		if f.tag >= 0 || !f.in(w.version) {
			continue
		}
		if err := w.value(f); err != nil {
			return err
		}
	}
	if w.flexible {
		return w.tags(fields)
	}
	return nil
}

func (w *walker) value(f *field) error {
	switch f.kind {
	case kBool, kInt8:
		return w.skip(f, 1)
	case kInt16:
		return w.skip(f, 2)
	case kInt32:
		return w.skip(f, 4)
	case kInt64, kFloat64:
		return w.skip(f, 8)
	case kUUID:
		return w.skip(f, 16)
	case kString, kNullableString:
		n, err := w.length(f, false)
		if err != nil {
			return err
		}
		if n == -1 && f.kind == kNullableString {
			return nil
		}
		if n < 0 {
			return w.fail(f, fmt.Sprintf("string length %d", n))
		}
		return w.skip(f, n)
	case kBytes, kNullableBytes:
		n, err := w.length(f, true)
		if err != nil {
			return err
		}
		if n == -1 {
			return nil
		}
		if n < 0 {
			return w.fail(f, fmt.Sprintf("bytes length %d", n))
		}
		return w.skip(f, n)
	case kArray, kStructs:
		n, err := w.length(f, true)
		if err != nil {
			return err
		}
		if n == -1 {
			return nil // null: as empty for a non-nullable array, as Kafka's clients decode it
		}
		// Every element takes at least one byte, so a count larger than
		// the bytes left is a lie told before any element is read.
		if n < 0 || n > w.left() {
			return w.fail(f, fmt.Sprintf("array of %d elements with %d bytes left", n, w.left()))
		}
		for i := 0; i < n; i++ {
			if f.kind == kArray {
				err = w.value(&f.elem[0])
			} else {
				err = w.structure(f.elem)
			}
			if err != nil {
				return err
			}
		}
		return nil
	case kStruct:
		return w.structure(f.elem)
	}
	panic(fmt.Sprintf("protocol: field %s has no kind", f.name))
}

// tags walks a tagged-field section: a count, then per field its number,
// its size and that many bytes. A field the schema knows at this version is
// walked inside its size; others are skipped.
func (w *walker) tags(fields []field) error {
	section := field{name: "tagged fields"}
	count, err := w.uvarint(&section)
	if err != nil {
		return err
	}
	// A tagged field takes at least two bytes: its number and its size.
	if int(count) > w.left()/2 {
		return w.fail(&section, fmt.Sprintf("%d tagged fields with %d bytes left", count, w.left()))
	}
	for i := uint32(0); i < count; i++ {
		tag, err := w.uvarint(&section)
		if err != nil {
			return err
		}
		size, err := w.uvarint(&section)
		if err != nil {
			return err
		}
		start := w.pos
		if err := w.skip(&section, int(size)); err != nil {
			return err
		}
		known := knownTag(fields, tag)
		if known == nil {
			continue
		}
		inner := walker{src: w.src[start : start+int(size)], version: w.version, flexible: true}
		if err := inner.value(known); err != nil {
			return fmt.Errorf("tagged field %d: %w", tag, err)
		}
	}
	return nil
}

func knownTag(fields []field, tag uint32) *field {
	for i := range fields {
		if f := &fields[i]; f.tag >= 0 && uint32(f.tag) == tag {
			return f
		}
	}
	return nil
}
