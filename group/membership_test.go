package group

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSessionTimeout(t *testing.T) {
	t.Run("a silent member is removed and the group rebalances", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0), memberReq("g", 1), memberReq("g", 2))
		h.clock.Advance(6 * time.Second)
		wantErr(t, "heartbeat 0", h.heartbeat("g", res[0]), nil)
		wantErr(t, "heartbeat 2", h.heartbeat("g", res[2]), nil)
		h.clock.Advance(4*time.Second - 1)
		if d := h.describe("g"); d.State != Stable || len(d.Members) != 3 {
			t.Fatalf("expired early: %+v", d)
		}
		h.clock.Advance(1) // member 1's session ends
		d := h.describe("g")
		if d.State != PreparingRebalance || !equalStrings(h.memberIDs("g"), ids(res[0], res[2])) || d.Generation != 2 {
			t.Fatalf("after expiry: %+v", d)
		}
		wantErr(t, "expired member's heartbeat", h.heartbeat("g", res[1]), ErrUnknownMember)
		wantErr(t, "heartbeat 0", h.heartbeat("g", res[0]), ErrRebalanceInProgress)
		ch0 := h.c.Join(rejoin(memberReq("g", 0), res[0].MemberID))
		none(t, ch0)
		ch2 := h.c.Join(rejoin(memberReq("g", 2), res[2].MemberID))
		r0, r2 := h.joinOK(ch0), h.joinOK(ch2)
		if r0.Generation != 3 || r2.Generation != 3 || r0.Leader != res[0].MemberID || !equalStrings(memberIDsOf(r0.Members), ids(res[0], res[2])) {
			t.Fatalf("next generation: %+v %+v", r0, r2)
		}
		wantErr(t, "expired member's rejoin", recv(t, h.c.Join(rejoin(memberReq("g", 1), res[1].MemberID))).Err, ErrUnknownMember)
	})

	t.Run("the leader expiring hands leadership on", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0), memberReq("g", 1))
		h.clock.Advance(5 * time.Second)
		wantErr(t, "heartbeat", h.heartbeat("g", res[1]), nil)
		h.clock.Advance(5 * time.Second)
		r1 := h.joinOK(h.c.Join(rejoin(memberReq("g", 1), res[1].MemberID)))
		if r1.Leader != res[1].MemberID || r1.Generation != 3 || len(r1.Members) != 1 {
			t.Fatalf("answer %+v", r1)
		}
	})

	t.Run("the last member expiring empties the group", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0))
		h.c.Commit(CommitRequest{Group: "g", Generation: res[0].Generation, MemberID: res[0].MemberID, Offsets: []Offset{off("t", 0, 5)}})
		h.clock.Advance(sessionTimeout)
		d := h.describe("g")
		if d.State != Empty || len(d.Members) != 0 || d.Generation != 2 || d.Protocol != "" {
			t.Fatalf("described %+v", d)
		}
	})

	t.Run("the last member expiring forgets a group without offsets", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.stable(memberReq("g", 0))
		h.clock.Advance(sessionTimeout)
		if l, ok := h.listed("g"); ok {
			t.Fatalf("still listed: %+v", l)
		}
	})

	t.Run("members waiting in join or sync are not expired", func(t *testing.T) {
		h := newHarness(t, Config{})
		r0req, r1req := memberReq("g", 0), memberReq("g", 1)
		r0req.RebalanceTimeout, r1req.RebalanceTimeout = time.Minute, time.Minute
		res := h.stable(r0req, r1req)
		// The leader rejoins and waits 40 s, four sessions, for member 1.
		ch0 := h.c.Join(rejoin(r0req, res[0].MemberID))
		for range 8 {
			h.clock.Advance(5 * time.Second)
			wantErr(t, "heartbeat 1", h.heartbeat("g", res[1]), ErrRebalanceInProgress)
		}
		none(t, ch0)
		ch1 := h.c.Join(rejoin(r1req, res[1].MemberID))
		j0, j1 := h.joinOK(ch0), h.joinOK(ch1)
		if j0.Generation != 3 || len(j0.Members) != 2 {
			t.Fatalf("answer %+v", j0)
		}
		// Member 1 waits 55 s in SyncGroup while the leader heartbeats.
		s1 := h.c.Sync(SyncRequest{Group: "g", MemberID: j1.MemberID, Generation: j1.Generation})
		for range 11 {
			h.clock.Advance(5 * time.Second)
			wantErr(t, "heartbeat 0", h.heartbeat("g", j0), nil)
		}
		none(t, s1)
		h.c.Sync(SyncRequest{Group: "g", MemberID: j0.MemberID, Generation: j0.Generation,
			Assignments: map[string][]byte{j1.MemberID: []byte("one")}})
		if s := recv(t, s1); s.Err != nil || string(s.Assignment) != "one" {
			t.Fatalf("sync answered %+v", s)
		}
		if d := h.describe("g"); d.State != Stable || len(d.Members) != 2 {
			t.Fatalf("described %+v", d)
		}
		// Answered, each has a whole session before it must heartbeat
		// again, however long it waited.
		h.clock.Advance(sessionTimeout - 1)
		if got := h.memberIDs("g"); !equalStrings(got, ids(j0, j1)) {
			t.Fatalf("members %v", got)
		}
		h.clock.Advance(1)
		if _, ok := h.listed("g"); ok {
			t.Fatalf("members %v outlived their sessions", h.memberIDs("g"))
		}
	})

	t.Run("a commit keeps the session alive", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0))
		for range 5 {
			h.clock.Advance(sessionTimeout - 1)
			errs, _ := h.c.Commit(CommitRequest{Group: "g", Generation: res[0].Generation, MemberID: res[0].MemberID, Offsets: []Offset{off("t", 0, 1)}})
			wantErrs(t, "commit", errs, nil)
		}
		if st := h.state("g"); st != Stable {
			t.Fatalf("state %v", st)
		}
	})
}

