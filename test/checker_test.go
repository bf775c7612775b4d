package test

// The checker: what a sequenceProducer's topic must hold after any fault.
// Every acknowledged record is in the log at the partition and offset it
// was acknowledged at; no record is there twice; each partition holds only
// its own records, in the order they were produced. Records that were
// sent but never acknowledged may be there or not.

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// logAudit is what the checker found.
type logAudit struct {
	records    int // in the log
	acked      int
	lost       int // acknowledged, not in the log
	moved      int // acknowledged at one offset, in the log at another
	duplicates int // in the log more than once
	reordered  int // after a record produced later, or at a lower offset
	foreign    int // not a sequence number, or in another record's partition
	problems   []string
}

func (a logAudit) ok() bool {
	return a.lost+a.moved+a.duplicates+a.reordered+a.foreign == 0
}

func (a logAudit) String() string {
	return fmt.Sprintf("%d records in the log, %d acknowledged: lost %d, offset changed %d, duplicated %d, out of order %d, misplaced %d",
		a.records, a.acked, a.lost, a.moved, a.duplicates, a.reordered, a.foreign)
}

func (a *logAudit) problem(count *int, format string, args ...any) {
	*count++
	if len(a.problems) < 20 {
		a.problems = append(a.problems, fmt.Sprintf(format, args...))
	}
}

// auditSequenceLog checks recs, the partitions of a topic written by a
// sequenceProducer, against what it acknowledged.
func auditSequenceLog(recs map[int32][]*kgo.Record, partitions int32, acked []ackedRecord) logAudit {
	type at struct {
		partition int32
		offset    int64
	}
	a := logAudit{acked: len(acked)}
	where := map[int]at{}
	for p := range partitions {
		prev := -1
		prevOffset := int64(-1)
		for _, r := range recs[p] {
			a.records++
			seq, err := strconv.Atoi(string(r.Value))
			switch {
			case err != nil:
				a.problem(&a.foreign, "partition %d offset %d: value %q is not a sequence number", p, r.Offset, r.Value)
				continue
			case int32(seq%int(partitions)) != p:
				a.problem(&a.foreign, "partition %d offset %d: record %d belongs to partition %d", p, r.Offset, seq, seq%int(partitions))
			case r.Offset <= prevOffset:
				a.problem(&a.reordered, "partition %d: offset %d after offset %d", p, r.Offset, prevOffset)
			case seq < prev:
				a.problem(&a.reordered, "partition %d offset %d: record %d follows record %d", p, r.Offset, seq, prev)
			}
			if w, dup := where[seq]; dup {
				a.problem(&a.duplicates, "record %d is in the log twice: partition %d offset %d and partition %d offset %d",
					seq, w.partition, w.offset, p, r.Offset)
			} else {
				where[seq] = at{p, r.Offset}
			}
			prev, prevOffset = max(prev, seq), r.Offset
		}
	}
	for _, ack := range acked {
		w, ok := where[ack.seq]
		switch {
		case !ok:
			a.problem(&a.lost, "acknowledged record %d (partition %d offset %d) is not in the log", ack.seq, ack.partition, ack.offset)
		case w.partition != ack.partition || w.offset != ack.offset:
			a.problem(&a.moved, "acknowledged record %d was acknowledged at partition %d offset %d, the log has it at partition %d offset %d",
				ack.seq, ack.partition, ack.offset, w.partition, w.offset)
		}
	}
	return a
}

// checkSequenceLog fails the test unless the audit of recs is clean.
func checkSequenceLog(t *testing.T, recs map[int32][]*kgo.Record, partitions int32, acked []ackedRecord) logAudit {
	t.Helper()
	a := auditSequenceLog(recs, partitions, acked)
	for _, p := range a.problems {
		t.Error(p)
	}
	if !a.ok() {
		t.Fatalf("the checker found problems: %v", a)
	}
	t.Logf("checker: %v", a)
	return a
}

