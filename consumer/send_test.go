package consumer

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Path
	}{
		{"sendfile", Sendfile},
		{"mmap", Mmap},
		{"copy", Copy},
	} {
		got, err := ParsePath(tc.in)
		if err != nil || got != tc.want {
			t.Fatalf("ParsePath(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.in {
			t.Fatalf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
	for _, bad := range []string{"", "Sendfile", "splice", "read"} {
		if _, err := ParsePath(bad); err == nil {
			t.Fatalf("ParsePath(%q) accepted", bad)
		}
	}
}

// TestRegionPastEndOfFile sends a region longer than its file, as happens
// when a log is cut under a reader: every path must end with ErrShortFile
// after sending only bytes of the file. For the mmap path this also shows
// that a mapping past the end of the file faults inside write(2), which
// fails with EFAULT, and not in the process.
func TestRegionPastEndOfFile(t *testing.T) {
	page := os.Getpagesize()
	content := bytes.Repeat([]byte("runnel!"), page/7+1)[:page]
	f, err := os.Create(filepath.Join(t.TempDir(), "short.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(content); err != nil {
		t.Fatal(err)
	}
	paths := []struct {
		name string
		send func(rc syscall.RawConn, f *os.File, pos, n int64) error
	}{
		{"sendfile", sendfile},
		{"mmap", writeMapped},
		{"copy", copyRegion},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			srv, cli := loopbackPair(t)
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(cli)
				got <- b
			}()
			rc, err := srv.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			// A send that waits on the poller for a socket that is
			// already writable never returns: the deadline turns that
			// into a failure instead of a hung test.
			srv.SetWriteDeadline(time.Now().Add(time.Minute))
			err = p.send(rc, f, 0, 3*int64(page))
			srv.Close()
			if !errors.Is(err, ErrShortFile) {
				t.Fatalf("err = %v, want ErrShortFile", err)
			}
			b := <-got
			if !bytes.HasPrefix(content, b) {
				t.Fatalf("sent %d bytes that are not a prefix of the file", len(b))
			}
		})
	}
}

func loopbackPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}
