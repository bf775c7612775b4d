// Package compression reads the records section of a compressed RecordBatch
// v2. The batch attributes' low three bits name the codec:
//
//	0 none    the records as they are
//	1 gzip    RFC 1952, one or more members
//	2 snappy  a raw snappy block, or the xerial framing Kafka's Java client
//	          writes: "\x82SNAPPY\x00", int32 version, int32 minimum
//	          compatible version, then chunks of int32 length + raw block
//	3 lz4     the LZ4 frame format
//	4 zstd    the Zstandard frame format
//
// The bytes are untrusted (they come from producers), so every reader is
// bounded: it fails with ErrTooLarge once it would produce more than the
// limit it was opened with, and any malformed input is ErrCorrupt.
package compression

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codecs, as batch attributes carry them.
const (
	None   = 0
	Gzip   = 1
	Snappy = 2
	LZ4    = 3
	Zstd   = 4
)

// Errors from readers.
var (
	ErrUnknownCodec = errors.New("compression: unknown codec")
	ErrCorrupt      = errors.New("compression: corrupt compressed data")
	ErrTooLarge     = errors.New("compression: decompressed data larger than the limit")
)

// maxZstdWindow bounds the history a zstd frame may ask the decoder to
// keep. Producers' encoders use windows of a few MiB at most.
const maxZstdWindow = 8 << 20

// NewReader returns a reader of the decompressed form of src, compressed
// with codec, that fails with ErrTooLarge after limit bytes. Close releases
// the decoder's resources.
func NewReader(codec int8, src []byte, limit int64) (io.ReadCloser, error) {
	var r io.Reader
	closer := func() error { return nil }
	if codec < None || codec > Zstd {
		return nil, fmt.Errorf("%w: %d", ErrUnknownCodec, codec)
	}
	if codec != None && len(src) == 0 {
		return nil, fmt.Errorf("%w: no compressed bytes", ErrCorrupt)
	}
	switch codec {
	case None:
		r = bytes.NewReader(src)
	case Gzip:
		gz, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		r = gz
	case Snappy:
		r = newSnappyReader(src, limit)
	case LZ4:
		r = lz4.NewReader(bytes.NewReader(src))
	case Zstd:
		d, err := zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(uint64(max(limit, maxZstdWindow))+1), zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		r = d
		closer = func() error { d.Close(); return nil }
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownCodec, codec)
	}
	return &limited{r: r, left: limit, close: closer}, nil
}

// limited passes reads through, turning the decoders' own errors into
// ErrCorrupt and stopping at the limit.
type limited struct {
	r     io.Reader
	left  int64
	close func() error
}

func (l *limited) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One more byte means the limit is exceeded; none means the
		// stream ended exactly at it.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, ErrTooLarge
		}
		return 0, l.wrap(err)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, l.wrap(err)
}

func (l *limited) wrap(err error) error {
	if err == nil || err == io.EOF || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTooLarge) {
		return err
	}
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return ErrTooLarge
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

func (l *limited) Close() error { return l.close() }

// xerialMagic starts a snappy stream in the xerial framing.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderSize = 16 // magic, version, minimum compatible version

// snappyReader decodes a raw snappy block at once, or xerial chunks one
// at a time, checking each block's declared size against the limit before
// allocating for it.
type snappyReader struct {
	src    []byte // chunks not yet decoded
	xerial bool
	limit  int64
	out    []byte // decoded bytes not yet read
	err    error
}

func newSnappyReader(src []byte, limit int64) *snappyReader {
	r := &snappyReader{src: src, limit: limit}
	if len(src) >= xerialHeaderSize && bytes.Equal(src[:len(xerialMagic)], xerialMagic) {
		r.xerial = true
		r.src = src[xerialHeaderSize:]
	}
	return r
}

func (r *snappyReader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.next()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// next decodes the next block into out, or sets err.
func (r *snappyReader) next() {
	if len(r.src) == 0 {
		r.err = io.EOF
		return
	}
	block := r.src
	if r.xerial {
		if len(r.src) < 4 {
			r.err = fmt.Errorf("%w: snappy: truncated xerial chunk length", ErrCorrupt)
			return
		}
		n := binary.BigEndian.Uint32(r.src)
		if uint64(n) > uint64(len(r.src)-4) {
			r.err = fmt.Errorf("%w: snappy: xerial chunk of %d bytes with %d left", ErrCorrupt, n, len(r.src)-4)
			return
		}
		block, r.src = r.src[4:4+n], r.src[4+n:]
	} else {
		r.src = nil
	}
	size, err := s2.DecodedLen(block)
	if err != nil {
		r.err = fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
		return
	}
	if int64(size) > r.limit {
		r.err = ErrTooLarge
		return
	}
	r.limit -= int64(size)
	out, err := s2.Decode(nil, block)
	if err != nil {
		r.err = fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
		return
	}
	r.out = out
}
