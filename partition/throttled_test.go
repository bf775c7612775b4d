package partition

import (
	"testing"

	"github.com/runnel-io/runnel/segment"
)

// TestThrottledReplicas: the throttled-replicas lists and a
// reassignment's adding replicas throttle a replica catching up, and
// never one in the ISR, as in Kafka.
func TestThrottledReplicas(t *testing.T) {
	all := map[string]string{"leader.replication.throttled.replicas": "*", "follower.replication.throttled.replicas": "0:2"}
	m := newManager(t, t.TempDir(), 1, segment.FsyncPolicy{Mode: segment.FsyncNever})
	leader := openReplica(t, m, testTopic(all), leaderRole(1, 1, []int32{1, 2}, 1, 2, 3))
	if leader.LeaderThrottled(2) {
		t.Error("the leader throttles follower 2, which is in the ISR")
	}
	if !leader.LeaderThrottled(3) {
		t.Error("the leader, listed, does not throttle follower 3, out of the ISR")
	}

	m2 := newManager(t, t.TempDir(), 2, segment.FsyncPolicy{Mode: segment.FsyncNever})
	r := followerRole(1, 1, 1, 2, 3)
	r.ISR = []int32{1, 2}
	follower := openReplica(t, m2, testTopic(all), r)
	if follower.FollowerThrottled() {
		t.Error("follower 2, listed but in the ISR, is throttled")
	}
	r.ISR = []int32{1}
	if err := follower.SetRole(r); err != nil {
		t.Fatal(err)
	}
	if !follower.FollowerThrottled() {
		t.Error("follower 2, listed and out of the ISR, is not throttled")
	}

	// Unlisted: only a replica being added is throttled.
	m3 := newManager(t, t.TempDir(), 3, segment.FsyncPolicy{Mode: segment.FsyncNever})
	r = followerRole(1, 1, 1, 2, 3)
	r.ISR, r.Adding = []int32{1, 2}, []int32{3}
	adding := openReplica(t, m3, testTopic(nil), r)
	if !adding.FollowerThrottled() {
		t.Error("replica 3, being added, is not throttled")
	}
	unlisted := openReplica(t, newManager(t, t.TempDir(), 1, segment.FsyncPolicy{Mode: segment.FsyncNever}), testTopic(nil),
		Role{Leader: true, LeaderID: 1, Epoch: 1, ISR: []int32{1, 2}, Replicas: []int32{1, 2, 3}, Adding: []int32{3}})
	if !unlisted.LeaderThrottled(3) || unlisted.LeaderThrottled(2) {
		t.Error("an unlisted leader throttles other than the replica being added")
	}
}
