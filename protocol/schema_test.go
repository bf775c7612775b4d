package protocol

import (
	"errors"
	"math/rand"
	"reflect"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// fill sets every field of v, a kmsg request or one of its parts, to random
// values: arrays of zero to three elements, null or set strings, unknown
// tagged fields. Fields a version does not carry are filled too; the
// encoder leaves them out.
func fill(v reflect.Value, rng *rand.Rand, depth int) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(rng.Intn(2) == 0)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(rng.Int63() - rng.Int63())
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(rng.Uint64())
	case reflect.Float64:
		v.SetFloat(rng.Float64())
	case reflect.String:
		v.SetString(randString(rng))
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			fill(v.Index(i), rng, depth)
		}
	case reflect.Pointer:
		if rng.Intn(3) == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), rng, depth)
		v.Set(p)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if rng.Intn(4) == 0 {
				v.SetBytes(nil)
				return
			}
			b := make([]byte, rng.Intn(40))
			rng.Read(b)
			v.SetBytes(b)
			return
		}
		n := 0
		if depth < 4 {
			n = rng.Intn(4)
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := 0; i < n; i++ {
			fill(s.Index(i), rng, depth+1)
		}
		v.Set(s)
	case reflect.Struct:
		if tags, ok := v.Addr().Interface().(*kmsg.Tags); ok {
			for i := rng.Intn(3); i > 0; i-- {
				val := make([]byte, rng.Intn(6))
				rng.Read(val)
				// Tags from 100 up: none of them known to any schema.
				tags.Set(uint32(100+rng.Intn(50)), val)
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Name == "Version" || !v.Field(i).CanSet() {
				continue
			}
			fill(v.Field(i), rng, depth)
		}
	}
}

func randString(rng *rand.Rand) string {
	b := make([]byte, rng.Intn(8))
	for i := range b {
		b[i] = byte('a' + rng.Intn(26))
	}
	return string(b)
}

// encoded returns a random, well-formed body for key at version.
func encoded(t testing.TB, key, version int16, rng *rand.Rand) []byte {
	req := kmsg.RequestForKey(key)
	if req == nil {
		t.Fatalf("kmsg has no request for key %d", key)
	}
	fill(reflect.ValueOf(req).Elem(), rng, 0)
	req.SetVersion(version)
	return req.AppendTo(nil)
}

func eachVersion(t *testing.T, fn func(t *testing.T, key, version int16)) {
	for key, r := range requests {
		for v := r.min; v <= r.max; v++ {
			t.Run(r.name+"/v"+strconv.Itoa(int(v)), func(t *testing.T) { fn(t, key, v) })
		}
	}
}

// TestSchemasMatchEncodings: for every request and version, bodies encoded
// by an independent implementation of the protocol walk to their last byte,
// and the flexible versions are the ones the encoder thinks flexible.
func TestSchemasMatchEncodings(t *testing.T) {
	eachVersion(t, func(t *testing.T, key, version int16) {
		rng := rand.New(rand.NewSource(int64(key)<<16 | int64(version)))
		req := kmsg.RequestForKey(key)
		req.SetVersion(version)
		r := requests[key]
		if got := version >= r.flexibleFrom; got != req.IsFlexible() {
			t.Fatalf("flexible = %v, kmsg says %v", got, req.IsFlexible())
		}
		for i := 0; i < 300; i++ {
			body := encoded(t, key, version, rng)
			w := walker{src: body, version: version, flexible: version >= r.flexibleFrom}
			if err := w.structure(r.fields); err != nil {
				t.Fatalf("walk of a well-formed body: %v\n% x", err, body)
			}
			if w.pos != len(body) {
				t.Fatalf("walk stopped at byte %d of %d\n% x", w.pos, len(body), body)
			}
		}
	})
}

// TestTruncatedBodiesRejected: every strict prefix of a well-formed body is
// missing a field, and Check says so.
func TestTruncatedBodiesRejected(t *testing.T) {
	eachVersion(t, func(t *testing.T, key, version int16) {
		rng := rand.New(rand.NewSource(int64(version)))
		for i := 0; i < 20; i++ {
			body := encoded(t, key, version, rng)
			for n := 0; n < len(body); n++ {
				if err := Check(key, version, body[:n]); !errors.Is(err, ErrMalformed) {
					t.Fatalf("prefix of %d of %d bytes: err = %v, want ErrMalformed", n, len(body), err)
				}
			}
		}
	})
}

func TestUnknownRequest(t *testing.T) {
	for _, c := range []struct{ key, version int16 }{{0, 2}, {0, 12}, {9999, 0}, {-1, 0}, {1, 17}} {
		if err := Check(c.key, c.version, nil); !errors.Is(err, ErrUnknownRequest) {
			t.Errorf("key %d v%d: err = %v, want ErrUnknownRequest", c.key, c.version, err)
		}
	}
}

// TestForgedCounts: counts that claim more than the body holds are refused
// before anything loops over them.
func TestForgedCounts(t *testing.T) {
	cases := []struct {
		name         string
		key, version int16
		body         []byte
	}{
		// DescribeCluster v0: a bool, then a tagged-field count of 2^32-1.
		{"tag count", 60, 0, []byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		// The same count in a body that has a few bytes after it.
		{"tag count with tail", 60, 0, []byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3}},
		// CreateTopics v0: an array of 2^31-1 topics.
		{"array count", 19, 0, []byte{0x7f, 0xff, 0xff, 0xff}},
		// Produce v9: compact array of 2^32-2 topics.
		{"compact array count", 0, 9, []byte{0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		// Metadata v0: a string longer than the body.
		{"string length", 3, 0, []byte{0, 0, 0, 1, 0x7f, 0xff}},
		// A varint of six bytes.
		{"long varint", 60, 0, []byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		// A tagged field whose size runs past the end.
		{"tag size", 60, 0, []byte{0, 1, 5, 0x7f}},
		// Fetch v15: the known tagged field ReplicaState (1) whose own
		// tagged-field count is huge, inside a well-sized tag.
		{"nested tag count", 1, 15, fetch15WithReplicaState([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f})},
		// A negative string length that is not null.
		{"negative string", 3, 1, []byte{0, 0, 0, 1, 0xff, 0xfe}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Check(c.key, c.version, c.body); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// fetch15WithReplicaState returns an empty Fetch v15 body carrying tagged
// field 1 with the given contents.
func fetch15WithReplicaState(state []byte) []byte {
	b := []byte{
		0, 0, 0, 0, // MaxWaitMillis
		0, 0, 0, 0, // MinBytes
		0, 0, 0, 0, // MaxBytes
		0,          // IsolationLevel
		0, 0, 0, 0, // SessionID
		0, 0, 0, 0, // SessionEpoch
		1,    // Topics: empty
		1,    // ForgottenTopics: empty
		1,    // Rack: ""
		1, 1, // one tagged field, number 1
	}
	b = append(b, byte(len(state)))
	return append(b, state...)
}

func TestCheckAllocatesNothing(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	body := encoded(t, 0, 9, rng)
	if n := testing.AllocsPerRun(100, func() { _ = Check(0, 9, body) }); n != 0 {
		t.Fatalf("Check allocates %.0f times per call", n)
	}
}

func BenchmarkCheckProduce(b *testing.B) {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	for t := 0; t < 4; t++ {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "bench-topic"
		for p := 0; p < 8; p++ {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = int32(p)
			rp.Records = make([]byte, 16<<10)
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	body := req.AppendTo(nil)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := Check(0, 9, body); err != nil {
			b.Fatal(err)
		}
	}
}
