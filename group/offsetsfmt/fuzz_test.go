package offsetsfmt

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func addSeeds(f *testing.F, prefix string) {
	for _, g := range goldenRecords() {
		if bytes.HasPrefix([]byte(g.name), []byte(prefix)) || (prefix == "key" && bytes.Contains([]byte(g.name), []byte("key"))) {
			f.Add(g.bytes)
			f.Add(g.bytes[:len(g.bytes)/2])
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0, 4, 0x7f, 0xff, 0xff, 0xff})
}

// checkError fails unless err is exactly one of the package's refusals.
func checkError(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, ErrMalformed) == errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("error %v is not exactly one of ErrMalformed, ErrUnknownVersion", err)
	}
}

// FuzzDecodeKey: any bytes decode or are refused; what decodes encodes
// back to the same key, and to the same bytes (trailing ones aside) in the
// versions the encoder writes.
func FuzzDecodeKey(f *testing.F) {
	addSeeds(f, "key")
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte(nil), b...)
		k, err := DecodeKey(in)
		if !bytes.Equal(in, b) {
			t.Fatal("DecodeKey modified its input")
		}
		if err != nil {
			checkError(t, err)
			return
		}
		var out []byte
		if k.IsOffsetCommit() {
			out, err = AppendOffsetKey(nil, k.Group, k.Topic, k.Partition)
		} else {
			out, err = AppendGroupKey(nil, k.Group)
		}
		if err != nil {
			t.Fatalf("a decoded key does not encode: %v", err)
		}
		again, err := DecodeKey(out)
		read := k.Version
		if k.Version == KeyOffsetCommitV0 {
			k.Version = KeyOffsetCommit
		}
		if err != nil || again != k {
			t.Fatalf("re-encoded key %+v, %v; want %+v", again, err, k)
		}
		if read != KeyOffsetCommitV0 && !bytes.Equal(out, b[:len(out)]) {
			t.Fatalf("re-encoded %x from %x", out, b)
		}
	})
}

func FuzzDecodeOffsetValue(f *testing.F) {
	addSeeds(f, "offset-value")
	f.Fuzz(func(t *testing.T, b []byte) {
		v, tomb, err := DecodeOffsetValue(b)
		if tomb {
			t.Fatal("a non-nil value decoded as a tombstone")
		}
		if err != nil {
			checkError(t, err)
			return
		}
		out, err := AppendOffsetValue(nil, v)
		if err != nil {
			t.Fatalf("a decoded value does not encode: %v", err)
		}
		again, _, err := DecodeOffsetValue(out)
		if v.ExpireTimestamp > 0 {
			v.LeaderEpoch = -1 // version 1 has none
		} else {
			v.ExpireTimestamp = -1
		}
		if err != nil || again != v {
			t.Fatalf("re-encoded value %+v, %v; want %+v", again, err, v)
		}
	})
}

func FuzzDecodeGroupValue(f *testing.F) {
	addSeeds(f, "group-value")
	f.Fuzz(func(t *testing.T, b []byte) {
		v, tomb, err := DecodeGroupValue(b)
		if tomb {
			t.Fatal("a non-nil value decoded as a tombstone")
		}
		if err != nil {
			checkError(t, err)
			return
		}
		if len(v.Members) > len(b) {
			t.Fatalf("%d members from %d bytes", len(v.Members), len(b))
		}
		out, err := AppendGroupValue(nil, &v)
		if err != nil {
			t.Fatalf("a decoded value does not encode: %v", err)
		}
		again, _, err := DecodeGroupValue(out)
		if err != nil || !reflect.DeepEqual(again, v) {
			t.Fatalf("re-encoded value %+v, %v; want %+v", again, err, v)
		}
	})
}
