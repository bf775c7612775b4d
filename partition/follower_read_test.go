package partition

import (
	"errors"
	"slices"
	"testing"
)

// setFollowerISR gives every follower of rs the leader's role as a follower
// sees it from the metadata: the leader, the epoch and the ISR.
func setFollowerISR(t *testing.T, rs *replicaSet, isr []int32) {
	t.Helper()
	for _, f := range rs.followers {
		r := f.Role()
		r.ISR = isr
		r.PartitionEpoch++
		if err := f.SetRole(r); err != nil {
			t.Fatal(err)
		}
	}
}

// consumerRead is what a read_uncommitted consumer fetch from offset reads
// on p: the last offset of the last whole batch, -1 for none.
func consumerRead(t *testing.T, p *Partition, from int64) int64 {
	t.Helper()
	r, err := p.Read(from, 1<<20)
	if err != nil {
		t.Fatalf("Read(%d): %v", from, err)
	}
	defer r.Release()
	if r.Length == 0 {
		return -1
	}
	b := make([]byte, r.Length)
	if _, err := r.File().ReadAt(b, r.Position); err != nil {
		t.Fatal(err)
	}
	hs := headers(t, b)
	return hs[len(hs)-1].LastOffset()
}

// TestFollowerReadBoundedByHW: a follower serves consumers no record past
// its high watermark, which is never past the leader's, nor past what it
// holds; the leader's next answer carries it the newer one.
func TestFollowerReadBoundedByHW(t *testing.T) {
	rs := newReplicaSet(t, nil, []int32{1, 2, 3}, 1, 2, 3)
	setFollowerISR(t, rs, []int32{1, 2, 3})
	f2 := rs.followers[2]

	rs.produce(t, 5) // offsets 0-4
	rs.fetch(t, 2)   // follower 2 holds 0-4; the leader's HW is still 0
	rs.leader.SentHW(2, rs.hw())
	if hw := f2.HighWatermark(); hw != 0 {
		t.Fatalf("follower HW %d before any commit, want 0", hw)
	}
	if last := consumerRead(t, f2, 0); last != -1 {
		t.Fatalf("follower served up to %d before the leader committed anything", last)
	}
	rs.fetch(t, 3)
	rs.fetch(t, 2) // the leader learns 2 holds 0-4: HW stays 0 until 3 says so too
	rs.leader.SentHW(2, rs.hw())
	if rs.leader.HWBehind(2) {
		t.Fatal("follower 2 reported behind with the HW it was sent")
	}
	rs.fetch(t, 3)
	if hw := rs.hw(); hw != 5 {
		t.Fatalf("leader HW %d, want 5", hw)
	}
	// Follower 3's fetch moved the HW: follower 2's parked fetch must be
	// answered to carry it.
	if !rs.leader.HWBehind(2) {
		t.Fatalf("leader HW %d, follower 2 was sent %d: not reported behind", rs.hw(), f2.HighWatermark())
	}
	rs.fetch(t, 2)
	rs.leader.SentHW(2, rs.hw())
	if rs.leader.HWBehind(2) {
		t.Fatal("follower 2 reported behind after it was sent the leader's HW")
	}
	if hw := f2.HighWatermark(); hw != 5 {
		t.Fatalf("follower HW %d, want 5", hw)
	}
	if last := consumerRead(t, f2, 0); last != 4 {
		t.Fatalf("follower served up to %d, want 4", last)
	}

	// More on the leader, uncommitted: the follower holds it but serves
	// none of it.
	rs.produce(t, 3) // 5-7
	rs.fetch(t, 2)
	if f2.LogEndOffset() != 8 || f2.HighWatermark() != 5 {
		t.Fatalf("follower log end %d, HW %d; want 8, 5", f2.LogEndOffset(), f2.HighWatermark())
	}
	if last := consumerRead(t, f2, 5); last != -1 {
		t.Fatalf("follower served up to %d past its high watermark 5", last)
	}

	// A leader HW past what the follower holds is cut to its log end.
	f3 := rs.followers[3]
	f3.SetFollowerHW(100)
	if hw := f3.HighWatermark(); hw != f3.LogEndOffset() {
		t.Fatalf("follower HW %d past its log end %d", hw, f3.LogEndOffset())
	}
}

