package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/testbatch"
)

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// failingListener fails its first fail accepts with err, then accepts.
type failingListener struct {
	net.Listener
	err  error
	fail atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fail.Add(-1) >= 0 {
		return nil, l.err
	}
	return l.Listener.Accept()
}

func TestAcceptErrorsBackOff(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		t.Run(errno.Error(), func(t *testing.T) {
			const failures = 5
			ts := newConnServer(t, Config{}, nil, func(ln net.Listener) net.Listener {
				fl := &failingListener{Listener: ln, err: &net.OpError{Op: "accept", Net: "tcp", Addr: ln.Addr(),
					Err: os.NewSyscallError("accept4", errno)}}
				fl.fail.Store(failures)
				return fl
			})
			ts.checkServed(t)
			select {
			case err := <-ts.served:
				t.Fatalf("Serve returned %v", err)
			default:
			}
			if got := ts.metric(t, "runnel_accept_errors_total"); got != failures {
				t.Errorf("runnel_accept_errors_total = %v, want %d", got, failures)
			}
			if n := ts.log.lines("accepting a connection failed; retrying"); n != 1 {
				t.Errorf("%d log lines for %d accept failures in a burst, want 1", n, failures)
			}
		})
	}
}

func TestServeEndsWhenListenerCloses(t *testing.T) {
	var ln net.Listener
	ts := newConnServer(t, Config{}, nil, func(l net.Listener) net.Listener { ln = l; return l })
	ts.checkServed(t)
	ln.Close()
	select {
	case err := <-ts.served:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve returned %v, want net.ErrClosed", err)
		}
	case <-time.After(waitLong):
		t.Fatal("Serve goes on after its listener closed")
	}
}

// TestClosedConnectionsFreeSlots opens, parks a request on, and closes
// many more connections than the server admits at once: each closed
// connection must give its slot back although its request would still be
// parked, so a new client is served afterwards.
func TestClosedConnectionsFreeSlots(t *testing.T) {
	const maxConns = 100
	produce := func() kmsg.Request {
		r := kmsg.NewPtrProduceRequest()
		r.SetVersion(9)
		r.Acks, r.TimeoutMillis = -1, math.MaxInt32
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topicW.Name
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = testbatch.Make(testbatch.Spec{Timestamp: 1, ProducerID: -1, Values: testbatch.Values(1, 8, 1)})
		rt.Partitions = append(rt.Partitions, rp)
		r.Topics = append(r.Topics, rt)
		return r
	}
	join := func() kmsg.Request {
		r := kmsg.NewPtrJoinGroupRequest()
		r.SetVersion(3)
		r.Group, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis, r.ProtocolType = "g", 30000, math.MaxInt32, "consumer"
		r.Protocols = append(r.Protocols, kmsg.JoinGroupRequestProtocol{Name: "range", Metadata: []byte{0}})
		return r
	}
	cases := []struct {
		name   string
		cycles int
		req    func() kmsg.Request
	}{
		{"long-poll fetch", 10200, func() kmsg.Request { return longPollFetch(math.MaxInt32) }},
		{"acks=all produce", 1020, produce},
		{"join group", 1020, join},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var accepted *countingListener
			ts := newConnServer(t, Config{MaxConnections: maxConns, MaxFetchWait: time.Hour}, nil, func(ln net.Listener) net.Listener {
				accepted = &countingListener{Listener: ln}
				return accepted
			})
			for i := 0; i < tc.cycles; i++ {
				c, err := net.Dial("tcp", ts.addr)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.Write(frame(tc.req(), int32(i))); err != nil {
					t.Fatal(err)
				}
				c.Close()
			}
			// Once every cycle's connection is accepted (or refused), the
			// slots must all come back.
			waitFor(t, "every connection to be accepted", func() bool { return accepted.n.Load() == int64(tc.cycles) })
			waitFor(t, "closed connections to give back their slots", func() bool { return ts.s.nconns.Load() == 0 })
			t.Logf("%v connections refused for the limit while cycling", ts.metric(t, "runnel_connections_rejected_total"))
			ts.checkServed(t)
		})
	}
}

