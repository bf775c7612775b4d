package test

import (
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
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
// fences the first, aborting its open transaction, and the first can
// commit nothing more.
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

	// p1 opens a transaction; the same id from another producer fences
	// p1 and aborts it, and p1 can no longer commit.
	if err := p1.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i, v := range values("zombie", 2) {
		if err := p1.ProduceSync(ctxTimeout(t, 30*time.Second), &kgo.Record{Partition: int32(i), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	p2 := txnProducer(t, b, "tx-e2e", topic)
	if err := runTxn(p2, t, true, values("z", 2)...); err != nil {
		t.Fatalf("second producer's commit: %v", err)
	}
	err := p1.EndTransaction(ctxTimeout(t, 30*time.Second), kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("fenced producer's commit: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	if err := runTxn(p1, t, true, "zombie-again"); err == nil {
		t.Fatal("the fenced producer committed a transaction")
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
	// The last markers are written before the record that completes the
	// transaction: the state may still be PrepareCommit for a moment.
	var d kadm.DescribedTransaction
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		described, err := adm.DescribeTransactions(ctx, "tx-e2e")
		if err != nil {
			t.Fatal(err)
		}
		d = described["tx-e2e"]
		if d.Err == nil && d.State == "CompleteCommit" && d.TimeoutMillis == 30000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DescribeTransactions: %+v", described)
		}
	}
	// A late batch of the producer, after its transaction ended, would
	// open a transaction no coordinator ends: the leader verifies it with
	// the coordinator and refuses it (KIP-890).
	late := kmsg.NewPtrProduceRequest()
	late.Acks, late.TimeoutMillis, late.TransactionID = -1, 10000, kmsg.StringPtr("tx-e2e")
	lt := kmsg.NewProduceRequestTopic()
	lt.Topic = topic
	lp := kmsg.NewProduceRequestTopicPartition()
	lp.Records = testbatch.Make(testbatch.Spec{Timestamp: time.Now().UnixMilli(), Idempotent: true, ProducerID: d.ProducerID,
		ProducerEpoch: d.ProducerEpoch, BaseSequence: 1000, Attributes: segment.AttrTransactional, Values: [][]byte{[]byte("late")}})
	lt.Partitions = append(lt.Partitions, lp)
	late.Topics = append(late.Topics, lt)
	lr, err := late.RequestWith(ctx, b.client())
	if err != nil {
		t.Fatal(err)
	}
	if code := lr.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTxnState.Code {
		t.Fatalf("late transactional batch: code %d, want INVALID_TXN_STATE", code)
	}
	listed, err := adm.ListTransactions(ctx, nil, []string{"CompleteCommit"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed["tx-e2e"]; !ok {
		t.Fatalf("ListTransactions(CompleteCommit): %+v", listed)
	}
}

// TestCLITxn: runnel txn list and describe show a transactional id as the
// coordinator has it, and runnel txn abort ends a hanging transaction (one
// no coordinator knows, written by hand) so the last stable offset moves
// past it.
func TestCLITxn(t *testing.T) {
	b := startBroker(t, "")
	createTopic(t, b, "txn-cli", 1)
	p := b.client(kgo.TransactionalID("tx-cli"), kgo.DefaultProduceTopic("txn-cli"), kgo.TransactionTimeout(45*time.Second))
	if err := runTxn(p, t, true, "one"); err != nil {
		t.Fatal(err)
	}
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctxTimeout(t, 30*time.Second), kgo.StringRecord("open")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, b, "", "txn", "list", "--state", "ongoing").stdout
	if !strings.Contains(out, "TRANSACTIONAL-ID") || !strings.Contains(out, "tx-cli") || !strings.Contains(out, "Ongoing") {
		t.Fatalf("txn list:\n%s", out)
	}
	out = mustCLI(t, b, "", "txn", "describe", "tx-cli").stdout
	for _, want := range []string{"Transactional ID: tx-cli", "State: Ongoing", "Timeout: 45s", "Partitions: txn-cli-0"} {
		if !strings.Contains(out, want) {
			t.Fatalf("txn describe lacks %q:\n%s", want, out)
		}
	}
	if err := p.EndTransaction(ctxTimeout(t, 30*time.Second), kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, b, "", "txn", "describe", "nobody"); r.code == 0 || !strings.Contains(r.stdout, "TRANSACTIONAL_ID_NOT_FOUND") {
		t.Fatalf("describe of an unknown id: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A hanging transaction: batches of a producer no coordinator knows.
	raw := b.client()
	createTopic(t, b, "txn-hang", 1)
	at := txnProduce(t, raw, "txn-hang", 777777, 0, true, "stuck")
	if listed, _ := lastStable(t, raw, "txn-hang"); listed != at {
		t.Fatalf("LSO %d before the abort, want %d", listed, at)
	}
	out = mustCLI(t, b, "", "txn", "abort", "--topic", "txn-hang", "--partition", "0",
		"--producer-id", "777777", "--producer-epoch", "0").stdout
	if !strings.Contains(out, "Aborted the transaction of producer 777777") {
		t.Fatalf("txn abort:\n%s", out)
	}
	if listed, fetched := lastStable(t, raw, "txn-hang"); listed != at+2 || fetched != at+2 {
		t.Fatalf("LSO after the abort: listed %d, fetched %d, want %d", listed, fetched, at+2)
	}
}

// TestLibrdkafkaTransactions: librdkafka's transactional producer
// (confluent-kafka for Python) commits and aborts transactions through the
// coordinator; a read_committed franz-go consumer sees exactly the
// committed records, in order.
func TestLibrdkafkaTransactions(t *testing.T) {
	py := confluentPython()
	if py == "" {
		t.Skip("no python3 with confluent-kafka (import confluent_kafka); Debian's python3-confluent-kafka provides it")
	}
	b := startBroker(t, "")
	createTopic(t, b, "txn-rdkafka", 1)
	ctx := ctxTimeout(t, 120*time.Second)
	cmd := exec.CommandContext(ctx, py, "testdata/txn_producer.py", b.addr, "txn-rdkafka", "tx-rdkafka",
		"commit:c1:5", "abort:a:3", "commit:c2:4")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("librdkafka producer: %v\n%s\n%s\nbroker log:\n%s", err, out, stderr, b.logs())
	}
	if !strings.Contains(string(out), `"commit:c2:4"`) {
		t.Fatalf("librdkafka producer printed %s", out)
	}
	want := append(values("c1", 5), values("c2", 4)...)
	got := consumeValues(t, b, "txn-rdkafka", kgo.ReadCommitted(), len(want))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read_committed saw %v, want %v", got, want)
	}
}
