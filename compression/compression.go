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
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
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
// the decoder's resources; decoders are pooled, so the produce path does not
// build one per batch. Close is idempotent; the reader must not be used
// after it.
func NewReader(codec int8, src []byte, limit int64) (io.ReadCloser, error) {
	if codec < None || codec > Zstd {
		return nil, fmt.Errorf("%w: %d", ErrUnknownCodec, codec)
	}
	if codec != None && len(src) == 0 {
		return nil, fmt.Errorf("%w: no compressed bytes", ErrCorrupt)
	}
	var r decoder
	switch codec {
	case None:
		p := &plainDecoder{}
		p.src.Reset(src)
		r = p
	case Gzip:
		g, _ := gzipPool.Get().(*gzipDecoder)
		if g == nil {
			g = new(gzipDecoder)
		}
		g.src.Reset(src)
		if err := g.gz.Reset(&g.src); err != nil {
			g.release()
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		r = g
	case Snappy:
		s, _ := snappyPool.Get().(*snappyReader)
		if s == nil {
			s = new(snappyReader)
		}
		s.reset(src, limit)
		r = s
	case LZ4:
		z, _ := lz4Pool.Get().(*lz4Decoder)
		if z == nil {
			z = &lz4Decoder{lz: lz4.NewReader(nil)}
		}
		z.src.Reset(src)
		z.lz.Reset(&z.src)
		r = z
	case Zstd:
		d, err := getZstd(limit)
		if err != nil {
			return nil, err
		}
		d.src.Reset(src)
		if err := d.d.Reset(&d.src); err != nil {
			d.release()
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		r = d
	}
	return &limited{r: r, left: limit}, nil
}

// A decoder is a pooled codec reader; release returns it to its pool.
type decoder interface {
	io.Reader
	release()
}

type plainDecoder struct{ src bytes.Reader }

func (p *plainDecoder) Read(b []byte) (int, error) { return p.src.Read(b) }
func (p *plainDecoder) release()                   { p.src.Reset(nil) }

var (
	gzipPool   sync.Pool // *gzipDecoder
	snappyPool sync.Pool // *snappyReader
	lz4Pool    sync.Pool // *lz4Decoder
	zstdPool   sync.Pool // *zstdDecoder
)

type gzipDecoder struct {
	src bytes.Reader
	gz  gzip.Reader
}

func (g *gzipDecoder) Read(b []byte) (int, error) { return g.gz.Read(b) }
func (g *gzipDecoder) release() {
	g.src.Reset(nil)
	gzipPool.Put(g)
}

type lz4Decoder struct {
	src bytes.Reader
	lz  *lz4.Reader
}

func (z *lz4Decoder) Read(b []byte) (int, error) { return z.lz.Read(b) }
func (z *lz4Decoder) release() {
	z.src.Reset(nil)
	z.lz.Reset(nil)
	lz4Pool.Put(z)
}

// zstdPooledMemory is the decoded-size bound of pooled zstd decoders. A
// reader with a higher limit gets a decoder of its own.
const zstdPooledMemory = 64 << 20

type zstdDecoder struct {
	src    bytes.Reader
	d      *zstd.Decoder
	pooled bool
}

// getZstd returns a pooled decoder, or for a limit above the pooled
// decoders' bound one of its own.
func getZstd(limit int64) (*zstdDecoder, error) {
	if limit > zstdPooledMemory {
		d, err := newZstd(limit)
		if d != nil {
			d.pooled = false
		}
		return d, err
	}
	if d, _ := zstdPool.Get().(*zstdDecoder); d != nil {
		return d, nil
	}
	return newZstd(zstdPooledMemory)
}

func newZstd(limit int64) (*zstdDecoder, error) {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(uint64(max(limit, maxZstdWindow))+1), zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
	}
	return &zstdDecoder{d: d, pooled: true}, nil
}

func (z *zstdDecoder) Read(b []byte) (int, error) { return z.d.Read(b) }
func (z *zstdDecoder) release() {
	z.src.Reset(nil)
	if !z.pooled {
		z.d.Close()
		return
	}
	z.d.Reset(nil)
	zstdPool.Put(z)
}

// limited passes reads through, turning the decoders' own errors into
// ErrCorrupt and stopping at the limit.
type limited struct {
	r    decoder // nil once closed
	left int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.r == nil {
		return 0, errors.New("compression: read after Close")
	}
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

func (l *limited) Close() error {
	if l.r != nil {
		l.r.release()
		l.r = nil
	}
	return nil
}

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
	buf    []byte // reused for decoded blocks
	err    error
}

// maxPooledSnappyBuffer bounds the block buffer a pooled reader keeps.
const maxPooledSnappyBuffer = 1 << 20

func (r *snappyReader) reset(src []byte, limit int64) {
	*r = snappyReader{src: src, limit: limit, buf: r.buf}
	if len(src) >= xerialHeaderSize && bytes.Equal(src[:len(xerialMagic)], xerialMagic) {
		r.xerial = true
		r.src = src[xerialHeaderSize:]
	}
}

func (r *snappyReader) release() {
	buf := r.buf
	if cap(buf) > maxPooledSnappyBuffer {
		buf = nil
	}
	*r = snappyReader{buf: buf}
	snappyPool.Put(r)
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
	out, err := s2.Decode(r.buf[:cap(r.buf)], block)
	if err != nil {
		r.err = fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
		return
	}
	r.buf, r.out = out, out
}