func TestRebalanceTimeout(t *testing.T) {
	t.Run("a member that does not rejoin is dropped", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0), memberReq("g", 1))
		ch2 := h.c.Join(memberReq("g", 2))
		ch0 := h.c.Join(rejoin(memberReq("g", 0), res[0].MemberID))
		// Member 1 heartbeats but never rejoins.
		for range 4 {
			h.clock.Advance(6 * time.Second)
			wantErr(t, "heartbeat 1", h.heartbeat("g", res[1]), ErrRebalanceInProgress)
		}
		h.clock.AdvanceTo(rebalanceTimeout - 1)
		none(t, ch0)
		none(t, ch2)
		h.clock.AdvanceTo(rebalanceTimeout)
		r0, r2 := h.joinOK(ch0), h.joinOK(ch2)
		if r0.Generation != 3 || r0.Leader != res[0].MemberID || !equalStrings(memberIDsOf(r0.Members), ids(r0, r2)) {
			t.Fatalf("answer %+v", r0)
		}
		wantErr(t, "dropped member's heartbeat", h.heartbeat("g", res[1]), ErrUnknownMember)
		wantErr(t, "dropped member's old-generation heartbeat", h.c.Heartbeat("g", res[1].MemberID, "", 3), ErrUnknownMember)
	})

	t.Run("the longest rebalance timeout of the members counts", func(t *testing.T) {
		h := newHarness(t, Config{})
		req1 := memberReq("g", 1)
		req1.RebalanceTimeout = 2 * time.Minute
		res := h.stable(memberReq("g", 0), req1)
		ch0 := h.c.Join(rejoin(memberReq("g", 0), res[0].MemberID))
		for range 23 {
			h.clock.Advance(5 * time.Second)
			h.heartbeat("g", res[1])
		}
		h.clock.AdvanceTo(2*time.Minute - 1)
		none(t, ch0)
		h.clock.AdvanceTo(2 * time.Minute)
		if r := h.joinOK(ch0); r.Generation != 3 || len(r.Members) != 1 {
			t.Fatalf("answer %+v", r)
		}
	})

	t.Run("a leader that never syncs makes the group rebalance", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.form(memberReq("g", 0), memberReq("g", 1), memberReq("g", 2))
		s1 := h.c.Sync(SyncRequest{Group: "g", MemberID: res[1].MemberID, Generation: res[1].Generation})
		for range 3 {
			h.clock.Advance(8 * time.Second)
			wantErr(t, "heartbeat 0", h.heartbeat("g", res[0]), nil)
			wantErr(t, "heartbeat 2", h.heartbeat("g", res[2]), nil)
		}
		h.clock.AdvanceTo(rebalanceTimeout - 1)
		none(t, s1)
		if st := h.state("g"); st != CompletingRebalance {
			t.Fatalf("state %v", st)
		}
		h.clock.AdvanceTo(rebalanceTimeout)
		wantErr(t, "waiting sync", recv(t, s1).Err, ErrRebalanceInProgress)
		d := h.describe("g")
		if d.State != PreparingRebalance || !equalStrings(h.memberIDs("g"), ids(res[1])) {
			t.Fatalf("described %+v", d)
		}
		wantErr(t, "leader's heartbeat", h.heartbeat("g", res[0]), ErrUnknownMember)
		wantErr(t, "unsynced follower's heartbeat", h.heartbeat("g", res[2]), ErrUnknownMember)
		wantErr(t, "synced follower's heartbeat", h.heartbeat("g", res[1]), ErrRebalanceInProgress)
		r1 := h.joinOK(h.c.Join(rejoin(memberReq("g", 1), res[1].MemberID)))
		if r1.Generation != 3 || r1.Leader != res[1].MemberID || len(r1.Members) != 1 {
			t.Fatalf("answer %+v", r1)
		}
	})

	t.Run("no member syncing empties the group", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.form(memberReq("g", 0), memberReq("g", 1))
		for range 3 {
			h.clock.Advance(8 * time.Second)
			h.heartbeat("g", res[0])
			h.heartbeat("g", res[1])
		}
		h.clock.AdvanceTo(rebalanceTimeout)
		if l, ok := h.listed("g"); ok {
			t.Fatalf("an empty group without offsets is still listed: %+v", l)
		}
		wantErr(t, "heartbeat", h.heartbeat("g", res[0]), ErrUnknownMember)
	})

	t.Run("no member syncing keeps an empty group with offsets", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
		res := h.form(memberReq("g", 0))
		h.clock.Advance(8 * time.Second)
		h.heartbeat("g", res[0])
		h.clock.AdvanceTo(rebalanceTimeout)
		if d := h.describe("g"); d.State != Empty || d.Generation != 2 || len(d.Members) != 0 {
			t.Fatalf("described %+v", d)
		}
	})

	t.Run("a leader that syncs stops the timer", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0), memberReq("g", 1))
		for range 10 {
			h.clock.Advance(5 * time.Second)
			for _, r := range res {
				wantErr(t, "heartbeat", h.heartbeat("g", r), nil)
			}
		}
		if d := h.describe("g"); d.State != Stable || len(d.Members) != 2 {
			t.Fatalf("described %+v", d)
		}
	})
}

