package test

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// sessionWorkload produces to the topics of a fetch session test and says
// which records a consumer must see: "topic/partition/n" values, each
// produced once.
type sessionWorkload struct {
	t    *testing.T
	b    *broker
	prod *kgo.Client
	adm  *kadm.Client
	next map[string]int // by "topic/partition"
	want map[string]bool
}

func newSessionWorkload(t *testing.T, b *broker) *sessionWorkload {
	w := &sessionWorkload{t: t, b: b, adm: kadm.NewClient(b.client()), next: map[string]int{}, want: map[string]bool{}}
	w.newProducer()
	return w
}

// newProducer replaces the producer, whose metadata lags a CreatePartitions.
func (w *sessionWorkload) newProducer() {
	w.prod = w.b.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
}

// produce writes n records to each partition below partitions of topic.
func (w *sessionWorkload) produce(ctx context.Context, topic string, partitions int32, n int) {
	w.t.Helper()
	var recs []*kgo.Record
	for p := int32(0); p < partitions; p++ {
		tp := fmt.Sprintf("%s/%d", topic, p)
		for i := 0; i < n; i++ {
			v := fmt.Sprintf("%s/%d", tp, w.next[tp])
			w.next[tp]++
			w.want[v] = true
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
		}
	}
	if err := w.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		w.t.Fatalf("produce to %s: %v", topic, err)
	}
}

func (w *sessionWorkload) create(ctx context.Context, topic string, partitions int32) {
	w.t.Helper()
	res, err := w.adm.CreateTopics(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = res[topic].Err
	}
	if err != nil {
		w.t.Fatalf("create %s: %v", topic, err)
	}
}

// consumed counts each value seen.
type consumed struct {
	mu   sync.Mutex
	seen map[string]int
	cond *sync.Cond
}

func newConsumed() *consumed {
	c := &consumed{seen: map[string]int{}}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *consumed) add(v string) {
	c.mu.Lock()
	c.seen[v]++
	c.mu.Unlock()
	c.cond.Broadcast()
}

// waitFor waits until every wanted value was seen, or the context ends.
func (c *consumed) waitFor(t *testing.T, ctx context.Context, want map[string]bool) {
	t.Helper()
	stop := context.AfterFunc(ctx, c.cond.Broadcast)
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		missing := 0
		example := ""
		for v := range want {
			if c.seen[v] == 0 {
				missing++
				example = v
			}
		}
		if missing == 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records never consumed (%s among them)", missing, len(want), example)
		}
		c.cond.Wait()
	}
}

// exactlyOnce fails the test for a record seen twice or one never produced.
func (c *consumed) exactlyOnce(t *testing.T, want map[string]bool) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for v, n := range c.seen {
		if !want[v] {
			t.Errorf("consumed %q, never produced", v)
		} else if n != 1 {
			t.Errorf("consumed %q %d times", v, n)
		}
	}
}

// sessionPhases runs the workload a consumer reads through: records on
// every partition of "fs" and "fs-gone", then partitions added to "fs"
// (CreatePartitions) and written to, then "fs-gone" deleted while "fs" is
// written to again; each phase waits for the consumer to see everything.
// Last, a final record on each partition of "fs": anything consumed twice
// would have come before it.
func sessionPhases(t *testing.T, ctx context.Context, w *sessionWorkload, c *consumed, between func(phase string)) {
	w.produce(ctx, "fs", 4, 30)
	w.produce(ctx, "fs-gone", 2, 30)
	c.waitFor(t, ctx, w.want)
	between("first records")

	if _, err := w.adm.CreatePartitions(ctx, 4, "fs"); err != nil {
		t.Fatalf("create partitions: %v", err)
	}
	w.newProducer()
	w.produce(ctx, "fs", 8, 20)
	c.waitFor(t, ctx, w.want)
	between("partitions added")

	res, err := w.adm.DeleteTopics(ctx, "fs-gone")
	if err == nil {
		err = res["fs-gone"].Err
	}
	if err != nil {
		t.Fatalf("delete fs-gone: %v", err)
	}
	w.produce(ctx, "fs", 8, 20)
	c.waitFor(t, ctx, w.want)
	between("topic deleted")

	w.produce(ctx, "fs", 8, 1)
	c.waitFor(t, ctx, w.want)
	c.exactlyOnce(t, w.want)
}

