package broker

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/certstore"
	"github.com/runnel-io/runnel/internal/sasl"
	"github.com/runnel-io/runnel/internal/testcerts"
)

// TestAuthorizerReplicates: three brokers with the authorizer on and
// only User:admin in --super-users, replicating over SASL (each broker the
// SCRAM user broker) or over mTLS (each with a certificate of the same
// subject): each broker's own inter-broker principal may replicate, so a
// topic on all three keeps its ISR and acks=all produces succeed, while a
// client is held to its ACLs.
func TestAuthorizerReplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("three brokers")
	}
	ca := testcerts.NewCA(t, "test ca")
	for _, inter := range []SecurityProtocol{SASLPlaintext, SSL} {
		t.Run(string(inter), func(t *testing.T) { authorizerReplicates(t, ca, inter) })
	}
}

func authorizerReplicates(t *testing.T, ca *testcerts.CA, inter SecurityProtocol) {
	voters := []cluster.Voter{{ID: 1, Addr: freeAddr(t)}, {ID: 2, Addr: freeAddr(t)}, {ID: 3, Addr: freeAddr(t)}}
	brokers, stop := startQuorum(t, voters, func(cfg *Config, v cluster.Voter) {
		cfg.Listeners = []ListenerAddr{{"CLIENTS", "127.0.0.1:0"}, {"REPLICATION", "127.0.0.1:0"}}
		cfg.ListenerProtocols = []ListenerProtocol{{"CLIENTS", SASLPlaintext}, {"REPLICATION", inter}}
		cfg.InterBrokerListener = "REPLICATION"
		cfg.SASL.Users = []ScramUserSpec{{"broker", sasl.SHA512, "broker-pw"}, {"admin", sasl.SHA512, "admin-pw"},
			{"app", sasl.SHA512, "app-pw"}}
		if inter == SSL {
			files := ca.Write(t, t.TempDir(), "broker", ca.Issue(t, pkix.Name{CommonName: "runnel-broker"}, int64(v.ID), "127.0.0.1"))
			cfg.TLS = TLSConfig{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, ClientAuth: certstore.ClientAuthRequire,
				PrincipalMappingRules: "DEFAULT"}
		}
		cfg.Authorizer = AuthorizerConfig{Enabled: true, SuperUsers: "User:admin"}
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
	client := func(user, pass string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProduceRequestTimeout(20*time.Second), kgo.RetryTimeout(20*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	adm := kadm.NewClient(client("admin", "admin-pw"))
	waitRegistered(t, ctx, adm, 3)
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "replicated"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	acl := kadm.NewACLs().Allow("User:app").Topics("replicated").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral)
	if res, err := adm.CreateACLs(ctx, acl); err != nil || res[0].Err != nil {
		t.Fatalf("create ACL: %v %+v", err, res)
	}
	// The ACL holds on each broker once that broker has applied it.
	for _, b := range brokers {
		for len(b.meta.Acls()) == 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("broker %d never applied the ACL", b.cfg.NodeID)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	app := client("app", "app-pw")
	for i := range 20 {
		r := &kgo.Record{Topic: "replicated", Value: fmt.Appendf(nil, "%d", i)}
		if err := app.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d as app: %v", i, err)
		}
	}
	for _, b := range brokers {
		if p, ok := b.meta.Partition("replicated", 0); ok && len(p.ISR) != 3 {
			t.Errorf("broker %d sees the ISR %v, want all three", b.cfg.NodeID, p.ISR)
		}
	}
	// The same client may not write a topic it has no ACL for.
	if err := app.ProduceSync(ctx, &kgo.Record{Topic: "other", Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("produce to a topic without an ACL: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}
