package server

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	kgosasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/runnel-io/runnel/internal/sasl"
)

type saslCreds map[string]sasl.Credential

func (c saslCreds) ScramCredential(user string, m sasl.ScramMechanism) (sasl.Credential, bool) {
	cr, ok := c[m.String()+"/"+user]
	return cr, ok
}

// saslServer serves the harness with a second listener, SASL_PLAINTEXT,
// where alice's password is "secret" for both SCRAM mechanisms.
func saslServer(t *testing.T, mechanisms ...string) (*connServer, string) {
	t.Helper()
	creds := saslCreds{}
	for _, m := range sasl.ScramMechanisms {
		cr, err := m.NewCredential("secret", []byte("salt-"+m.String()), sasl.MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		creds[m.String()+"/alice"] = cr
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if len(mechanisms) == 0 {
		mechanisms = []string{sasl.ScramSHA512, sasl.ScramSHA256, sasl.Plain}
	}
	cfg := &SASL{Mechanisms: mechanisms, Credentials: creds, Secret: func() []byte { return []byte("k") }}
	ts := newConnServer(t, Config{}, func(s *Server) {
		go s.ServeListener(ln, Listener{Name: "SASL_PLAINTEXT", SASL: cfg})
	}, nil)
	return ts, ln.Addr().String()
}

// principals returns "listener principal" of every open connection on
// the listener.
func (ts *connServer) principals(listener string) []string {
	var got []string
	ts.s.mu.Lock()
	for c := range ts.s.mu.conns {
		if c.listener == listener {
			got = append(got, c.principal)
		}
	}
	ts.s.mu.Unlock()
	return got
}

func saslClient(t *testing.T, addr string, m kgosasl.Mechanism) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(m), kgo.RetryTimeout(time.Second),
		kgo.RequestRetries(0), kgo.DialTimeout(waitLong))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestSaslClients: franz-go authenticates with each mechanism, and the
// connection's principal is the user; wrong credentials and unknown users
// are SASL_AUTHENTICATION_FAILED, logged and counted.
func TestSaslClients(t *testing.T) {
	ts, addr := saslServer(t)
	for _, tc := range []struct {
		name string
		m    kgosasl.Mechanism
		ok   bool
	}{
		{"scram-sha-256", scram.Auth{User: "alice", Pass: "secret"}.AsSha256Mechanism(), true},
		{"scram-sha-512", scram.Auth{User: "alice", Pass: "secret"}.AsSha512Mechanism(), true},
		{"plain", plain.Auth{User: "alice", Pass: "secret"}.AsMechanism(), true},
		{"scram wrong password", scram.Auth{User: "alice", Pass: "guess"}.AsSha512Mechanism(), false},
		{"scram unknown user", scram.Auth{User: "mallory", Pass: "secret"}.AsSha256Mechanism(), false},
		{"plain wrong password", plain.Auth{User: "alice", Pass: "guess"}.AsMechanism(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := saslClient(t, addr, tc.m)
			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			defer cancel()
			_, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
			if !tc.ok {
				if !errors.Is(err, kerr.SaslAuthenticationFailed) {
					t.Fatalf("got %v, want SASL_AUTHENTICATION_FAILED", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ts.principals("SASL_PLAINTEXT"); !slices.Contains(got, "User:alice") {
				t.Fatalf("principals %q", got)
			}
			cl.Close()
		})
	}
	if n := ts.saslFailures(t); n != 3 {
		t.Errorf("%v failures counted, want 3", n)
	}
	if n := ts.metric(t, "runnel_sasl_authentications_total", "mechanism", "PLAIN", "result", "success"); n != 1 {
		t.Errorf("%v PLAIN successes counted", n)
	}
	if n := ts.log.lines("closing connection: SASL authentication failed"); n != 3 {
		t.Errorf("%d failures logged, want 3", n)
	}
	ts.checkServed(t)
}

// saslFailures sums the failed authentications of every mechanism.
func (ts *connServer) saslFailures(t *testing.T) float64 {
	n := 0.0
	for _, m := range []string{"none", sasl.Plain, sasl.ScramSHA256, sasl.ScramSHA512} {
		n += ts.metric(t, "runnel_sasl_authentications_total", "mechanism", m, "result", "failure")
	}
	return n
}

// readClosed fails unless the server closes c without another byte.
func readClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitLong))
	if n, err := io.ReadFull(c, make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatalf("connection still open (%d bytes, %v)", n, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func handshake(v int16, mech string) *kmsg.SASLHandshakeRequest {
	r := kmsg.NewPtrSASLHandshakeRequest()
	r.SetVersion(v)
	r.Mechanism = mech
	return r
}

func authenticate(v int16, tok []byte) *kmsg.SASLAuthenticateRequest {
	r := kmsg.NewPtrSASLAuthenticateRequest()
	r.SetVersion(v)
	r.SASLAuthBytes = tok
	return r
}

// TestSaslOrder: before authenticating, a client may send ApiVersions and
// SaslHandshake only; anything else closes the connection, as Kafka
// closes it, with a log line and a metric.
func TestSaslOrder(t *testing.T) {
	ts, addr := saslServer(t)
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", addr, waitLong)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial()
	roundTrip(t, c, apiVersionsRequest())
	c.Write(frame(kmsg.NewPtrMetadataRequest(), 8))
	readClosed(t, c)

	c = dial()
	c.Write(frame(authenticate(1, []byte("\x00alice\x00secret")), 8))
	readClosed(t, c)

	// After a v1 handshake only SaslAuthenticate may come.
	c = dial()
	hs := kmsg.NewPtrSASLHandshakeResponse()
	hs.SetVersion(1)
	if err := hs.ReadFrom(roundTrip(t, c, handshake(1, sasl.Plain))); err != nil || hs.ErrorCode != 0 {
		t.Fatalf("handshake: %+v %v", hs, err)
	}
	c.Write(frame(apiVersionsRequest(), 8))
	readClosed(t, c)

	// A second handshake is ILLEGAL_SASL_STATE, then the close.
	c = dial()
	roundTrip(t, c, handshake(1, sasl.Plain))
	if err := hs.ReadFrom(roundTrip(t, c, handshake(1, sasl.Plain))); err != nil || hs.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("second handshake: %+v %v", hs, err)
	}
	readClosed(t, c)

	// A mechanism not enabled: UNSUPPORTED_SASL_MECHANISM with the list.
	c = dial()
	if err := hs.ReadFrom(roundTrip(t, c, handshake(1, "GSSAPI"))); err != nil || hs.ErrorCode != kerr.UnsupportedSaslMechanism.Code ||
		!slices.Equal(hs.SupportedMechanisms, []string{sasl.ScramSHA512, sasl.ScramSHA256, sasl.Plain}) {
		t.Fatalf("GSSAPI handshake: %+v %v", hs, err)
	}
	readClosed(t, c)

	// A frame larger than an unauthenticated client may send.
	c = dial()
	c.Write(binary.BigEndian.AppendUint32(nil, maxSaslReceive+1))
	readClosed(t, c)

	if n := ts.log.lines("closing connection: request before SASL authentication"); n != 3 {
		t.Errorf("%d refused requests logged, want 3", n)
	}
	if n := ts.saslFailures(t); n != 5 {
		t.Errorf("%v failures counted, want 5", n)
	}
	// The plaintext listener answers SaslHandshake ILLEGAL_SASL_STATE
	// and keeps the connection, as Kafka does.
	c = ts.dial(t)
	if err := hs.ReadFrom(roundTrip(t, c, handshake(1, sasl.Plain))); err != nil || hs.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("handshake on PLAINTEXT: %+v %v", hs, err)
	}
	roundTrip(t, c, apiVersionsRequest())
}

// rawExchange writes a bare token and reads the bare answer.
func rawExchange(t *testing.T, c net.Conn, tok []byte) ([]byte, error) {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitLong))
	if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(tok))), tok...)); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(c, b)
	return b, err
}

