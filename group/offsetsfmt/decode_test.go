package offsetsfmt

import (
	"encoding/binary"
	"errors"
	"testing"
)

// be builds big-endian bytes from int16, int32 and int64 values and raw
// byte slices.
func be(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case int16:
			b = binary.BigEndian.AppendUint16(b, uint16(v))
		case int32:
			b = binary.BigEndian.AppendUint32(b, uint32(v))
		case int64:
			b = binary.BigEndian.AppendUint64(b, uint64(v))
		case string:
			b = append(b, v...)
		case []byte:
			b = append(b, v...)
		default:
			panic(p)
		}
	}
	return b
}

// TestDecodersRefuse: every way a record can lie about its lengths and
// counts is ErrMalformed (never a panic, never a large allocation), and an
// unknown version says which.
func TestDecodersRefuse(t *testing.T) {
	str := func(s string) []byte { return be(int16(len(s)), s) }
	groupHead := func(version int16) []byte {
		b := be(version, str("consumer"), int32(1), int16(-1), int16(-1))
		if version >= 2 {
			b = be(b, int64(-1))
		}
		return b
	}
	cases := []struct {
		name   string
		decode func([]byte) error
		b      []byte
		want   error
	}{
		{"key: one byte", decodeKey, []byte{0}, ErrMalformed},
		{"key: version 3", decodeKey, be(int16(3), str("g")), ErrUnknownVersion},
		{"key: version -1", decodeKey, be(int16(-1)), ErrUnknownVersion},
		{"key: group length past the end", decodeKey, be(int16(2), int16(50), "abc"), ErrMalformed},
		{"key: null group", decodeKey, be(int16(2), int16(-1)), ErrMalformed},
		{"key: group length -2", decodeKey, be(int16(2), int16(-2)), ErrMalformed},
		{"key: no partition", decodeKey, be(int16(1), str("g"), str("t"), int16(0)), ErrMalformed},
		{"key: no topic", decodeKey, be(int16(1), str("g")), ErrMalformed},
		{"offset value: version 5", decodeOffset, be(int16(5), int64(1)), ErrUnknownVersion},
		{"offset value: version -2", decodeOffset, be(int16(-2)), ErrUnknownVersion},
		{"offset value: short offset", decodeOffset, be(int16(3), int32(1)), ErrMalformed},
		{"offset value v3: no metadata", decodeOffset, be(int16(3), int64(1), int32(0)), ErrMalformed},
		{"offset value v1: no expire timestamp", decodeOffset, be(int16(1), int64(1), str(""), int64(5)), ErrMalformed},
		{"offset value v4: metadata length past the end", decodeOffset, be(int16(4), int64(1), int32(0), []byte{0x7f}), ErrMalformed},
		{"offset value v4: null metadata", decodeOffset, be(int16(4), int64(1), int32(0), []byte{0}, int64(0), []byte{0}), ErrMalformed},
		{"offset value v4: no tagged fields", decodeOffset, be(int16(4), int64(1), int32(0), []byte{1}, int64(0)), ErrMalformed},
		{"offset value v4: a billion tags", decodeOffset, be(int16(4), int64(1), int32(0), []byte{1}, int64(0), []byte{0x80, 0x94, 0xeb, 0xdc, 0x03}), ErrMalformed},
		{"offset value v4: tag size past the end", decodeOffset, be(int16(4), int64(1), int32(0), []byte{1}, int64(0), []byte{1, 0, 20, 1}), ErrMalformed},
		{"offset value v4: a 6-byte varint", decodeOffset, be(int16(4), int64(1), int32(0), []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0}), ErrMalformed},
		{"group value: version 9", decodeGroup, be(int16(9)), ErrUnknownVersion},
		{"group value: null protocol type", decodeGroup, be(int16(3), int16(-1)), ErrMalformed},
		{"group value: 2^31-1 members", decodeGroup, be(groupHead(3), int32(1<<31-1)), ErrMalformed},
		{"group value: -1 members", decodeGroup, be(groupHead(3), int32(-1)), ErrMalformed},
		{"group value: -5 members", decodeGroup, be(groupHead(3), int32(-5)), ErrMalformed},
		{"group value: 2 members in the bytes of 1", decodeGroup, be(groupHead(0), int32(2), str("m"), str("c"), str("h"), int32(1), int32(0), int32(0)), ErrMalformed},
		{"group value: subscription past the end", decodeGroup, be(groupHead(0), int32(1), str("m"), str("c"), str("h"), int32(1), int32(1000), int32(0)), ErrMalformed},
		{"group value: null assignment", decodeGroup, be(groupHead(0), int32(1), str("m"), str("c"), str("h"), int32(1), int32(0), int32(-1)), ErrMalformed},
		{"group value v4: a billion members", decodeGroup, be(int16(4), []byte{9}, "consumer", int32(1), []byte{0, 0}, int64(-1), []byte{0x80, 0x94, 0xeb, 0xdc, 0x03}), ErrMalformed},
		{"group value v4: null members", decodeGroup, be(int16(4), []byte{9}, "consumer", int32(1), []byte{0, 0}, int64(-1), []byte{0}), ErrMalformed},
		{"group value: no members count", decodeGroup, groupHead(2), ErrMalformed},
	}
	for _, tc := range cases {
		err := tc.decode(tc.b)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	var uv *UnknownVersionError
	if err := decodeKey(be(int16(7), str("g"))); !errors.As(err, &uv) || uv.Version != 7 || uv.Record != "key" {
		t.Errorf("unknown key version: %v", err)
	}
}

func decodeKey(b []byte) error { _, err := DecodeKey(b); return err }

func decodeOffset(b []byte) error { _, _, err := DecodeOffsetValue(b); return err }

func decodeGroup(b []byte) error { _, _, err := DecodeGroupValue(b); return err }

// TestDecodersCopy: what a decoder returns does not alias its input, which
// a batch walk lends only for the length of a callback.
func TestDecodersCopy(t *testing.T) {
	b := mustBytes(AppendGroupValue(nil, &goldenGroupV))
	v, _, err := DecodeGroupValue(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xee
	}
	if v.Members[0].Subscription[0] != 0 || v.Members[0].MemberID != "m-1" || *v.Protocol != "range" {
		t.Fatalf("the decoded value changed with its input: %+v", v)
	}
}

// TestTrailingBytesIgnored: as Kafka's readers do, bytes after the last
// field are ignored.
func TestTrailingBytesIgnored(t *testing.T) {
	b := append(mustBytes(AppendOffsetValue(nil, goldenOffset)), 1, 2, 3)
	if v, _, err := DecodeOffsetValue(b); err != nil || v != goldenOffset {
		t.Fatalf("%+v %v", v, err)
	}
}
