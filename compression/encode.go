package compression

// Writing compressed records sections.
//
// Compress(codec, dst, src) appends src compressed with codec to dst and
// returns the extended slice, in the form NewReader reads and Kafka's clients
// read: gzip (one RFC 1952 member), snappy as one raw block (as franz-go and
// librdkafka write it; Kafka's Java consumers read it too), lz4 as one frame
// of independent blocks, zstd as one frame whose window NewReader accepts.
// None appends src unchanged. Encoders are pooled; Compress is safe for
// concurrent use.

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// appender is an io.Writer that appends to b.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

type gzipEncoder struct {
	out appender
	w   *gzip.Writer
}

type lz4Encoder struct {
	out appender
	w   *lz4.Writer
}

var (
	gzipEncoders sync.Pool // *gzipEncoder
	lz4Encoders  sync.Pool // *lz4Encoder
	zstdEncoders sync.Pool // *zstd.Encoder
)

// Compress appends src, compressed with codec, to dst. dst and src must
// not overlap.
func Compress(codec int8, dst, src []byte) ([]byte, error) {
	switch codec {
	case None:
		return append(dst, src...), nil
	case Gzip:
		g, _ := gzipEncoders.Get().(*gzipEncoder)
		if g == nil {
			g = &gzipEncoder{w: gzip.NewWriter(nil)}
		}
		g.out.b = dst
		g.w.Reset(&g.out)
		_, err := g.w.Write(src)
		if err == nil {
			err = g.w.Close()
		}
		dst = g.out.b
		g.out.b = nil
		g.w.Reset(nil)
		gzipEncoders.Put(g)
		if err != nil {
			return nil, fmt.Errorf("compression: gzip: %w", err)
		}
		return dst, nil
	case Snappy:
		n := s2.MaxEncodedLen(len(src))
		if n < 0 {
			return nil, fmt.Errorf("compression: snappy: %d bytes are too many for one block", len(src))
		}
		start := len(dst)
		if cap(dst)-start < n {
			grown := make([]byte, start, start+n)
			copy(grown, dst)
			dst = grown
		}
		block := s2.EncodeSnappy(dst[start:start+n], src)
		return dst[:start+len(block)], nil
	case LZ4:
		z, _ := lz4Encoders.Get().(*lz4Encoder)
		if z == nil {
			z = &lz4Encoder{w: lz4.NewWriter(nil)}
		}
		z.out.b = dst
		z.w.Reset(&z.out)
		_, err := z.w.Write(src)
		if err == nil {
			err = z.w.Close()
		}
		dst = z.out.b
		z.out.b = nil
		z.w.Reset(nil)
		lz4Encoders.Put(z)
		if err != nil {
			return nil, fmt.Errorf("compression: lz4: %w", err)
		}
		return dst, nil
	case Zstd:
		e, _ := zstdEncoders.Get().(*zstd.Encoder)
		if e == nil {
			var err error
			e, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(maxZstdWindow),
				zstd.WithZeroFrames(true), zstd.WithLowerEncoderMem(true))
			if err != nil {
				return nil, fmt.Errorf("compression: zstd: %w", err)
			}
		}
		dst = e.EncodeAll(src, dst)
		zstdEncoders.Put(e)
		return dst, nil
	}
	return nil, fmt.Errorf("%w: %d", ErrUnknownCodec, codec)
}
