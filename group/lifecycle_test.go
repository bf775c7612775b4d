package group

import (
	"testing"
	"time"
)

func TestClose(t *testing.T) {
	h := newHarness(t, Config{})
	// Group "p" waits in its join phase, group "c" in SyncGroup.
	p := h.stable(memberReq("p", 0), memberReq("p", 1))
	joinWait := h.c.Join(rejoin(memberReq("p", 0), p[0].MemberID))
	none(t, joinWait)
	c := h.form(memberReq("c", 0), memberReq("c", 1))
	syncWait := h.c.Sync(SyncRequest{Group: "c", MemberID: c[1].MemberID, Generation: c[1].Generation})
	none(t, syncWait)
	h.c.Commit(CommitRequest{Group: "o", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})

	h.c.Close()
	wantErr(t, "waiting join", recv(t, joinWait).Err, ErrCoordinatorNotAvailable)
	wantErr(t, "waiting sync", recv(t, syncWait).Err, ErrCoordinatorNotAvailable)
	if n := h.clock.Armed(); n != 0 {
		t.Fatalf("%d timers still armed after Close", n)
	}
	h.c.Close() // idempotent

	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"join", func() error { return recv(t, h.c.Join(memberReq("p", 5))).Err }},
		{"rejoin", func() error { return recv(t, h.c.Join(rejoin(memberReq("p", 1), p[1].MemberID))).Err }},
		{"sync", func() error {
			return recv(t, h.c.Sync(SyncRequest{Group: "p", MemberID: p[1].MemberID, Generation: p[1].Generation})).Err
		}},
		{"heartbeat", func() error { return h.heartbeat("p", p[1]) }},
		{"leave", func() error { return h.c.Leave("p", []Leaving{{MemberID: p[1].MemberID}})[0] }},
		{"commit", func() error {
			errs, _ := h.c.Commit(CommitRequest{Group: "o", Generation: -1, Offsets: []Offset{off("t", 0, 2)}})
			return errs[0]
		}},
		{"fetch", func() error { _, err := h.c.FetchOffsets("o", nil); return err }},
		{"delete groups", func() error { return h.c.DeleteGroups([]string{"o"})[0] }},
		{"delete offsets", func() error { _, err := h.c.DeleteOffsets("o", []TopicPartition{tp("t", 0)}); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.name, tc.call(), ErrCoordinatorNotAvailable)
		})
	}
	if n := h.c.ExpireOffsets(); n != 0 {
		t.Fatalf("ExpireOffsets after Close removed %d", n)
	}
	h.clock.Advance(1000 * time.Hour)
	if got := h.store.get("o"); len(got) != 1 || got[tp("t", 0)].Offset != 1 {
		t.Fatalf("store changed after Close: %+v", got)
	}
}

// Timers a Stop did not catch (time.AfterFunc's callback already started and
// waiting for the lock) must find nothing to do: the manual clock is told to
// ignore Stop, so every superseded timer fires.
func TestStaleTimersAreHarmless(t *testing.T) {
	t.Run("session timers superseded by heartbeats", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.clock.setIgnoreStop(true)
		res := h.stable(memberReq("g", 0), memberReq("g", 1))
		for range 10 {
			h.clock.Advance(sessionTimeout / 2)
			for _, r := range res {
				wantErr(t, "heartbeat", h.heartbeat("g", r), nil)
			}
		}
		if d := h.describe("g"); d.State != Stable || len(d.Members) != 2 || d.Generation != 2 {
			t.Fatalf("described %+v", d)
		}
	})

	t.Run("join and sync timers of finished phases", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.clock.setIgnoreStop(true)
		res := h.stable(memberReq("g", 0), memberReq("g", 1)) // join and sync timers due at 30 s
		for _, at := range []time.Duration{8, 16} {
			h.clock.AdvanceTo(at * time.Second)
			h.heartbeat("g", res[0])
			h.heartbeat("g", res[1])
		}
		h.clock.AdvanceTo(20 * time.Second)
		ch2 := h.c.Join(memberReq("g", 2)) // a join phase until 50 s
		h.heartbeat("g", res[0])
		h.heartbeat("g", res[1])
		h.clock.AdvanceTo(29 * time.Second)
		h.heartbeat("g", res[0])
		h.heartbeat("g", res[1])
		h.clock.AdvanceTo(31 * time.Second)
		none(t, ch2)
		if d := h.describe("g"); d.State != PreparingRebalance || len(d.Members) != 3 || d.Generation != 2 {
			t.Fatalf("a stale timer ended the join phase: %+v", d)
		}
		ch0 := h.c.Join(rejoin(memberReq("g", 0), res[0].MemberID))
		ch1 := h.c.Join(rejoin(memberReq("g", 1), res[1].MemberID))
		for _, ch := range []<-chan JoinResult{ch0, ch1, ch2} {
			if r := h.joinOK(ch); r.Generation != 3 {
				t.Fatalf("answer %+v", r)
			}
		}
	})

	t.Run("pending member id of a deleted group", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.clock.setIgnoreStop(true)
		req := memberReq("g", 0)
		req.RequireKnownMemberID = true
		wantErr(t, "first join", recv(t, h.c.Join(req)).Err, ErrMemberIDRequired) // expires at 10 s
		wantErrs(t, "DeleteGroups", h.c.DeleteGroups([]string{"g"}), nil)
		// A new group of the same id.
		r := h.joinOK(h.c.Join(memberReq("g", 1)))
		h.clock.Advance(sessionTimeout / 2)
		wantErr(t, "heartbeat", h.heartbeat("g", r), nil)
		h.clock.Advance(sessionTimeout / 2)
		if _, ok := h.c.Describe("g"); !ok {
			t.Fatal("the deleted group's pending-id timer removed the new group")
		}
		wantErr(t, "heartbeat", h.heartbeat("g", r), nil)
	})

	t.Run("member timers of a deleted group", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.clock.setIgnoreStop(true)
		res := h.stable(memberReq("g", 0))
		wantErrs(t, "LeaveGroup", h.c.Leave("g", []Leaving{{MemberID: res[0].MemberID}}), nil)
		r := h.stable(memberReq("g", 1))[0]
		for range 8 {
			h.clock.Advance(sessionTimeout / 2)
			wantErr(t, "heartbeat", h.heartbeat("g", r), nil)
		}
		if d := h.describe("g"); d.State != Stable || len(d.Members) != 1 {
			t.Fatalf("described %+v", d)
		}
	})

	t.Run("nothing re-arms after Close", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.clock.setIgnoreStop(true)
		h.stable(memberReq("g", 0), memberReq("g", 1))
		req := memberReq("g", 2)
		req.RequireKnownMemberID = true
		h.c.Join(req)
		h.c.Commit(CommitRequest{Group: "o", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
		h.c.Close()
		h.clock.Advance(1000 * time.Hour)
		if n := h.clock.Armed(); n != 0 {
			t.Fatalf("%d timers armed by callbacks after Close", n)
		}
		if len(h.store.get("o")) != 1 {
			t.Fatal("offsets expired after Close")
		}
	})
}
