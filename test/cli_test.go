package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// cliResult is one finished run of the runnel binary.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the runnel binary with args against b (nil: no --brokers
// flag), feeding stdin.
func runCLI(t *testing.T, b *broker, stdin string, args ...string) cliResult {
	t.Helper()
	if b != nil {
		args = append(args, "--brokers", b.addr)
	}
	cmd := exec.Command(binary, args...)
	// The race runtime otherwise sleeps a second before every clean exit.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("runnel %v: %v", args, err)
	}
	return cliResult{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

// mustCLI is runCLI that fails the test on a non-zero exit.
func mustCLI(t *testing.T, b *broker, stdin string, args ...string) cliResult {
	t.Helper()
	r := runCLI(t, b, stdin, args...)
	if r.code != 0 {
		t.Fatalf("runnel %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// TestCLITopicLifecycle creates, lists, describes and deletes a topic with
// the CLI, and checks what describe reports against what was asked for.
func TestCLITopicLifecycle(t *testing.T) {
	b := startBroker(t, "")
	// Flags after the positional name, --config repeated.
	r := mustCLI(t, b, "", "topic", "create", "orders", "--partitions", "3",
		"--config", "retention.ms=3600000", "--config", "segment.bytes=1048576")
	if want := "created topic orders (3 partitions, replication factor 1)\n"; r.stdout != want {
		t.Fatalf("create said %q, want %q", r.stdout, want)
	}
	mustCLI(t, b, "", "topic", "create", "audit")

	if r := mustCLI(t, b, "", "topic", "list"); r.stdout != "audit\norders\n" {
		t.Fatalf("list = %q", r.stdout)
	}

	// Three records in partition 1 show up as its log end offset.
	mustCLI(t, b, "a\nb\nc\n", "produce", "orders", "--partition", "1")
	r = mustCLI(t, b, "", "topic", "describe", "orders")
	for _, re := range []string{
		`(?m)^Partitions: 3$`,
		`(?m)^Replication factor: 1$`,
		`(?m)^PARTITION\s+LEADER\s+REPLICAS\s+ISR\s+LOG-START\s+LOG-END\s+RECORDS$`,
		`(?m)^0\s+1\s+1\s+1\s+0\s+0\s+0$`,
		`(?m)^1\s+1\s+1\s+1\s+0\s+3\s+3$`,
		`(?m)^2\s+1\s+1\s+1\s+0\s+0\s+0$`,
		`(?m)^\s+retention\.ms\s+3600000\s+\(set\)$`,
		`(?m)^\s+segment\.bytes\s+1048576\s+\(set\)$`,
		`(?m)^\s+cleanup\.policy\s+delete\s+\(default\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("describe output does not match %s:\n%s", re, r.stdout)
		}
	}

	r = runCLI(t, b, "", "topic", "create", "orders")
	if r.code != 1 || !strings.Contains(r.stderr, "TOPIC_ALREADY_EXISTS") {
		t.Errorf("second create: exit %d, stderr %q; want 1 and TOPIC_ALREADY_EXISTS", r.code, r.stderr)
	}

	if r := mustCLI(t, b, "", "topic", "delete", "orders"); r.stdout != "deleted topic orders\n" {
		t.Fatalf("delete said %q", r.stdout)
	}
	if r := mustCLI(t, b, "", "topic", "list"); r.stdout != "audit\n" {
		t.Fatalf("list after delete = %q", r.stdout)
	}
	r = runCLI(t, b, "", "topic", "describe", "orders")
	if r.code != 1 || !strings.Contains(r.stderr, `unknown topic "orders"`) {
		t.Errorf("describe of deleted topic: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestCLIProduceConsume produces keyed lines from a shell here-string and
// reads them back through --format, from several --from positions.
func TestCLIProduceConsume(t *testing.T) {
	b := startBroker(t, "")
	mustCLI(t, b, "", "topic", "create", "kv", "--partitions", "1")
	// A real here-string, through bash: the third value holds the
	// separator again, the fourth line has none and so no key.
	sh := exec.Command("bash", "-c", `"$0" produce kv --brokers "$1" --key-separator : <<< $'k1:v1\nk2:v2\nk3:v:3\nnokey'`, binary, b.addr)
	var stderr bytes.Buffer
	sh.Stderr = &stderr
	sh.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	if err := sh.Run(); err != nil {
		t.Fatalf("produce: %v\n%s", err, stderr.String())
	}
	if !regexp.MustCompile(`^produced 4 records \(18 bytes\) to kv in \S+\n$`).MatchString(stderr.String()) {
		t.Errorf("produce summary = %q", stderr.String())
	}

	all := "0 k1 v1\n1 k2 v2\n2 k3 v:3\n3  nokey\n"
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"beginning-count", []string{"--from", "beginning", "--count", "4"}, all},
		{"count-stops-early", []string{"--from", "beginning", "--count", "2"}, "0 k1 v1\n1 k2 v2\n"},
		{"exit-at-end", []string{"-e"}, all},
		{"offset", []string{"--from", "2", "--exit-at-end"}, "2 k3 v:3\n3  nokey\n"},
		{"relative-to-end", []string{"--from", "-1", "-e"}, "3  nokey\n"},
		{"end", []string{"--from", "end", "-e"}, ""},
		{"offset-past-end", []string{"--from", "99", "-e"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"consume", "kv", "--format", `%o %k %s\n`}, c.args...)
			if r := mustCLI(t, b, "", args...); r.stdout != c.want {
				t.Fatalf("stdout = %q, want %q", r.stdout, c.want)
			}
		})
	}

	// Every placeholder at once, headers included (produced with kgo).
	cl := b.client(kgo.DefaultProduceTopic("kv"))
	ts := time.UnixMilli(1_700_000_000_123)
	rec := &kgo.Record{Key: []byte("hk"), Value: []byte("hv"), Timestamp: ts,
		Headers: []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}}
	if err := cl.ProduceSync(ctxTimeout(t, 30*time.Second), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r := mustCLI(t, b, "", "consume", "kv", "--from", "4", "--count", "1", "--format", `%t|%p|%o|%k|%s|%T|%h|%K|%S|100%%\t.\n`)
	if want := "kv|0|4|hk|hv|1700000000123|a=1,b=2|2|2|100%\t.\n"; r.stdout != want {
		t.Fatalf("stdout = %q, want %q", r.stdout, want)
	}
}

// TestCLIConsumeFromTime reads from a point in time: records carry explicit
// timestamps a minute apart, so the expected start is exact.
func TestCLIConsumeFromTime(t *testing.T) {
	b := startBroker(t, "")
	mustCLI(t, b, "", "topic", "create", "timed", "--partitions", "2")
	cl := b.client(kgo.DefaultProduceTopic("timed"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "m%d", i), Partition: 0,
			Timestamp: base.Add(time.Duration(i) * time.Minute)})
	}
	if err := cl.ProduceSync(ctxTimeout(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		from, want string
	}{
		{"2024-05-01T12:07:00Z", "7 m7\n8 m8\n9 m9\n"}, // exactly a record's time
		{"2024-05-01T12:06:30Z", "7 m7\n8 m8\n9 m9\n"}, // between records
		{"2024-05-01T14:08:30+02:00", "9 m9\n"},        // another zone
		{"2024-05-01T12:00:00.000000001Z", "1 m1\n2 m2\n3 m3\n4 m4\n5 m5\n6 m6\n7 m7\n8 m8\n9 m9\n"},
		{"2020-01-01T00:00:00Z", "0 m0\n1 m1\n2 m2\n3 m3\n4 m4\n5 m5\n6 m6\n7 m7\n8 m8\n9 m9\n"},
		{"2030-01-01T00:00:00Z", ""}, // after every record: start at the end
	}
	for _, c := range cases {
		t.Run(c.from, func(t *testing.T) {
			// Partition 1 is empty; -e must still end.
			r := mustCLI(t, b, "", "consume", "timed", "--from", c.from, "-e", "--format", `%o %s\n`)
			if r.stdout != c.want {
				t.Fatalf("stdout = %q, want %q", r.stdout, c.want)
			}
		})
	}
}

// TestCLIBench runs bench produce and bench consume with --json and checks
// the counts; the table form is checked for its rows.
func TestCLIBench(t *testing.T) {
	b := startBroker(t, "")
	var prod struct {
		Mode          string   `json:"mode"`
		Partitions    int      `json:"partitions"`
		Records       int64    `json:"records"`
		Bytes         int64    `json:"bytes"`
		Errors        int64    `json:"errors"`
		RecordsPerSec float64  `json:"records_per_second"`
		LatencyP50Ms  *float64 `json:"latency_p50_ms"`
		LatencyP99Ms  *float64 `json:"latency_p99_ms"`
		LatencyMaxMs  *float64 `json:"latency_max_ms"`
	}
	r := mustCLI(t, b, "", "bench", "produce", "--topic", "bench", "--records", "20000", "--record-size", "64",
		"--partitions", "3", "--producers", "2", "--linger", "2ms", "--compression", "lz4", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &prod); err != nil {
		t.Fatalf("bench produce output is not JSON: %v\n%s", err, r.stdout)
	}
	if prod.Mode != "produce" || prod.Partitions != 3 || prod.Records != 20000 || prod.Bytes != 20000*64 || prod.Errors != 0 {
		t.Fatalf("bench produce result = %+v", prod)
	}
	if prod.LatencyP50Ms == nil || prod.LatencyP99Ms == nil || prod.LatencyMaxMs == nil ||
		!(*prod.LatencyP50Ms <= *prod.LatencyP99Ms && *prod.LatencyP99Ms <= *prod.LatencyMaxMs && *prod.LatencyMaxMs > 0) {
		t.Fatalf("bench produce latencies out of order: %+v", prod)
	}
	if prod.RecordsPerSec <= 0 {
		t.Fatalf("bench produce rate %v", prod.RecordsPerSec)
	}
	if !strings.Contains(r.stderr, "created topic bench with 3 partitions") {
		t.Errorf("bench produce did not report creating the topic: %q", r.stderr)
	}

	// The broker holds exactly what bench produce reported.
	d := mustCLI(t, b, "", "topic", "describe", "bench")
	var sum int64
	for _, m := range regexp.MustCompile(`(?m)^\d+\s+\d+\s+\S+\s+\S+\s+\d+\s+\d+\s+(\d+)$`).FindAllStringSubmatch(d.stdout, -1) {
		var n int64
		fmt.Sscan(m[1], &n)
		sum += n
	}
	if sum != 20000 {
		t.Fatalf("topic holds %d records, want 20000:\n%s", sum, d.stdout)
	}

	var cons struct {
		Mode    string `json:"mode"`
		Clients int    `json:"clients"`
		Records int64  `json:"records"`
		Bytes   int64  `json:"bytes"`
	}
	r = mustCLI(t, b, "", "bench", "consume", "--topic", "bench", "--consumers", "2", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &cons); err != nil {
		t.Fatalf("bench consume output is not JSON: %v\n%s", err, r.stdout)
	}
	if cons.Mode != "consume" || cons.Clients != 2 || cons.Records != 20000 || cons.Bytes != 20000*64 {
		t.Fatalf("bench consume result = %+v", cons)
	}

	// --keys keys the records in turn, as a compacted topic needs.
	mustCLI(t, b, "", "topic", "create", "keyed", "--config", "cleanup.policy=compact")
	mustCLI(t, b, "", "bench", "produce", "--topic", "keyed", "--records", "100", "--keys", "7", "--producers", "2", "--json")
	kc := b.client(kgo.ConsumeTopics("keyed"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	keys := map[string]int{}
	for n := 0; n < 100; {
		fs := kc.PollFetches(ctxTimeout(t, 30*time.Second))
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { keys[string(r.Key)]++; n++ })
	}
	if len(keys) != 7 || keys["k0"] == 0 || keys["k6"] == 0 {
		t.Fatalf("bench produce --keys 7 wrote keys %v", keys)
	}

	// bench availability: one record every 10 ms for a second, each
	// acknowledged.
	var avail struct {
		Mode         string `json:"mode"`
		Sent         int64  `json:"sent"`
		Acknowledged int64  `json:"acknowledged"`
		Errors       int64  `json:"errors"`
	}
	r = mustCLI(t, b, "", "bench", "availability", "--topic", "avail", "--duration", "1s", "--interval", "10ms", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &avail); err != nil {
		t.Fatalf("bench availability output is not JSON: %v\n%s", err, r.stdout)
	}
	if avail.Mode != "availability" || avail.Sent < 20 || avail.Acknowledged != avail.Sent || avail.Errors != 0 {
		t.Fatalf("bench availability result = %+v", avail)
	}

	// A limit below the total, and the table form.
	r = mustCLI(t, b, "", "bench", "consume", "--topic", "bench", "--records", "5000")
	for _, re := range []string{`(?m)^records\s+5000$`, `(?m)^bytes\s+320000$`, `(?m)^records/s\s+\d+$`, `(?m)^MB/s\s+[\d.]+$`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("bench consume table does not match %s:\n%s", re, r.stdout)
		}
	}
}

// TestCLIBenchProduceGivesUp: bench produce whose broker is killed does not
// wait forever for the records its idempotent producer has in flight; it
// gives up after --stall-timeout with a clear error.
func TestCLIBenchProduceGivesUp(t *testing.T) {
	b := startBroker(t, "")
	cmd := exec.Command(binary, "bench", "produce", "--brokers", b.addr, "--topic", "stall",
		"--records", "1000000000", "--stall-timeout", "2s")
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	// Kill the broker once progress shows records acknowledged.
	sc := bufio.NewScanner(stderr)
	var log strings.Builder
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if f := strings.Fields(sc.Text()); len(f) > 2 && f[2] == "records" && f[1] != "0" {
			break
		}
	}
	b.kill()
	drained := make(chan struct{})
	go func() {
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
		}
		close(drained) // the process closed stderr: it is exiting
	}()
	select {
	case <-drained:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-drained
		t.Fatalf("bench produce still running 90 s after its broker was killed:\n%s", log.String())
	}
	if err := cmd.Wait(); err == nil {
		t.Fatalf("bench produce exited 0 after its broker was killed:\n%s", out.String())
	}
	if !strings.Contains(log.String(), "gave up: no record acknowledged or failed for 2s") &&
		!strings.Contains(log.String(), "records failed") {
		t.Fatalf("bench produce error does not say why it stopped:\n%s", log.String())
	}
}

// TestCLIErrors checks that mistakes give a clear message on stderr and a
// non-zero exit, and that --help succeeds.
func TestCLIErrors(t *testing.T) {
	b := startBroker(t, "")
	mustCLI(t, b, "", "topic", "create", "exists")
	cases := []struct {
		name   string
		broker *broker
		args   []string
		code   int
		stderr string
	}{
		{"consume-unknown-topic", b, []string{"consume", "nope", "--timeout", "2s"}, 1, `runnel: unknown topic "nope"`},
		{"unknown-flag", b, []string{"consume", "exists", "--bogus"}, 1, "flag provided but not defined: -bogus"},
		{"bad-from", b, []string{"consume", "exists", "--from", "yesterday"}, 1, "--from: want beginning, end"},
		{"bad-format", b, []string{"consume", "exists", "--format", "%q"}, 1, "--format: unknown placeholder %q"},
		{"count-not-reached", b, []string{"consume", "exists", "--count", "1", "--timeout", "500ms"}, 1, "no record for 500ms: got 0 of the 1 records"},
		{"bad-acks", b, []string{"produce", "exists", "--acks", "2"}, 1, "--acks: want all, 1 or 0"},
		{"missing-topic-arg", b, []string{"produce"}, 1, "missing TOPIC"},
		{"extra-arg", b, []string{"topic", "delete", "a", "b"}, 1, `unexpected arguments ["b"]`},
		{"bad-partition", b, []string{"consume", "exists", "--partition", "7", "-e"}, 1, "--partition 7: topic exists has partitions 0..0"},
		{"bench-no-topic", b, []string{"bench", "produce"}, 1, "--topic is required"},
		{"bench-stall-timeout", b, []string{"bench", "produce", "--topic", "t", "--stall-timeout", "0s"}, 1, "--stall-timeout must be positive"},
		{"topic-no-command", nil, []string{"topic"}, 1, "topic: missing command"},
		{"unreachable", nil, []string{"topic", "list", "--brokers", freePort(t)}, 1, "cannot reach brokers"},
		{"help", nil, []string{"consume", "--help"}, 0, "Usage: runnel consume TOPIC [flags]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, c.broker, "", c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.stderr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", r.code, r.stderr, c.code, c.stderr)
			}
		})
	}
}

// TestServeRefusesBadTimings starts runnel serve with each kind of bad
// cluster timing: it must fail at start-up and name the flag.
func TestServeRefusesBadTimings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--raft-election-timeout", "0s"}, "--raft-election-timeout: want a positive duration"},
		{[]string{"--raft-election-timeout", "soon"}, "--raft-election-timeout: want a positive duration"},
		{[]string{"--broker-session-timeout", "-1s"}, "--broker-session-timeout: want a positive duration"},
		{[]string{"--broker-heartbeat-interval", "6s"}, "--broker-heartbeat-interval 6s must be below --broker-session-timeout 6s"},
	} {
		dir := t.TempDir()
		r := runCLI(t, nil, "", append([]string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--metrics-listen", ""}, tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("serve %v: exit %d, stderr %q; want a failure saying %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
