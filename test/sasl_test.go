package test

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/runnel-io/runnel/internal/testcerts"
)

// readmeBlock returns the shell block after marker in README.md, its
// continuation lines joined.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("README has no %q", marker)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n") + len("```sh\n")
	end := strings.Index(s[start:], "```")
	if start < len("```sh\n") || end < 0 {
		t.Fatalf("no sh block after %q", marker)
	}
	return strings.ReplaceAll(s[start:start+end], "\\\n", " ")
}

// TestReadmeSASL runs the README's SASL example: the broker command as
// written (on free ports, with certificates made here), then the client
// lines with bash — kcat over SASL_SSL with SCRAM-SHA-512, runnel user
// create and list, and the new user logging in with PLAIN.
func TestReadmeSASL(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed; .ci/run installs it")
	}
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "runnel test ca")
	if err := os.Mkdir(filepath.Join(dir, "tls"), 0o755); err != nil {
		t.Fatal(err)
	}
	ca.Write(t, filepath.Join(dir, "tls"), "server", ca.Issue(t, pkix.Name{CommonName: "broker1"}, 3000, "127.0.0.1", "localhost"))
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, filepath.Join(dir, "bin", "runnel")); err != nil {
		t.Fatal(err)
	}
	plainAddr, saslAddr := freePort(t), freePort(t)
	ports := strings.NewReplacer("127.0.0.1:9092", plainAddr, "127.0.0.1:9093", saslAddr, "tls/", dir+"/tls/")

	serve := strings.Fields(ports.Replace(readmeBlock(t, "<!-- sasl example: serve -->")))
	if len(serve) < 2 || serve[0] != "bin/runnel" || serve[1] != "serve" {
		t.Fatalf("README serve command %q", serve)
	}
	b := &broker{t: t, dataDir: t.TempDir(), addr: plainAddr, metrics: freePort(t), args: serve[2:]}
	b.start()
	t.Cleanup(func() { b.kill() })

	script := ports.Replace(readmeBlock(t, "<!-- sasl example: clients -->"))
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README SASL clients: %v\n%s\nbroker:\n%s", err, out, b.logs())
	}
	for _, want := range []string{`(?m)^hello$`, `created user app \(SCRAM-SHA-512, 4096 iterations\)`,
		`(?m)^admin\s+SCRAM-SHA-512\s+4096$`, `(?m)^app\s+SCRAM-SHA-512\s+4096$`, `broker 1 at ` + regexp.QuoteMeta(saslAddr)} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("README SASL clients' output lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "ERROR") {
		t.Errorf("kcat reported errors:\n%s", out)
	}
}

// kcatFails runs kcat and returns its output, failing the test if it
// succeeds.
func kcatFails(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "kcat", args...).CombinedOutput()
	if err == nil {
		t.Fatalf("kcat %v succeeded:\n%s", args, out)
	}
	return string(out)
}

// TestKcatSASLFailures: librdkafka is refused with a wrong password and
// as an unknown user, each refusal logged and counted; a raw request
// before authentication closes the connection; the broker serves on.
func TestKcatSASLFailures(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed; .ci/run installs it")
	}
	saslAddr := freePort(t)
	b := &broker{t: t, dataDir: t.TempDir(), addr: freePort(t), metrics: freePort(t)}
	b.args = []string{"--listeners", "PLAINTEXT://" + b.addr + ",SASL_PLAINTEXT://" + saslAddr,
		"--scram-user", "admin:SCRAM-SHA-512:admin-secret"}
	b.start()
	t.Cleanup(func() { b.kill() })
	login := func(user, pass string) []string {
		return []string{"-L", "-b", saslAddr, "-m", "10", "-X", "security.protocol=sasl_plaintext",
			"-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=" + user, "-X", "sasl.password=" + pass}
	}
	if out := kcat(t, "", login("admin", "admin-secret")...); !strings.Contains(out, "broker 1 at "+saslAddr) {
		t.Fatalf("kcat -L over SASL_PLAINTEXT:\n%s", out)
	}
	for _, who := range [][2]string{{"admin", "guess"}, {"mallory", "admin-secret"}} {
		if out := kcatFails(t, login(who[0], who[1])...); !strings.Contains(out, "Authentication failed") {
			t.Errorf("kcat as %s/%s: no authentication failure reported:\n%s", who[0], who[1], out)
		}
	}
	// A client speaking before it authenticates is closed.
	c, err := net.DialTimeout("tcp", saslAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := kmsg.NewPtrMetadataRequest()
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("early")).AppendRequest(nil, req, 1)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	if n, err := io.ReadFull(c, make([]byte, 4)); err == nil {
		t.Fatalf("a request before authenticating was answered (%d bytes)", n)
	}
	// The line may follow the close by a moment.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(b.logs(), "closing connection: request before SASL authentication"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("the early request was not logged:\n%s", b.logs())
			break
		}
	}
	if n := strings.Count(b.logs(), "closing connection: SASL authentication failed"); n < 2 {
		t.Errorf("%d failed authentications logged, want 2 or more", n)
	}
	metrics := b.metricsText()
	if !regexp.MustCompile(`runnel_sasl_authentications_total\{mechanism="SCRAM-SHA-512",result="failure"\} [2-9]`).MatchString(metrics) {
		t.Errorf("failures not counted:\n%s", grepLines(metrics, "runnel_sasl"))
	}
	kcat(t, "", login("admin", "admin-secret")...)
}

