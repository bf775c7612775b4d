package cluster

import (
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first failures Accepts with err, then accepts.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
	err      error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, l.err
	}
	return l.Listener.Accept()
}

// TestMuxSurvivesAcceptErrors: running out of descriptors (or any accept
// failure but a closed listener) does not close the Raft listener; once
// accepts work again, Raft connections and forwarded proposals get through.
func TestMuxSurvivesAcceptErrors(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ECONNABORTED} {
		t.Run(errno.Error(), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			fl := &flakyListener{Listener: ln, err: &net.OpError{Op: "accept", Net: "tcp", Err: errno}}
			fl.failures.Store(5)
			forwards := make(chan net.Conn, 1)
			m := newMuxListener(fl, nil, func(c net.Conn) { forwards <- c }, slog.New(slog.NewTextHandler(io.Discard, nil)))
			defer m.Close()

			c, err := dialKind(m.Addr().String(), connRaft, 5*time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got := make(chan net.Conn, 1)
			go func() {
				if rc, err := m.Accept(); err == nil {
					got <- rc
				}
			}()
			select {
			case rc := <-got:
				rc.Close()
			case <-time.After(10 * time.Second):
				t.Fatal("no Raft connection accepted after accept failures")
			}
			fc, err := dialKind(m.Addr().String(), connForward, 5*time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer fc.Close()
			select {
			case c := <-forwards:
				c.Close()
			case <-time.After(10 * time.Second):
				t.Fatal("no forwarded connection after accept failures")
			}
		})
	}
}

// TestMuxEndsWhenClosed: closing the listener ends Accept.
func TestMuxEndsWhenClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newMuxListener(ln, nil, func(c net.Conn) { c.Close() }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan error, 1)
	go func() { _, err := m.Accept(); done <- err }()
	m.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Accept after Close returned a connection")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Accept did not end after Close")
	}
}
