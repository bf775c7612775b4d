package test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TestReadmeACL runs the README's ACL example as written (on free
// ports): admin writes with kcat, grants app READ with runnel acl, lists
// the ACLs, and kcat reads as app.
func TestReadmeACL(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed; .ci/run installs it")
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, filepath.Join(dir, "bin", "runnel")); err != nil {
		t.Fatal(err)
	}
	plainAddr, saslAddr := freePort(t), freePort(t)
	ports := strings.NewReplacer("127.0.0.1:9092", plainAddr, "127.0.0.1:9093", saslAddr)
	serve := strings.Fields(ports.Replace(readmeBlock(t, "<!-- acl example: serve -->")))
	if len(serve) < 2 || serve[0] != "bin/runnel" || serve[1] != "serve" {
		t.Fatalf("README serve command %q", serve)
	}
	b := &broker{t: t, dataDir: t.TempDir(), addr: plainAddr, metrics: freePort(t), args: serve[2:]}
	b.start()
	t.Cleanup(func() { b.kill() })
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", ports.Replace(readmeBlock(t, "<!-- acl example: clients -->")))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README ACL clients: %v\n%s\nbroker:\n%s", err, out, b.logs())
	}
	for _, want := range []string{`(?m)^hello$`, `created ALLOW User:app READ from \* on TOPIC LITERAL orders`,
		`(?m)^GROUP\s+billing-\s+PREFIXED\s+User:app\s+\*\s+READ\s+ALLOW$`, `(?m)^TOPIC\s+orders\s+LITERAL\s+User:app\s+\*\s+READ\s+ALLOW$`} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("README ACL clients' output lacks %s:\n%s", want, out)
		}
	}
	// app may read orders, not write it.
	app := []string{"-b", saslAddr, "-X", "security.protocol=sasl_plaintext", "-X", "sasl.mechanisms=SCRAM-SHA-512",
		"-X", "sasl.username=app", "-X", "sasl.password=app-secret"}
	w := exec.Command("kcat", append([]string{"-P", "-t", "orders"}, app...)...)
	w.Stdin = strings.NewReader("not allowed\n")
	if out, err := w.CombinedOutput(); err == nil || !strings.Contains(strings.ToLower(string(out)), "authorization failed") {
		t.Errorf("kcat writing as app: %v, no authorization failure reported:\n%s", err, out)
	}
	// runnel acl delete removes what its flags select; as a user without
	// ALTER on the cluster it is refused.
	cli := func(user string, args ...string) cliResult {
		t.Helper()
		c := exec.Command(binary, append(args, "--brokers", saslAddr, "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", user)...)
		c.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", "RUNNEL_SASL_PASSWORD="+user+"-secret")
		var o, e strings.Builder
		c.Stdout, c.Stderr = &o, &e
		err := c.Run()
		r := cliResult{stdout: o.String(), stderr: e.String()}
		if err != nil {
			r.code = 1
		}
		return r
	}
	if r := cli("app", "acl", "delete", "--topic", "orders"); r.code == 0 || !strings.Contains(r.stderr, "CLUSTER_AUTHORIZATION_FAILED") {
		t.Errorf("acl delete as app: exit %d, %q", r.code, r.stderr)
	}
	if r := cli("admin", "acl", "delete", "--allow-principal", "User:app", "--topic", "orders"); r.code != 0 ||
		!strings.Contains(r.stdout, "deleted ALLOW User:app READ from * on TOPIC LITERAL orders") {
		t.Errorf("acl delete: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r := cli("admin", "acl", "list"); strings.Contains(r.stdout, "orders") || !strings.Contains(r.stdout, "billing-") {
		t.Errorf("acl list after the delete:\n%s%s", r.stdout, r.stderr)
	}
	if r := cli("admin", "acl", "create", "--allow-principal", "User:app", "--operation", "Read"); r.code == 0 ||
		!strings.Contains(r.stderr, "name a resource") {
		t.Errorf("acl create without a resource: exit %d, %q", r.code, r.stderr)
	}
}

// aclBroker starts a broker with a SASL_PLAINTEXT listener, the SCRAM
// users admin (a super user), app and other, and the authorizer on.
func aclBroker(t *testing.T) (b *broker, saslAddr string) {
	saslAddr = freePort(t)
	b = &broker{t: t, dataDir: t.TempDir(), addr: freePort(t), metrics: freePort(t)}
	b.args = []string{"--listeners", "PLAINTEXT://" + b.addr + ",SASL_PLAINTEXT://" + saslAddr,
		"--scram-user", "admin:SCRAM-SHA-512:admin-pw", "--scram-user", "app:SCRAM-SHA-512:app-pw",
		"--scram-user", "other:SCRAM-SHA-512:other-pw", "--authorizer", "--super-users", "User:admin"}
	b.start()
	t.Cleanup(func() { b.kill() })
	return b, saslAddr
}

func saslClient(t *testing.T, addr, user string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr),
		kgo.SASL(scram.Auth{User: user, Pass: user + "-pw"}.AsSha512Mechanism()), kgo.RetryTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// fetchCode fetches partition 0 of topic from offset 0 and returns its