// TestScramUsersRestartAndCLI: a --scram-user's credential and one made
// with runnel user create survive a restart; runnel user delete removes
// a user, which then cannot log in; the CLI logs in over SASL_PLAINTEXT.
func TestScramUsersRestartAndCLI(t *testing.T) {
	saslAddr := freePort(t)
	b := &broker{t: t, dataDir: t.TempDir(), addr: freePort(t), metrics: freePort(t)}
	b.args = []string{"--listeners", "PLAINTEXT://" + b.addr + ",SASL_PLAINTEXT://" + saslAddr,
		"--sasl-enabled-mechanisms", "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN", "--scram-user", "admin:SCRAM-SHA-512:admin-secret"}
	b.start()
	t.Cleanup(func() { b.kill() })
	asAdmin := []string{"--brokers", saslAddr, "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "admin"}
	mustCLIEnv := func(env string, stdin string, args ...string) cliResult {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", env)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("runnel %v: %v\n%s%s", args, err, out, ee.Stderr)
			}
			t.Fatal(err)
		}
		return cliResult{stdout: string(out)}
	}
	const adminEnv = "RUNNEL_SASL_PASSWORD=admin-secret"
	mustCLIEnv(adminEnv, "app-pw\n", append([]string{"user", "create", "app", "--mechanism", "SCRAM-SHA-256", "--iterations", "8192"}, asAdmin...)...)
	b.stop()
	b.restart()

	list := mustCLIEnv(adminEnv, "", append([]string{"user", "list"}, asAdmin...)...).stdout
	for _, want := range []string{`(?m)^admin\s+SCRAM-SHA-512\s+4096$`, `(?m)^app\s+SCRAM-SHA-256\s+8192$`} {
		if !regexp.MustCompile(want).MatchString(list) {
			t.Errorf("user list after a restart lacks %s:\n%s", want, list)
		}
	}
	ctx := ctxTimeout(t, time.Minute)
	ping := func(m kgo.Opt) error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(saslAddr), m, kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		_, err = kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		return err
	}
	for _, m := range []kgo.Opt{
		kgo.SASL(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism()),
		kgo.SASL(scram.Auth{User: "app", Pass: "app-pw"}.AsSha256Mechanism()),
		kgo.SASL(plain.Auth{User: "app", Pass: "app-pw"}.AsMechanism()),
	} {
		if err := ping(m); err != nil {
			t.Errorf("login after a restart: %v", err)
		}
	}
	mustCLIEnv(adminEnv, "", append([]string{"user", "delete", "app"}, asAdmin...)...)
	if err := ping(kgo.SASL(scram.Auth{User: "app", Pass: "app-pw"}.AsSha256Mechanism())); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("a deleted user's login: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	r := runCLI(t, nil, "", "user", "list", "app", "--brokers", b.addr)
	if r.code == 0 || !strings.Contains(r.stderr, "RESOURCE_NOT_FOUND") {
		t.Errorf("listing a deleted user: exit %d, %q", r.code, r.stderr)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// metricsText returns the broker's /metrics page.
func (b *broker) metricsText() string {
	b.t.Helper()
	resp, err := http.Get("http://" + b.metrics + "/metrics")
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}
