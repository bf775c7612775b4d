package server

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/testcerts"
)

func TestPrincipal(t *testing.T) {
	for _, tc := range []struct {
		subject pkix.Name
		want    string
	}{
		{pkix.Name{CommonName: "app"}, "User:CN=app"},
		{pkix.Name{CommonName: "app", Organization: []string{"Example"}, OrganizationalUnit: []string{"Payments"}},
			"User:CN=app,OU=Payments,O=Example"},
		{pkix.Name{CommonName: "a,b+c"}, `User:CN=a\,b\+c`},
	} {
		if got := Principal([]*x509.Certificate{{Subject: tc.subject}}); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.subject, got, tc.want)
		}
	}
	if got := Principal(nil); got != Anonymous {
		t.Errorf("no certificate: %q", got)
	}
}

// TestSSLListener: a server with a second, TLS listener answers a TLS
// client there and keeps its principal, mapped by the rules; a plaintext client on the TLS
// listener is closed, logged and counted, and the others are still
// served.
func TestSSLListener(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	srvPair := ca.Issue(t, pkix.Name{CommonName: "broker"}, 2, "127.0.0.1")
	cert, err := tls.X509KeyPair(srvPair.CertPEM, srvPair.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := ParsePrincipalRules(`RULE:^CN=([^,]*),O=Example$/$1/L`)
	if err != nil {
		t.Fatal(err)
	}
	ts := newConnServer(t, Config{PrincipalMapping: rules}, func(s *Server) {
		go s.ServeListener(tlsLn, Listener{Name: "SSL", TLS: &tls.Config{Certificates: []tls.Certificate{cert},
			ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool(), MinVersion: tls.VersionTLS12}})
	}, nil)

	plain, err := net.Dial("tcp", tlsLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetDeadline(time.Now().Add(waitLong))
	plain.Write(frame(apiVersionsRequest(), 7))
	if n, err := io.ReadFull(plain, make([]byte, 4)); err == nil {
		t.Fatalf("a plaintext client on the TLS listener got %d bytes", n)
	}
	waitFor(t, "the failed handshake counted", func() bool { return ts.metric(t, "runnel_tls_handshake_failures_total") == 1 })
	ts.checkServed(t)

	clientPair := ca.Issue(t, pkix.Name{CommonName: "App", Organization: []string{"Example"}}, 3)
	ccert, err := tls.X509KeyPair(clientPair.CertPEM, clientPair.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", tlsLn.Addr().String(), &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{ccert}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, apiVersionsRequest())
	var got []string
	ts.s.mu.Lock()
	for sc := range ts.s.mu.conns {
		if sc.tls {
			got = append(got, sc.listener+" "+sc.principal)
		}
	}
	ts.s.mu.Unlock()
	if len(got) != 1 || got[0] != "SSL User:app" {
		t.Fatalf("TLS connections: %q", got)
	}
}

func TestPrincipalMappingRules(t *testing.T) {
	const dn = "CN=App-One,OU=ServiceUsers,O=Example,C=US"
	for _, tc := range []struct {
		rules, dn, want string
		err             string // parse error, or "nomatch"
	}{
		{"", dn, dn, ""},
		{"DEFAULT", dn, dn, ""},
		{`RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/`, dn, "App-One", ""},
		{`RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L`, dn, "app-one", ""},
		{`RULE:^CN=(.*?),OU=(.*?),.*$/$1@$2/U`, dn, "APP-ONE@SERVICEUSERS", ""},
		{`RULE:^CN=(.*?),OU=Admins.*$/admin/, RULE:^CN=(.*?),.*$/$1/, DEFAULT`, dn, "App-One", ""},
		{`RULE:^CN=(.*?),OU=Admins.*$/admin/,DEFAULT`, dn, dn, ""},
		{`RULE:^CN=(.*?),OU=Admins.*$/admin/`, dn, "", "nomatch"},
		{`RULE:^CN=([^,]*),.*$/$1\/x/`, dn, "App-One/x", ""},
		{`RULE:^CN=([^,]*),.*$/$10/`, dn, "", ""}, // group 10 does not exist: empty, as Go expands it
		{`RULE:^CN=(.*$/x/`, "", "", "pattern"},
		{`RULE:abc`, "", "", "want RULE:pattern"},
		{`RULE:a/b`, "", "", "want RULE:pattern"},
		{`SOMETHING`, "", "", "want DEFAULT or RULE"},
		{`DEFAULT,`, "", "", "missing after the last comma"},
		{`DEFAULT DEFAULT`, "", "", "want a comma"},
	} {
		m, err := ParsePrincipalRules(tc.rules)
		if tc.err != "" && tc.err != "nomatch" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error with %q", tc.rules, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.rules, err)
			continue
		}
		got, err := m.Map(tc.dn)
		if tc.err == "nomatch" {
			if !errors.Is(err, ErrNoPrincipalRule) {
				t.Errorf("%q on %q: %q, %v; want no match", tc.rules, tc.dn, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q on %q: %q, %v; want %q", tc.rules, tc.dn, got, err, tc.want)
		}
	}
}

// TestMetadataPerListener: a client is told the brokers that have its
// listener, at their address on it; a partition led by a broker without
// it has no leader, LISTENER_NOT_FOUND from v6 (LEADER_NOT_AVAILABLE
// before), and such a coordinator is none, as Kafka answers.
func TestMetadataPerListener(t *testing.T) {
	ts := newTestServer(t, Config{})
	if resp := ts.call(t, createTopicsRequest(false, map[string]int32{"t": 1})).(*kmsg.CreateTopicsResponse); resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create: %d", resp.Topics[0].ErrorCode)
	}
	ts.meta.brokers = []cluster.BrokerInfo{
		// Broker 1 (the fake leader of every partition and the
		// controller) has no PLAINTEXT listener; the harness's client is
		// on PLAINTEXT.
		{ID: 1, Addr: "10.0.0.1:9094", Listeners: []cluster.BrokerListener{{Name: "SSL", Addr: "b1:9093"}, {Name: "REPL", Addr: "10.0.0.1:9094"}}},
		{ID: 2, Addr: "10.0.0.2:9094", Listeners: []cluster.BrokerListener{{Name: "PLAINTEXT", Addr: "b2:9092"}, {Name: "REPL", Addr: "10.0.0.2:9094"}}},
		{ID: 3, Addr: "10.0.0.3:9092"}, // registered without names: PLAINTEXT
	}
	for _, v := range []int16{5, 6, 12} {
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(v)
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("t")
		req.Topics = append(req.Topics, rt)
		resp := ts.call(t, req).(*kmsg.MetadataResponse)
		var got []string
		for _, b := range resp.Brokers {
			got = append(got, fmt.Sprintf("%d@%s:%d", b.NodeID, b.Host, b.Port))
		}
		if want := []string{"2@b2:9092", "3@10.0.0.3:9092"}; !slices.Equal(got, want) {
			t.Errorf("v%d brokers %v, want %v", v, got, want)
		}
		want := kerr.ListenerNotFound.Code
		if v < 6 {
			want = kerr.LeaderNotAvailable.Code
		}
		if p := resp.Topics[0].Partitions[0]; p.Leader != -1 || p.ErrorCode != want {
			t.Errorf("v%d partition: leader %d error %d, want -1 and %d", v, p.Leader, p.ErrorCode, want)
		}
	}
	dc := ts.call(t, kmsg.NewPtrDescribeClusterRequest()).(*kmsg.DescribeClusterResponse)
	if len(dc.Brokers) != 2 || dc.Brokers[0].NodeID != 2 || dc.Brokers[0].Host != "b2" {
		t.Errorf("DescribeCluster brokers %+v", dc.Brokers)
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(3)
	fc.CoordinatorKey = "g"
	if resp := ts.call(t, fc).(*kmsg.FindCoordinatorResponse); resp.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Errorf("FindCoordinator with the coordinator off the client's listener: error %d", resp.ErrorCode)
	}
}
