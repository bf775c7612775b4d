package test

import (
	"context"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var recoveredEnd = regexp.MustCompile(`msg="recovered partition log" partition=crash-0 .* log_end_offset=(\d+)`)

// TestKillDuringAcksAll kills the broker with SIGKILL while an idempotent
// acks=all producer writes numbered records with --fsync always, three
// times over one data directory. After each kill the producer stops
// issuing records; once the broker is back it delivers what it had
// buffered (retrying batches that may already be on disk: the recovered
// producer state must answer them as duplicates) and a new producer carries
// on. At the end every acknowledged record is in the log, no record is
// there twice, and the log is in the order the records were produced.
func TestKillDuringAcksAll(t *testing.T) {
	b := startBroker(t, "", "--fsync", "always")
	const (
		topic    = "crash"
		cycles   = 3
		perCycle = 400 // acknowledgements to wait for before each kill
	)
	var (
		mu    sync.Mutex
		acked = map[int]bool{}
		next  int // sequence number of the next record to produce
	)
	for cycle := 0; cycle < cycles; cycle++ {
		cl := newClient(t, b.addr, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(500),
			kgo.ProducerBatchMaxBytes(1024), // many small batches in flight at the kill
			kgo.MetadataMinAge(250*time.Millisecond))
		mu.Lock()
		target := len(acked) + perCycle
		mu.Unlock()
		reached := make(chan struct{})
		var once sync.Once
		produceCtx, stopProducing := context.WithCancel(context.Background())
		var stopped atomic.Bool
		done := make(chan struct{})
		stop := func() {
			stopped.Store(true)
			stopProducing() // unblocks a Produce waiting for buffer space
			<-done
		}
		go func() {
			defer close(done)
			for !stopped.Load() {
				mu.Lock()
				seq := next
				next++
				mu.Unlock()
				cl.Produce(produceCtx, kgo.StringRecord(strconv.Itoa(seq)), func(r *kgo.Record, err error) {
					if err != nil {
						return // not acknowledged: may or may not be in the log
					}
					n, _ := strconv.Atoi(string(r.Value))
					mu.Lock()
					acked[n] = true
					if len(acked) >= target {
						once.Do(func() { close(reached) })
					}
					mu.Unlock()
				})
			}
		}()
		select {
		case <-reached:
		case <-time.After(60 * time.Second):
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			stop()
			t.Fatalf("cycle %d: %d records acknowledged after 60s, want %d:\n%s", cycle, n, target, b.logs())
		}
		b.kill()
		stop()
		mu.Lock()
		ackedAtKill := len(acked)
		mu.Unlock()
		b.restart()
		if m := recoveredEnd.FindAllStringSubmatch(b.logs(), -1); len(m) > 0 {
			// Informative: records on disk beyond those acknowledged are
			// batches whose answer the kill lost; the flush retries them.
			t.Logf("cycle %d: killed with %d records acknowledged; the log recovered to offset %s", cycle, ackedAtKill, m[len(m)-1][1])
		}
		// Buffered and in-flight records go to the restarted broker.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err := cl.Flush(ctx)
		cancel()
		if err != nil {
			t.Fatalf("cycle %d: flushing after the restart: %v", cycle, err)
		}
		cl.Close()
		mu.Lock()
		t.Logf("cycle %d: %d of %d records acknowledged", cycle, len(acked), next)
		mu.Unlock()
	}

	end := dialRaw(t, b.addr).endOffset(topic)
	recs := consumeN(t, b.addr, topic, int(end))
	seen := make(map[int]bool, len(recs))
	prev := -1
	for i, r := range recs {
		n, err := strconv.Atoi(string(r.Value))
		if err != nil || r.Offset != int64(i) {
			t.Fatalf("record %d: offset %d value %q", i, r.Offset, r.Value)
		}
		if seen[n] {
			t.Fatalf("record %d (offset %d) is in the log twice", n, r.Offset)
		}
		if n <= prev || n >= next {
			t.Fatalf("record %d at offset %d follows record %d (produced 0-%d): out of order", n, r.Offset, prev, next-1)
		}
		seen[n], prev = true, n
	}
	missing := 0
	for n := range acked {
		if !seen[n] {
			missing++
			if missing <= 10 {
				t.Errorf("acknowledged record %d is not in the log", n)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d acknowledged records lost (log holds %d records)", missing, len(recs))
	}
	t.Logf("log holds %d records, %d acknowledged, %d produced", len(recs), len(acked), next)
}
