package test

import (
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
)

// TestSaramaTransactions: sarama's transactional producer, a client that
// is not ours, commits and aborts transactions over two partitions through
// the transaction coordinator; a read_committed consumer sees exactly the
// records of the committed ones.
func TestSaramaTransactions(t *testing.T) {
	b := startBroker(t, "")
	const topic = "sarama-txn"
	ctx := ctxTimeout(t, 90*time.Second)
	if _, err := kadm.NewClient(b.client()).CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "sarama-txn-test"
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Transaction.ID = "sarama-txn"
	cfg.Producer.Transaction.Timeout = 30 * time.Second
	cfg.Net.MaxOpenRequests = 1
	p, err := sarama.NewSyncProducer([]string{b.addr}, cfg)
	if err != nil {
		t.Fatalf("sarama transactional producer: %v", err)
	}
	defer p.Close()
	txn := func(commit bool, vs []string) {
		t.Helper()
		if err := p.BeginTxn(); err != nil {
			t.Fatalf("BeginTxn: %v", err)
		}
		for i, v := range vs {
			msg := &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 2), Value: sarama.StringEncoder(v)}
			if _, _, err := p.SendMessage(msg); err != nil {
				t.Fatalf("send %s: %v", v, err)
			}
		}
		if commit {
			err = p.CommitTxn()
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			t.Fatalf("end transaction (commit %v): %v", commit, err)
		}
	}
	txn(true, values("committed", 10))
	txn(false, values("aborted", 10))
	txn(true, values("again", 6))
	txn(true, []string{"end", "end"}) // one on each partition: where readCommitted stops
	got := readCommitted(t, b, topic)
	want := append(values("committed", 10), values("again", 6)...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed after sarama's transactions:\n%v\nwant\n%v", got, want)
	}
}
