package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/internal/certstore"
	"github.com/runnel-io/runnel/internal/testcerts"
)

func TestParseListeners(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // as printed; "" with err
		err  string
	}{
		{"", "", ""},
		{"PLAINTEXT://127.0.0.1:9092", "PLAINTEXT://127.0.0.1:9092", ""},
		{"PLAINTEXT://127.0.0.1:9092, SSL://:9093", "PLAINTEXT://127.0.0.1:9092,SSL://:9093", ""},
		{"CLIENTS://[::1]:9092,INTERNAL_2://broker1.example.com:0", "CLIENTS://[::1]:9092,INTERNAL_2://broker1.example.com:0", ""},
		{"127.0.0.1:9092", "", "want NAME://host:port"},
		{"SSL://127.0.0.1", "", "want NAME://host:port"},
		{"SSL://127.0.0.1:99999", "", "want NAME://host:port"},
		{"S SL://127.0.0.1:1", "", "want NAME://host:port"},
		{"://127.0.0.1:1", "", "want NAME://host:port"},
		{"SSL://a:1,SSL://b:2", "", "named twice"},
	} {
		got, err := ParseListeners(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || FormatListeners(got) != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.in, FormatListeners(got), err, tc.want)
		}
	}
}

func TestParseProtocolMap(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"CLIENTS:SSL,INTERNAL:PLAINTEXT", "CLIENTS:SSL,INTERNAL:PLAINTEXT", ""},
		{"A:SASL_SSL, B:SASL_PLAINTEXT", "A:SASL_SSL,B:SASL_PLAINTEXT", ""},
		{FormatProtocolMap(DefaultProtocolMap), "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL", ""},
		{"A:TLS", "", "want PLAINTEXT, SSL"},
		{"A:ssl", "", "want PLAINTEXT, SSL"},
		{"A", "", "want NAME:PROTOCOL"},
		{"A:SSL,A:PLAINTEXT", "", "mapped twice"},
	} {
		got, err := ParseProtocolMap(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || FormatProtocolMap(got) != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.in, FormatProtocolMap(got), err, tc.want)
		}
	}
}