func TestLeaveGroup(t *testing.T) {
	t.Run("the others rebalance", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0), memberReq("g", 1), memberReq("g", 2))
		wantErrs(t, "LeaveGroup", h.c.Leave("g", []Leaving{{MemberID: res[1].MemberID}}), nil)
		if st := h.state("g"); st != PreparingRebalance {
			t.Fatalf("state %v", st)
		}
		wantErr(t, "heartbeat 0", h.heartbeat("g", res[0]), ErrRebalanceInProgress)
		wantErr(t, "heartbeat of the leaver", h.heartbeat("g", res[1]), ErrUnknownMember)
		ch2 := h.c.Join(rejoin(memberReq("g", 2), res[2].MemberID))
		ch0 := h.c.Join(rejoin(memberReq("g", 0), res[0].MemberID))
		r0, r2 := h.joinOK(ch0), h.joinOK(ch2)
		if r0.Generation != 3 || r2.Generation != 3 || r0.Leader != res[0].MemberID || !equalStrings(memberIDsOf(r0.Members), ids(res[0], res[2])) {
			t.Fatalf("answers %+v %+v", r0, r2)
		}
	})

	t.Run("the leader leaving hands leadership on", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0), memberReq("g", 1))
		wantErrs(t, "LeaveGroup", h.c.Leave("g", []Leaving{{MemberID: res[0].MemberID}}), nil)
		r1 := h.joinOK(h.c.Join(rejoin(memberReq("g", 1), res[1].MemberID)))
		if r1.Leader != res[1].MemberID || r1.Generation != 3 {
			t.Fatalf("answer %+v", r1)
		}
	})

	t.Run("a member waiting in join that leaves is answered", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0), memberReq("g", 1))
		req := rejoin(memberReq("g", 1), res[1].MemberID)
		req.Protocols = protos([]byte("changed"), "range")
		ch1 := h.c.Join(req)
		none(t, ch1)
		wantErrs(t, "LeaveGroup", h.c.Leave("g", []Leaving{{MemberID: res[1].MemberID}}), nil)
		wantErr(t, "join of the leaver", recv(t, ch1).Err, ErrUnknownMember)
		r0 := h.joinOK(h.c.Join(rejoin(memberReq("g", 0), res[0].MemberID)))
		if r0.Generation != 3 || len(r0.Members) != 1 {
			t.Fatalf("answer %+v", r0)
		}
	})

	t.Run("leaving during CompletingRebalance answers waiting syncs", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.form(memberReq("g", 0), memberReq("g", 1), memberReq("g", 2))
		s1 := h.c.Sync(SyncRequest{Group: "g", MemberID: res[1].MemberID, Generation: res[1].Generation})
		wantErrs(t, "LeaveGroup", h.c.Leave("g", []Leaving{{MemberID: res[2].MemberID}}), nil)
		wantErr(t, "waiting sync", recv(t, s1).Err, ErrRebalanceInProgress)
		if st := h.state("g"); st != PreparingRebalance {
			t.Fatalf("state %v", st)
		}
	})

	for _, withOffsets := range []bool{false, true} {
		t.Run(fmt.Sprintf("last member leaving empties the group, offsets %v", withOffsets), func(t *testing.T) {
			h := newHarness(t, Config{})
			res := h.stable(memberReq("g", 0))
			if withOffsets {
				errs, _ := h.c.Commit(CommitRequest{Group: "g", Generation: res[0].Generation, MemberID: res[0].MemberID, Offsets: []Offset{off("t", 0, 1)}})
				wantErrs(t, "commit", errs, nil)
			}
			wantErrs(t, "LeaveGroup", h.c.Leave("g", []Leaving{{MemberID: res[0].MemberID}}), nil)
			l, ok := h.listed("g")
			if !withOffsets {
				if ok {
					t.Fatalf("an empty group without offsets is still listed: %+v", l)
				}
				return
			}
			if !ok || l.State != Empty {
				t.Fatalf("listed %+v %v", l, ok)
			}
			if d := h.describe("g"); d.Generation != 2 || len(d.Members) != 0 {
				t.Fatalf("described %+v", d)
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0), staticReq("g", 1))
		errs := h.c.Leave("g", []Leaving{
			{MemberID: "c9-nobody"},
			{InstanceID: "i9"},
			{MemberID: res[0].MemberID, InstanceID: "i1"},
		})
		wantErrs(t, "LeaveGroup", errs, ErrUnknownMember, ErrUnknownMember, ErrFencedInstanceID)
		if d := h.describe("g"); d.State != Stable || len(d.Members) != 2 {
			t.Fatalf("failed leaves changed the group: %+v", d)
		}
		wantErrs(t, "LeaveGroup of an unknown group", h.c.Leave("other", []Leaving{{MemberID: res[0].MemberID}, {InstanceID: "i1"}}),
			ErrUnknownMember, ErrUnknownMember)
	})

	t.Run("by instance id", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			leaving func(res []JoinResult) Leaving
		}{
			{"instance id only", func([]JoinResult) Leaving { return Leaving{InstanceID: "i1"} }},
			{"instance and member id", func(res []JoinResult) Leaving { return Leaving{MemberID: res[1].MemberID, InstanceID: "i1"} }},
			{"member id only", func(res []JoinResult) Leaving { return Leaving{MemberID: res[1].MemberID} }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := newHarness(t, Config{})
				res := h.stable(staticReq("g", 0), staticReq("g", 1))
				wantErrs(t, "LeaveGroup", h.c.Leave("g", []Leaving{tc.leaving(res)}), nil)
				if got := h.memberIDs("g"); !equalStrings(got, ids(res[0])) {
					t.Fatalf("members %v", got)
				}
				// The instance id is free again: it joins as a new member.
				ch1 := h.c.Join(staticReq("g", 1))
				ch0 := h.c.Join(rejoin(staticReq("g", 0), res[0].MemberID))
				r0, r1 := h.joinOK(ch0), h.joinOK(ch1)
				if r1.MemberID == res[1].MemberID || r0.Generation != 3 || len(r0.Members) != 2 || r0.Members[1].InstanceID != "i1" {
					t.Fatalf("answers %+v %+v", r0, r1)
				}
			})
		}
	})

	t.Run("several in one request", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0), staticReq("g", 1), memberReq("g", 2))
		errs := h.c.Leave("g", []Leaving{{MemberID: res[0].MemberID}, {InstanceID: "i1"}, {MemberID: res[0].MemberID}})
		wantErrs(t, "LeaveGroup", errs, nil, nil, ErrUnknownMember)
		r2 := h.joinOK(h.c.Join(rejoin(memberReq("g", 2), res[2].MemberID)))
		if r2.Leader != r2.MemberID || len(r2.Members) != 1 || r2.Generation != 3 {
			t.Fatalf("answer %+v", r2)
		}
	})

	t.Run("everyone in one request", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0), memberReq("g", 1))
		wantErrs(t, "LeaveGroup", h.c.Leave("g", []Leaving{{MemberID: res[0].MemberID}, {MemberID: res[1].MemberID}}), nil, nil)
		if _, ok := h.listed("g"); ok {
			t.Fatal("still listed")
		}
	})
}

