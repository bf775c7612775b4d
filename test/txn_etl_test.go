package test

import (
	"context"
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
func etlStage(ctx context.Context, t *testing.T, b *broker, group, from, to string, abortEvery, quitAfter int, fail func(error)) {
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(b.addr),
		kgo.TransactionalID(fmt.Sprintf("%s-%s-%d", group, from, time.Now().UnixNano())),
		kgo.TransactionTimeout(time.Minute),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(from),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(10*time.Second),
		kgo.RequireStableFetchOffsets(),
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
		if errs := fetches.Errors(); len(errs) > 0 {
			if len(errs) == 1 && (errs[0].Err == context.DeadlineExceeded || errs[0].Err == context.Canceled) {
				continue
			}
			fail(fmt.Errorf("%s: poll: %v", group, errs))
			return
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
	ctx := ctxTimeout(t, 4*time.Minute)
	if _, err := adm.CreateTopics(ctx, 3, 1, nil, "etl-in", "etl-mid", "etl-out"); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	p := b.client(kgo.DefaultProduceTopic("etl-in"))
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
				etlStage(stages, t, b, s.group, s.from, s.to, m.abortEvery, m.quitAfter, fail)
			}()
		}
	}

	// Read out under read_committed until every key has come.
	seen := map[string]int{}
	c := b.client(kgo.ConsumeTopics("etl-out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	progress := time.Now()
	for len(seen) < n {
		if err, _ := failed.Load().(error); err != nil {
			t.Fatal(err)
		}
		if time.Since(progress) > time.Minute {
			t.Fatalf("%d of %d keys in etl-out, none new for a minute", len(seen), n)
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

	// Every transaction has ended: read out to its end and count.
	ends, err := adm.ListEndOffsets(ctx, "etl-out")
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]int{}
	at := map[int32]int64{}
	r := b.client(kgo.ConsumeTopics("etl-out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
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
