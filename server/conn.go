package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
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
	finish func() any // kmsg.Response, *consumer.Encoded, rawToken, or nil for no answer
	// last closes the connection once this answer is written: the reader
	// stops, and frames it read after this request are dropped.
	last bool
	// throttle is the longest throttle the request's quotas gave its
	// client, written into the response's throttle_time_ms (see quotas.go).
	throttle time.Duration
	// consumerQuota: a fetch whose client has a consumer_byte_rate; its
	// response's size is recorded against it. replicaFetch: a follower's
	// fetch, never throttled.
	consumerQuota, replicaFetch bool
	// user is the connection's quota user when the request was handled
	// (a re-authentication may change it after), for the writer.
	user string
}

type conn struct {
	s       *Server
	nc      net.Conn
	remote  string
	addr    string // the client's IP address, the key of its log limits
	host    string // the client's address as Kafka shows it: "/" and the IP
	replies chan *reply
	stop    atomic.Bool
	// halted is set when a request was refused: the reader stops and the
	// frames it read after that one are dropped.
	halted atomic.Bool

	// listener is the name of the listener the client connected to; tls
	// is set on an SSL listener, whose fetches cannot use sendfile.
	listener string
	tls      bool
	// principal is who the client proved to be (Principal), known once
	// the TLS handshake is done; Anonymous without TLS.
	principal string
	// sasl is the authentication state on a SASL listener; only the
	// handler goroutine uses it. authed is set once the client has
	// authenticated (at once on a listener without SASL): until then the
	// reader bounds frames as Kafka bounds unauthenticated ones.
	sasl   saslConn
	authed atomic.Bool

	// ctx ends when the reader stops for any reason but Shutdown (the
	// client closed, the stream broke, a request was refused, the writer
	// gave up), and with the server's context. Parked work (long-polls,
	// durability waits, group joins) watches it, so that a connection
	// whose client is gone gives back its slot, descriptor and goroutines
	// at once rather than when its parked requests would have ended.
	ctx    context.Context
	cancel context.CancelFunc
	// gone is set when nothing more can reach the client: its answers are
	// dropped instead of written.
	gone atomic.Bool

	// mutedUntil (Unix ns) is when a throttled client may be read from and
	// handled again (quotas.go); stopCh is closed when the reader is to
	// stop, which ends a wait for it.
	mutedUntil atomic.Int64
	stopCh     chan struct{}
	stopOnce   sync.Once
}

func newConn(s *Server, nc net.Conn) *conn {
	remote := nc.RemoteAddr().String()
	addr := remoteHost(remote)
	c := &conn{s: s, nc: nc, remote: remote, addr: addr, host: "/" + addr, replies: make(chan *reply, maxInFlight),
		listener: cluster.DefaultListener, principal: Anonymous, stopCh: make(chan struct{})}
	c.authed.Store(true)
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	return c
}

// stopReading makes the reader finish: requests already read are answered.
func (c *conn) stopReading() {
	c.stop.Store(true)
	c.nc.SetReadDeadline(time.Now())
	c.closeStop()
}

func (c *conn) closeStop() { c.stopOnce.Do(func() { close(c.stopCh) }) }

// drop gives up on the client: parked work ends, answers not yet written
// are dropped, and the reader stops on the closed socket.
func (c *conn) drop() {
	c.gone.Store(true)
	c.cancel()
	c.nc.Close()
}

// warn logs a warning about the client, at most clientLogLimit a minute
// for its address.
func (c *conn) warn(msg string, args ...any) {
	if c.s.clientLog.allow(c.addr) {
		c.s.log.Warn(msg, args...)
	}
}

func (c *conn) serve() {
	if !c.handshake() {
		c.cancel()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.writeLoop()
	}()
	frames := make(chan reqFrame, frameQueue)
	go c.readLoop(frames)
	c.handleLoop(frames)
	if !c.stop.Load() {
		c.cancel()
	}
	close(c.replies)
	<-done
	c.cancel()
}

// frameQueue bounds the frames a connection has read but not yet handed to
// their handlers. The reader reads the next frames from the socket while
// the handler decodes, validates and appends the one before, so the two
// overlap; requests are still handled one at a time, in the order read.
const frameQueue = 4