// TestSaslV0: after a v0 handshake the SASL tokens are bare frames, as in
// Kafka's first flow; then Kafka requests follow. A wrong password closes
// the connection without an answer.
func TestSaslV0(t *testing.T) {
	ts, addr := saslServer(t)
	for _, mech := range []kgosasl.Mechanism{
		plain.Auth{User: "alice", Pass: "secret"}.AsMechanism(),
		scram.Auth{User: "alice", Pass: "secret"}.AsSha512Mechanism(),
	} {
		c, err := net.DialTimeout("tcp", addr, waitLong)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		hs := kmsg.NewPtrSASLHandshakeResponse()
		if err := hs.ReadFrom(roundTrip(t, c, handshake(0, mech.Name()))); err != nil || hs.ErrorCode != 0 {
			t.Fatalf("v0 handshake: %+v %v", hs, err)
		}
		sess, tok, _ := mech.Authenticate(context.Background(), addr)
		for {
			out, err := rawExchange(t, c, tok)
			if err != nil {
				t.Fatalf("%s: %v", mech.Name(), err)
			}
			done, next, err := sess.Challenge(out)
			if err != nil {
				t.Fatal(err)
			}
			if done {
				break
			}
			tok = next
		}
		roundTrip(t, c, apiVersionsRequest())
	}
	if got := ts.principals("SASL_PLAINTEXT"); len(got) != 2 || got[0] != "User:alice" || got[1] != "User:alice" {
		t.Fatalf("principals %q", got)
	}

	c, err := net.DialTimeout("tcp", addr, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, handshake(0, sasl.Plain))
	if out, err := rawExchange(t, c, []byte("\x00alice\x00guess")); err == nil {
		t.Fatalf("wrong password answered %q", out)
	}
	if n := ts.log.lines("closing connection: SASL authentication failed"); n != 1 {
		t.Errorf("%d failures logged", n)
	}
	if !strings.Contains(kerr.SaslAuthenticationFailed.Message, "SASL") {
		t.Fatal("kerr changed")
	}
}

