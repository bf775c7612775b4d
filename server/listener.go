package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/runnel-io/runnel/cluster"
)

// Listener is one named listener a server accepts connections on.
type Listener struct {
	// Name is the listener's name, the one every broker registers its
	// advertised address under: a client is answered (Metadata,
	// FindCoordinator, DescribeCluster) with the brokers' addresses on
	// the listener it connected to. Empty: cluster.DefaultListener.
	Name string
	// TLS, when set, makes it an SSL listener: every connection is a TLS
	// server connection with this configuration, and its handshake must
	// finish within the write timeout before the first request is read.
	TLS *tls.Config
	// SASL, when set, makes it a SASL_PLAINTEXT listener (SASL_SSL with
	// TLS): a client must authenticate before any request but ApiVersions
	// and the SASL ones, and its principal is then "User:" and its name.
	SASL *SASL
}

// Anonymous is the principal of a connection that proves no identity: one
// on a plaintext listener, or a TLS client without a certificate.
const Anonymous = "User:ANONYMOUS"

// Principal returns the principal a TLS client's certificate proves
// without mapping rules (Config.PrincipalMapping), as Kafka names it by
// default: "User:" and the certificate's subject as an
// RFC 2253 distinguished name ("User:CN=app,O=Example"). No certificate
// is Anonymous.
func Principal(certs []*x509.Certificate) string {
	if len(certs) == 0 {
		return Anonymous
	}
	return "User:" + certs[0].Subject.String()
}

func (l Listener) name() string {
	if l.Name == "" {
		return cluster.DefaultListener
	}
	return l.Name
}

// ServeListener accepts connections on ln as the listener l until
// Shutdown, as Serve does; a server may serve several listeners at once,
// each from its own goroutine.
func (s *Server) ServeListener(ln net.Listener, l Listener) error {
	l.Name = l.name()
	s.mu.Lock()
	s.mu.lns = append(s.mu.lns, ln)
	s.mu.Unlock()
	if s.shutting.Load() {
		ln.Close()
		return nil
	}
	return s.accept(ln, l)
}

// handshake finishes the TLS handshake of a connection on an SSL listener
// and takes the principal from the client's certificate. It reports false,
// with a log line and a metric, when the handshake fails (a plaintext
// client, an untrusted or missing certificate where one is required, a
// client too slow); the connection is then closed without a request read.
func (c *conn) handshake() bool {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return true
	}
	tc.SetDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	err := tc.HandshakeContext(c.ctx)
	tc.SetDeadline(time.Time{})
	if err != nil {
		if !c.s.shutting.Load() {
			c.warn("closing connection: TLS handshake failed", "remote", c.remote, "listener", c.listener, "err", handshakeError(err))
			c.s.m.tlsHandshakeFailed()
		}
		return false
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		name, err := c.s.cfg.PrincipalMapping.Map(certs[0].Subject.String())
		if err != nil {
			c.warn("closing connection: no principal for the client certificate", "remote", c.remote, "listener", c.listener, "err", err)
			c.s.m.tlsHandshakeFailed()
			return false
		}
		c.principal = "User:" + name
	}
	c.s.log.Debug("TLS connection", "remote", c.remote, "listener", c.listener, "principal", c.principal,
		"version", tls.VersionName(tc.ConnectionState().Version))
	return true
}

// handshakeError says what a failed handshake was, briefly.
func handshakeError(err error) error {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return fmt.Errorf("not a TLS client (first bytes %x)", rh.RecordHeader[:])
	}
	return err
}
