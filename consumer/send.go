package consumer

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Path chooses how record bytes reach the socket.
type Path int

const (
	// Sendfile sends record bytes with sendfile(2): file to socket inside
	// the kernel.
	Sendfile Path = iota
	// Copy reads record bytes into a buffer with pread(2) and writes them
	// with write(2). For comparison only.
	Copy
)

// ParsePath parses "sendfile" or "copy".
func ParsePath(s string) (Path, error) {
	switch s {
	case "sendfile":
		return Sendfile, nil
	case "copy":
		return Copy, nil
	}
	return 0, fmt.Errorf("consumer: fetch path %q: want sendfile or copy", s)
}

func (p Path) String() string {
	if p == Copy {
		return "copy"
	}
	return "sendfile"
}

// Counters of record bytes sent, by path. They prove which path ran: with
// Sendfile, CopiedBytes stays zero.
var (
	SentfileBytes atomic.Int64
	CopiedBytes   atomic.Int64
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// Send writes the encoded response to conn and releases its regions. conn
// must expose its descriptor (a *net.TCPConn or *net.UnixConn); the conn's
// write deadline applies.
func Send(conn net.Conn, e *Encoded, path Path) error {
	defer e.Release()
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("consumer: %T has no file descriptor", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	cork(rc, true)
	defer cork(rc, false)
	prev := 0
	for _, s := range e.splices {
		if err := writeAll(rc, e.buf[prev:s.at]); err != nil {
			return err
		}
		prev = s.at
		var err error
		if path == Copy {
			err = copyRegion(rc, s.region.File(), s.region.Position, s.region.Length)
		} else {
			err = sendfile(rc, s.region.File(), s.region.Position, s.region.Length)
		}
		if err != nil {
			return err
		}
	}
	return writeAll(rc, e.buf[prev:])
}

func cork(rc syscall.RawConn, on bool) {
	v := 0
	if on {
		v = 1
	}
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, v)
	})
}

// writeAll writes b to the socket, waiting on the poller when it is full.
func writeAll(rc syscall.RawConn, b []byte) error {
	var werr error
	for len(b) > 0 {
		err := rc.Write(func(fd uintptr) bool {
			n, err := unix.Write(int(fd), b)
			if err == unix.EAGAIN {
				return false
			}
			if err != nil {
				werr = err
				return true
			}
			b = b[n:]
			return len(b) == 0
		})
		if err != nil {
			return err
		}
		if werr != nil {
			return fmt.Errorf("consumer: write: %w", werr)
		}
	}
	return nil
}

// ErrShortFile is returned when a region's file ends before the region does
// (the log was cut under a reader). The connection must be closed: the
// response's framing promised bytes that cannot be sent.
var ErrShortFile = errors.New("consumer: segment file shorter than the region being sent")

func sendfile(rc syscall.RawConn, f *os.File, pos, n int64) error {
	in := int(f.Fd())
	var serr error
	for n > 0 {
		err := rc.Write(func(fd uintptr) bool {
			off := pos
			chunk := n
			if chunk > 1<<30 {
				chunk = 1 << 30
			}
			w, err := unix.Sendfile(int(fd), in, &off, int(chunk))
			if w > 0 {
				pos += int64(w)
				n -= int64(w)
				SentfileBytes.Add(int64(w))
			}
			switch {
			case err == unix.EAGAIN:
				return false
			case err != nil:
				serr = err
				return true
			case w == 0:
				serr = ErrShortFile
				return true
			}
			return n == 0
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("consumer: sendfile: %w", serr)
		}
	}
	return nil
}

func copyRegion(rc syscall.RawConn, f *os.File, pos, n int64) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for n > 0 {
		chunk := buf
		if int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		r, err := f.ReadAt(chunk, pos)
		if r == 0 {
			if err == io.EOF || err == nil {
				return ErrShortFile
			}
			return fmt.Errorf("consumer: read segment: %w", err)
		}
		if err := writeAll(rc, chunk[:r]); err != nil {
			return err
		}
		CopiedBytes.Add(int64(r))
		pos += int64(r)
		n -= int64(r)
	}
	return nil
}