// TestFetchWaitCapped: a fetch asking to wait for ever is answered once
// MaxFetchWait has passed.
func TestFetchWaitCapped(t *testing.T) {
	ts := newConnServer(t, Config{MaxFetchWait: 20 * time.Millisecond}, nil, nil)
	c := ts.dial(t)
	body := roundTrip(t, c, longPollFetch(math.MaxInt32))
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(12)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("answer %+v", resp)
	}
}

// TestWriteTimeout: a client that sends requests and never reads the
// answers is disconnected once an answer has waited WriteTimeout on its
// socket; another client is served meanwhile and afterwards. Both ways of
// writing are covered: an encoded response, and a fetch's records sent
// with sendfile.
func TestWriteTimeout(t *testing.T) {
	cases := []struct {
		name string
		req  func() kmsg.Request
	}{
		{"ApiVersions", func() kmsg.Request { return apiVersionsRequest() }},
		{"fetch", func() kmsg.Request { return longPollFetch(0) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newConnServer(t, Config{WriteTimeout: 100 * time.Millisecond}, nil, nil)
			// 256 KiB of records for the fetches to return.
			p := kmsg.NewPtrProduceRequest()
			p.SetVersion(9)
			p.Acks, p.TimeoutMillis = 1, 10000
			pt := kmsg.NewProduceRequestTopic()
			pt.Topic = topicT.Name
			pp := kmsg.NewProduceRequestTopicPartition()
			pp.Records = testbatch.Make(testbatch.Spec{Timestamp: 1, ProducerID: -1, Values: testbatch.Values(4, 64<<10, 1)})
			pt.Partitions = append(pt.Partitions, pp)
			p.Topics = append(p.Topics, pt)
			resp := kmsg.NewPtrProduceResponse()
			resp.SetVersion(9)
			pc := ts.dial(t)
			if err := resp.ReadFrom(roundTrip(t, pc, p)); err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
				t.Fatalf("produce: %+v, %v", resp, err)
			}
			pc.Close()

			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) {
					// A small window, so the server's socket fills soon.
					syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				})
			}}
			stuck, err := d.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer stuck.Close()
			writeErr := make(chan error, 1)
			go func() {
				req := frame(tc.req(), 1)
				batch := make([]byte, 0, 1000*len(req))
				for range 1000 {
					batch = append(batch, req...)
				}
				for {
					if _, err := stuck.Write(batch); err != nil {
						writeErr <- err
						return
					}
				}
			}()
			ts.checkServed(t)
			select {
			case err := <-writeErr:
				t.Logf("the client that does not read: %v", err)
			case <-time.After(waitLong):
				t.Fatal("a client that never reads is still connected")
			}
			waitFor(t, "the connection to close", func() bool { return ts.s.nconns.Load() == 0 })
			if got := ts.metric(t, "runnel_write_timeouts_total"); got != 1 {
				t.Errorf("runnel_write_timeouts_total = %v, want 1", got)
			}
			ts.checkServed(t)
		})
	}
}

