package kwire

import (
	"errors"
	"strings"
	"testing"
)

var errBad = errors.New("test: malformed")

// TestRoundTrip: what Writer writes, Reader reads back, in both forms.
func TestRoundTrip(t *testing.T) {
	for _, flexible := range []bool{false, true} {
		s := "hello"
		w := Writer{Flexible: flexible, TooLong: errBad}
		w.Int8(-3)
		w.Int16(-300)
		w.Int32(70000)
		w.Int64(-1 << 40)
		w.String("s", "text")
		w.NullableString("n", nil)
		w.NullableString("n", &s)
		w.Bytes("b", []byte{1, 2, 3})
		w.Length(2, true)
		if w.Err != nil {
			t.Fatal(w.Err)
		}
		r := Reader{B: w.B, Flexible: flexible, Record: "test", Malformed: errBad}
		if r.Int8("a") != -3 || r.Int16("b") != -300 || r.Int32("c") != 70000 || r.Int64("d") != -1<<40 {
			t.Fatalf("flexible %v: integers read back wrong", flexible)
		}
		if r.String("s") != "text" || r.NullableString("n") != nil || *r.NullableString("n") != "hello" {
			t.Fatalf("flexible %v: strings read back wrong", flexible)
		}
		if b := r.Bytes("b"); string(b) != "\x01\x02\x03" {
			t.Fatalf("flexible %v: bytes %v", flexible, b)
		}
		if n := r.Length("l", true); n != 2 || r.Err != nil || len(r.B) != 0 {
			t.Fatalf("flexible %v: length %d, err %v, %d bytes left", flexible, n, r.Err, len(r.B))
		}
	}
}

// TestReaderRefuses: lengths past the input, nulls where none may be,
// counts the input cannot hold and bad varints fail with the sentinel,
// and the first failure sticks.
func TestReaderRefuses(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		flex bool
		read func(r *Reader)
	}{
		{"short int32", []byte{0, 1}, false, func(r *Reader) { r.Int32("x") }},
		{"string past the end", []byte{0, 9, 'a'}, false, func(r *Reader) { r.String("x") }},
		{"null string", []byte{0xff, 0xff}, false, func(r *Reader) { r.String("x") }},
		{"length below -1", []byte{0xff, 0xfe}, false, func(r *Reader) { r.Length("x", false) }},
		{"count too big", []byte{0, 0, 0, 100, 1, 2}, false, func(r *Reader) { r.Count("x", 1, false) }},
		{"null count", []byte{0xff, 0xff, 0xff, 0xff}, false, func(r *Reader) { r.Count("x", 1, false) }},
		{"bad varint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true, func(r *Reader) { r.Uvarint("x") }},
		{"tags past the end", []byte{5, 1}, true, func(r *Reader) { r.Tags(nil) }},
	}
	for _, c := range cases {
		r := Reader{B: c.b, Flexible: c.flex, Record: "rec", Malformed: errBad}
		c.read(&r)
		if !errors.Is(r.Err, errBad) || !strings.Contains(r.Err.Error(), "rec: x") && c.name != "tags past the end" {
			t.Errorf("%s: %v", c.name, r.Err)
		}
		first := r.Err
		r.Int64("later")
		if r.Err != first {
			t.Errorf("%s: a later read replaced the first failure", c.name)
		}
	}
	if n := (&Reader{B: []byte{0xff, 0xff, 0xff, 0xff}, Malformed: errBad}).Count("x", 1, true); n != -1 {
		t.Errorf("nullable null count: %d, want -1", n)
	}
}

// TestWriterTooLong: a string an int16 length cannot carry fails with the
// sentinel and writes nothing.
func TestWriterTooLong(t *testing.T) {
	w := Writer{TooLong: errBad}
	w.String("big", strings.Repeat("x", 1<<15))
	if !errors.Is(w.Err, errBad) || len(w.B) != 0 {
		t.Fatalf("err %v, %d bytes written", w.Err, len(w.B))
	}
}
