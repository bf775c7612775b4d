package txnlogfmt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The golden records, written byte by byte from Kafka's schemas
// (TransactionLogKey.json, TransactionLogValue.json) rather than by the
// encoder, so that a change to the encoder cannot move both sides.
var goldenValue = Value{ProducerID: 4001, PreviousProducerID: 3999, NextProducerID: -1, ProducerEpoch: 7,
	TimeoutMs: 60000, Status: Ongoing,
	Partitions:   []TopicPartitions{{Topic: "orders", Partitions: []int32{0, 2}}, {Topic: "__consumer_offsets", Partitions: []int32{17}}},
	LastUpdateMs: 1_700_000_000_123, StartMs: 1_700_000_000_100}

// hexOf joins the commented hex lines of a golden record.
func hexOf(t testing.TB, lines ...string) []byte {
	t.Helper()
	var sb strings.Builder
	for _, l := range lines {
		if i := strings.Index(l, "//"); i >= 0 {
			l = l[:i]
		}
		sb.WriteString(strings.ReplaceAll(l, " ", ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func goldenKey(t testing.TB) []byte {
	return hexOf(t,
		"0000",            // version 0
		"0005 74786e2d31", // "txn-1"
	)
}

func goldenV0(t testing.TB) []byte {
	return hexOf(t,
		"0000",              // version 0
		"0000000000000fa1",  // producerId 4001
		"0007",              // producerEpoch
		"0000ea60",          // timeout 60000
		"01",                // Ongoing
		"00000002",          // two topics
		"0006 6f7264657273", // "orders"
		"00000002 00000000 00000002",
		"0012 5f5f636f6e73756d65725f6f666673657473", // "__consumer_offsets"
		"00000001 00000011",
		"0000018bcfe5687b", // last update
		"0000018bcfe56864", // start
	)
}

func goldenV1(t testing.TB) []byte {
	return hexOf(t,
		"0001",             // version 1
		"0000000000000fa1", // producerId 4001
		"0007",
		"0000ea60",
		"01",
		"03",              // two topics (compact: n+1)
		"07 6f7264657273", // "orders"
		"03 00000000 00000002",
		"00", // element tags
		"13 5f5f636f6e73756d65725f6f666673657473",
		"02 00000011",
		"00",
		"0000018bcfe5687b",
		"0000018bcfe56864",
		"01",                     // one tagged field
		"00 08 0000000000000f9f", // previousProducerId 3999
	)
}

func TestGoldenKey(t *testing.T) {
	got, err := AppendKey(nil, "txn-1")
	if err != nil || !bytes.Equal(got, goldenKey(t)) {
		t.Fatalf("AppendKey = %x, %v; want %x", got, err, goldenKey(t))
	}
	id, err := DecodeKey(goldenKey(t))
	if err != nil || id != "txn-1" {
		t.Fatalf("DecodeKey = %q, %v", id, err)
	}
}

func TestGoldenValues(t *testing.T) {
	v0 := goldenValue
	v0.PreviousProducerID = -1 // version 0 has no tagged fields
	for _, tc := range []struct {
		name   string
		golden []byte
		enc    func([]byte, *Value) ([]byte, error)
		want   Value
	}{
		{"v0", goldenV0(t), AppendValueV0, v0},
		{"v1", goldenV1(t), AppendValue, goldenValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.enc(nil, &goldenValue)
			if err != nil || !bytes.Equal(got, tc.golden) {
				t.Fatalf("encoded\n%x, %v; want\n%x", got, err, tc.golden)
			}
			v, tomb, err := DecodeValue(tc.golden)
			if err != nil || tomb || !reflect.DeepEqual(v, tc.want) {
				t.Fatalf("decoded %+v, %v, %v; want %+v", v, tomb, err, tc.want)
			}
		})
	}
}

func TestValueTagsAndNulls(t *testing.T) {
	v := Value{ProducerID: 1, PreviousProducerID: -1, NextProducerID: 9, ProducerEpoch: 0, Status: Empty,
		StartMs: -1, LastUpdateMs: 5, ClientTransactionVersion: 2}
	b, err := AppendValue(nil, &v)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := DecodeValue(b)
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("round trip %+v, %v; want %+v", got, err, v)
	}
	extra := append(b[:len(b):len(b)], 0xff) // trailing bytes are ignored
	if got, _, err := DecodeValue(extra); err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("with a trailing byte: %+v, %v", got, err)
	}
	if _, tomb, err := DecodeValue(nil); !tomb || err != nil {
		t.Fatalf("nil value: tombstone %v, %v", tomb, err)
	}
}

func TestUnknownTagSkipped(t *testing.T) {
	b := goldenV1(t)
	// Replace "one tagged field: tag 0" by two: an unknown tag 9 of three
	// bytes, then tag 0.
	head := b[:len(b)-11]
	b = append(append(append([]byte{}, head...), 0x02, 0x09, 0x03, 1, 2, 3), b[len(b)-10:]...)
	v, _, err := DecodeValue(b)
	if err != nil || !reflect.DeepEqual(v, goldenValue) {
		t.Fatalf("decoded %+v, %v", v, err)
	}
}

func TestDecodeRefusals(t *testing.T) {
	for name, b := range map[string][]byte{
		"short":          {0},
		"version 2":      {0, 2, 1},
		"truncated":      goldenV1(t)[:20],
		"huge count":     append(append([]byte{}, goldenV0(t)[:17]...), 0x7f, 0xff, 0xff, 0xff),
		"bad tag size":   append(append([]byte{}, goldenV1(t)[:len(goldenV1(t))-11]...), 0x01, 0x00, 0x02, 0, 0),
		"negative topic": append(append([]byte{}, goldenV0(t)[:21]...), 0xff, 0xfe),
	} {
		_, _, err := DecodeValue(b)
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if _, err := DecodeKey([]byte{0, 1, 0, 0}); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("key version 1: %v", err)
	}
	if _, err := AppendKey(nil, strings.Repeat("x", 40000)); !errors.Is(err, ErrTooLong) {
		t.Errorf("long id: %v", err)
	}
}
