package test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// throttles counts the throttles a client is told of.
type throttles struct {
	n     atomic.Int64
	total atomic.Int64 // ms
}

func (h *throttles) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	if d > 0 {
		h.n.Add(1)
		h.total.Add(d.Milliseconds())
	}
}

// Quota test window: 11 samples of 200 ms. The rate is measured over at
// least 10 samples, 2 s: a client's first 2 s worth of its quota is
// allowed at once.
const (
	quotaSamples = 11
	quotaSpan    = 200 * time.Millisecond
)

// rateBound is the most bytes a client held to rate (bytes per second)
// may move in elapsed: the rate over elapsed plus the whole window (the
// burst allowed before the first throttle and what a sample lets through
// before the next), plus one request's worth beyond it, with half again
// for slack.
func rateBound(rate float64, elapsed time.Duration, oneRequest int) float64 {
	window := time.Duration(quotaSamples) * quotaSpan
	return 1.5*rate*(elapsed+window).Seconds() + float64(oneRequest)
}

// TestClientQuotas: a producer_byte_rate and a consumer_byte_rate set for
// a client id with kadm hold that client to about its quota, measured by
// the bytes it moves while it goes as fast as it can; its responses carry
// throttle_time_ms; another client id on the same broker is never
// throttled; DescribeClientQuotas shows what was set.
func TestClientQuotas(t *testing.T) {
	b := startBroker(t, "", "--quota-window-num", fmt.Sprint(quotaSamples), "--quota-window-size", quotaSpan.String())
	adm := kadm.NewClient(b.client())
	ctx := ctxTimeout(t, 3*time.Minute)
	for _, topic := range []string{"quota-p", "quota-c"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	const rate = 256 << 10 // bytes per second
	slowP, slowC := "slow-producer", "slow-consumer"
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: &slowP}}, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: rate}}},
		{Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: &slowC}}, Ops: []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Value: rate}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v %s", r.Entity, r.Err, r.ErrMessage)
		}
	}
	described, err := adm.DescribeClientQuotas(ctx, true, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchType: 2}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range described {
		got[d.Entity.String()] = fmt.Sprint(d.Values)
	}
	if len(got) != 2 || !strings.Contains(got["{client-id=slow-producer}"], "producer_byte_rate=262144") ||
		!strings.Contains(got["{client-id=slow-consumer}"], "consumer_byte_rate=262144") {
		t.Fatalf("described %v", got)
	}

	// Values are random, so compression cannot shrink what the quota
	// counts (the bytes on the wire) below the bytes the test counts.
	value := make([]byte, 16<<10)
	rand.Read(value)
	// produce sends records as fast as the client lets it for d or until
	// it has sent limit bytes, and returns the record bytes acknowledged.
	produce := func(clientID, topic string, h *throttles, d time.Duration, limit int64) (int64, time.Duration) {
		cl := b.client(kgo.ClientID(clientID), kgo.WithHooks(h), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(256<<10),
			kgo.MaxBufferedRecords(64), kgo.DefaultProduceTopic(topic))
		var acked atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for sent := int64(0); time.Since(start) < d && sent < limit; sent += int64(len(value)) {
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Value: value}, func(r *kgo.Record, err error) {
				defer wg.Done()
				if err != nil {
					t.Errorf("produce as %s: %v", clientID, err)
					return
				}
				acked.Add(int64(len(r.Value)))
			})
		}
		wg.Wait()
		return acked.Load(), time.Since(start)
	}
	var slowH, fastH throttles
	bytes, elapsed := produce(slowP, "quota-p", &slowH, 4*time.Second, 1<<40)
	if bound := rateBound(rate, elapsed, 256<<10); float64(bytes) > bound {
		t.Errorf("a producer with a %d B/s quota moved %d bytes in %v (at most %.0f allowed)", rate, bytes, elapsed, bound)
	}
	if slowH.n.Load() == 0 {
		t.Errorf("the throttled producer was never told throttle_time_ms")
	}
	if os.Getenv("QUOTA_DEBUG") != "" {
		t.Log(grepLines(b.logs(), "throttled"))
	}
	t.Logf("throttled producer: %d bytes in %v (%.0f B/s against %d), %d throttles, %d ms in all",
		bytes, elapsed, float64(bytes)/elapsed.Seconds(), rate, slowH.n.Load(), slowH.total.Load())
	// Another client id is not throttled, on the same broker: 8 MiB, far
	// more than the throttled producer moved.
	fastBytes, fastElapsed := produce("fast-producer", "quota-c", &fastH, time.Minute, 8<<20)
	if fastH.n.Load() != 0 {
		t.Errorf("a client id without a quota was throttled %d times", fastH.n.Load())
	}
	t.Logf("unthrottled producer: %d bytes in %v", fastBytes, fastElapsed)

	// The consumer reads quota-c, written by the fast producer, from the
	// start, as fast as it can, for 4 s.
	consume := func(clientID string, h *throttles, d time.Duration) (int64, time.Duration) {
		cl := b.client(kgo.ClientID(clientID), kgo.WithHooks(h), kgo.ConsumeTopics("quota-c"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(8<<20), kgo.FetchMaxPartitionBytes(8<<20))
		cctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var n int64
		start := time.Now()
		for cctx.Err() == nil && n < fastBytes {
			fs := cl.PollFetches(cctx)
			fs.EachError(func(_ string, _ int32, err error) {
				if cctx.Err() == nil {
					t.Errorf("fetch as %s: %v", clientID, err)
				}
			})
			fs.EachRecord(func(r *kgo.Record) { n += int64(len(r.Value)) })
		}
		return n, time.Since(start)
	}
	var slowCH, fastCH throttles
	cbytes, celapsed := consume(slowC, &slowCH, 4*time.Second)
	// One fetch is cut to what the quota allows over the shortest
	// window (rate × 10 samples), its first batch whole.
	if bound := rateBound(rate, celapsed, 512<<10); float64(cbytes) > bound {
		t.Errorf("a consumer with a %d B/s quota read %d bytes in %v (at most %.0f allowed)", rate, cbytes, celapsed, bound)
	}
	if cbytes == 0 || slowCH.n.Load() == 0 {
		t.Errorf("the throttled consumer read %d bytes and was told of %d throttles", cbytes, slowCH.n.Load())
	}
	t.Logf("throttled consumer: %d bytes in %v (%.0f B/s against %d), %d throttles",
		cbytes, celapsed, float64(cbytes)/celapsed.Seconds(), rate, slowCH.n.Load())
	all, _ := consume("fast-consumer", &fastCH, time.Minute)
	if all != fastBytes || fastCH.n.Load() != 0 {
		t.Errorf("a consumer without a quota read %d of %d bytes, throttled %d times", all, fastBytes, fastCH.n.Load())
	}
	if n := b.metricLabeled(t, "runnel_quota_throttled_requests_total", `key="producer_byte_rate"`); n == 0 {
		t.Errorf("no producer throttles counted")
	}
	if !strings.Contains(b.logs(), "client throttled") {
		t.Errorf("no throttle logged at debug level")
	}

	// kcat (librdkafka) as the throttled client ids still works: every
	// record it writes is read back by it.
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Log("kcat not installed; skipping the librdkafka check")
		return
	}
	var lines strings.Builder
	for i := range 300 {
		fmt.Fprintf(&lines, "%d-%s\n", i, strings.Repeat("x", 4000))
	}
	w := exec.Command("kcat", "-P", "-b", b.addr, "-t", "quota-k", "-X", "client.id="+slowP)
	w.Stdin = strings.NewReader(lines.String())
	if out, err := w.CombinedOutput(); err != nil {
		t.Fatalf("kcat as %s: %v\n%s", slowP, err, out)
	}
	r := exec.Command("kcat", "-C", "-b", b.addr, "-t", "quota-k", "-o", "beginning", "-e", "-X", "client.id="+slowC,
		"-X", "fetch.message.max.bytes=65536")
	out, err := r.Output()
	if err != nil {
		t.Fatalf("kcat reading as %s: %v\n%s", slowC, err, out)
	}
	if got := strings.Count(string(out), "\n"); got != 300 {
		t.Fatalf("kcat as %s read %d of 300 records", slowC, got)
	}
}

