package test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnCoordinator returns the broker that coordinates transactional id id.
func (c *testCluster) txnCoordinator(id string) int32 {
	c.t.Helper()
	var node int32
	cl := c.client()
	c.eventually(30*time.Second, "a coordinator for "+id, func() error {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorType, req.CoordinatorKey = 1, id
		resp, err := req.RequestWith(ctxTimeout(c.t, 10*time.Second), cl)
		if err != nil {
			return err
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return err
		}
		node = resp.NodeID
		return nil
	})
	return node
}

// TestTransactionsCoordinatorFailover: on three brokers, a transactional
// producer writes rounds of one record per partition of a six-partition
// topic (whose leaders are spread, so most markers go to other brokers),
// committing most and aborting every third. Its coordinator's broker is
// SIGKILLed with a transaction open, and the transaction is committed on
// the coordinator that takes over, then the broker comes back; later a
// leader of partitions that is not the coordinator is SIGKILLed with a
// transaction open, which still commits (its markers go to the new
// leaders). Under
// read_committed every committed round is there whole and once, no aborted
// round is, a round whose commit answer was lost is all or nothing, and
// every partition's last stable offset reaches its high watermark.
func TestTransactionsCoordinatorFailover(t *testing.T) {
	const (
		topic = "txn-fo"
		parts = 6
		id    = "tx-failover"
	)
	c := startCluster(t, append(append([]string{}, fastFailover...), "--transaction-state-partitions", "6")...)
	c.createTopic(topic, parts, 3, map[string]string{"min.insync.replicas": "2"})

	newProducer := func() *kgo.Client {
		return c.client(kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.TransactionTimeout(60*time.Second), kgo.RequestTimeoutOverhead(5*time.Second),
			// Retries outlast a failover: the fencing of the dead broker and
			// the load of its coordinators take seconds.
			kgo.RequestRetries(300), kgo.RetryTimeout(60*time.Second))
	}
	p := newProducer()
	type outcome int
	const (
		committed outcome = iota
		aborted
		uncertain
	)
	rounds := map[int]outcome{}
	// round runs one transaction; between its records and its end, before
	// runs (the kill).
	round := func(r int, commit bool, before func()) {
		t.Helper()
		rounds[r] = aborted
		ctx := ctxTimeout(t, 90*time.Second)
		err := p.BeginTransaction()
		for i := int32(0); i < parts && err == nil; i++ {
			err = p.ProduceSync(ctx, &kgo.Record{Partition: i, Value: []byte(fmt.Sprintf("%d-%d", r, i))}).FirstErr()
		}
		if before != nil {
			before()
		}
		if err != nil {
			t.Logf("round %d: %v; aborting", r, err)
			commit = false
		}
		if err = p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err == nil && commit {
			rounds[r] = committed
			return
		}
		if err != nil {
			t.Logf("round %d: ending (commit %v): %v; a new producer takes over", r, commit, err)
			if commit {
				rounds[r] = uncertain
			}
			p.Close()
			p = newProducer()
		}
	}
	next := 0
	for ; next < 6; next++ {
		round(next, next%3 != 2, nil)
	}
	coord := c.txnCoordinator(id)
	t.Logf("broker %d coordinates %s", coord, id)
	c.waitISR("__transaction_state", 6, 3)
	round(next, true, func() {
		// The broker dies with the transaction open. franz-go does not
		// retry a coordinator request refused at dial time, so the commit
		// waits until the metadata names the next coordinator (the dead
		// broker is fenced within the session timeout).
		c.node(coord).kill()
		c.eventually(30*time.Second, "a new coordinator", func() error {
			if now := c.txnCoordinator(id); now == coord {
				return fmt.Errorf("broker %d still named", now)
			}
			return nil
		})
	})
	if rounds[next] != committed {
		t.Fatalf("the transaction open when its coordinator died was not committed on the next one")
	}
	next++
	for ; next < 12; next++ {
		round(next, next%3 != 2, nil)
	}
	if now := c.txnCoordinator(id); now == coord {
		t.Fatalf("broker %d still coordinates after it was killed", now)
	}
	c.node(coord).restart()
	c.waitISR(topic, parts, 3)
	for ; next < 15; next++ {
		round(next, next%3 != 2, nil)
	}
	// A leader of partitions of the output, not the coordinator, dies with
	// a transaction open: its partitions get new leaders, the transaction
	// commits (or, if its producer gave up, is all or nothing).
	coordNow := c.txnCoordinator(id)
	victim := int32(-1)
	for i := int32(0); i < parts && victim < 0; i++ {
		if l := c.leader(topic, i); l != coordNow {
			victim = l
		}
	}
	if victim < 0 {
		t.Fatalf("every partition of %s is led by the coordinator, broker %d", topic, coordNow)
	}
	t.Logf("killing broker %d, a partition leader, with a transaction open", victim)
	round(next, true, func() { c.node(victim).kill() })
	if rounds[next] == aborted {
		t.Fatalf("round %d, committed across the kill of a partition leader, was aborted", next)
	}
	next++
	c.node(victim).restart()
	c.waitISR(topic, parts, 3)
	for ; next < 18; next++ {
		round(next, next%3 != 2, nil)
	}
	// The last round: one "end" record per partition, committed.
	ctx := ctxTimeout(t, 90*time.Second)
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := int32(0); i < parts; i++ {
		if err := p.ProduceSync(ctx, &kgo.Record{Partition: i, Value: []byte("end")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	// Read everything under read_committed.
	cl := c.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	seen := map[string]int{}
	ends := map[int32]bool{}
	for len(ends) < parts {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read_committed: %d ends of %d: %v", len(ends), parts, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == "end" {
				ends[r.Partition] = true
				return
			}
			seen[string(r.Value)]++
		})
	}
	for r, o := range rounds {
		n := 0
		for i := 0; i < parts; i++ {
			v := fmt.Sprintf("%d-%d", r, i)
			if seen[v] > 1 {
				t.Errorf("%s read %d times", v, seen[v])
			}
			if seen[v] > 0 {
				n++
			}
		}
		switch {
		case o == committed && n != parts:
			t.Errorf("committed round %d: %d of %d records", r, n, parts)
		case o == aborted && n != 0:
			t.Errorf("aborted round %d: %d records visible", r, n)
		case o == uncertain && n != 0 && n != parts:
			t.Errorf("round %d: %d of %d records, not all or nothing", r, n, parts)
		}
	}

	// No partition's last stable offset is left behind its high
	// watermark once every transaction has ended.
	adm := c.admin()
	c.eventually(30*time.Second, "last stable offsets at the high watermarks", func() error {
		hw, err := adm.ListEndOffsets(ctxTimeout(t, 10*time.Second), topic)
		if err != nil {
			return err
		}
		lso, err := adm.ListCommittedOffsets(ctxTimeout(t, 10*time.Second), topic)
		if err != nil {
			return err
		}
		var behind error
		hw.Each(func(o kadm.ListedOffset) {
			if l, ok := lso.Lookup(topic, o.Partition); !ok || l.Offset != o.Offset {
				behind = errors.Join(behind, fmt.Errorf("partition %d: LSO %d, high watermark %d", o.Partition, l.Offset, o.Offset))
			}
		})
		return behind
	})
}