// error code.
func fetchCode(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, id [16]byte) int16 {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxBytes = -1, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("fetch %s: %v", topic, err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// metadataTopics lists the topics Metadata shows the client.
func metadataTopics(t *testing.T, ctx context.Context, cl *kgo.Client) []string {
	t.Helper()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tp := range resp.Topics {
		out = append(out, *tp.Topic)
	}
	return out
}

// TestACLsFranz: franz-go over SASL_PLAINTEXT with SCRAM as three users.
// app may read a topic and use a group, other may not
// (TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED); Metadata hides
// the topics a user may not describe; the super user may do anything; a
// prefixed ACL allows what it prefixes, a deny wins over it; an ACL
// revoked is enforced at the next request of an open connection.
func TestACLsFranz(t *testing.T) {
	b, addr := aclBroker(t)
	ctx := ctxTimeout(t, 2*time.Minute)
	admin := saslClient(t, addr, "admin")
	adm := kadm.NewClient(admin)
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, "orders", "billing-eu", "billing-secret", "secret"); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"orders", "billing-eu", "billing-secret", "secret"} {
		if err := admin.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v-" + topic)}).FirstErr(); err != nil {
			t.Fatalf("produce to %s as the super user: %v", topic, err)
		}
	}
	acls := kadm.NewACLs().Allow("User:app").Topics("orders").Groups("g").Operations(kadm.OpRead).
		ResourcePatternType(kadm.ACLPatternLiteral)
	prefixed := kadm.NewACLs().Allow("User:app").Topics("billing-").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternPrefixed)
	deny := kadm.NewACLs().Deny("User:app").Topics("billing-secret").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)
	for _, a := range []*kadm.ACLBuilder{acls, prefixed, deny} {
		res, err := adm.CreateACLs(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("create ACL %+v: %v", r, r.Err)
			}
		}
	}

	details, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string][16]byte{}
	for name, d := range details {
		ids[name] = d.ID
	}
	app := saslClient(t, addr, "app")
	other := saslClient(t, addr, "other")
	// Denying READ does not deny DESCRIBE, which the prefixed READ
	// implies: app sees billing-secret, and may not read it.
	if got := strings.Join(metadataTopics(t, ctx, app), ","); got != "billing-eu,billing-secret,orders" {
		t.Errorf("Metadata shows app %q, want billing-eu,billing-secret,orders", got)
	}
	if got := metadataTopics(t, ctx, other); len(got) != 0 {
		t.Errorf("Metadata shows other %v, want nothing", got)
	}
	if got := len(metadataTopics(t, ctx, admin)); got != 4 {
		t.Errorf("Metadata shows the super user %d topics, want 4", got)
	}
	for _, c := range []struct {
		cl    *kgo.Client
		who   string
		topic string
		want  int16
	}{
		{app, "app", "orders", 0},
		{app, "app", "billing-eu", 0},
		{app, "app", "billing-secret", kerr.TopicAuthorizationFailed.Code},
		{app, "app", "secret", kerr.TopicAuthorizationFailed.Code},
		{other, "other", "orders", kerr.TopicAuthorizationFailed.Code},
		{admin, "admin", "secret", 0},
	} {
		if got := fetchCode(t, ctx, c.cl, c.topic, ids[c.topic]); got != c.want {
			t.Errorf("%s fetching %s: %s, want %s", c.who, c.topic, kerr.ErrorForCode(got), kerr.ErrorForCode(c.want))
		}
	}

	// app consumes orders in group g and commits; other may not use g.
	cons := saslClient(t, addr, "app", kgo.ConsumerGroup("g"), kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	fs := cons.PollRecords(ctx, 1)
	if err := fs.Err(); err != nil || fs.NumRecords() != 1 {
		t.Fatalf("app consuming orders in group g: %d records, %v", fs.NumRecords(), err)
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("app committing in g: %v", err)
	}
	if _, err := kadm.NewClient(other).FetchOffsets(ctx, "g"); !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Errorf("other fetching g's offsets: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "g", "consumer", 10000, 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{}}}
	if jr, err := join.RequestWith(ctx, other); !errors.Is(err, kerr.GroupAuthorizationFailed) &&
		(err != nil || jr.ErrorCode != kerr.GroupAuthorizationFailed.Code) {
		t.Errorf("other joining group g: %v %+v, want GROUP_AUTHORIZATION_FAILED", err, jr)
	}

	// Revoked mid-connection: app's next fetch on the same connection is
	// denied.
	if res, err := adm.DeleteACLs(ctx, kadm.NewACLs().Allow("User:app").AllowHosts("*").Topics("orders").
		Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)); err != nil || len(res) != 1 || res[0].Err != nil || len(res[0].Deleted) != 1 {
		t.Fatalf("delete app's ACL on orders: %v %+v", err, res)
	}
	if got := fetchCode(t, ctx, app, "orders", ids["orders"]); got != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("app fetching orders after the ACL is revoked: %s", kerr.ErrorForCode(got))
	}
	if !regexp.MustCompile(`runnel_authorization_denied_total\{api="Fetch",operation="READ",resource="TOPIC"\} [1-9]`).MatchString(b.metricsText()) {
		t.Errorf("denied fetches not counted:\n%s", grepLines(b.metricsText(), "runnel_authorization"))
	}
	if !strings.Contains(b.logs(), "request denied by the authorizer") {
		t.Error("no denial logged")
	}
}
