package txnlogfmt

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func checkError(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, ErrMalformed) == errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("error %v is not exactly one of ErrMalformed, ErrUnknownVersion", err)
	}
}

// FuzzDecodeKey: any bytes decode or are refused; what decodes encodes back
// to the same id.
func FuzzDecodeKey(f *testing.F) {
	f.Add(goldenKey(f))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0x7f, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte{}, b...)
		id, err := DecodeKey(in)
		if !bytes.Equal(in, b) {
			t.Fatal("DecodeKey modified its input")
		}
		if err != nil {
			checkError(t, err)
			return
		}
		out, err := AppendKey(nil, id)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := DecodeKey(out); err != nil || again != id {
			t.Fatalf("re-encoded key %q, %v; want %q", again, err, id)
		}
	})
}

// FuzzDecodeValue: any bytes decode or are refused, without aliasing the
// input; what decodes encodes back to the same value in both versions.
func FuzzDecodeValue(f *testing.F) {
	for _, b := range [][]byte{goldenV0(f), goldenV1(f)} {
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte{}, b...)
		v, tomb, err := DecodeValue(in)
		if !bytes.Equal(in, b) {
			t.Fatal("DecodeValue modified its input")
		}
		if err != nil {
			checkError(t, err)
			return
		}
		if tomb {
			t.Fatal("non-nil bytes decoded as a tombstone")
		}
		for i := range in {
			in[i] ^= 0xff // what was decoded must not change with the input
		}
		out, err := AppendValue(nil, &v)
		if err != nil {
			t.Fatal(err)
		}
		again, _, err := DecodeValue(out)
		if err != nil || !reflect.DeepEqual(again, v) {
			t.Fatalf("re-encoded value %+v, %v; want %+v", again, err, v)
		}
	})
}