func TestStaticMembership(t *testing.T) {
	t.Run("rejoin without member id while stable: new id, no rebalance, old id fenced", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(staticReq("g", 0), staticReq("g", 1))
		old := res[1]
		h.clock.Advance(time.Second)
		r := h.joinOK(h.c.Join(staticReq("g", 1)))
		if r.MemberID == old.MemberID || !strings.HasPrefix(r.MemberID, "c1-") {
			t.Fatalf("member id %q (old %q)", r.MemberID, old.MemberID)
		}
		if r.Generation != old.Generation || r.Leader != res[0].MemberID || r.Members != nil || r.SkipAssignment || r.Protocol != "range" || r.ProtocolType != "consumer" {
			t.Fatalf("answer %+v", r)
		}
		d := h.describe("g")
		if d.State != Stable || d.Generation != old.Generation || !equalStrings(h.memberIDs("g"), []string{res[0].MemberID, r.MemberID}) {
			t.Fatalf("described %+v", d)
		}
		if d.Members[1].InstanceID != "i1" || string(d.Members[1].Assignment) != string(assignment(old.MemberID)) {
			t.Fatalf("described member %+v", d.Members[1])
		}
		wantErr(t, "leader's heartbeat", h.c.Heartbeat("g", res[0].MemberID, "i0", res[0].Generation), nil)
		wantErr(t, "new id's heartbeat", h.c.Heartbeat("g", r.MemberID, "i1", r.Generation), nil)
		s := recv(t, h.c.Sync(SyncRequest{Group: "g", MemberID: r.MemberID, InstanceID: "i1", Generation: r.Generation}))
		if s.Err != nil || string(s.Assignment) != string(assignment(old.MemberID)) {
			t.Fatalf("new id's sync %+v", s)
		}
		// The old id with the instance id is fenced, as Kafka's
		// FENCED_INSTANCE_ID: the instance id maps to another member id.
		wantErr(t, "old id's heartbeat", h.c.Heartbeat("g", old.MemberID, "i1", old.Generation), ErrFencedInstanceID)
		wantErr(t, "old id's sync", recv(t, h.c.Sync(SyncRequest{Group: "g", MemberID: old.MemberID, InstanceID: "i1", Generation: old.Generation})).Err, ErrFencedInstanceID)
		errs, _ := h.c.Commit(CommitRequest{Group: "g", MemberID: old.MemberID, InstanceID: "i1", Generation: old.Generation, Offsets: []Offset{off("t", 0, 1)}})
		wantErrs(t, "old id's commit", errs, ErrFencedInstanceID)
		wantErr(t, "old id's join", recv(t, h.c.Join(rejoin(staticReq("g", 1), old.MemberID))).Err, ErrFencedInstanceID)
		wantErrs(t, "old id's leave", h.c.Leave("g", []Leaving{{MemberID: old.MemberID, InstanceID: "i1"}}), ErrFencedInstanceID)
		// Without the instance id the old id is merely unknown.
		wantErr(t, "old id's heartbeat without instance", h.c.Heartbeat("g", old.MemberID, "", old.Generation), ErrUnknownMember)
		// Another member's id with this instance id is fenced too.
		wantErr(t, "other member with this instance id", h.c.Heartbeat("g", res[0].MemberID, "i1", old.Generation), ErrFencedInstanceID)
		if d := h.describe("g"); d.State != Stable || len(d.Members) != 2 {
			t.Fatalf("fenced requests changed the group: %+v", d)
		}
	})

	t.Run("leader rejoin without member id", func(t *testing.T) {
		const skip = true
		h := newHarness(t, Config{})
		res := h.stable(staticReq("g", 0), staticReq("g", 1))
		req := staticReq("g", 0)
		req.SupportsSkipAssignment = skip
		r := h.joinOK(h.c.Join(req))
		if r.MemberID == res[0].MemberID || r.Leader != r.MemberID || r.Generation != res[0].Generation || r.SkipAssignment != skip {
			t.Fatalf("answer %+v", r)
		}
		want := []MemberMetadata{{MemberID: r.MemberID, InstanceID: "i0", Metadata: memberMeta(0)}, {MemberID: res[1].MemberID, InstanceID: "i1", Metadata: memberMeta(1)}}
		if len(r.Members) != len(want) {
			t.Fatalf("members %+v", r.Members)
		}
		for i := range want {
			if r.Members[i].MemberID != want[i].MemberID || r.Members[i].InstanceID != want[i].InstanceID || !bytes.Equal(r.Members[i].Metadata, want[i].Metadata) {
				t.Fatalf("member %d is %+v, want %+v", i, r.Members[i], want[i])
			}
		}
		if d := h.describe("g"); d.State != Stable || d.Generation != res[0].Generation {
			t.Fatalf("described %+v", d)
		}
		wantErr(t, "follower's heartbeat", h.c.Heartbeat("g", res[1].MemberID, "i1", res[1].Generation), nil)
		wantErr(t, "old leader id", h.c.Heartbeat("g", res[0].MemberID, "i0", res[0].Generation), ErrFencedInstanceID)
		// The leader's SyncGroup in Stable returns its assignment and
		// changes nothing.
		s := recv(t, h.c.Sync(SyncRequest{Group: "g", MemberID: r.MemberID, InstanceID: "i0", Generation: r.Generation,
			Assignments: map[string][]byte{r.MemberID: []byte("new")}}))
		if s.Err != nil || string(s.Assignment) != string(assignment(res[0].MemberID)) {
			t.Fatalf("sync %+v", s)
		}
	})

	t.Run("rejoin with changed metadata keeps the assignment", func(t *testing.T) {
		// As Kafka: only a change of the protocol the group would select
		// rebalances; new metadata (a restarted cooperative consumer owns
		// nothing any more) is kept for the next rebalance.
		h := newHarness(t, Config{})
		res := h.stable(staticReq("g", 0), staticReq("g", 1))
		req := staticReq("g", 1)
		req.Protocols = []Protocol{proto("range", []byte("new subscription"))}
		r := h.joinOK(h.c.Join(req))
		if r.Generation != res[1].Generation || r.MemberID == res[1].MemberID || len(r.Members) != 0 {
			t.Fatalf("answer %+v", r)
		}
		if st := h.state("g"); st != Stable {
			t.Fatalf("state %v", st)
		}
		wantErr(t, "heartbeat 0", h.c.Heartbeat("g", res[0].MemberID, "i0", res[0].Generation), nil)
	})

	t.Run("rejoin that changes the selected protocol rebalances", func(t *testing.T) {
		h := newHarness(t, Config{})
		both := func(i int) JoinRequest {
			r := staticReq("g", i)
			r.Protocols = protos(memberMeta(i), "range", "roundrobin")
			return r
		}
		res := h.stable(both(0), both(1))
		req := staticReq("g", 1)
		req.Protocols = []Protocol{proto("roundrobin", []byte("new subscription"))}
		ch1 := h.c.Join(req)
		none(t, ch1)
		if st := h.state("g"); st != PreparingRebalance {
			t.Fatalf("state %v", st)
		}
		newID := h.memberIDs("g")[1]
		if newID == res[1].MemberID {
			t.Fatal("no new member id")
		}
		wantErr(t, "heartbeat 0", h.c.Heartbeat("g", res[0].MemberID, "i0", res[0].Generation), ErrRebalanceInProgress)
		r0 := h.joinOK(h.c.Join(rejoin(both(0), res[0].MemberID)))
		r1 := h.joinOK(ch1)
		if r0.Generation != 3 || r1.MemberID != newID || r1.Generation != 3 || r0.Protocol != "roundrobin" ||
			!bytes.Equal(r0.Members[1].Metadata, []byte("new subscription")) {
			t.Fatalf("answers %+v %+v", r0, r1)
		}
	})

	t.Run("leader rejoin before JoinGroup v9 rebalances", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(staticReq("g", 0), staticReq("g", 1))
		ch := h.c.Join(staticReq("g", 0))
		none(t, ch)
		if st := h.state("g"); st != PreparingRebalance {
			t.Fatalf("state %v", st)
		}
		h.joinOK(h.c.Join(rejoin(staticReq("g", 1), res[1].MemberID)))
		if r := h.joinOK(ch); r.Generation != res[0].Generation+1 || len(r.Members) != 2 {
			t.Fatalf("leader's answer %+v", r)
		}
	})

	t.Run("rejoin while the old id waits in join fences the old join", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(staticReq("g", 0), staticReq("g", 1))
		h.c.Join(memberReq("g", 2)) // a new member starts a rebalance
		oldWait := h.c.Join(rejoin(staticReq("g", 1), res[1].MemberID))
		none(t, oldWait)
		ch := h.c.Join(staticReq("g", 1))
		wantErr(t, "superseded join", recv(t, oldWait).Err, ErrFencedInstanceID)
		none(t, ch)
		r0 := h.joinOK(h.c.Join(rejoin(staticReq("g", 0), res[0].MemberID)))
		r1 := h.joinOK(ch)
		if r0.Generation != 3 || r1.Generation != 3 || r1.MemberID == res[1].MemberID || len(r0.Members) != 3 {
			t.Fatalf("answers %+v %+v", r0, r1)
		}
	})

	t.Run("rejoin while the old id waits in sync fences the old sync", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.form(staticReq("g", 0), staticReq("g", 1))
		s := h.c.Sync(SyncRequest{Group: "g", MemberID: res[1].MemberID, InstanceID: "i1", Generation: res[1].Generation})
		ch := h.c.Join(staticReq("g", 1))
		wantErr(t, "old sync", recv(t, s).Err, ErrFencedInstanceID)
		none(t, ch)
		if st := h.state("g"); st != PreparingRebalance {
			t.Fatalf("state %v", st)
		}
	})

	t.Run("an expired static member is removed", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(staticReq("g", 0), staticReq("g", 1))
		h.clock.Advance(5 * time.Second)
		wantErr(t, "heartbeat 0", h.c.Heartbeat("g", res[0].MemberID, "i0", res[0].Generation), nil)
		h.clock.Advance(5 * time.Second)
		if st, got := h.state("g"), h.memberIDs("g"); st != PreparingRebalance || !equalStrings(got, ids(res[0])) {
			t.Fatalf("state %v members %v", st, got)
		}
		wantErr(t, "expired member's heartbeat", h.c.Heartbeat("g", res[1].MemberID, "i1", res[1].Generation), ErrUnknownMember)
		// It comes back as a new member.
		ch1 := h.c.Join(staticReq("g", 1))
		r0 := h.joinOK(h.c.Join(rejoin(staticReq("g", 0), res[0].MemberID)))
		r1 := h.joinOK(ch1)
		if r0.Generation != 3 || r1.MemberID == res[1].MemberID || len(r0.Members) != 2 {
			t.Fatalf("answers %+v %+v", r0, r1)
		}
	})

	t.Run("a static member that does not rejoin in time is removed", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(staticReq("g", 0), staticReq("g", 1))
		ch0 := h.c.Join(rejoin(staticReq("g", 0), res[0].MemberID))
		for range 6 {
			h.clock.Advance(5 * time.Second)
			h.c.Heartbeat("g", res[1].MemberID, "i1", res[1].Generation)
		}
		if r := h.joinOK(ch0); r.Generation != 3 || len(r.Members) != 1 {
			t.Fatalf("answer %+v", r)
		}
	})
}