// TestCheckReadable: the leader and in-sync followers serve consumers at
// the epoch they know; an out-of-sync follower and a partition without a
// leader send them away.
func TestCheckReadable(t *testing.T) {
	rs := newReplicaSet(t, nil, []int32{1, 2}, 1, 2, 3)
	setFollowerISR(t, rs, []int32{1, 2})
	for _, tc := range []struct {
		name   string
		p      *Partition
		epoch  int32
		leader bool
		err    error
	}{
		{"leader", rs.leader, -1, true, nil},
		{"leader at its epoch", rs.leader, 1, true, nil},
		{"leader, newer epoch", rs.leader, 2, true, ErrUnknownEpoch},
		{"in-sync follower", rs.followers[2], -1, false, nil},
		{"in-sync follower at its epoch", rs.followers[2], 1, false, nil},
		{"in-sync follower, older epoch", rs.followers[2], 0, false, ErrFencedEpoch},
		{"in-sync follower, newer epoch", rs.followers[2], 2, false, ErrUnknownEpoch},
		{"follower out of sync", rs.followers[3], -1, false, ErrNotInSync},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leader, err := tc.p.CheckReadable(tc.epoch)
			if leader != tc.leader || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("CheckReadable(%d) = %v, %v; want %v, %v", tc.epoch, leader, err, tc.leader, tc.err)
			}
		})
	}
	if _, err := rs.followers[3].CheckReadable(-1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("out of sync: %v, want NOT_LEADER_OR_FOLLOWER's ErrNotLeader", err)
	}
	f := rs.followers[2]
	r := f.Role()
	r.LeaderID, r.Epoch = -1, 2
	if err := f.SetRole(r); err != nil {
		t.Fatal(err)
	}
	if _, err := f.CheckReadable(-1); !errors.Is(err, ErrLeaderNotAvailable) {
		t.Fatalf("without a leader: %v", err)
	}
}

// TestReadableFollowers: the leader offers the in-sync followers that hold
// the fetch offset, none before they fetched in its epoch.
func TestReadableFollowers(t *testing.T) {
	rs := newReplicaSet(t, nil, []int32{1, 2, 3}, 1, 2, 3)
	if got := rs.leader.ReadableFollowers(nil, 0); len(got) != 0 {
		t.Fatalf("before any fetch: %v", got)
	}
	rs.produce(t, 4)
	rs.catchUp(t, 2)
	rs.fetch(t, 3) // fetched from 0: holds nothing yet
	ids := func(fs []FollowerState) []int32 {
		var out []int32
		for _, f := range fs {
			out = append(out, f.ID)
		}
		return out
	}
	if got := ids(rs.leader.ReadableFollowers(nil, 0)); !slices.Equal(got, []int32{2, 3}) {
		t.Fatalf("from 0: %v", got)
	}
	if got := ids(rs.leader.ReadableFollowers(nil, 4)); !slices.Equal(got, []int32{2}) {
		t.Fatalf("from 4: %v", got)
	}
	// Out of the ISR: never offered.
	r := rs.role()
	r.ISR, r.PartitionEpoch = []int32{1, 3}, r.PartitionEpoch+1
	if err := rs.leader.SetRole(r); err != nil {
		t.Fatal(err)
	}
	if got := ids(rs.leader.ReadableFollowers(nil, 0)); !slices.Equal(got, []int32{3}) {
		t.Fatalf("with 2 out of the ISR: %v", got)
	}
	if got := rs.followers[2].ReadableFollowers(nil, 0); len(got) != 0 {
		t.Fatalf("a follower offers %v", got)
	}
}

// TestFollowerReadCommitted: a follower keeps the transactions it
// replicates, so its last stable offset holds read_committed consumers
// before an open transaction and below its own high watermark.
func TestFollowerReadCommitted(t *testing.T) {
	rs := newReplicaSet(t, nil, []int32{1, 2}, 1, 2)
	setFollowerISR(t, rs, []int32{1, 2})
	f := rs.followers[2]
	rs.produce(t, 2)                                    // 0-1
	produce(t, rs.leader, transactional(7, 0, 0, 3), 1) // 2-4, open
	for range 3 {
		rs.fetch(t, 2)
	}
	if hw := f.HighWatermark(); hw != 5 {
		t.Fatalf("follower HW %d, want 5", hw)
	}
	if lso := f.LastStableOffset(); lso != 2 {
		t.Fatalf("follower LSO %d with a transaction open at 2, want 2", lso)
	}
	writeMarker(t, rs.leader, 7, 0, 0, false) // abort at 5
	rs.fetch(t, 2)
	if lso := f.LastStableOffset(); lso > f.HighWatermark() {
		t.Fatalf("follower LSO %d past its HW %d", lso, f.HighWatermark())
	}
	for range 3 {
		rs.fetch(t, 2)
	}
	if lso, hw := f.LastStableOffset(), f.HighWatermark(); lso != 6 || hw != 6 {
		t.Fatalf("follower LSO %d, HW %d after the abort; want 6, 6", lso, hw)
	}
	aborted, err := f.AbortedTransactions(nil, 0, f.LastStableOffset())
	if err != nil {
		t.Fatal(err)
	}
	if len(aborted) != 1 || aborted[0].ProducerID != 7 || aborted[0].FirstOffset != 2 {
		t.Fatalf("follower's aborted transactions %+v, want producer 7 from 2", aborted)
	}
}