// TestBadRequestLogLimit: a thousand bad frames from one address log a
// bounded number of lines and one summary, and every one is counted.
func TestBadRequestLogLimit(t *testing.T) {
	const bad = 1000
	var flush []func()
	var mu sync.Mutex
	ts := newConnServer(t, Config{}, func(s *Server) {
		s.clientLog.after = func(_ time.Duration, f func()) { mu.Lock(); flush = append(flush, f); mu.Unlock() }
	}, nil)
	// A header naming API key 9999: undecodable.
	junk := binary.BigEndian.AppendUint32(nil, 10)
	junk = append(junk, 0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0)
	for i := 0; i < bad; i++ {
		c := ts.dial(t)
		if _, err := c.Write(junk); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(waitLong))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("bad frame %d: read %v, want the server to close", i, err)
		}
		c.Close()
	}
	if got := ts.metric(t, "runnel_bad_requests_total", "reason", "header"); got != bad {
		t.Errorf("runnel_bad_requests_total{reason=header} = %v, want %d", got, bad)
	}
	if n := ts.log.lines("closing connection: undecodable request header"); n != clientLogLimit {
		t.Errorf("%d warnings for %d bad frames, want %d", n, bad, clientLogLimit)
	}
	mu.Lock()
	if len(flush) != 1 {
		t.Fatalf("%d summaries due, want 1", len(flush))
	}
	flush[0]()
	mu.Unlock()
	if n := ts.log.lines("suppressed warnings about a client"); n != 1 {
		t.Fatalf("%d summary lines, want 1", n)
	}
	ts.log.mu.Lock()
	got := ts.log.attrs["suppressed warnings about a client"][0]["suppressed"].Int64()
	ts.log.mu.Unlock()
	if got != bad-clientLogLimit {
		t.Errorf("summary says %d suppressed, want %d", got, bad-clientLogLimit)
	}
	if n := ts.log.total(); n > 2*clientLogLimit {
		t.Errorf("%d log lines in all for %d bad frames", n, bad)
	}
}

func TestLogLimiterWindows(t *testing.T) {
	now := time.Unix(1000, 0)
	var due []func()
	var summaries []string
	l := newLogLimiter(2, time.Minute, func(key string, n int, _ time.Duration) {
		summaries = append(summaries, fmt.Sprintf("%s:%d", key, n))
	})
	l.now = func() time.Time { return now }
	l.after = func(_ time.Duration, f func()) { due = append(due, f) }
	allowed := func(key string, n int) (k int) {
		for range n {
			if l.allow(key) {
				k++
			}
		}
		return k
	}
	if k := allowed("a", 5); k != 2 {
		t.Fatalf("first window: %d of 5 allowed, want 2", k)
	}
	if k := allowed("b", 1); k != 1 {
		t.Fatalf("another key shares a's window")
	}
	now = now.Add(time.Minute)
	// The window is over but its summary is not written yet: a still waits.
	if k := allowed("a", 1); k != 0 {
		t.Fatalf("allowed before the summary")
	}
	if len(due) != 1 {
		t.Fatalf("%d summaries due, want 1", len(due))
	}
	due[0]()
	if len(summaries) != 1 || summaries[0] != "a:4" {
		t.Fatalf("summaries %v, want [a:4]", summaries)
	}
	if k := allowed("a", 3); k != 2 {
		t.Fatalf("second window: %d of 3 allowed, want 2", k)
	}
	// b's window passed with nothing suppressed: no summary, a new window.
	if k := allowed("b", 2); k != 2 {
		t.Fatalf("b's next window: %d of 2 allowed", k)
	}
}

