package compression

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCompressRoundTrip: what Compress writes, NewReader and franz-go's
// decompressor read back, for every codec and for sizes from nothing to a
// zstd input larger than the window NewReader allows; and Compress appends,
// leaving the bytes before it alone.
func TestCompressRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	random := make([]byte, 20<<20)
	rng.Read(random)
	text := bytes.Repeat([]byte("a record value that repeats itself "), 1<<19) // ~17 MiB
	inputs := map[string][]byte{"empty": {}, "one byte": {7}, "64 KiB random": random[:64<<10],
		"20 MiB random": random, "17 MiB text": text}
	for codec := int8(None); codec <= Zstd; codec++ {
		for name, in := range inputs {
			t.Run(fmt.Sprintf("codec=%d/%s", codec, name), func(t *testing.T) {
				prefix := []byte("before")
				out, err := Compress(codec, append([]byte(nil), prefix...), in)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out[:len(prefix)], prefix) {
					t.Fatal("Compress changed the bytes before its output")
				}
				c := out[len(prefix):]
				if codec != None && len(c) == 0 {
					t.Fatal("no compressed bytes")
				}
				r, err := NewReader(codec, c, int64(len(in)))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(got, in) {
					t.Fatalf("NewReader: %v, %d bytes, want %d", err, len(got), len(in))
				}
				if codec != None {
					got, err = kgo.DefaultDecompressor().Decompress(c, kgo.CompressionCodecType(codec))
					if err != nil || !bytes.Equal(got, in) {
						t.Fatalf("franz-go: %v, %d bytes, want %d", err, len(got), len(in))
					}
				}
			})
		}
	}
	if _, err := Compress(5, nil, []byte("x")); err == nil {
		t.Error("codec 5 compressed")
	}
}

// TestCompressConcurrent: pooled encoders shared by goroutines give each
// caller its own output (run with -race).
func TestCompressConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				codec := int8(1 + (g+i)%4)
				in := bytes.Repeat([]byte{byte(g), byte(i)}, 1000+g*100+i)
				out, err := Compress(codec, nil, in)
				if err != nil {
					t.Error(err)
					return
				}
				r, err := NewReader(codec, out, int64(len(in)))
				if err != nil {
					t.Error(err)
					return
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(got, in) {
					t.Errorf("codec %d: %v", codec, err)
				}
			}
		}()
	}
	wg.Wait()
}
