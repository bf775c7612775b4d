package cleaner

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// replicaBatch is a leader's batch at base: one record per key (nil
// value: a tombstone for "a").
func replicaBatch(t *testing.T, base int64, keys ...string) []byte {
	t.Helper()
	var rs []segment.Record
	for i, k := range keys {
		v := []byte(fmt.Sprintf("%s@%d", k, base+int64(i)))
		if k == "a-tombstone" {
			k, v = "a", nil
		}
		rs = append(rs, segment.Record{Offset: base + int64(i), Timestamp: 1000, Key: []byte(k), Value: v})
	}
	b, err := segment.BuildBatch(nil, segment.BatchSpec{BaseOffset: base, PartitionLeaderEpoch: 1,
		LastOffsetDelta: int32(len(keys) - 1), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, rs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFollowerCutBackIntoCleanSection: a follower whose cleaned log is
// cut back into its clean section and written again by a new leader
// cleans what was written again as dirty. A tombstone written there stays
// for delete.retention.ms from its own first clean and removes the key's
// older value, which the clean section held: the key does not come back.
func TestFollowerCutBackIntoCleanSection(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(3_000_000_000)}
	m, err := partition.OpenManager(partition.Options{DataDir: t.TempDir(), NodeID: 2, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, err := m.Open(compactedTopic(nil), 0, partition.Role{LeaderID: 1, Epoch: 1, Replicas: []int32{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.FollowLeaderLog([]int64{0, 10, 20, 30}, 0); err != nil {
		t.Fatal(err)
	}
	appendAll := func(batches ...[]byte) {
		t.Helper()
		for _, b := range batches {
			if _, err := p.AppendReplica(b); err != nil {
				t.Fatal(err)
			}
		}
		// The leader's high watermark, as its fetch answers tell a
		// follower: the cleaner cleans only below the last stable offset,
		// which the high watermark bounds.
		p.SetFollowerHW(p.LogEndOffset())
	}
	keys := func(n int, prefix string) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, fmt.Sprint(prefix, i))
		}
		return out
	}
	appendAll(replicaBatch(t, 0, append([]string{"a"}, keys(9, "x")...)...),
		replicaBatch(t, 10, keys(10, "x")...), replicaBatch(t, 20, keys(10, "x")...), replicaBatch(t, 30, "z"))
	if err := p.Log().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl, err := New(m, Options{Now: clock.Now, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.CleanAll(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	// A new leader's log diverged from offset 15: cut back and write again,
	// with a tombstone for "a".
	if err := p.TruncateTo(15); err != nil {
		t.Fatal(err)
	}
	appendAll(replicaBatch(t, 15, "a-tombstone", "y1", "y2", "y3", "y4"), replicaBatch(t, 20, keys(10, "w")...),
		replicaBatch(t, 30, "z", "z2"))
	if err := p.Log().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock.Add(48 * time.Hour) // past delete.retention.ms of the first clean
	if err := cl.CleanAll(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	var aAt []rec
	for _, r := range readLog(t, p.Log()) {
		if string(r.key) == "a" {
			aAt = append(aAt, r)
		}
	}
	if len(aAt) != 1 || aAt[0].value != nil || aAt[0].offset != 15 {
		t.Fatalf("records of key a after the clean: %+v, want only its tombstone at 15", aAt)
	}
}