// tokens is a TokenValidator that knows one token.
type tokens map[string]string

func (t tokens) Validate(tok string) (string, time.Time, error) {
	if u, ok := t[tok]; ok {
		return u, time.Now().Add(time.Hour), nil
	}
	return "", time.Time{}, sasl.ErrTokenSignature
}

// TestSaslOAuthBearer: franz-go logs in with a token and is its
// principal; a bad token is answered with the error status, then refused,
// logged and counted once.
func TestSaslOAuthBearer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &SASL{Mechanisms: []string{sasl.OAuthBearer}, Credentials: saslCreds{}, Secret: func() []byte { return []byte("k") },
		OAuth: tokens{"good-token": "svc"}}
	ts := newConnServer(t, Config{}, func(s *Server) {
		go s.ServeListener(ln, Listener{Name: "SASL_PLAINTEXT", SASL: cfg})
	}, nil)
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	cl := saslClient(t, addr, oauth.Auth{Token: "good-token"}.AsMechanism())
	if _, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	if got := ts.principals("SASL_PLAINTEXT"); !slices.Contains(got, "User:svc") {
		t.Fatalf("principals %q", got)
	}

	// A client that follows the error status with 0x01, as Kafka's does.
	c, err := net.DialTimeout("tcp", addr, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, handshake(1, sasl.OAuthBearer))
	resp := kmsg.NewPtrSASLAuthenticateResponse()
	resp.SetVersion(1)
	if err := resp.ReadFrom(roundTrip(t, c, authenticate(1, []byte("n,,\x01auth=Bearer bad\x01\x01")))); err != nil ||
		resp.ErrorCode != 0 || string(resp.SASLAuthBytes) != `{"status":"invalid_token"}` {
		t.Fatalf("bad token: %+v %v", resp, err)
	}
	if err := resp.ReadFrom(roundTrip(t, c, authenticate(1, []byte{1}))); err != nil || resp.ErrorCode != kerr.SaslAuthenticationFailed.Code ||
		resp.ErrorMessage == nil || !strings.Contains(*resp.ErrorMessage, "signature") {
		t.Fatalf("after 0x01: %+v %v", resp, err)
	}
	readClosed(t, c)
	if n := ts.saslFailures(t) + ts.metric(t, "runnel_sasl_authentications_total", "mechanism", sasl.OAuthBearer, "result", "failure"); n != 1 {
		t.Errorf("%v failures counted, want 1", n)
	}
}

// clock is a settable clock for SASL sessions.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// expiringTokens knows one token, which expires at a set time.
type expiringTokens struct{ at func() time.Time }

func (e expiringTokens) Validate(tok string) (string, time.Time, error) {
	if tok != "tok" {
		return "", time.Time{}, sasl.ErrTokenSignature
	}
	return "svc", e.at(), nil
}

