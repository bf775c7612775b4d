package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/runnel-io/runnel/internal/testcerts"
)

// peerTLS is what --raft-tls gives a node: a server that requires a
// certificate of ca, and a client presenting p.
func peerTLS(t *testing.T, ca *testcerts.CA, p testcerts.Pair) *PeerTLS {
	t.Helper()
	cert, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &PeerTLS{
		Server: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()},
		Client: func(name string) *tls.Config {
			return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
				RootCAs: ca.Pool(), ServerName: name}
		},
	}
}

// TestNodeQuorumOverTLS: three voters elect a leader and take proposals
// forwarded by a follower with Raft and forwarding over TLS.
func TestNodeQuorumOverTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "raft ca")
	pt := peerTLS(t, ca, ca.Issue(t, pkix.Name{CommonName: "broker"}, 10, "127.0.0.1"))
	q := newTestQuorumTLS(t, 3, pt)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := q.nodes[q.follower()]
	first, err := f.Propose(ctx, CmdAllocateProducerID, AllocateProducerIDs{N: 10})
	if err != nil || first != 0 {
		t.Fatalf("a forwarded proposal over TLS: %d %v", first, err)
	}
	if next, err := q.nodes[q.leader()].Propose(ctx, CmdAllocateProducerID, AllocateProducerIDs{N: 10}); err != nil || next != 10 {
		t.Fatalf("a proposal on the leader: %d %v", next, err)
	}
}

// TestMuxTLSRefusesStrangers: a listener under --raft-tls takes no
// plaintext connection and no certificate of another CA; a peer of the
// right CA gets through.
func TestMuxTLSRefusesStrangers(t *testing.T) {
	ca := testcerts.NewCA(t, "raft ca")
	pt := peerTLS(t, ca, ca.Issue(t, pkix.Name{CommonName: "broker"}, 11, "127.0.0.1"))
	other := testcerts.NewCA(t, "another ca")
	stranger := peerTLS(t, ca, other.Issue(t, pkix.Name{CommonName: "intruder"}, 12, "127.0.0.1"))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newMuxListener(ln, pt, func(c net.Conn) { c.Close() }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer m.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := m.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	addr := m.Addr().String()

	plain, err := dialKind(addr, connRaft, 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.Write([]byte("not a TLS record"))
	// Under TLS 1.3 the client's side of the handshake ends before the
	// server checks its certificate: the server's refusal comes next.
	if sc, err := dialKind(addr, connRaft, 5*time.Second, stranger); err == nil {
		sc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := sc.Read(make([]byte, 1)); err == nil {
			t.Error("a peer with a certificate of another CA was answered")
		}
		sc.Close()
	}
	good, err := dialKind(addr, connRaft, 5*time.Second, pt)
	if err != nil {
		t.Fatalf("a peer of the right CA: %v", err)
	}
	defer good.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the verified peer's Raft connection was not accepted")
	}
	// The plaintext connection's byte began no handshake that could
	// succeed: it is closed, never handed to Raft.
	plain.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := plain.Read(make([]byte, 1)); err == nil {
		t.Error("the plaintext connection was answered")
	}
	select {
	case <-accepted:
		t.Error("a connection other than the verified peer's reached Raft")
	default:
	}
}