// reqFrame is one request frame read and not yet handled. Its bytes are
// reserved in the request budget until the handler is done with them.
type reqFrame struct {
	b      []byte
	pooled *[]byte // b's buffer, to give back (see getFrame); nil if not pooled
}

// halt makes the reader stop after a request was refused: it stops at its
// next frame, or at once if it is waiting for one, and the frames it has
// read already are dropped unhandled.
func (c *conn) halt() {
	c.halted.Store(true)
	c.nc.SetReadDeadline(time.Now())
	c.closeStop()
	if !c.stop.Load() {
		// Also ends a wait for request budget.
		c.cancel()
	}
}

// stopped reports whether the reader is to stop.
func (c *conn) stopped() bool { return c.stop.Load() || c.halted.Load() }

// readLoop reads request frames and queues them for handleLoop; it closes
// frames when it stops.
func (c *conn) readLoop(frames chan<- reqFrame) {
	defer close(frames)
	var size [4]byte
	for {
		// A throttled client is not read from until its throttle ends.
		c.waitUnmuted()
		// The deadline is set before stop is checked: stopReading and halt
		// set their flag, then a deadline in the past, so one of the two
		// is seen.
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
		if c.stopped() {
			return
		}
		if _, err := io.ReadFull(c.nc, size[:]); err != nil {
			c.readFailed(err, "reading frame size")
			return
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		limit := c.s.cfg.MaxRequestBytes
		if !c.authed.Load() {
			limit = min(limit, maxSaslReceive)
		}
		if n < 0 || n > limit || !c.s.budget.fits(int64(n)) {
			err := ErrFrameTooLarge
			if n < 0 {
				err = ErrNegativeLength
			}
			c.warn("closing connection: bad request frame", "remote", c.remote, "size", n,
				"max", min(int64(limit), c.s.budget.max()), "err", err)
			c.s.m.badRequest("frame")
			return
		}
		waited, err := c.s.budget.acquire(c.ctx, int64(n))
		if err != nil {
			return // shutting down, or halted
		}
		if waited {
			// The idle clock stops while the server makes the client wait.
			c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
			if c.stopped() {
				c.s.budget.release(int64(n))
				return
			}
		}
		b, pooled := getFrame(int(n))
		if _, err := io.ReadFull(c.nc, b); err != nil {
			putFrame(pooled)
			c.s.budget.release(int64(n))
			c.readFailed(err, "reading request")
			return
		}
		c.s.m.bytesIn(int(n) + 4)
		frames <- reqFrame{b: b, pooled: pooled}
	}
}

// handleLoop hands each frame to its handler, in the order read, and queues
// the replies for the writer. Once a handler returns, nothing refers to the
// frame's bytes any more (see handle), so they go back to the budget and
// the frame's buffer to its pool. After a refused request the frames still
// queued are dropped. It returns when the reader has stopped and every
// frame it read is handled or dropped.
func (c *conn) handleLoop(frames <-chan reqFrame) {
	for f := range frames {
		var r *reply
		if !c.halted.Load() {
			// Frames read before a throttle began wait for its end.
			c.waitUnmuted()
			start := time.Now()
			var ok bool
			if r, ok = c.handle(f); !ok {
				c.halt()
			} else if r != nil && !quotaExempt(r) {
				r.user = c.quotaUser()
				r.throttle = max(r.throttle, c.s.recordRequestTime(c, r.user, r.hdr.ClientID, time.Since(start)))
			}
		}
		putFrame(f.pooled)
		c.s.budget.release(int64(len(f.b)))
		if r != nil {
			c.replies <- r
		}
	}
}

// handle decodes a request frame and runs its handler. A produce handler
// copies the record bytes into the log and keeps nothing else of the
// frame; any other request is decoded from a copy of its own when its
// frame is pooled, since its decoded fields (byte slices such as group
// metadata) may point into the frame and outlive the handler. ok false
// closes the connection.
func (c *conn) handle(f reqFrame) (r *reply, ok bool) {
	b := f.b
	if c.sasl.stage == saslRawTokens {
		return c.handleRawToken(b)
	}
	if f.pooled != nil && (len(b) < 2 || int16(binary.BigEndian.Uint16(b)) != produceKey) {
		b = bytes.Clone(b)
	}
	hdr, body, err := parseHeader(b)
	if err != nil {
		c.warn("closing connection: undecodable request header", "remote", c.remote, "api_key", hdr.Key, "api_version", hdr.Version, "err", err)
		c.s.m.badRequest("header")
		return nil, false
	}
	if c.s.log.Enabled(context.Background(), slog.LevelDebug) {
		c.s.log.Debug("request", "remote", c.remote, "api", apiName(hdr.Key), "version", hdr.Version,
			"correlation_id", hdr.CorrelationID, "client_id", hdr.ClientID)
	}
	if err := c.saslGate(hdr); err != nil {
		if errors.Is(err, errSessionExpired) {
			c.warn("closing connection: SASL session expired", "remote", c.remote, "listener", c.listener, "principal", c.principal, "err", err)
		} else {
			c.saslFailed("closing connection: request before SASL authentication", err)
		}
		return nil, false
	}
	r, err = c.s.dispatch(c, hdr, body)
	if err != nil {
		c.warn("closing connection: bad request", "remote", c.remote, "api_key", hdr.Key,
			"api_version", hdr.Version, "client_id", hdr.ClientID, "err", err)
		c.s.m.badRequest(apiName(hdr.Key))
		return nil, false
	}
	return r, r == nil || !r.last
}

func (c *conn) readFailed(err error, what string) {
	if c.stopped() || c.gone.Load() {
		return
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.s.log.Info("closing idle connection", "remote", c.remote, "idle", c.s.cfg.IdleTimeout)
		return
	}
	// The client closed, or the stream broke: nothing more reaches it.
	c.gone.Store(true)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	c.s.log.Debug("connection read failed", "remote", c.remote, "while", what, "err", err)
}

// await waits for a parked answer, or for the connection's end; ok is false
// in the second case, and the answer is then not wanted (the channel must
// be buffered, so that its sender does not block).
func await[T any](c *conn, ch <-chan T) (v T, ok bool) {
	select {
	case v = <-ch:
		return v, true
	case <-c.ctx.Done():
		if c.s.shutting.Load() && !c.gone.Load() {
			// Shutdown answers every parked group request itself.
			return <-ch, true
		}
		return v, false
	}
}

func (c *conn) writeLoop() {
	var buf []byte
	var fetchBuf []byte // SendBuffered's, on a TLS connection
	for r := range c.replies {
		start := time.Now()
		out := r.finish()
		if c.gone.Load() || out == nil {
			if e, ok := out.(*consumer.Encoded); ok {
				e.Release()
			}
			continue
		}
		sending := time.Now()
		c.throttleResponse(r, out)
		var err error
		var n int64
		c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
		switch v := out.(type) {
		case *consumer.Encoded:
			n = v.Size()
			if c.tls {
				if fetchBuf == nil {
					fetchBuf = make([]byte, 0, consumer.BufferedSendSize)
				}
				err = consumer.SendBuffered(c.nc, v, fetchBuf)
			} else {
				err = consumer.Send(c.nc, v, c.s.cfg.FetchPath)
			}
		case kmsg.Response:
			buf = encodeResponse(buf[:0], r.hdr, v)
			n = int64(len(buf))
			_, err = c.nc.Write(buf)
		case rawToken:
			buf = appendRawToken(buf[:0], v)
			n = int64(len(buf))
			_, err = c.nc.Write(buf)
		}
		c.s.m.request(apiName(r.hdr.Key), time.Since(start))
		c.s.m.bytesOut(n)
		if !quotaExempt(r) {
			c.s.recordSendTime(r.user, r.hdr.ClientID, time.Since(sending))
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.warn("closing connection: the client is not reading its responses", "remote", c.remote,
					"api", apiName(r.hdr.Key), "write_timeout", c.s.cfg.WriteTimeout)
				c.s.m.writeTimeout()
			} else {
				c.s.log.Debug("connection write failed", "remote", c.remote, "err", err)
			}
			c.drop()
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
