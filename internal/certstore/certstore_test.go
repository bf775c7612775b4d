package certstore

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"

	"github.com/runnel-io/runnel/internal/testcerts"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// serial handshakes with the store's server configuration and returns the
// serial number of the certificate the server presented.
func serial(t *testing.T, s *Store, ca *testcerts.CA) int64 {
	t.Helper()
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	errc := make(chan error, 1)
	go func() { errc <- tls.Server(sc, s.ServerConfig()).Handshake() }()
	c := tls.Client(cc, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if v := c.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Fatalf("TLS version %x", v)
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestReloadOnChange: a handshake after the files are replaced presents the
// new certificate; a key that does not match keeps the old one and is
// counted; Reload loads at once.
func TestReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	f := ca.Write(t, dir, "server", ca.Issue(t, pkix.Name{CommonName: "broker"}, 100, "localhost"))
	s, err := Open(Options{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if got := serial(t, s, ca); got != 100 {
		t.Fatalf("serial %d, want 100", got)
	}
	ca.Write(t, dir, "server", ca.Issue(t, pkix.Name{CommonName: "broker"}, 101, "localhost"))
	if got := serial(t, s, ca); got != 101 {
		t.Fatalf("after replacing the files: serial %d, want 101", got)
	}
	// A certificate whose key is not written yet: the old pair stays.
	next := ca.Issue(t, pkix.Name{CommonName: "broker"}, 102, "localhost")
	if err := os.WriteFile(f.Cert, next.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := serial(t, s, ca); got != 101 {
		t.Fatalf("with a mismatched key: serial %d, want 101", got)
	}
	if r, fails := s.Reloads(); r != 1 || fails != 1 {
		t.Fatalf("reloads %d failures %d, want 1 and 1", r, fails)
	}
	if err := s.Reload(); err != nil { // nothing changed since the failure
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Key, next.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := s.Leaf().SerialNumber.Int64(); got != 102 {
		t.Fatalf("after Reload: serial %d, want 102", got)
	}
	if got := serial(t, s, ca); got != 102 {
		t.Fatalf("serial %d, want 102", got)
	}
}

// TestRequireClientCert: with require, a client without a certificate
// fails the handshake and one with a certificate the CA signed passes.
func TestRequireClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	f := ca.Write(t, dir, "server", ca.Issue(t, pkix.Name{CommonName: "broker"}, 7, "localhost"))
	s, err := Open(Options{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA, ClientAuth: ClientAuthRequire, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	client := ca.Issue(t, pkix.Name{CommonName: "app"}, 8)
	pair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{{"without", nil, false}, {"with", []tls.Certificate{pair}, true}} {
		sc, cc := net.Pipe()
		errc := make(chan error, 1)
		go func() { errc <- tls.Server(sc, s.ServerConfig()).Handshake(); sc.Close() }()
		c := tls.Client(cc, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: tc.certs})
		// A TLS 1.3 client learns of a refusal on its first read, which
		// also takes the server's session tickets; the server then closes.
		if c.Handshake() == nil {
			c.Read(make([]byte, 1))
		}
		if err := <-errc; (err == nil) != tc.ok {
			t.Errorf("%s a client certificate: server handshake error %v", tc.name, err)
		}
		cc.Close()
	}
	if _, err := Open(Options{CertFile: f.Cert, KeyFile: f.Key, ClientAuth: ClientAuthRequire}); err == nil {
		t.Error("require without a CA file opened")
	}
}

func TestParseClientAuth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ClientAuth
		ok   bool
	}{{"none", ClientAuthNone, true}, {"request", ClientAuthRequest, true}, {"require", ClientAuthRequire, true},
		{"required", 0, false}, {"", 0, false}, {"REQUIRE", 0, false}} {
		got, err := ParseClientAuth(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("%q: %v, %v", tc.in, got, err)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("%q prints as %q", tc.in, got)
		}
	}
}