// readTopic reads every partition of topic from its start to its end
// offset (as ListEndOffsets reports now) with a fresh consumer from
// newClient.
func readTopic(t *testing.T, newClient func(...kgo.Opt) *kgo.Client, topic string, partitions int32) map[int32][]*kgo.Record {
	t.Helper()
	ctx := ctxTimeout(t, 60*time.Second)
	ends, err := kadm.NewClient(newClient()).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("listing end offsets of %s: %v", topic, err)
	}
	want := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	for p := range partitions {
		e, ok := ends.Lookup(topic, p)
		if !ok {
			t.Fatalf("no end offset for %s-%d", topic, p)
		}
		want[p] = e.Offset
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl := newClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}), kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	out := map[int32][]*kgo.Record{}
	done := func() bool {
		for p, end := range want {
			rs := out[p]
			if end > 0 && (len(rs) == 0 || rs[len(rs)-1].Offset < end-1) {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: ends %v, read %v: %v", topic, want, lastOffsets(out), ctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetching %s-%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { out[r.Partition] = append(out[r.Partition], r) })
	}
	return out
}

// TestAuditSequenceLog feeds the checker logs with each kind of fault.
func TestAuditSequenceLog(t *testing.T) {
	rec := func(p int32, off int64, seq int) *kgo.Record {
		return &kgo.Record{Partition: p, Offset: off, Value: []byte(strconv.Itoa(seq))}
	}
	acked := []ackedRecord{{0, 0, 0}, {1, 1, 0}, {2, 0, 1}, {3, 1, 1}}
	for _, tc := range []struct {
		name string
		log  map[int32][]*kgo.Record
		want logAudit
	}{
		{"clean", map[int32][]*kgo.Record{0: {rec(0, 0, 0), rec(0, 1, 2), rec(0, 2, 4)}, 1: {rec(1, 0, 1), rec(1, 1, 3)}},
			logAudit{records: 5, acked: 4}},
		{"lost", map[int32][]*kgo.Record{0: {rec(0, 0, 0)}, 1: {rec(1, 0, 1), rec(1, 1, 3)}},
			logAudit{records: 3, acked: 4, lost: 1}},
		{"offset changed", map[int32][]*kgo.Record{0: {rec(0, 0, 0), rec(0, 2, 2)}, 1: {rec(1, 0, 1), rec(1, 1, 3)}},
			logAudit{records: 4, acked: 4, moved: 1}},
		{"duplicated", map[int32][]*kgo.Record{0: {rec(0, 0, 0), rec(0, 1, 2), rec(0, 2, 2)}, 1: {rec(1, 0, 1), rec(1, 1, 3)}},
			logAudit{records: 5, acked: 4, duplicates: 1}},
		{"out of order", map[int32][]*kgo.Record{0: {rec(0, 0, 0), rec(0, 1, 2), rec(0, 2, 4), rec(0, 3, 6), rec(0, 4, 4)},
			1: {rec(1, 0, 1), rec(1, 1, 3)}},
			logAudit{records: 7, acked: 4, duplicates: 1, reordered: 1}},
		{"misplaced", map[int32][]*kgo.Record{0: {rec(0, 0, 0), rec(0, 1, 2), rec(0, 2, 5)}, 1: {rec(1, 0, 1), rec(1, 1, 3)}},
			logAudit{records: 5, acked: 4, foreign: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := auditSequenceLog(tc.log, 2, acked)
			got.problems = nil
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || got.ok() != tc.want.ok() {
				t.Fatalf("audit %v, want %v", got, tc.want)
			}
		})
	}
}

// finishAndCheck stops sp issuing records, waits for its last answers,
// fails the test on any produce error, and runs the checker over topic.
func (c *testCluster) finishAndCheck(sp *sequenceProducer, topic string, partitions int32) logAudit {
	c.t.Helper()
	sp.finish(c.t)
	requireNoProduceErrors(c.t, sp.acks)
	return checkSequenceLog(c.t, c.readPartitions(topic, partitions), partitions, sp.acks.records())
}

// stopAndCompare waits until every replica of each topic holds the same log
// end, stops the brokers and compares the replicas' bytes.
func (c *testCluster) stopAndCompare(partitions int32, topics ...string) {
	c.t.Helper()
	for _, topic := range topics {
		c.t.Logf("%s: log ends %v", topic, c.waitLogEndsEqual(topic, partitions))
	}
	c.stopAll()
	for _, topic := range topics {
		c.compareReplicas(topic, partitions)
	}
}
