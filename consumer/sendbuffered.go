package consumer

import (
	"fmt"
	"io"
	"sync/atomic"
)

// BufferedBytes counts record bytes sent by SendBuffered: read from the
// segment into the connection's buffer and written through a Writer that
// transforms them (TLS), where sendfile cannot be used.
var BufferedBytes atomic.Int64

// BufferedSendSize is the size of the buffer a connection keeps for
// SendBuffered: large enough that each pread and each write through TLS
// covers many records (crypto/tls cuts one write into 16 KiB records
// without returning), small enough to keep one per connection.
const BufferedSendSize = 128 << 10

// SendBuffered writes the encoded response to w through buf and releases
// its regions. It is the fetch path of connections whose bytes are
// transformed in user space (TLS): the protocol bytes and each region's
// record bytes are gathered into buf, the record bytes read from the
// segment with pread(2) straight into it, and buf is written to w each
// time it is full and at the end, so w sees few large writes whatever the
// shape of the response. buf is the caller's, reused from one response to
// the next (len 0, cap at least 4 KiB); SendBuffered allocates nothing.
//
// A sender that hands the encryption to the kernel (kTLS) would take the
// Send path instead, with the socket's descriptor.
func SendBuffered(w io.Writer, e *Encoded, buf []byte) error {
	defer e.Release()
	if cap(buf) < 4<<10 {
		return fmt.Errorf("consumer: SendBuffered needs a buffer of at least 4 KiB, got %d", cap(buf))
	}
	b := buf[:0]
	flush := func() error {
		if len(b) == 0 {
			return nil
		}
		_, err := w.Write(b)
		b = b[:0]
		return err
	}
	put := func(p []byte) error {
		for len(p) > 0 {
			if len(b) == cap(b) {
				if err := flush(); err != nil {
					return err
				}
			}
			n := copy(b[len(b):cap(b)], p)
			b, p = b[:len(b)+n], p[n:]
		}
		return nil
	}
	prev := 0
	for _, s := range e.splices {
		if err := put(e.buf[prev:s.at]); err != nil {
			return err
		}
		prev = s.at
		pos, n := s.region.Position, s.region.Length
		for n > 0 {
			if len(b) == cap(b) {
				if err := flush(); err != nil {
					return err
				}
			}
			room := b[len(b):cap(b)]
			if int64(len(room)) > n {
				room = room[:n]
			}
			r, err := s.region.ReadAt(room, pos)
			if r == 0 {
				if err == io.EOF || err == nil {
					return ErrShortFile
				}
				return fmt.Errorf("consumer: read segment: %w", err)
			}
			b = b[:len(b)+r]
			pos += int64(r)
			n -= int64(r)
			BufferedBytes.Add(int64(r))
		}
	}
	if err := put(e.buf[prev:]); err != nil {
		return err
	}
	return flush()
}
