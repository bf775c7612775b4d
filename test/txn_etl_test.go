package test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// etlStage runs one consumer of a consume-transform-produce stage: it
// reads from under read_committed in group, and copies every record to to
// in a transaction with the offsets it consumed (GroupTransactSession).
// Every abortEvery-th transaction (0: none) is aborted, so its records
// must be read and copied again; after quitAfter transactions (0: never)
// it aborts one more and leaves the group, so another member takes its
// partitions over. A transaction once begun is always ended, so none is
// left open when ctx ends.
func etlStage(ctx context.Context, t *testing.T, seeds []string, group, from, to string, abortEvery, quitAfter int, fail func(error)) {
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(seeds...),
		kgo.MetadataMinAge(250*time.Millisecond),
		kgo.TransactionalID(fmt.Sprintf("%s-%s-%d", group, from, time.Now().UnixNano())),
		kgo.TransactionTimeout(time.Minute),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(from),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(10*time.Second), // franz-go's group consumers fetch offsets with RequireStable
	)
	if err != nil {
		fail(err)
		return
	}
	defer sess.Close()
	txns := 0
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fetches := sess.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		for _, e := range fetches.Errors() {
			switch {
			case errors.Is(e.Err, context.DeadlineExceeded), errors.Is(e.Err, context.Canceled):
			case e.Topic == "":
				// The group session's own trouble (a rejoin after
				// the coordinator moved: runnel keeps no membership
				// in the log): the session rejoins, and a
				// transaction that spans it aborts.
				t.Logf("%s: %v", group, e.Err)
			default:
				fail(fmt.Errorf("%s: poll: %s-%d: %w", group, e.Topic, e.Partition, e.Err))
				return
			}
		}
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			fail(fmt.Errorf("%s: begin: %w", group, err))
			return
		}
		fetches.EachRecord(func(r *kgo.Record) {
			sess.Produce(context.Background(), &kgo.Record{Topic: to, Key: r.Key, Value: r.Value}, nil)
		})
		txns++
		quit := quitAfter > 0 && txns > quitAfter
		commit := !quit && (abortEvery == 0 || txns%abortEvery != 0)
		if _, err := sess.End(context.Background(), kgo.TransactionEndTry(commit)); err != nil {
			fail(fmt.Errorf("%s: end: %w", group, err))
			return
		}
		if quit {
			return
		}
	}
}

// TestGroupTransactSessionETL: a chained consume-transform-produce
// pipeline, in → mid → out, two GroupTransactSession members per stage,
// with transactions aborted on the way and a member of each stage leaving
// mid-stream: under read_committed, out holds every input record exactly
// once. The offsets each stage commits in its transactions are what make
// it so: visible only once the transaction commits, and unstable (so a
// member taking a partition over waits) while it is open.
func TestGroupTransactSessionETL(t *testing.T) {
	b := startBroker(t, "")
	adm := kadm.NewClient(b.client())
	if _, err := adm.CreateTopics(ctxTimeout(t, 30*time.Second), 3, 1, nil, "etl-in", "etl-mid", "etl-out"); err != nil {
		t.Fatal(err)
	}
	runETL(t, []string{b.addr}, b.client, nil)
}

// TestGroupTransactSessionETLCluster is TestGroupTransactSessionETL over
// three brokers, topics replicated on all three, and the broker that
// coordinates the second stage's group SIGKILLed once a third of the
// records are through, then restarted: its groups' offsets, committed and
// pending, load on the new leaders of their partitions of
// __consumer_offsets.
func TestGroupTransactSessionETLCluster(t *testing.T) {
	c := startCluster(t, fastFailover...)
	for _, topic := range []string{"etl-in", "etl-mid", "etl-out"} {
		c.createTopic(topic, 3, 3, map[string]string{"min.insync.replicas": "2"})
	}
	runETL(t, c.addrs(), c.client, func(adm *kadm.Client) (heal func()) {
		ctx := ctxTimeout(t, 30*time.Second)
		found := adm.FindGroupCoordinators(ctx, "etl-2")["etl-2"]
		id := found.NodeID
		if found.Err != nil || id < 1 {
			t.Fatalf("no coordinator of etl-2: %+v", found)
		}
		t.Logf("killing broker %d, the coordinator of etl-2", id)
		c.node(id).kill()
		return func() {
			t.Logf("restarting broker %d", id)
			c.node(id).restart()
		}
	})
}

