package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// One TCP listener (--raft-listen) carries two kinds of connections, told
// apart by their first byte: Raft's own RPCs, and proposals a broker
// forwards to the Raft leader.
const (
	connRaft    byte = 'R'
	connForward byte = 'F'
)

// muxListener splits accepted connections by their first byte. It is
// Raft's StreamLayer: Accept returns Raft connections; forwarded proposals
// go to onForward.
type muxListener struct {
	ln        net.Listener
	tls       *PeerTLS // nil: plain TCP
	raftConns chan net.Conn
	onForward func(net.Conn)
	log       *slog.Logger
	done      chan struct{}
	closeOnce sync.Once
}

var _ raft.StreamLayer = (*muxListener)(nil)

func newMuxListener(ln net.Listener, pt *PeerTLS, onForward func(net.Conn), log *slog.Logger) *muxListener {
	m := &muxListener{ln: ln, tls: pt, raftConns: make(chan net.Conn), onForward: onForward, log: log, done: make(chan struct{})}
	go m.acceptLoop()
	return m
}

// Accept failures other than a closed listener (out of descriptors, out of
// buffers, a connection aborted before it was taken) pass: the loop waits,
// from acceptBackoffMin doubling to acceptBackoffMax, and goes on, so a
// broker short of descriptors for a moment keeps its Raft listener.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

func (m *muxListener) acceptLoop() {
	var wait time.Duration
	var lastLog time.Time
	for {
		c, err := m.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				m.Close()
				return
			}
			wait = min(max(2*wait, acceptBackoffMin), acceptBackoffMax)
			if time.Since(lastLog) >= 10*time.Second {
				lastLog = time.Now()
				m.log.Error("raft listener: accept failed; retrying", "err", err, "retry_in", wait)
			}
			select {
			case <-time.After(wait):
			case <-m.done:
				return
			}
			continue
		}
		wait = 0
		go m.route(c)
	}
}

// route reads a connection's first byte and hands it on; over TLS, the
// first byte inside the TLS stream, once the handshake verified the peer.
func (m *muxListener) route(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if m.tls != nil {
		tc := tls.Server(c, m.tls.Server)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			m.log.Warn("raft listener: TLS handshake failed; closing the connection", "remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
		tc.SetDeadline(time.Time{})
		tc.SetReadDeadline(time.Now().Add(10 * time.Second))
		c = tc
	}
	var kind [1]byte
	if _, err := io.ReadFull(c, kind[:]); err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	switch kind[0] {
	case connRaft:
		select {
		case m.raftConns <- c:
		case <-m.done:
			c.Close()
		}
	case connForward:
		m.onForward(c)
	default:
		c.Close()
	}
}

// Accept returns the next Raft connection.
func (m *muxListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftConns:
		return c, nil
	case <-m.done:
		return nil, fmt.Errorf("cluster: raft listener closed: %w", net.ErrClosed)
	}
}

// Close stops accepting.
func (m *muxListener) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.ln.Close()
	})
	return err
}

// Addr is the listener's address.
func (m *muxListener) Addr() net.Addr { return m.ln.Addr() }

// Dial opens a Raft connection to a peer.
func (m *muxListener) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialKind(string(addr), connRaft, timeout, m.tls)
}

// PeerTLS is TLS on the Raft listener and on every connection to another
// voter's (--raft-tls): Server for the connections accepted (it must
// require and verify client certificates), Client for those dialled, by
// the host dialled.
type PeerTLS struct {
	Server *tls.Config
	Client func(serverName string) *tls.Config
}

func dialKind(addr string, kind byte, timeout time.Duration, pt *PeerTLS) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if pt != nil {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			c.Close()
			return nil, err
		}
		tc := tls.Client(c, pt.Client(host))
		tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("cluster: TLS handshake with %s: %w", addr, err)
		}
		tc.SetDeadline(time.Time{})
		c = tc
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, err
	}
	c.SetWriteDeadline(time.Time{})
	return c, nil
}
