package groups

import (
	"errors"
	"testing"

	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/partition"
)

func commitTxn(t *testing.T, c *group.Coordinator, g string, pid int64, epoch int16, offs ...group.Offset) {
	t.Helper()
	errs, wait := c.CommitTxn(group.TxnCommitRequest{Group: g, ProducerID: pid, ProducerEpoch: epoch, Generation: -1, Offsets: offs})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// marker writes the producer's marker to the group's partition, as
// WriteTxnMarkers does; the partitions' marker hook tells the service.
func (b *broker) marker(g string, pid int64, epoch int16, commit bool) {
	b.t.Helper()
	p, err := b.parts.Get(Topic, PartitionFor(g, 4))
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := p.WriteMarker(pid, epoch, 0, commit); err != nil {
		b.t.Fatal(err)
	}
}

func wantVisible(t *testing.T, what string, c *group.Coordinator, g string, want map[group.TopicPartition]int64) {
	t.Helper()
	got, err := c.FetchOffsets(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := len(got) == len(want)
	for tp, o := range want {
		ok = ok && got[tp].Offset == o
	}
	if !ok {
		t.Fatalf("%s: visible %v, want %v", what, got, want)
	}
}

func tpOf(topic string, p int32) group.TopicPartition {
	return group.TopicPartition{Topic: topic, Partition: p}
}

// TestTxnOffsetsReplayed: offsets committed in a transaction are a
// transactional batch of the producer (the partition's LSO holds at it),
// pending across a reload until the producer's marker: a commit makes
// them visible unless a later plain commit of the partition stands, an
// abort drops them, and a reload from the log comes to the same offsets.
func TestTxnOffsetsReplayed(t *testing.T) {
	meta := newFakeMeta()
	dir := t.TempDir()
	b := newBroker(t, meta, dir)
	if err := b.svc.CreateTopic(); err != nil {
		t.Fatal(err)
	}
	b.reconcile()
	c := b.coordinator("g")
	p, _ := b.parts.Get(Topic, PartitionFor("g", 4))
	commit(t, c, "g", off("t", 0, 1))
	first := p.LogEndOffset()
	commitTxn(t, c, "g", 5, 0, off("t", 0, 10))
	commitTxn(t, c, "g", 5, 0, off("t", 1, 11)) // the next sequence of the producer
	commitTxn(t, c, "g", 6, 0, off("t", 2, 12))
	if lso := p.LastStableOffset(); lso != first {
		t.Fatalf("LSO %d, want %d (the first transactional commit)", lso, first)
	}
	wantVisible(t, "before any marker", c, "g", map[group.TopicPartition]int64{tpOf("t", 0): 1})

	b.close()
	b = newBroker(t, meta, dir)
	c = b.coordinator("g")
	wantVisible(t, "reloaded before any marker", c, "g", map[group.TopicPartition]int64{tpOf("t", 0): 1})
	if pend := c.PendingTxn("g", nil); len(pend) != 3 {
		t.Fatalf("pending after the reload: %v", pend)
	}
	b.marker("g", 5, 0, true)
	wantVisible(t, "after 5 commits", c, "g", map[group.TopicPartition]int64{tpOf("t", 0): 10, tpOf("t", 1): 11})
	commitTxn(t, c, "g", 7, 0, off("t", 3, 70))
	commit(t, c, "g", off("t", 3, 80))
	b.marker("g", 7, 0, true)
	b.marker("g", 6, 0, false)
	want := map[group.TopicPartition]int64{tpOf("t", 0): 10, tpOf("t", 1): 11, tpOf("t", 3): 80}
	wantVisible(t, "after 7 commits and 6 aborts", c, "g", want)
	if pend := c.PendingTxn("g", nil); len(pend) != 0 {
		t.Fatalf("pending after every marker: %v", pend)
	}

	b.close()
	b = newBroker(t, meta, dir)
	c = b.coordinator("g")
	wantVisible(t, "reloaded after the markers", c, "g", want)
	if pend := c.PendingTxn("g", nil); len(pend) != 0 {
		t.Fatalf("pending after the reload: %v", pend)
	}
}

// TestTxnOffsetCommitFenced: a transactional commit at a producer epoch
// older than one the partition has seen of the producer is refused
// (INVALID_PRODUCER_EPOCH) and leaves nothing pending.
func TestTxnOffsetCommitFenced(t *testing.T) {
	meta := newFakeMeta()
	b := newBroker(t, meta, t.TempDir())
	if err := b.svc.CreateTopic(); err != nil {
		t.Fatal(err)
	}
	b.reconcile()
	c := b.coordinator("g")
	commitTxn(t, c, "g", 5, 1, off("t", 0, 10))
	errs, _ := c.CommitTxn(group.TxnCommitRequest{Group: "g", ProducerID: 5, ProducerEpoch: 0, Generation: -1,
		Offsets: []group.Offset{off("t", 1, 11)}})
	if !errors.Is(errs[0], coordinator.ErrProducerFenced) || !errors.Is(errs[0], partition.ErrProducerFenced) {
		t.Fatalf("commit at an older epoch: %v", errs[0])
	}
	if pend := c.PendingTxn("g", nil); len(pend) != 1 || !pend[tpOf("t", 0)] {
		t.Fatalf("pending %v", pend)
	}
	// The epoch's bump by the marker lets the next transaction in.
	b.marker("g", 5, 2, true)
	commitTxn(t, c, "g", 5, 2, off("t", 1, 12))
	b.marker("g", 5, 2, true)
	wantVisible(t, "after both", c, "g", map[group.TopicPartition]int64{tpOf("t", 0): 10, tpOf("t", 1): 12})
}

// TestTxnMarkerWhileLoading: a marker written while the partition's shard
// is not serving yet is applied once it is.
func TestTxnMarkerWhileLoading(t *testing.T) {
	meta := newFakeMeta()
	b := newBroker(t, meta, t.TempDir())
	if err := b.svc.CreateTopic(); err != nil {
		t.Fatal(err)
	}
	b.reconcile()
	c := b.coordinator("g")
	commitTxn(t, c, "g", 5, 0, off("t", 0, 10))
	idx := PartitionFor("g", 4)
	b.svc.mu.Lock()
	sh := b.svc.mu.shards[idx]
	b.svc.mu.Unlock()
	b.svc.unregister(sh) // as while loading
	b.marker("g", 5, 0, true)
	wantVisible(t, "before the shard serves", c, "g", map[group.TopicPartition]int64{})
	b.svc.register(sh)
	wantVisible(t, "once it serves", c, "g", map[group.TopicPartition]int64{tpOf("t", 0): 10})
}
