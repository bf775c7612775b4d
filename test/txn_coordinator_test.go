package test

import (
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// txnProducer is a franz-go transactional producer writing to topic, to
// the partition each record names.
func txnProducer(t *testing.T, b *broker, id, topic string) *kgo.Client {
	return b.client(kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(30*time.Second))
}

// runTxn produces values to topic's partitions 0 and 1 (alternately) in one
// transaction and commits or aborts it.
func runTxn(cl *kgo.Client, t *testing.T, commit bool, values ...string) error {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	ctx := ctxTimeout(t, 60*time.Second)
	for i, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: int32(i % 2), Value: []byte(v)}).FirstErr(); err != nil {
			return err
		}
	}
	return cl.EndTransaction(ctx, kgo.TransactionEndTry(commit))
}

// readCommitted reads topic's two partitions from the start under
// read_committed until each has given the record "end", and returns the
// values read before them.
func readCommitted(t *testing.T, b *broker, topic string) []string {
	t.Helper()
	cl := b.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ctx := ctxTimeout(t, 60*time.Second)
	var got []string
	ends := map[int32]bool{}
	for len(ends) < 2 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read_committed: read %v, ends %v: %v", got, ends, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		for _, r := range fs.Records() {
			if string(r.Value) == "end" {
				ends[r.Partition] = true
				continue
			}
			got = append(got, string(r.Value))
		}
	}
	sort.Strings(got)
	return got
}

func values(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// TestTransactionsCommitAbortFence: a franz-go transactional producer
// commits and aborts transactions over two partitions, through the
// transaction coordinator; a read_committed consumer sees exactly the
// committed records; a second producer with the same transactional id
// fences the first, whose next transaction is refused.
func TestTransactionsCommitAbortFence(t *testing.T) {
	b := startBroker(t, "")
	const topic = "txn-e2e"
	adm := kadm.NewClient(b.client())
	if _, err := adm.CreateTopic(ctxTimeout(t, 30*time.Second), 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	p1 := txnProducer(t, b, "tx-e2e", topic)
	if err := runTxn(p1, t, true, values("c1", 5)...); err != nil {
		t.Fatalf("first commit: %v", err)
	}
	if err := runTxn(p1, t, false, values("a", 3)...); err != nil {
		t.Fatalf("abort: %v", err)
	}
	if err := runTxn(p1, t, true, values("c2", 4)...); err != nil {
		t.Fatalf("second commit: %v", err)
	}

	// The same id from another producer: its first transaction fences p1.
	p2 := txnProducer(t, b, "tx-e2e", topic)
	if err := runTxn(p2, t, true, values("z", 2)...); err != nil {
		t.Fatalf("second producer's commit: %v", err)
	}
	err := runTxn(p1, t, true, "zombie")
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("fenced producer's transaction: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	if err := runTxn(p2, t, true, "end", "end"); err != nil {
		t.Fatalf("last commit: %v", err)
	}

	want := append(append(values("c1", 5), values("c2", 4)...), values("z", 2)...)
	sort.Strings(want)
	got := readCommitted(t, b, topic)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read_committed saw\n%v\nwant\n%v", got, want)
	}

	// The coordinator describes and lists the id as committed.
	ctx := ctxTimeout(t, 30*time.Second)
	described, err := adm.DescribeTransactions(ctx, "tx-e2e")
	if err != nil {
		t.Fatal(err)
	}
	d, ok := described["tx-e2e"]
	if !ok || d.Err != nil || d.State != "CompleteCommit" || d.TimeoutMillis != 30000 {
		t.Fatalf("DescribeTransactions: %+v", described)
	}
	listed, err := adm.ListTransactions(ctx, nil, []string{"CompleteCommit"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed["tx-e2e"]; !ok {
		t.Fatalf("ListTransactions(CompleteCommit): %+v", listed)
	}
}
