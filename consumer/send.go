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

	"github.com/runnel-io/runnel/mmap"
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
	// Mmap maps the segment file read-only and writes record bytes with
	// write(2) straight from the mapping. For comparison only.
	Mmap
)

// ParsePath parses "sendfile", "mmap" or "copy".
func ParsePath(s string) (Path, error) {
	switch s {
	case "sendfile":
		return Sendfile, nil
	case "copy":
		return Copy, nil
	case "mmap":
		return Mmap, nil
	}
	return 0, fmt.Errorf("consumer: fetch path %q: want sendfile, mmap or copy", s)
}

func (p Path) String() string {
	switch p {
	case Copy:
		return "copy"
	case Mmap:
		return "mmap"
	}
	return "sendfile"
}

// Counters of record bytes sent, by path. They prove which path ran: each
// path adds to its own counter only.
var (
	SentfileBytes atomic.Int64
	CopiedBytes   atomic.Int64
	MappedBytes   atomic.Int64
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
		if err := writeAll(rc, e.buf[prev:s.at], nil); err != nil {
			return err
		}
		prev = s.at
		var err error
		switch path {
		case Copy:
			err = copyRegion(rc, s.region.File(), s.region.Position, s.region.Length)
		case Mmap:
			err = writeMapped(rc, s.region.File(), s.region.Position, s.region.Length)
		default:
			err = sendfile(rc, s.region.File(), s.region.Position, s.region.Length)
		}
		if err != nil {
			return err
		}
	}
	return writeAll(rc, e.buf[prev:], nil)
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

// writeAll writes b to the socket, waiting on the poller when it is full,
// and adds the bytes written to counted unless it is nil.
//
// The callbacks given to rc.Write here and in sendfile go on until the
// socket says EAGAIN: the poller is edge-triggered, so returning to wait
// after a short write that left the socket writable (a short file, a fault
// in the source) would wait for an event that does not come.
func writeAll(rc syscall.RawConn, b []byte, counted *atomic.Int64) error {
	if len(b) == 0 {
		return nil
	}
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			n, err := unix.Write(int(fd), b)
			if err == unix.EAGAIN {
				return false
			}
			if err != nil {
				werr = err
				return true
			}
			b = b[n:]
			if counted != nil {
				counted.Add(int64(n))
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("consumer: write: %w", werr)
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
	err := rc.Write(func(fd uintptr) bool {
		for n > 0 {
			off := pos
			chunk := min(n, 1<<30)
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
		}
		return true
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("consumer: sendfile: %w", serr)
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
		if err := writeAll(rc, chunk[:r], &CopiedBytes); err != nil {
			return err
		}
		pos += int64(r)
		n -= int64(r)
	}
	return nil
}

// writeMapped maps f read-only and writes [pos, pos+n) to the socket from
// the mapping, then unmaps it: the kernel copies the bytes once, from the
// page cache (through the mapping) into the socket buffer, and the process
// never holds them in a buffer of its own.
//
// The region is mapped here, once per send, because the segment's own
// mapping will not do: a segment is mapped only while it is the active one,
// and that mapping is unmapped at the roll under a lock that a reader would
// have to hold across socket writes. The region's reference keeps f open.
// mmap.Map maps from the start of the file, so the mapping spans pos+n bytes
// of address space; only the region's pages are faulted in.
//
// Go code never reads the mapped bytes; only write(2) does. Should the file
// end inside the region (cut under a reader), the kernel's copy fails with
// EFAULT, which ends the send with ErrShortFile, instead of the process
// taking SIGBUS.
func writeMapped(rc syscall.RawConn, f *os.File, pos, n int64) error {
	m, err := mmap.Map(f, int(pos+n), mmap.ReadOnly)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	defer m.Unmap()
	err = writeAll(rc, m.Bytes()[pos:pos+n], &MappedBytes)
	if errors.Is(err, unix.EFAULT) {
		return fmt.Errorf("%w: %w", ErrShortFile, err)
	}
	return err
}