// TestSaslReauthentication (KIP-368): with a maximum session lifetime, a
// SaslAuthenticate answer names the lifetime (shorter for a token that
// expires sooner); a request after it closes the connection, logged and
// counted; authenticating again on the connection renews the session,
// but not as another user or with another mechanism.
func TestSaslReauthentication(t *testing.T) {
	creds := saslCreds{}
	for _, u := range []string{"alice", "bob"} {
		cr, _ := sasl.SHA256.NewCredential(u+"-pw", []byte("salt-"+u), sasl.MinIterations)
		creds["SCRAM-SHA-256/"+u] = cr
	}
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &SASL{Mechanisms: []string{sasl.Plain, sasl.ScramSHA256, sasl.OAuthBearer}, Credentials: creds,
		Secret: func() []byte { return []byte("k") }, MaxReauth: 10 * time.Minute,
		OAuth: expiringTokens{at: func() time.Time { return clk.now().Add(3 * time.Minute) }}}
	ts := newConnServer(t, Config{}, func(s *Server) {
		s.now = clk.now
		go s.ServeListener(ln, Listener{Name: "SASL_PLAINTEXT", SASL: cfg})
	}, nil)
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), waitLong)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	login := func(c net.Conn, mech, msg string) *kmsg.SASLAuthenticateResponse {
		t.Helper()
		hs := kmsg.NewPtrSASLHandshakeResponse()
		hs.SetVersion(1)
		if err := hs.ReadFrom(roundTrip(t, c, handshake(1, mech))); err != nil {
			t.Fatal(err)
		}
		if hs.ErrorCode != 0 {
			return nil
		}
		resp := kmsg.NewPtrSASLAuthenticateResponse()
		resp.SetVersion(2)
		if err := resp.ReadFrom(roundTrip(t, c, authenticate(2, []byte(msg)))); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	c := dial()
	if r := login(c, sasl.Plain, "\x00alice\x00alice-pw"); r.ErrorCode != 0 || r.SessionLifetimeMillis != 600_000 {
		t.Fatalf("login: %+v", r)
	}
	roundTrip(t, c, apiVersionsRequest())
	clk.add(9 * time.Minute)
	if r := login(c, sasl.Plain, "\x00alice\x00alice-pw"); r.ErrorCode != 0 || r.SessionLifetimeMillis != 600_000 {
		t.Fatalf("re-authentication: %+v", r)
	}
	clk.add(9 * time.Minute) // past the first session's end, within the second's
	roundTrip(t, c, apiVersionsRequest())
	if n := ts.metric(t, "runnel_sasl_reauthentications_total"); n != 1 {
		t.Errorf("%v re-authentications counted", n)
	}
	clk.add(2 * time.Minute)
	c.Write(frame(apiVersionsRequest(), 9))
	readClosed(t, c)
	if n := ts.metric(t, "runnel_sasl_expired_sessions_total"); n != 1 || ts.log.lines("closing connection: SASL session expired") != 1 {
		t.Errorf("expired session: %v counted, %d logged", n, ts.log.lines("closing connection: SASL session expired"))
	}
	if n := ts.saslFailures(t); n != 0 {
		t.Errorf("%v failures counted", n)
	}

	// Another user, or another mechanism, is refused.
	c = dial()
	login(c, sasl.Plain, "\x00alice\x00alice-pw")
	if r := login(c, sasl.Plain, "\x00bob\x00bob-pw"); r.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("re-authentication as bob: %+v", r)
	}
	readClosed(t, c)
	c = dial()
	login(c, sasl.Plain, "\x00alice\x00alice-pw")
	hs := kmsg.NewPtrSASLHandshakeResponse()
	hs.SetVersion(1)
	if err := hs.ReadFrom(roundTrip(t, c, handshake(1, sasl.ScramSHA256))); err != nil || hs.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("re-authentication with SCRAM after PLAIN: %+v %v", hs, err)
	}
	readClosed(t, c)

	// A token expiring before the maximum bounds the session.
	c = dial()
	if r := login(c, sasl.OAuthBearer, "n,,\x01auth=Bearer tok\x01\x01"); r.ErrorCode != 0 || r.SessionLifetimeMillis != 180_000 {
		t.Fatalf("token login: %+v", r)
	}
}

// TestSaslReauthenticationFranz: franz-go renews its sessions on the
// same connections when the broker bounds them, and its requests keep
// being served.
func TestSaslReauthenticationFranz(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cr, _ := sasl.SHA512.NewCredential("secret", []byte("salt"), sasl.MinIterations)
	// franz-go renews a second before the end: a lifetime just over a
	// second makes it renew every 100 ms or so.
	cfg := &SASL{Mechanisms: []string{sasl.ScramSHA512}, Credentials: saslCreds{"SCRAM-SHA-512/alice": cr},
		Secret: func() []byte { return []byte("k") }, MaxReauth: 1100 * time.Millisecond}
	ts := newConnServer(t, Config{}, func(s *Server) {
		go s.ServeListener(ln, Listener{Name: "SASL_PLAINTEXT", SASL: cfg})
	}, nil)
	cl := saslClient(t, ln.Addr().String(), scram.Auth{User: "alice", Pass: "secret"}.AsSha512Mechanism())
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	for ts.metric(t, "runnel_sasl_reauthentications_total") < 2 {
		if _, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl); err != nil {
			t.Fatalf("request during renewals: %v", err)
		}
	}
	if n := ts.metric(t, "runnel_sasl_expired_sessions_total"); n != 0 {
		t.Errorf("%v sessions expired", n)
	}
}