// TestListenerPlans: the listener settings resolve as documented, and
// every inconsistency is refused by Validate with the flag's name.
func TestListenerPlans(t *testing.T) {
	l := func(s string) []ListenerAddr {
		v, err := ParseListeners(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	base := DefaultConfig()
	plans, inter, err := base.listenerPlans()
	if err != nil || len(plans) != 1 || plans[0].name != "PLAINTEXT" || plans[0].addr != base.Listen || inter != "PLAINTEXT" {
		t.Fatalf("--listen alone: %+v %s %v", plans, inter, err)
	}
	c := base
	c.Listeners = l("CLIENTS://0.0.0.0:9092,REPL://10.0.0.1:9094")
	c.AdvertisedListeners = l("CLIENTS://b1.example.com:9092")
	c.ListenerProtocols = []ListenerProtocol{{"CLIENTS", SSL}, {"REPL", Plaintext}}
	c.InterBrokerListener = "REPL"
	c.TLS = TLSConfig{CertFile: "c.pem", KeyFile: "k.pem"}
	plans, inter, err = c.listenerPlans()
	if err != nil || inter != "REPL" || len(plans) != 2 || plans[0].advertise != "b1.example.com:9092" ||
		plans[0].protocol != SSL || plans[1].advertise != "" || plans[1].protocol != Plaintext {
		t.Fatalf("two listeners: %+v %s %v", plans, inter, err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		err  string
	}{
		{"sasl ssl without a certificate", func(c *Config) { c.Listeners = l("SASL_SSL://:9093,PLAINTEXT://:9092") }, "SASL_SSL listener SASL_SSL needs --tls-cert-file"},
		{"sasl inter-broker without a user", func(c *Config) { c.Listeners = l("SASL_PLAINTEXT://:9093") }, "give the broker's own user with --scram-user"},
		{"sasl inter-broker user unknown", func(c *Config) {
			c.Listeners, c.SASL.InterBrokerUser = l("SASL_PLAINTEXT://:9093"), "broker"
			c.SASL.Users = []ScramUserSpec{{Name: "admin", Mechanism: 2, Password: "x"}}
		}, "--inter-broker-sasl-user broker is not one of"},
		{"sasl inter-broker mechanism off", func(c *Config) {
			c.Listeners = l("SASL_PLAINTEXT://:9093")
			c.SASL.Users = []ScramUserSpec{{Name: "admin", Mechanism: 1, Password: "x"}}
			c.SASL.Mechanisms = []string{"SCRAM-SHA-512"}
		}, "its mechanism SCRAM-SHA-256 is not in --sasl-enabled-mechanisms"},
		{"sasl without mechanisms", func(c *Config) {
			c.Listeners, c.SASL.Mechanisms = l("PLAINTEXT://:9092,SASL_PLAINTEXT://:9093"), nil
		}, "--sasl-enabled-mechanisms is empty"},
		{"oauthbearer without a JWKS file", func(c *Config) {
			c.Listeners, c.SASL.Mechanisms = l("PLAINTEXT://:9092,SASL_PLAINTEXT://:9093"), []string{"OAUTHBEARER"}
		}, "needs --sasl-oauthbearer-jwks-file"},
		{"sasl users file missing", func(c *Config) { c.SASL.UsersFile = "/nonexistent/users" }, "--scram-users-file"},
		{"ssl without a certificate", func(c *Config) { c.Listeners = l("SSL://:9093") }, "needs --tls-cert-file"},
		{"no protocol", func(c *Config) { c.Listeners = l("CLIENTS://:9093") }, "no protocol in --listener-security-protocol-map"},
		{"advertised unknown", func(c *Config) {
			c.Listeners, c.AdvertisedListeners = l("PLAINTEXT://:9092"), l("SSL://x:1")
		}, "--advertised-listeners: SSL is not one of"},
		{"advertised alone", func(c *Config) { c.AdvertisedListeners = l("PLAINTEXT://x:1") }, "needs --listeners"},
		{"inter-broker unknown", func(c *Config) {
			c.Listeners, c.InterBrokerListener = l("PLAINTEXT://:9092"), "REPL"
		}, "--inter-broker-listener REPL is not one of"},
		{"client auth without a CA", func(c *Config) {
			c.TLS = TLSConfig{CertFile: "c", KeyFile: "k", ClientAuth: certstore.ClientAuthRequire}
		}, "needs --tls-ca-file"},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "c" }, "give both or neither"},
		{"bad mapping rule", func(c *Config) { c.TLS.PrincipalMappingRules = "RULE:x" }, "--ssl-principal-mapping-rules"},
	} {
		c := DefaultConfig()
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
		}
	}
}

// tlsBroker runs a broker with a PLAINTEXT and an SSL listener, both on
// ports the kernel picks, with certificates from ca.
func tlsBroker(t *testing.T, ca *testcerts.CA, auth certstore.ClientAuth) (*Broker, testcerts.Files) {
	t.Helper()
	files := ca.Write(t, t.TempDir(), "broker", ca.Issue(t, pkix.Name{CommonName: "broker1"}, 1000, "127.0.0.1", "localhost"))
	cfg := testConfig(t)
	cfg.Listeners = []ListenerAddr{{"PLAINTEXT", "127.0.0.1:0"}, {"SSL", "127.0.0.1:0"}}
	cfg.TLS = TLSConfig{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, ClientAuth: auth}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- b.Run(context.Background()) }()
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-ran; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return b, files
}

func clientTLS(t *testing.T, ca *testcerts.CA, cert *testcerts.Pair) *tls.Config {
	c := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		pair, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c
}

