package partition

import "testing"

// TestOffsetLag: 0 on the leader; on a follower, the leader's high
// watermark at its last fetch less its own log end, never negative.
func TestOffsetLag(t *testing.T) {
	rs := newReplicaSet(t, nil, []int32{1, 2}, 1, 2)
	f := rs.followers[2]
	rs.produce(t, 10)
	if lag := rs.leader.OffsetLag(); lag != 0 {
		t.Fatalf("leader's lag %d", lag)
	}
	if lag := f.OffsetLag(); lag != 0 {
		t.Fatalf("follower's lag before any fetch: %d", lag)
	}
	f.SetFollowerHW(25) // the leader's high watermark, as a fetch answer says
	if lag := f.OffsetLag(); lag != 25 {
		t.Fatalf("follower holding nothing, leader's high watermark 25: lag %d", lag)
	}
	rs.catchUp(t, 2)
	if lag := f.OffsetLag(); lag != 0 {
		t.Fatalf("follower caught up: lag %d", lag)
	}
	before := f.Size()
	if before <= 0 || before != rs.leader.Size() {
		t.Fatalf("follower's size %d, leader's %d", before, rs.leader.Size())
	}
	m := newManager(t, t.TempDir(), 3, fsyncNever)
	if tb, ub, err2 := m.LogDirSpace(); err2 != nil || tb <= 0 || ub < 0 || ub > tb {
		t.Fatalf("log directory space: %d total, %d usable, %v", tb, ub, err2)
	}
}