// A member that lost its JoinGroup answer repeats the request during
// CompletingRebalance: it gets the current generation again, and the
// leader gets the members again, without which it cannot assign.
func TestRejoinDuringCompletingRebalance(t *testing.T) {
	t.Run("leader with the same protocols gets the members again", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.form(memberReq("g", 0), memberReq("g", 1))
		r := h.joinOK(h.c.Join(rejoin(memberReq("g", 0), res[0].MemberID)))
		if r.Generation != res[0].Generation || r.Leader != res[0].MemberID || !equalStrings(memberIDsOf(r.Members), ids(res...)) {
			t.Fatalf("answer %+v", r)
		}
		if st := h.state("g"); st != CompletingRebalance {
			t.Fatalf("state %v", st)
		}
	})

	t.Run("follower with the same protocols", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.form(memberReq("g", 0), memberReq("g", 1))
		r := h.joinOK(h.c.Join(rejoin(memberReq("g", 1), res[1].MemberID)))
		if r.Generation != res[1].Generation || r.Leader != res[0].MemberID || r.Members != nil {
			t.Fatalf("answer %+v", r)
		}
		if st := h.state("g"); st != CompletingRebalance {
			t.Fatalf("state %v", st)
		}
	})

	t.Run("changed protocols rebalance", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.form(memberReq("g", 0), memberReq("g", 1))
		s1 := h.c.Sync(SyncRequest{Group: "g", MemberID: res[1].MemberID, Generation: res[1].Generation})
		req := rejoin(memberReq("g", 0), res[0].MemberID)
		req.Protocols = protos([]byte("x"), "range", "rr")
		ch := h.c.Join(req)
		wantErr(t, "waiting sync", recv(t, s1).Err, ErrRebalanceInProgress)
		none(t, ch)
		r1 := h.joinOK(h.c.Join(rejoin(memberReq("g", 1), res[1].MemberID)))
		if r0 := h.joinOK(ch); r0.Generation != 3 || r1.Generation != 3 || !bytes.Equal(r0.Members[0].Metadata, []byte("x")) {
			t.Fatalf("answers %+v %+v", r0, r1)
		}
	})
}