// TestQueuedRequestBytes: twenty connections each declaring a large frame
// and sending it slowly reserve no more than the budget between them; a
// small request waits for room and is answered once the budget frees; a
// frame larger than the whole budget is refused.
func TestQueuedRequestBytes(t *testing.T) {
	const (
		budget = 1 << 20
		large  = 400 << 10
		conns  = 20
	)
	ts := newConnServer(t, Config{MaxQueuedRequestBytes: budget, MaxRequestBytes: 8 << 20}, nil, nil)
	var bigs []net.Conn
	for range conns {
		c := ts.dial(t)
		b := binary.BigEndian.AppendUint32(nil, large)
		b = append(b, make([]byte, 100)...) // the start of the frame, never the rest
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		bigs = append(bigs, c)
	}
	waitFor(t, "every large frame to be reserved or waiting", func() bool {
		held, waiting := ts.s.budget.stats()
		return held/large+int64(waiting) == conns
	})
	held, waiting := ts.s.budget.stats()
	if held > budget {
		t.Fatalf("%d bytes of frames held, over the budget of %d", held, budget)
	}
	t.Logf("held %d, waiting %d", held, waiting)
	if got := ts.metric(t, "runnel_queued_request_bytes"); got != float64(held) {
		t.Errorf("runnel_queued_request_bytes = %v, want %d", got, held)
	}

	small := ts.dial(t)
	answered := make(chan error, 1)
	go func() {
		small.SetDeadline(time.Now().Add(waitLong))
		if _, err := small.Write(frame(apiVersionsRequest(), 7)); err != nil {
			answered <- err
			return
		}
		_, err := io.ReadFull(small, make([]byte, 4))
		answered <- err
	}()
	waitFor(t, "the small request to wait for room", func() bool {
		_, w := ts.s.budget.stats()
		return w == waiting+1
	})
	for _, c := range bigs {
		c.Close()
	}
	if err := <-answered; err != nil {
		t.Fatalf("small request after the budget freed: %v", err)
	}
	waitFor(t, "the budget to be given back", func() bool { h, w := ts.s.budget.stats(); return h == 0 && w == 0 })

	tooLarge := ts.dial(t)
	tooLarge.Write(binary.BigEndian.AppendUint32(nil, budget+1))
	tooLarge.SetReadDeadline(time.Now().Add(waitLong))
	if _, err := tooLarge.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("frame larger than the budget: read %v, want the server to close", err)
	}
	if got := ts.metric(t, "runnel_bad_requests_total", "reason", "frame"); got != 1 {
		t.Errorf("runnel_bad_requests_total{reason=frame} = %v, want 1", got)
	}
}

// TestShutdownAnswersParkedJoin: Shutdown ends connections' contexts, yet
// a JoinGroup parked on one is still answered (COORDINATOR_NOT_AVAILABLE,
// by the group coordinator's close), not dropped as for a client gone.
func TestShutdownAnswersParkedJoin(t *testing.T) {
	ts := newConnServer(t, Config{}, nil, nil)
	c := ts.dial(t)
	r := kmsg.NewPtrJoinGroupRequest()
	r.SetVersion(3)
	r.Group, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis, r.ProtocolType = "g", 30000, 60000, "consumer"
	r.Protocols = append(r.Protocols, kmsg.JoinGroupRequestProtocol{Name: "range", Metadata: []byte{0}})
	if _, err := c.Write(frame(r, 7)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the join to park", func() bool {
		return ts.metric(t, "runnel_bytes_in_total") > 0
	})
	shut := make(chan error, 1)
	go func() { shut <- ts.s.Shutdown(context.Background()) }()
	c.SetReadDeadline(time.Now().Add(waitLong))
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatalf("parked JoinGroup not answered at shutdown: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.SetVersion(3)
	if err := resp.ReadFrom(b[4:]); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("error code %d, want COORDINATOR_NOT_AVAILABLE", resp.ErrorCode)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// TestLogLimiterBoundsKeys: past maxLimitKeys addresses in one window, new
// addresses share one window, so the limiter's memory and the lines it
// lets through stay bounded however many addresses a client uses.
func TestLogLimiterBoundsKeys(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLogLimiter(1, time.Minute, func(string, int, time.Duration) {})
	l.now = func() time.Time { return now }
	l.after = func(time.Duration, func()) {}
	allowed := 0
	for i := range maxLimitKeys + 100 {
		if l.allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256)) {
			allowed++
		}
	}
	if allowed != maxLimitKeys+1 { // one for each address, then one for the shared window
		t.Fatalf("%d lines allowed for %d addresses, want %d", allowed, maxLimitKeys+100, maxLimitKeys+1)
	}
	if n := len(l.mu.keys); n != maxLimitKeys+1 {
		t.Fatalf("%d windows remembered, want %d", n, maxLimitKeys+1)
	}
	// Once the windows are over, their keys are forgotten for new ones
	// (the shared window stays until its summary is written).
	now = now.Add(time.Minute)
	if !l.allow("192.0.2.1") {
		t.Fatal("a new address after the windows ended is not allowed")
	}
	if n := len(l.mu.keys); n > 2 {
		t.Fatalf("%d windows remembered after they ended", n)
	}
}