// metricLabeled returns the value of the metric with the labels given
// (as they appear in /metrics), or 0.
func (b *broker) metricLabeled(t *testing.T, name, labels string) float64 {
	t.Helper()
	for _, line := range strings.Split(b.metricsText(), "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, labels) {
			var v float64
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			return v
		}
	}
	return 0
}

// TestReadmeQuota runs the README's quota example (runnel quota alter and
// describe) against a broker, then reads back what it left.
func TestReadmeQuota(t *testing.T) {
	b := startBroker(t, "")
	dir := t.TempDir()
	if err := os.Mkdir(dir+"/bin", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, dir+"/bin/runnel"); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GORACE=atexit_sleep_ms=0", "RUNNEL_BROKERS="+b.addr)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", readmeBlock(t, "<!-- quota example -->"))
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README quota example: %v\n%s\nbroker:\n%s", err, out, b.logs())
	}
	for _, want := range []string{`altered client-id=loader`, `altered user=<default>`,
		`(?m)^client-id=loader\s+consumer_byte_rate\s+2097152$`, `(?m)^client-id=loader\s+producer_byte_rate\s+1048576$`} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("README quota example's output lacks %q:\n%s", want, out)
		}
	}
	run := func(args ...string) (string, error) {
		c := exec.Command(binary, args...)
		c.Env = env
		o, err := c.CombinedOutput()
		return string(o), err
	}
	got, err := run("quota", "describe")
	if err != nil || strings.Contains(got, "consumer_byte_rate") ||
		!regexp.MustCompile(`(?m)^client-id=loader\s+producer_byte_rate\s+1048576$`).MatchString(got) ||
		!regexp.MustCompile(`(?m)^user=<default>\s+request_percentage\s+50$`).MatchString(got) {
		t.Fatalf("describe after the example: %v\n%s", err, got)
	}
	if got, err := run("quota", "describe", "--user-default", "--strict"); err != nil || strings.Contains(got, "loader") ||
		!strings.Contains(got, "request_percentage") {
		t.Fatalf("describe --user-default --strict: %v\n%s", err, got)
	}
	for _, bad := range [][]string{
		{"quota", "alter", "--client-id", "x", "--producer-byte-rate", "1.5"},
		{"quota", "alter", "--client-id", "x", "--controller-mutation-rate", "1"},
		{"quota", "alter", "--client-id", "x", "--delete", "bogus"},
		{"quota", "alter", "--user", "a", "--user-default", "--producer-byte-rate", "1"},
		{"quota", "alter", "--producer-byte-rate", "1"},
	} {
		if got, err := run(bad...); err == nil {
			t.Errorf("%v succeeded:\n%s", bad, got)
		}
	}
	if got, _ := run("quota", "alter", "--client-id", "x", "--producer-byte-rate", "1.5"); !strings.Contains(got, "INVALID_REQUEST") {
		t.Errorf("a fractional byte rate is not refused with INVALID_REQUEST:\n%s", got)
	}
}
