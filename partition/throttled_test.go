package partition

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/runnel-io/runnel/segment"
)

func TestParseThrottled(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		has  [][2]int32
		hasn [][2]int32
	}{
		{in: "", ok: true, hasn: [][2]int32{{0, 1}}},
		{in: "*", ok: true, has: [][2]int32{{0, 1}, {7, 3}}},
		{in: "0:1, 2:3", ok: true, has: [][2]int32{{0, 1}, {2, 3}}, hasn: [][2]int32{{0, 3}, {1, 1}}},
		{in: "0:1,", ok: false},
		{in: "0-1", ok: false},
		{in: "a:1", ok: false},
		{in: "0:-1", ok: false},
		{in: "*,0:1", ok: false},
	} {
		th, err := ParseThrottled(tc.in)
		if (err == nil) != tc.ok {
			t.Fatalf("%q: err %v, want ok %v", tc.in, err, tc.ok)
		}
		for _, h := range tc.has {
			if !th.Has(h[0], h[1]) {
				t.Errorf("%q does not have %d:%d", tc.in, h[0], h[1])
			}
		}
		for _, h := range tc.hasn {
			if th.Has(h[0], h[1]) {
				t.Errorf("%q has %d:%d", tc.in, h[0], h[1])
			}
		}
		if err := ValidateConfigs(map[string]string{"leader.replication.throttled.replicas": tc.in}); (err == nil) != tc.ok {
			t.Errorf("%q validates as %v", tc.in, err)
		}
	}
}

func TestConfigThrottledReplicas(t *testing.T) {
	cfg, err := ResolveConfig(map[string]string{"leader.replication.throttled.replicas": "0:1",
		"follower.replication.throttled.replicas": "*"})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.LeaderThrottled.Has(0, 1) || cfg.LeaderThrottled.Has(1, 1) || !cfg.FollowerThrottled.Has(5, 2) {
		t.Fatalf("resolved %+v %+v", cfg.LeaderThrottled, cfg.FollowerThrottled)
	}
	same, _ := ResolveConfig(map[string]string{"leader.replication.throttled.replicas": "0:1",
		"follower.replication.throttled.replicas": "*"})
	other, _ := ResolveConfig(map[string]string{"leader.replication.throttled.replicas": "0:2"})
	if !cfg.Equal(same) || cfg.Equal(other) {
		t.Fatal("Equal does not compare the throttled lists")
	}
}

// TestReplicaAddedWithinEpoch: a reassignment adds a replica to a led
// partition without a new leader epoch. The leader takes its fetches,
// throttles them, and proposes it for the ISR once it has caught up; a
// replica the reassignment removes can no longer fetch.
func TestReplicaAddedWithinEpoch(t *testing.T) {
	rs := newReplicaSet(t, nil, []int32{1, 2}, 1, 2)
	rs.produce(t, 10)
	rs.catchUp(t, 2)
	m3 := newManager(t, t.TempDir(), 3, fsyncNever)
	r := rs.role()
	added := Role{Leader: true, LeaderID: 1, Epoch: r.Epoch, ISR: r.ISR, PartitionEpoch: r.PartitionEpoch + 1,
		Replicas: []int32{3, 1, 2}, Adding: []int32{3}}
	if err := rs.leader.SetRole(added); err != nil {
		t.Fatal(err)
	}
	f3 := openReplica(t, m3, testTopic(nil), Role{LeaderID: 1, Epoch: r.Epoch, Replicas: added.Replicas, Adding: added.Adding})
	if !rs.leader.LeaderThrottled(3) || rs.leader.LeaderThrottled(2) || !f3.FollowerThrottled() || rs.followers[2].FollowerThrottled() {
		t.Fatal("only the added replica's replication is throttled")
	}
	if _, _, ok := rs.leader.ISRChange(time.Minute); ok {
		t.Fatal("the ISR changes before the added replica fetched")
	}
	catchUp(t, rs.leader, f3, 3, -1)
	isr, _, ok := rs.leader.ISRChange(time.Minute)
	if !ok || !slices.Equal(isr, []int32{3, 1, 2}) {
		t.Fatalf("ISR change %v (%v), want the added replica in", isr, ok)
	}
	// Completed: broker 2 removed.
	done := Role{Leader: true, LeaderID: 1, Epoch: r.Epoch, ISR: []int32{1, 3}, PartitionEpoch: r.PartitionEpoch + 3,
		Replicas: []int32{3, 1}}
	if err := rs.leader.SetRole(done); err != nil {
		t.Fatal(err)
	}
	if err := rs.leader.FollowerFetched(2, rs.followers[2].LogEndOffset(), -1); !errors.Is(err, ErrNotReplica) {
		t.Fatalf("removed replica's fetch: %v, want ErrNotReplica", err)
	}
	if err := f3.SetRole(Role{LeaderID: 1, Epoch: r.Epoch, PartitionEpoch: done.PartitionEpoch, Replicas: done.Replicas}); err != nil {
		t.Fatal(err)
	}
	if rs.leader.LeaderThrottled(3) || f3.FollowerThrottled() {
		t.Fatal("still throttled after the reassignment")
	}
}

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
