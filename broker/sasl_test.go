package broker

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/internal/certstore"
	"github.com/runnel-io/runnel/internal/sasl"
	"github.com/runnel-io/runnel/internal/testcerts"
)

func TestParseScramUsers(t *testing.T) {
	users, err := ParseScramUsers("# admins\nadmin:SCRAM-SHA-512:a:b:c\n\n  app:SCRAM-SHA-256:x  \n")
	if err != nil || len(users) != 2 || users[0].Password != "a:b:c" || users[1] != (ScramUserSpec{"app", sasl.SHA256, "x"}) {
		t.Fatalf("%+v %v", users, err)
	}
	for _, bad := range []string{"admin", "admin:SCRAM-SHA-512", "admin:SCRAM-SHA-512:", ":SCRAM-SHA-512:x", "admin:PLAIN:x", "a:SCRAM-SHA-1:x"} {
		if _, err := ParseScramUser(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, err := ParseMechanisms("PLAIN,GSSAPI"); err == nil {
		t.Error("GSSAPI accepted")
	}
	if m, err := ParseMechanisms("SCRAM-SHA-512, PLAIN"); err != nil || !slices.Equal(m, []string{"SCRAM-SHA-512", "PLAIN"}) {
		t.Errorf("%v %v", m, err)
	}
}

func saslOpts(seed string, m kgo.Opt) []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(seed), m, kgo.RetryTimeout(5 * time.Second)}
}