// metadataBrokers asks the seed for metadata and returns the brokers'
// addresses.
func metadataBrokers(t *testing.T, ctx context.Context, opts ...kgo.Opt) []string {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range resp.Brokers {
		out = append(out, net.JoinHostPort(b.Host, fmt.Sprint(b.Port)))
	}
	return out
}

// produceConsume writes n records to topic and reads them back.
func produceConsume(t *testing.T, ctx context.Context, topic string, n int, opts ...kgo.Opt) {
	t.Helper()
	opts = append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation())
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	for got := 0; got < n; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if got >= n {
				return // records of an earlier call on the topic, past this call's n
			}
			if want := fmt.Sprintf("v%d", got); string(r.Value) != want {
				t.Fatalf("record %d: %q, want %q", got, r.Value, want)
			}
			got++
		})
	}
}

// TestPlaintextAndSSLListeners: one broker serves a plaintext and an SSL
// listener; Metadata on each names the broker's address on that listener;
// franz-go produces and consumes over SSL with and without a client
// certificate (request), and the fetched record bytes go through the TLS
// path, not sendfile.
func TestPlaintextAndSSLListeners(t *testing.T) {
	ca := testcerts.NewCA(t, "test ca")
	b, _ := tlsBroker(t, ca, certstore.ClientAuthRequest)
	plain, ssl := b.ListenerAddr("PLAINTEXT"), b.ListenerAddr("SSL")
	if plain == "" || ssl == "" || plain == ssl {
		t.Fatalf("listeners %q and %q", plain, ssl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got := metadataBrokers(t, ctx, kgo.SeedBrokers(plain)); len(got) != 1 || got[0] != plain {
		t.Errorf("metadata on PLAINTEXT names %v, want [%s]", got, plain)
	}
	if got := metadataBrokers(t, ctx, kgo.SeedBrokers(ssl), kgo.DialTLSConfig(clientTLS(t, ca, nil))); len(got) != 1 || got[0] != ssl {
		t.Errorf("metadata on SSL names %v, want [%s]", got, ssl)
	}

	tlsBefore, sentBefore := consumer.BufferedBytes.Load(), consumer.SentfileBytes.Load()
	produceConsume(t, ctx, "anonymous", 50, kgo.SeedBrokers(ssl), kgo.DialTLSConfig(clientTLS(t, ca, nil)))
	client := ca.Issue(t, pkix.Name{CommonName: "app", Organization: []string{"Example"}}, 5)
	produceConsume(t, ctx, "mtls", 50, kgo.SeedBrokers(ssl), kgo.DialTLSConfig(clientTLS(t, ca, &client)))
	if consumer.BufferedBytes.Load() == tlsBefore {
		t.Error("no record bytes went through the TLS fetch path")
	}
	if consumer.SentfileBytes.Load() != sentBefore {
		t.Error("record bytes were sent with sendfile on a TLS listener")
	}
	// The plaintext listener still uses sendfile.
	produceConsume(t, ctx, "plain", 10, kgo.SeedBrokers(plain))
	if consumer.SentfileBytes.Load() == sentBefore {
		t.Error("the plaintext listener did not use sendfile")
	}
}

// TestSSLRequireAndReload: with require, a client without a certificate is
// refused; after the broker's files are replaced, new connections get the
// new certificate, with no restart.
func TestSSLRequireAndReload(t *testing.T) {
	ca := testcerts.NewCA(t, "test ca")
	b, files := tlsBroker(t, ca, certstore.ClientAuthRequire)
	ssl := b.ListenerAddr("SSL")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cl, err := kgo.NewClient(kgo.SeedBrokers(ssl), kgo.DialTLSConfig(clientTLS(t, ca, nil)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	cl.Close()
	if err == nil {
		t.Fatal("a client without a certificate was served")
	}
	client := ca.Issue(t, pkix.Name{CommonName: "app"}, 6)
	produceConsume(t, ctx, "required", 20, kgo.SeedBrokers(ssl), kgo.DialTLSConfig(clientTLS(t, ca, &client)))

	peerSerial := func() int64 {
		t.Helper()
		c, err := tls.Dial("tcp", ssl, clientTLS(t, ca, &client))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := peerSerial(); got != 1000 {
		t.Fatalf("serial %d, want 1000", got)
	}
	next := ca.Issue(t, pkix.Name{CommonName: "broker1"}, 1001, "127.0.0.1", "localhost")
	ca.Write(t, filepath.Dir(files.Cert), "broker", next)
	if got := peerSerial(); got != 1001 {
		t.Fatalf("after replacing the files: serial %d, want 1001", got)
	}
	produceConsume(t, ctx, "required-after-reload", 20, kgo.SeedBrokers(ssl), kgo.DialTLSConfig(clientTLS(t, ca, &client)))
}

// TestInterBrokerSSL: two brokers whose inter-broker listener is SSL with
// client certificates required replicate a topic; acks=all succeeds only
// once the follower has fetched over TLS with its own certificate. Clients
// use the PLAINTEXT listener, and Metadata there names both brokers'
// plaintext addresses. Raft runs over TLS too (--raft-tls): the quorum
// forms, and its port answers no plaintext connection.
func TestInterBrokerSSL(t *testing.T) {
	if testing.Short() {
		t.Skip("two brokers")
	}
	ca := testcerts.NewCA(t, "test ca")
	voters := []cluster.Voter{{ID: 1, Addr: freeAddr(t)}, {ID: 2, Addr: freeAddr(t)}}
	brokers, stop := startQuorum(t, voters, func(cfg *Config, v cluster.Voter) {
		files := ca.Write(t, t.TempDir(), "broker", ca.Issue(t, pkix.Name{CommonName: fmt.Sprintf("broker%d", v.ID)}, int64(v.ID), "127.0.0.1"))
		cfg.Listeners = []ListenerAddr{{"CLIENTS", "127.0.0.1:0"}, {"REPLICATION", "127.0.0.1:0"}}
		cfg.ListenerProtocols = []ListenerProtocol{{"CLIENTS", Plaintext}, {"REPLICATION", SSL}}
		cfg.InterBrokerListener = "REPLICATION"
		cfg.TLS = TLSConfig{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, ClientAuth: certstore.ClientAuthRequire}
		cfg.RaftTLS = true
	})
	defer stop()
	if t.Failed() {
		return
	}
	var seeds []string
	for _, b := range brokers {
		seeds = append(seeds, b.ListenerAddr("CLIENTS"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Each broker registers itself as it starts: ask until both are in
	// the metadata this broker has applied.
	want := slices.Sorted(slices.Values(seeds))
	for {
		got := metadataBrokers(t, ctx, kgo.SeedBrokers(seeds[0]))
		slices.Sort(got)
		if slices.Equal(got, want) {
			break
		}
		if ctx.Err() != nil || len(got) > len(want) || !slices.ContainsFunc(got, func(a string) bool { return slices.Contains(want, a) }) {
			t.Fatalf("metadata on CLIENTS names %v, want %v", got, want)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 2, nil, "replicated"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	tlsBefore := consumer.BufferedBytes.Load()
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "replicated", Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	if consumer.BufferedBytes.Load() == tlsBefore {
		t.Error("the follower fetched no record bytes over TLS")
	}
	// The Raft port speaks TLS: a client of the CA completes a handshake;
	// one without a certificate is refused.
	peer := ca.Issue(t, pkix.Name{CommonName: "peer"}, 99)
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", voters[0].Addr, clientTLS(t, ca, &peer))
	if err != nil {
		t.Fatalf("TLS to the Raft port with a certificate of the CA: %v", err)
	}
	tc.Close()
	anon, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", voters[0].Addr, clientTLS(t, ca, nil))
	if err == nil {
		anon.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = anon.Read(make([]byte, 1))
		anon.Close()
	}
	if err == nil {
		t.Error("a TLS client without a certificate was served on the Raft port")
	}
}
