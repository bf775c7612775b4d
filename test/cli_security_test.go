package test

import (
	"crypto/x509/pkix"
	"strings"
	"testing"

	"github.com/runnel-io/runnel/internal/testcerts"
)

// TestCLIOverSecureListeners: every client command reaches a broker that
// listens only on SASL_SSL (SCRAM, with --authorizer) and on SSL with
// client certificates required, with the CLI's --tls-* and --sasl-* flags:
// topics, produce and consume, groups, the cluster status, ACLs, users and
// a benchmark. Without the flags the same command fails instead of hanging.
func TestCLIOverSecureListeners(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "runnel test ca")
	files := ca.Write(t, dir, "broker", ca.Issue(t, pkix.Name{CommonName: "broker1"}, 4000, "127.0.0.1", "localhost"))
	client := ca.Write(t, dir, "client", ca.Issue(t, pkix.Name{CommonName: "cli"}, 4001))
	saslSSL, ssl := freePort(t), freePort(t)
	b := &broker{t: t, dataDir: t.TempDir(), addr: saslSSL, metrics: freePort(t)}
	b.args = []string{"--listeners", "SASL_SSL://" + saslSSL + ",SSL://" + ssl,
		"--tls-cert-file", files.Cert, "--tls-key-file", files.Key, "--tls-ca-file", files.CA, "--tls-client-auth", "request",
		"--sasl-enabled-mechanisms", "SCRAM-SHA-512", "--scram-user", "admin:SCRAM-SHA-512:admin-secret",
		"--authorizer", "--super-users", "User:admin;User:CN=cli"}
	b.start()
	t.Cleanup(func() { b.kill() })

	overSASL := []string{"--brokers", saslSSL, "--tls-ca-file", files.CA,
		"--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "admin", "--sasl-password", "admin-secret"}
	overMTLS := []string{"--brokers", ssl, "--tls-ca-file", files.CA, "--tls-cert-file", client.Cert, "--tls-key-file", client.Key}
	run := func(stdin string, conn []string, args ...string) string {
		t.Helper()
		return mustCLI(t, nil, stdin, append(args, conn...)...).stdout
	}

	run("", overSASL, "topic", "create", "secure", "--partitions", "2")
	run("a:1\nb:2\nc:3\n", overSASL, "produce", "secure", "--key-separator", ":")
	got := run("", overMTLS, "consume", "secure", "--from", "beginning", "-e", "--format", "%k=%s\n")
	for _, want := range []string{"a=1", "b=2", "c=3"} {
		if !strings.Contains(got, want) {
			t.Errorf("consume over SSL with a client certificate lacks %q:\n%s", want, got)
		}
	}
	if out := run("", overSASL, "topic", "list"); !strings.Contains(out, "secure") {
		t.Errorf("topic list over SASL_SSL:\n%s", out)
	}
	run("", overMTLS, "group", "list")
	if out := run("", overSASL, "cluster", "status"); !strings.Contains(out, "alive") {
		t.Errorf("cluster status over SASL_SSL:\n%s", out)
	}
	run("", overSASL, "acl", "create", "--allow-principal", "User:reader", "--operation", "Read", "--topic", "secure")
	if out := run("", overMTLS, "acl", "list"); !strings.Contains(out, "User:reader") {
		t.Errorf("acl list over SSL:\n%s", out)
	}
	if out := run("", overSASL, "user", "list"); !strings.Contains(out, "admin") {
		t.Errorf("user list over SASL_SSL:\n%s", out)
	}
	run("", overMTLS, "bench", "produce", "--topic", "secure-bench", "--records", "1000", "--json")

	// The SASL_SSL listener without TLS, and without a login.
	for _, conn := range [][]string{
		{"--brokers", saslSSL, "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "admin", "--sasl-password", "admin-secret"},
		{"--brokers", saslSSL, "--tls-ca-file", files.CA},
	} {
		if r := runCLI(t, nil, "", append([]string{"topic", "list"}, conn...)...); r.code == 0 {
			t.Errorf("topic list with %v succeeded: %s", conn, r.stdout)
		}
	}
	// A wrong password is refused by the broker.
	bad := append([]string{"topic", "list"}, overSASL[:len(overSASL)-1]...)
	if r := runCLI(t, nil, "", append(bad, "wrong")...); r.code == 0 || !strings.Contains(r.stderr, "SASL_AUTHENTICATION_FAILED") {
		t.Errorf("a wrong password: exit %d, stderr %q", r.code, r.stderr)
	}
}
