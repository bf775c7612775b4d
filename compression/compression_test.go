package compression

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"sync"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

func compress(t testing.TB, codec int8, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch codec {
	case None:
		return append([]byte(nil), data...)
	case Gzip:
		w := gzip.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case Snappy:
		return s2.EncodeSnappy(nil, data)
	case LZ4:
		w := lz4.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case Zstd:
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
	}
	return buf.Bytes()
}

// xerial frames data the way Kafka's Java client does, in chunks of at most
// chunk bytes before compression.
func xerial(data []byte, chunk int) []byte {
	out := append([]byte(nil), xerialMagic...)
	out = binary.BigEndian.AppendUint32(out, 1)
	out = binary.BigEndian.AppendUint32(out, 1)
	for len(data) > 0 {
		n := min(chunk, len(data))
		block := s2.EncodeSnappy(nil, data[:n])
		out = binary.BigEndian.AppendUint32(out, uint32(len(block)))
		out = append(out, block...)
		data = data[n:]
	}
	return out
}

func sample(n int) []byte {
	rng := rand.New(rand.NewSource(int64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + rng.Intn(4)) // compressible, not trivially
	}
	return b
}

func readAll(t testing.TB, codec int8, src []byte, limit int64) ([]byte, error) {
	t.Helper()
	r, err := NewReader(codec, src, limit)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

var codecs = []struct {
	name  string
	codec int8
}{{"none", None}, {"gzip", Gzip}, {"snappy", Snappy}, {"lz4", LZ4}, {"zstd", Zstd}}

func TestRoundTrip(t *testing.T) {
	for _, c := range codecs {
		for _, n := range []int{0, 1, 100, 70000, 1 << 20} {
			data := sample(n)
			got, err := readAll(t, c.codec, compress(t, c.codec, data), int64(n))
			if err != nil {
				t.Fatalf("%s %d bytes: %v", c.name, n, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%s %d bytes: decoded %d different bytes", c.name, n, len(got))
			}
		}
	}
}

func TestXerialSnappy(t *testing.T) {
	for _, n := range []int{0, 1, 32 << 10, 100000} {
		data := sample(n)
		got, err := readAll(t, Snappy, xerial(data, 32<<10), int64(n))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: err %v, equal %v", n, err, bytes.Equal(got, data))
		}
	}
}

func TestLimit(t *testing.T) {
	data := sample(100000)
	for _, c := range codecs {
		src := compress(t, c.codec, data)
		if _, err := readAll(t, c.codec, src, int64(len(data))); err != nil {
			t.Errorf("%s: exactly at the limit: %v", c.name, err)
		}
		if _, err := readAll(t, c.codec, src, int64(len(data)-1)); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: one byte over the limit: err = %v, want ErrTooLarge", c.name, err)
		}
	}
	if _, err := readAll(t, Snappy, xerial(data, 4096), 50000); !errors.Is(err, ErrTooLarge) {
		t.Errorf("xerial over the limit: err = %v, want ErrTooLarge", err)
	}
}

// TestSnappyDeclaredSizeChecked: a snappy block that declares a huge
// decoded size is refused before anything is allocated for it.
func TestSnappyDeclaredSizeChecked(t *testing.T) {
	block := binary.AppendUvarint(nil, 1<<31) // declared length, then nothing
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := readAll(t, Snappy, block, 1<<20); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})
	if allocs > 20 {
		t.Fatalf("%v allocations for a refused block", allocs)
	}
}

func TestCorrupt(t *testing.T) {
	data := sample(10000)
	for _, c := range codecs[1:] {
		src := compress(t, c.codec, data)
		for _, bad := range [][]byte{
			{},
			src[:len(src)/2],
			append([]byte{0xde, 0xad}, src[2:]...),
		} {
			if _, err := readAll(t, c.codec, bad, 1<<20); err == nil {
				t.Errorf("%s: %d corrupt bytes decoded without error", c.name, len(bad))
			} else if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: err = %v, want ErrCorrupt", c.name, err)
			}
		}
	}
	x := xerial(data, 4096)
	binary.BigEndian.PutUint32(x[xerialHeaderSize:], 1<<30) // first chunk claims 1 GiB
	if _, err := readAll(t, Snappy, x, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Errorf("xerial chunk past the end: err = %v, want ErrCorrupt", err)
	}
	if _, err := NewReader(5, nil, 1); !errors.Is(err, ErrUnknownCodec) {
		t.Errorf("codec 5: err = %v, want ErrUnknownCodec", err)
	}
}

// FuzzReader: any bytes under any codec decode or fail with ErrCorrupt or
// ErrTooLarge, never more than the limit.
func FuzzReader(f *testing.F) {
	for _, c := range codecs {
		f.Add(uint8(c.codec), compress(f, c.codec, sample(300)))
	}
	f.Add(uint8(Snappy), xerial(sample(300), 100))
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, codec uint8, src []byte) {
		got, err := readAll(t, int8(codec%5), src, limit)
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, neither ErrCorrupt nor ErrTooLarge", err)
		}
		if len(got) > limit {
			t.Fatalf("read %d bytes with a limit of %d", len(got), limit)
		}
	})
}

// TestPooledDecoders: readers come from pools, so a decoder left by a
// failed, an abandoned or an over-limit read must decode the next input
// exactly; and from several goroutines at once.
func TestPooledDecoders(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				for _, c := range codecs {
					data := sample(1000 + 37*i + g)
					src := compress(t, c.codec, data)
					switch i % 3 {
					case 0: // corrupt, or over the limit
						readAll(t, c.codec, src[:len(src)/2], 1<<20)
						readAll(t, c.codec, src, 10)
					case 1: // abandoned after a few bytes
						r, err := NewReader(c.codec, src, 1<<20)
						if err != nil {
							t.Error(err)
							return
						}
						var few [7]byte
						r.Read(few[:])
						r.Close()
						r.Close() // idempotent
					}
					got, err := readAll(t, c.codec, src, int64(len(data)))
					if err != nil || !bytes.Equal(got, data) {
						t.Errorf("%s, round %d: err %v, equal %v", c.name, i, err, bytes.Equal(got, data))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