// TestScramUsersAtStart: --scram-user and --scram-users-file create their
// credentials at start; a restart leaves them as they were (a changed
// password in the flags does not replace one), and the users log in with
// SCRAM and PLAIN while a wrong password is refused.
func TestScramUsersAtStart(t *testing.T) {
	cfg := testConfig(t)
	cfg.Listeners = []ListenerAddr{{"PLAINTEXT", "127.0.0.1:0"}, {"SASL_PLAINTEXT", "127.0.0.1:0"}}
	cfg.SASL.Mechanisms = []string{sasl.ScramSHA512, sasl.ScramSHA256, sasl.Plain}
	cfg.SASL.Users = []ScramUserSpec{{"admin", sasl.SHA512, "secret"}}
	cfg.SASL.UsersFile = filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(cfg.SASL.UsersFile, []byte("app:SCRAM-SHA-256:app-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := func(cfg Config, check func(b *Broker)) {
		b, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		check(b)
		b.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var salt []byte
	run(cfg, func(b *Broker) {
		c, ok := b.meta.ScramCredential("admin", int8(sasl.SHA512))
		if !ok || len(b.meta.ScramSecret()) != 32 {
			t.Fatal("no admin credential or secret after start")
		}
		salt = c.Salt
		addr := b.ListenerAddr("SASL_PLAINTEXT")
		produceConsume(t, ctx, "admins", 5, saslOpts(addr, kgo.SASL(scram.Auth{User: "admin", Pass: "secret"}.AsSha512Mechanism()))...)
		produceConsume(t, ctx, "apps", 5, saslOpts(addr, kgo.SASL(scram.Auth{User: "app", Pass: "app-pw"}.AsSha256Mechanism()))...)
		produceConsume(t, ctx, "plain", 5, saslOpts(addr, kgo.SASL(plain.Auth{User: "app", Pass: "app-pw"}.AsMechanism()))...)
	})
	secret := []byte(nil)
	cfg.SASL.Users[0].Password = "changed"
	run(cfg, func(b *Broker) {
		c, _ := b.meta.ScramCredential("admin", int8(sasl.SHA512))
		if !bytes.Equal(c.Salt, salt) {
			t.Error("a restart made the credential again")
		}
		secret = b.meta.ScramSecret()
		addr := b.ListenerAddr("SASL_PLAINTEXT")
		produceConsume(t, ctx, "admins", 5, saslOpts(addr, kgo.SASL(scram.Auth{User: "admin", Pass: "secret"}.AsSha512Mechanism()))...)
		cl, err := kgo.NewClient(saslOpts(addr, kgo.SASL(scram.Auth{User: "admin", Pass: "changed"}.AsSha512Mechanism()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("the changed password: %v, want SASL_AUTHENTICATION_FAILED", err)
		}
	})
	if len(secret) != 32 {
		t.Errorf("secret after restart %x", secret)
	}
}

// TestInterBrokerSASLSSL: three brokers whose inter-broker listener is
// SASL_SSL, authenticating as the user "broker" with SCRAM-SHA-512,
// replicate a topic: acks=all succeeds only once both followers have
// fetched over the authenticated TLS connections. Clients use a
// SASL_PLAINTEXT listener with SCRAM-SHA-256.
func TestInterBrokerSASLSSL(t *testing.T) {
	if testing.Short() {
		t.Skip("three brokers")
	}
	ca := testcerts.NewCA(t, "test ca")
	voters := []cluster.Voter{{ID: 1, Addr: freeAddr(t)}, {ID: 2, Addr: freeAddr(t)}, {ID: 3, Addr: freeAddr(t)}}
	brokers, stop := startQuorum(t, voters, func(cfg *Config, v cluster.Voter) {
		files := ca.Write(t, t.TempDir(), "broker", ca.Issue(t, pkix.Name{CommonName: fmt.Sprintf("broker%d", v.ID)}, int64(v.ID), "127.0.0.1"))
		cfg.Listeners = []ListenerAddr{{"CLIENTS", "127.0.0.1:0"}, {"REPLICATION", "127.0.0.1:0"}}
		cfg.ListenerProtocols = []ListenerProtocol{{"CLIENTS", SASLPlaintext}, {"REPLICATION", SASLSSL}}
		cfg.InterBrokerListener = "REPLICATION"
		cfg.TLS = TLSConfig{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, ClientAuth: certstore.ClientAuthNone}
		cfg.SASL.Users = []ScramUserSpec{{"broker", sasl.SHA512, "broker-pw"}, {"app", sasl.SHA256, "app-pw"}}
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
	auth := kgo.SASL(scram.Auth{User: "app", Pass: "app-pw"}.AsSha256Mechanism())
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), auth, kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	waitRegistered(t, ctx, adm, 3)
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "replicated"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	tlsBefore := consumer.BufferedBytes.Load()
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "replicated", Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	if consumer.BufferedBytes.Load() == tlsBefore {
		t.Error("the followers fetched no record bytes over TLS")
	}
	var isr []int32
	for _, b := range brokers {
		if p, ok := b.meta.Partition("replicated", 0); ok {
			isr = p.ISR
		}
	}
	if len(isr) != 3 {
		t.Errorf("ISR %v, want all three", isr)
	}
}

// metricValue reads an unlabelled counter from a broker's /metrics.
func metricValue(t *testing.T, b *Broker, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + b.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestInterBrokerReauthentication: with --connections-max-reauth, the
// replica fetchers renew their sessions on their connections (KIP-368)
// rather than being closed when the sessions end; acks=all keeps
// succeeding meanwhile.
func TestInterBrokerReauthentication(t *testing.T) {
	if testing.Short() {
		t.Skip("two brokers")
	}
	voters := []cluster.Voter{{ID: 1, Addr: freeAddr(t)}, {ID: 2, Addr: freeAddr(t)}}
	brokers, stop := startQuorum(t, voters, func(cfg *Config, v cluster.Voter) {
		cfg.MetricsListen = "127.0.0.1:0"
		cfg.Listeners = []ListenerAddr{{"CLIENTS", "127.0.0.1:0"}, {"REPLICATION", "127.0.0.1:0"}}
		cfg.ListenerProtocols = []ListenerProtocol{{"CLIENTS", Plaintext}, {"REPLICATION", SASLPlaintext}}
		cfg.InterBrokerListener = "REPLICATION"
		cfg.SASL.Users = []ScramUserSpec{{"broker", sasl.SHA256, "broker-pw"}}
		cfg.SASL.MaxReauth = 1500 * time.Millisecond
	})
	defer stop()
	if t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers[0].ListenerAddr("CLIENTS"), brokers[1].ListenerAddr("CLIENTS")),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	waitRegistered(t, ctx, adm, 2)
	if _, err := adm.CreateTopic(ctx, 2, 2, nil, "renewed"); err != nil {
		t.Fatal(err)
	}
	renewals := func() float64 {
		return metricValue(t, brokers[0], "runnel_sasl_reauthentications_total") + metricValue(t, brokers[1], "runnel_sasl_reauthentications_total")
	}
	for i := 0; renewals() < 4; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "renewed", Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	for _, b := range brokers {
		if n := metricValue(t, b, "runnel_sasl_expired_sessions_total"); n != 0 {
			t.Errorf("broker %d closed %v expired sessions", b.cfg.NodeID, n)
		}
	}
}