// TestFetchSessionsFranzGo: franz-go, which uses fetch sessions, consumes
// every record exactly once while partitions are added to a topic of its
// session and another topic of it is deleted; its fetches after the first
// are incremental.
func TestFetchSessionsFranzGo(t *testing.T) {
	b := startBroker(t, "")
	ctx := ctxTimeout(t, 120*time.Second)
	w := newSessionWorkload(t, b)
	w.create(ctx, "fs", 4)
	w.create(ctx, "fs-gone", 2)

	c := newConsumed()
	cl := b.client(kgo.ConsumeTopics("fs", "fs-gone"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(100*time.Millisecond), kgo.MetadataMaxAge(500*time.Millisecond), kgo.FetchMaxWait(200*time.Millisecond))
	pollCtx, stopPolling := context.WithCancel(ctx)
	polled := make(chan struct{})
	var fetchErrs []string
	go func() {
		defer close(polled)
		for pollCtx.Err() == nil {
			fs := cl.PollFetches(pollCtx)
			fs.EachError(func(topic string, p int32, err error) {
				if topic != "fs-gone" && pollCtx.Err() == nil {
					fetchErrs = append(fetchErrs, fmt.Sprintf("%s/%d: %v", topic, p, err))
				}
			})
			fs.EachRecord(func(r *kgo.Record) { c.add(string(r.Value)) })
		}
	}()
	incremental := `runnel_fetch_session_requests_total{kind="incremental"}`
	last := 0.0
	sessionPhases(t, ctx, w, c, func(phase string) {
		// Every phase is served by incremental fetches.
		n := b.metric(incremental)
		if n <= last {
			t.Errorf("after %s: %v incremental fetches, no more than the %v before", phase, n, last)
		}
		last = n
		if open := b.metric("runnel_fetch_sessions"); open < 1 {
			t.Errorf("after %s: %v fetch sessions open", phase, open)
		}
	})
	stopPolling()
	<-polled
	for _, e := range fetchErrs {
		t.Errorf("fetch error: %s", e)
	}
	// The session lasted throughout: no fetch was refused for it.
	if strings.Contains(b.logs(), "fetch session refused") {
		t.Errorf("the broker refused a fetch's session:\n%s", b.logs())
	}
}

// TestFetchSessionsKcat: librdkafka does the same, as two kcat consumers
// into one tally: a balanced consumer (-G) of "fs", which rebalances onto
// the partitions added, and a plain one of "fs-gone", fetching when the
// topic is deleted. librdkafka does not use fetch sessions (it fetches at
// epoch -1): the broker answers it in full and opens none for it.
//
// One balanced consumer of both topics is what a user would run, but
// librdkafka 2.0 sometimes stops altogether (no fetch, heartbeat or
// metadata request again) when a topic of its subscription is deleted
// while it rebalances; the broker's request log shows the client going
// quiet, so the test does not depend on it.
func TestFetchSessionsKcat(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed; .ci/run installs it")
	}
	b := startBroker(t, "")
	ctx := ctxTimeout(t, 150*time.Second)
	w := newSessionWorkload(t, b)
	w.create(ctx, "fs", 4)
	w.create(ctx, "fs-gone", 2)

	c := newConsumed()
	kcatInto(t, ctx, c, "-b", b.addr, "-G", "fs-kcat", "-X", "auto.offset.reset=earliest", "-f", `%s\n`, "-u",
		"-X", "topic.metadata.refresh.interval.ms=500", "-X", "auto.commit.interval.ms=100",
		"-X", "fetch.wait.max.ms=200", "fs")
	kcatInto(t, ctx, c, "-C", "-b", b.addr, "-t", "fs-gone", "-o", "beginning", "-f", `%s\n`, "-u",
		"-X", "topic.metadata.refresh.interval.ms=500", "-X", "fetch.wait.max.ms=200")
	sessionPhases(t, ctx, w, c, func(string) {
		if open := b.metric("runnel_fetch_sessions"); open != 0 {
			t.Errorf("%v fetch sessions open for a client that asks for none", open)
		}
	})
}

// kcatInto runs kcat with args until the test ends, adding each line it
// prints to c; its stderr is logged if the test fails.
func kcatInto(t *testing.T, ctx context.Context, c *consumed, args ...string) {
	t.Helper()
	kctx, stop := context.WithCancel(ctx)
	cmd := exec.CommandContext(kctx, "kcat", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.add(sc.Text())
		}
	}()
	t.Cleanup(func() {
		stop()
		<-read
		cmd.Wait()
		if t.Failed() {
			t.Logf("kcat %s stderr:\n%s", strings.Join(args, " "), stderr.String())
		}
	})
}

// TestClusterFollowerFetchSessions: followers fetch from their leaders
// through fetch sessions: every leader holds one for each of its two
// followers and answers them incrementally, and the replicas end equal.
func TestClusterFollowerFetchSessions(t *testing.T) {
	const topic, partitions = "fs-replicated", 12
	c := startCluster(t)
	c.createTopic(topic, partitions, 3, nil)
	cl := c.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := ctxTimeout(t, 60*time.Second)
	var recs []*kgo.Record
	for p := int32(0); p < partitions; p++ {
		for i := 0; i < 20; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("%d/%d", p, i))})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c.waitISR(topic, partitions, 3)
	leaders := map[int32]bool{}
	for p := int32(0); p < partitions; p++ {
		leaders[c.leader(topic, p)] = true
	}
	for id := range leaders {
		n := c.node(id)
		b := &broker{t: t, metrics: n.metrics}
		c.eventually(30*time.Second, fmt.Sprintf("broker %d: follower fetch sessions", id), func() error {
			open, inc := b.metric("runnel_fetch_sessions"), labelledMetric(t, b, "runnel_fetch_session_requests_total", `kind="incremental"`)
			if open < 2 || inc == 0 {
				return fmt.Errorf("%v sessions open, %v incremental fetches; want the two followers' sessions in use", open, inc)
			}
			return nil
		})
	}
	for _, n := range c.nodes {
		if strings.Contains(n.log.String(), "lost this replica's fetch session") {
			t.Errorf("broker %d lost its fetch session:\n%s", n.id, n.log.String())
		}
	}
	c.stopAndCompare(partitions, topic)
}
