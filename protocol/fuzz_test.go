package protocol

import (
	"math/rand"
	"sort"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func sortedKeys() []int16 {
	keys := make([]int16, 0, len(requests))
	for k := range requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

// FuzzCheck: whatever the bytes, Check returns; when it accepts a body, an
// independent decoder reads that body without error. The seeds are random
// well-formed bodies of every request and version.
func FuzzCheck(f *testing.F) {
	keys := sortedKeys()
	rng := rand.New(rand.NewSource(7))
	for i, key := range keys {
		r := requests[key]
		for v := r.min; v <= r.max; v++ {
			f.Add(uint8(i), uint8(v), encoded(f, key, v, rng))
		}
	}
	f.Fuzz(func(t *testing.T, k, v uint8, body []byte) {
		key := keys[int(k)%len(keys)]
		r := requests[key]
		version := r.min + int16(v)%(r.max-r.min+1)
		if err := Check(key, version, body); err != nil {
			return
		}
		req := kmsg.RequestForKey(key)
		req.SetVersion(version)
		if err := req.ReadFrom(body); err != nil {
			t.Fatalf("%s v%d: Check accepted a body the decoder refuses: %v\n% x", r.name, version, err, body)
		}
	})
}