// A follower's JoinGroup in Stable with the same protocols is answered at
// once; the leader's, or one with other protocols, starts a rebalance.
func TestRejoinWhileStable(t *testing.T) {
	for _, tc := range []struct {
		name      string
		member    int
		changed   bool
		rebalance bool
	}{
		{"follower, same protocols", 1, false, false},
		{"follower, changed protocols", 1, true, true},
		{"leader, same protocols", 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			res := h.stable(memberReq("g", 0), memberReq("g", 1))
			req := rejoin(memberReq("g", tc.member), res[tc.member].MemberID)
			if tc.changed {
				req.Protocols = protos([]byte("changed"), "range")
			}
			ch := h.c.Join(req)
			if !tc.rebalance {
				r := h.joinOK(ch)
				if r.Generation != 2 || r.Leader != res[0].MemberID || r.Members != nil {
					t.Fatalf("answer %+v", r)
				}
				if st := h.state("g"); st != Stable {
					t.Fatalf("state %v", st)
				}
				return
			}
			none(t, ch)
			if st := h.state("g"); st != PreparingRebalance {
				t.Fatalf("state %v", st)
			}
		})
	}
}

func TestDuplicateJoinSupersedes(t *testing.T) {
	h := newHarness(t, Config{})
	res := h.stable(memberReq("g", 0), memberReq("g", 1))
	h.c.Join(memberReq("g", 2))
	first := h.c.Join(rejoin(memberReq("g", 0), res[0].MemberID))
	second := h.c.Join(rejoin(memberReq("g", 0), res[0].MemberID))
	r := recv(t, first)
	wantErr(t, "superseded join", r.Err, ErrRebalanceInProgress)
	if r.MemberID != res[0].MemberID {
		t.Fatalf("superseded answer %+v", r)
	}
	none(t, second)
	h.c.Join(rejoin(memberReq("g", 1), res[1].MemberID))
	if r := h.joinOK(second); r.Generation != 3 || len(r.Members) != 3 {
		t.Fatalf("answer %+v", r)
	}
}