// runETL produces the input, runs the two stages and checks the output.
// fault, if not nil, runs once a third of the keys are in etl-out, and
// the heal it returns once two thirds are, or 10 s later.
func runETL(t *testing.T, seeds []string, client func(...kgo.Opt) *kgo.Client, fault func(*kadm.Client) (heal func())) {
	ctx := ctxTimeout(t, 4*time.Minute)
	adm := kadm.NewClient(client())
	const n = 3000
	p := client(kgo.DefaultProduceTopic("etl-in"))
	for i := 0; i < n; i += 100 {
		var rs []*kgo.Record
		for k := i; k < i+100; k++ {
			rs = append(rs, &kgo.Record{Key: []byte(strconv.Itoa(k)), Value: []byte("v" + strconv.Itoa(k))})
		}
		if err := p.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	stages, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() }) // before the test ends, however it ends
	var failed atomic.Value
	fail := func(err error) {
		failed.CompareAndSwap(nil, err)
		stop()
	}
	for _, s := range []struct {
		group, from, to string
	}{{"etl-1", "etl-in", "etl-mid"}, {"etl-2", "etl-mid", "etl-out"}} {
		for i, m := range []struct{ abortEvery, quitAfter int }{{3, 4}, {5, 0}, {0, 0}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i == 2 {
					// The third member joins later, as the first leaves.
					select {
					case <-stages.Done():
						return
					case <-time.After(2 * time.Second):
					}
				}
				etlStage(stages, t, seeds, s.group, s.from, s.to, m.abortEvery, m.quitAfter, fail)
			}()
		}
	}

	// Read out under read_committed until every key has come.
	seen := map[string]int{}
	c := client(kgo.ConsumeTopics("etl-out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	progress := time.Now()
	var heal func()
	var faulted time.Time
	for len(seen) < n {
		if err, _ := failed.Load().(error); err != nil {
			t.Fatal(err)
		}
		if time.Since(progress) > time.Minute {
			t.Fatalf("%d of %d keys in etl-out, none new for a minute", len(seen), n)
		}
		if fault != nil && len(seen) >= n/3 {
			heal, faulted = fault(adm), time.Now()
			fault = nil
		}
		if heal != nil && (len(seen) >= 2*n/3 || time.Since(faulted) > 10*time.Second) {
			heal()
			heal = nil
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := c.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			t.Fatalf("%d of %d keys after %v", len(seen), n, err)
		}
		before := len(seen)
		fetches.EachRecord(func(r *kgo.Record) { seen[string(r.Key)]++ })
		if len(seen) > before {
			progress = time.Now()
		}
	}
	stop()
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	if heal != nil {
		heal()
	}

	// Every transaction has ended: read out to its end and count.
	ends, err := adm.ListEndOffsets(ctx, "etl-out")
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]int{}
	at := map[int32]int64{}
	r := client(kgo.ConsumeTopics("etl-out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords())
	done := func() bool {
		ok := true
		ends.Each(func(e kadm.ListedOffset) { ok = ok && at[e.Partition] >= e.Offset })
		return ok
	}
	for !done() {
		fetches := r.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading etl-out to its end: %v (at %v)", err, at)
		}
		fetches.EachRecord(func(rec *kgo.Record) {
			at[rec.Partition] = rec.Offset + 1
			if !rec.Attrs.IsControl() {
				all[string(rec.Key)]++
			}
		})
	}
	if len(all) != n {
		t.Fatalf("%d keys in etl-out, want %d", len(all), n)
	}
	for k, count := range all {
		if count != 1 {
			t.Errorf("key %s in etl-out %d times", k, count)
		}
		if i, err := strconv.Atoi(k); err != nil || i < 0 || i >= n {
			t.Errorf("key %q in etl-out was never produced", k)
		}
	}
}
