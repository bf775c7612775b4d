package server

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/consumer"
)

// maxInFlight bounds the replies a connection has read but not answered.
const maxInFlight = 32

// reply is one request's answer, produced in two phases. The handler runs
// in the connection's reader, in request order, and does what must happen in
// that order (decoding, appending). finish runs in the writer, also in
// order, and may block (waiting for durability, long-polling) before it
// returns what to send.
type reply struct {
	hdr    requestHeader
	finish func() any // kmsg.Response, *consumer.Encoded, or nil for no answer
}

type conn struct {
	s       *Server
	nc      net.Conn
	remote  string
	host    string // the client's address as Kafka shows it: "/" and the IP
	replies chan *reply
	stop    atomic.Bool
}

func newConn(s *Server, nc net.Conn) *conn {
	remote := nc.RemoteAddr().String()
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	return &conn{s: s, nc: nc, remote: remote, host: "/" + host, replies: make(chan *reply, maxInFlight)}
}

// stopReading makes the reader finish: requests already read are answered.
func (c *conn) stopReading() {
	c.stop.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

func (c *conn) serve() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.writeLoop()
	}()
	c.readLoop()
	close(c.replies)
	<-done
}

func (c *conn) readLoop() {
	var size [4]byte
	for !c.stop.Load() {
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
		if _, err := io.ReadFull(c.nc, size[:]); err != nil {
			c.readFailed(err, "reading frame size")
			return
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		if n < 0 || n > c.s.cfg.MaxRequestBytes {
			err := ErrFrameTooLarge
			if n < 0 {
				err = ErrNegativeLength
			}
			c.s.log.Warn("closing connection: bad request frame", "remote", c.remote, "size", n, "max", c.s.cfg.MaxRequestBytes, "err", err)
			c.s.m.badRequest("frame")
			return
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(c.nc, frame); err != nil {
			c.readFailed(err, "reading request")
			return
		}
		c.s.m.bytesIn(int(n) + 4)
		hdr, body, err := parseHeader(frame)
		if err != nil {
			c.s.log.Warn("closing connection: undecodable request header", "remote", c.remote, "api_key", hdr.Key, "api_version", hdr.Version, "err", err)
			c.s.m.badRequest("header")
			return
		}
		if c.s.log.Enabled(context.Background(), slog.LevelDebug) {
			c.s.log.Debug("request", "remote", c.remote, "api", apiName(hdr.Key), "version", hdr.Version,
				"correlation_id", hdr.CorrelationID, "client_id", hdr.ClientID)
		}
		r, err := c.s.dispatch(c, hdr, body)
		if err != nil {
			c.s.log.Warn("closing connection: bad request", "remote", c.remote, "api_key", hdr.Key,
				"api_version", hdr.Version, "client_id", hdr.ClientID, "err", err)
			c.s.m.badRequest(apiName(hdr.Key))
			return
		}
		if r != nil {
			c.replies <- r
		}
	}
}

func (c *conn) readFailed(err error, what string) {
	if c.stop.Load() || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.s.log.Info("closing idle connection", "remote", c.remote, "idle", c.s.cfg.IdleTimeout)
		return
	}
	c.s.log.Debug("connection read failed", "remote", c.remote, "while", what, "err", err)
}

func (c *conn) writeLoop() {
	var buf []byte
	broken := false
	for r := range c.replies {
		start := time.Now()
		out := r.finish()
		if broken || out == nil {
			if e, ok := out.(*consumer.Encoded); ok {
				e.Release()
			}
			continue
		}
		var err error
		var n int64
		switch v := out.(type) {
		case *consumer.Encoded:
			n = v.Size()
			err = consumer.Send(c.nc, v, c.s.cfg.FetchPath)
		case kmsg.Response:
			buf = encodeResponse(buf[:0], r.hdr, v)
			n = int64(len(buf))
			_, err = c.nc.Write(buf)
		}
		c.s.m.request(apiName(r.hdr.Key), time.Since(start))
		c.s.m.bytesOut(n)
		if err != nil {
			c.s.log.Debug("connection write failed", "remote", c.remote, "err", err)
			broken = true
			c.stopReading()
			c.nc.Close()
		}
	}
}

// encodeResponse frames a response: size, correlation id, header tags for
// flexible versions (never for ApiVersions, whose response header is
// always v0), then the body.
func encodeResponse(b []byte, h requestHeader, resp kmsg.Response) []byte {
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(h.CorrelationID))
	if h.Flexible && h.Key != apiVersionsKey {
		b = append(b, 0)
	}
	b = resp.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}