func TestGroupFull(t *testing.T) {
	h := newHarness(t, Config{MaxGroupSize: 2})
	res := h.stable(staticReq("g", 0), memberReq("g", 1))
	wantErr(t, "third member", recv(t, h.c.Join(memberReq("g", 2))).Err, ErrGroupFull)
	req := memberReq("g", 2)
	req.RequireKnownMemberID = true
	wantErr(t, "third member with a pending id", recv(t, h.c.Join(req)).Err, ErrGroupFull)
	if st := h.state("g"); st != Stable {
		t.Fatalf("state %v", st)
	}
	// A static member coming back is not a new member.
	back := staticReq("g", 0)
	back.SupportsSkipAssignment = true
	if r := h.joinOK(h.c.Join(back)); r.Generation != res[0].Generation {
		t.Fatalf("answer %+v", r)
	}
}

func TestDescribeAndList(t *testing.T) {
	h := newHarness(t, Config{})
	if d, ok := h.c.Describe("nope"); ok || d.State != Dead || d.Group != "nope" {
		t.Fatalf("unknown group described %+v %v", d, ok)
	}
	r0req, r1req := staticReq("b", 0), memberReq("b", 1)
	r1req.ClientHost = "/10.0.0.2"
	res := h.form(r0req, r1req)
	h.c.Commit(CommitRequest{Group: "a", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
	d := h.describe("b")
	if d.State != CompletingRebalance || d.ProtocolType != "consumer" || d.Protocol != "range" || d.Generation != 2 || len(d.Members) != 2 {
		t.Fatalf("described %+v", d)
	}
	want := []MemberDescription{
		{MemberID: res[0].MemberID, InstanceID: "i0", ClientID: "c0", ClientHost: "/10.0.0.1", Metadata: memberMeta(0)},
		{MemberID: res[1].MemberID, ClientID: "c1", ClientHost: "/10.0.0.2", Metadata: memberMeta(1)},
	}
	for i, w := range want {
		m := d.Members[i]
		if m.MemberID != w.MemberID || m.InstanceID != w.InstanceID || m.ClientID != w.ClientID || m.ClientHost != w.ClientHost ||
			!bytes.Equal(m.Metadata, w.Metadata) || m.Assignment != nil {
			t.Fatalf("member %d described %+v, want %+v", i, m, w)
		}
	}
	h.syncAll("b", res, "i0")
	for i, m := range h.describe("b").Members {
		if !bytes.Equal(m.Assignment, assignment(res[i].MemberID)) {
			t.Fatalf("member %d assignment %q", i, m.Assignment)
		}
	}
	h.c.Join(memberReq("b", 2))
	for _, m := range h.describe("b").Members {
		if m.Metadata != nil || m.Assignment != nil {
			t.Fatalf("PreparingRebalance described metadata or assignment: %+v", m)
		}
	}
	got := h.c.ListGroups()
	wantList := []Listing{{Group: "a", State: Empty}, {Group: "b", ProtocolType: "consumer", State: PreparingRebalance}}
	if len(got) != len(wantList) || got[0] != wantList[0] || got[1] != wantList[1] {
		t.Fatalf("listed %+v, want %+v", got, wantList)
	}
}

func TestParseState(t *testing.T) {
	for _, tc := range []struct {
		name string
		want State
		ok   bool
	}{
		{"Empty", Empty, true},
		{"preparingrebalance", PreparingRebalance, true},
		{"COMPLETINGREBALANCE", CompletingRebalance, true},
		{"Stable", Stable, true},
		{"dead", Dead, true},
		{"Stabl", 0, false},
		{"", 0, false},
		{"Stable ", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseState(tc.name)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("ParseState(%q) = %v, %v", tc.name, got, ok)
			}
			if ok && !strings.EqualFold(got.String(), tc.name) {
				t.Fatalf("String() = %q", got.String())
			}
		})
	}
}
