package group

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestManualClock(t *testing.T) {
	c := newManualClock()
	var got []string
	record := func(s string) func() { return func() { got = append(got, s) } }
	c.AfterFunc(3*time.Second, record("3s"))
	c.AfterFunc(1*time.Second, record("1s-a"))
	c.AfterFunc(1*time.Second, record("1s-b"))
	stopped := c.AfterFunc(2*time.Second, record("2s"))
	if !stopped.Stop() {
		t.Fatal("Stop of an armed timer reported false")
	}
	if stopped.Stop() {
		t.Fatal("second Stop reported true")
	}
	// A callback that arms a timer due within the same Advance.
	c.AfterFunc(2500*time.Millisecond, func() {
		got = append(got, "2.5s")
		if !c.Now().Equal(epoch.Add(2500 * time.Millisecond)) {
			t.Errorf("callback ran at %v", c.Now())
		}
		c.AfterFunc(0, record("2.5s+0"))
		c.AfterFunc(time.Second, record("3.5s"))
		c.AfterFunc(time.Hour, record("late"))
	})
	c.Advance(time.Second - 1)
	if len(got) != 0 {
		t.Fatalf("fired early: %v", got)
	}
	c.Advance(3 * time.Second)
	want := []string{"1s-a", "1s-b", "2.5s", "2.5s+0", "3s", "3.5s"}
	if !equalStrings(got, want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
	if !c.Now().Equal(epoch.Add(4*time.Second - 1)) {
		t.Fatalf("now %v", c.Now())
	}
	if c.Armed() != 1 {
		t.Fatalf("%d timers armed, want 1", c.Armed())
	}
	c.setIgnoreStop(true)
	late := c.AfterFunc(0, record("ignored stop"))
	if late.Stop() {
		t.Fatal("Stop with ignoreStop reported true")
	}
	c.Advance(0)
	if got[len(got)-1] != "ignored stop" {
		t.Fatalf("a timer whose Stop was ignored did not fire: %v", got)
	}
}

func TestNewWithFailingStore(t *testing.T) {
	boom := errBoom("load")
	for _, tc := range []struct {
		name  string
		store OffsetStore
	}{
		{"broken store", brokenStore{boom}},
		{"load error", func() OffsetStore { s := newMemStore(); s.loadErr = boom; return s }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{Clock: newManualClock(), Logger: discardLogger()}, tc.store)
			if !errors.Is(err, boom) || c != nil {
				t.Fatalf("New = %v, %v; want the load error", c, err)
			}
		})
	}
}

func TestJoinRejectsInvalidRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		edit func(*JoinRequest)
		want error
	}{
		{"empty group id", Config{}, func(r *JoinRequest) { r.Group = "" }, ErrInvalidGroupID},
		{"session timeout below min", Config{}, func(r *JoinRequest) { r.SessionTimeout = 6*time.Second - 1 }, ErrInvalidSessionTimeout},
		{"session timeout above max", Config{}, func(r *JoinRequest) { r.SessionTimeout = 30*time.Minute + 1 }, ErrInvalidSessionTimeout},
		{"session timeout zero", Config{}, func(r *JoinRequest) { r.SessionTimeout = 0 }, ErrInvalidSessionTimeout},
		{"session timeout below configured min", Config{MinSessionTimeout: time.Minute}, func(r *JoinRequest) { r.SessionTimeout = 59 * time.Second }, ErrInvalidSessionTimeout},
		{"session timeout above configured max", Config{MaxSessionTimeout: 20 * time.Second}, func(r *JoinRequest) { r.SessionTimeout = 21 * time.Second }, ErrInvalidSessionTimeout},
		{"member metadata too large", Config{MaxMemberMetadata: 10}, func(r *JoinRequest) {
			r.Protocols = []Protocol{proto("range", []byte("123456"))} // 5+6 > 10
		}, ErrMemberMetadataTooLarge},
		{"member metadata too large summed over protocols", Config{MaxMemberMetadata: 20}, func(r *JoinRequest) {
			r.Protocols = []Protocol{proto("range", []byte("12345")), proto("rr", []byte("12345"))} // 10+7
			r.Protocols = append(r.Protocols, proto("x", []byte("123")))                            // +4 = 21
		}, ErrMemberMetadataTooLarge},
		{"empty protocol type", Config{}, func(r *JoinRequest) { r.ProtocolType = "" }, ErrInconsistentProtocol},
		{"no protocols", Config{}, func(r *JoinRequest) { r.Protocols = nil }, ErrInconsistentProtocol},
		{"member id on an unknown group", Config{}, func(r *JoinRequest) { r.MemberID = "c0-gone" }, ErrUnknownMember},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg)
			req := memberReq("g", 0)
			tc.edit(&req)
			r := recv(t, h.c.Join(req))
			wantErr(t, "JoinGroup", r.Err, tc.want)
			if r.MemberID != req.MemberID {
				t.Fatalf("error answer carries member id %q, want %q", r.MemberID, req.MemberID)
			}
			if l := h.c.ListGroups(); len(l) != 0 {
				t.Fatalf("a rejected join left groups behind: %+v", l)
			}
		})
	}
}

func TestJoinAcceptsBoundaries(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		edit func(*JoinRequest)
	}{
		{"session timeout at min", Config{}, func(r *JoinRequest) { r.SessionTimeout = 6 * time.Second }},
		{"session timeout at max", Config{}, func(r *JoinRequest) { r.SessionTimeout = 30 * time.Minute }},
		{"member metadata at the limit", Config{MaxMemberMetadata: 10}, func(r *JoinRequest) {
			r.Protocols = []Protocol{proto("range", []byte("12345"))}
		}},
		{"no rebalance timeout (JoinGroup v0)", Config{}, func(r *JoinRequest) { r.RebalanceTimeout = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg)
			req := memberReq("g", 0)
			tc.edit(&req)
			r := h.joinOK(h.c.Join(req))
			if r.Generation != 1 || r.Leader != r.MemberID {
				t.Fatalf("join answered %+v", r)
			}
		})
	}
}

// A JoinGroup v0 member has no rebalance timeout; its session timeout
// serves as one.
func TestRebalanceTimeoutDefaultsToSessionTimeout(t *testing.T) {
	h := newHarness(t, Config{})
	r0 := memberReq("g", 0)
	r0.RebalanceTimeout = 0
	res := h.stable(r0)
	h.clock.Advance(5 * time.Second)
	ch := h.c.Join(memberReq("g", 1)) // rebalance; member 0 does not rejoin
	wantErr(t, "heartbeat", h.heartbeat("g", res[0]), ErrRebalanceInProgress)
	h.clock.Advance(sessionTimeout - 1)
	none(t, ch)
	h.clock.Advance(1)
	r1 := h.joinOK(ch)
	if r1.Leader != r1.MemberID || r1.Generation != 2 {
		t.Fatalf("join answered %+v", r1)
	}
}

func TestJoinRequireKnownMemberID(t *testing.T) {
	first := func(h *harness, i int) JoinResult {
		h.t.Helper()
		req := memberReq("g", i)
		req.RequireKnownMemberID = true
		r := recv(h.t, h.c.Join(req))
		wantErr(h.t, "first JoinGroup", r.Err, ErrMemberIDRequired)
		if !strings.HasPrefix(r.MemberID, fmt.Sprintf("c%d-", i)) || len(r.MemberID) != len("c0-")+36 {
			h.t.Fatalf("member id %q is not client id, dash, UUID", r.MemberID)
		}
		return r
	}
	known := func(i int, id string) JoinRequest {
		req := rejoin(memberReq("g", i), id)
		req.RequireKnownMemberID = true
		return req
	}

	t.Run("rejoin with the id joins", func(t *testing.T) {
		h := newHarness(t, Config{})
		p := first(h, 0)
		if st := h.state("g"); st != Empty {
			t.Fatalf("a pending member moved the group to %v", st)
		}
		r := h.joinOK(h.c.Join(known(0, p.MemberID)))
		if r.MemberID != p.MemberID || r.Leader != p.MemberID || r.Generation != 1 || len(r.Members) != 1 {
			t.Fatalf("rejoin answered %+v", r)
		}
	})

	t.Run("two first joins get different ids", func(t *testing.T) {
		h := newHarness(t, Config{})
		a, b := first(h, 0), first(h, 0)
		if a.MemberID == b.MemberID {
			t.Fatalf("both got %q", a.MemberID)
		}
	})

	t.Run("unused id expires after the session timeout", func(t *testing.T) {
		for _, wait := range []time.Duration{sessionTimeout - 1, sessionTimeout} {
			t.Run(wait.String(), func(t *testing.T) {
				h := newHarness(t, Config{})
				p := first(h, 0)
				h.clock.Advance(wait)
				r := recv(t, h.c.Join(known(0, p.MemberID)))
				if wait < sessionTimeout {
					wantErr(t, "rejoin before expiry", r.Err, nil)
					return
				}
				wantErr(t, "rejoin after expiry", r.Err, ErrUnknownMember)
				if _, ok := h.listed("g"); ok {
					t.Fatal("group of an expired pending member still listed")
				}
			})
		}
	})

	t.Run("a pending id holds the join phase until used", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0))
		p := first(h, 1)
		if st := h.state("g"); st != Stable {
			t.Fatalf("a pending member moved the group to %v", st)
		}
		// The leader rejoins: a rebalance, held for the pending member.
		ch0 := h.c.Join(rejoin(memberReq("g", 0), res[0].MemberID))
		none(t, ch0)
		ch1 := h.c.Join(known(1, p.MemberID))
		r0, r1 := h.joinOK(ch0), h.joinOK(ch1)
		if r0.Generation != 2 || r1.Generation != 2 || r0.Leader != res[0].MemberID {
			t.Fatalf("answers %+v %+v", r0, r1)
		}
		if got := ids(r0); !equalStrings(memberIDsOf(r0.Members), []string{got[0], p.MemberID}) {
			t.Fatalf("leader got members %+v", r0.Members)
		}
	})

	t.Run("a pending id that expires releases the join phase", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0))
		h.clock.Advance(time.Second)
		p := first(h, 1)
		ch0 := h.c.Join(rejoin(memberReq("g", 0), res[0].MemberID))
		h.clock.Advance(sessionTimeout - 1)
		none(t, ch0)
		h.clock.Advance(1)
		r0 := h.joinOK(ch0)
		if r0.Generation != 2 || len(r0.Members) != 1 {
			t.Fatalf("answer %+v", r0)
		}
		wantErr(t, "late rejoin", recv(t, h.c.Join(known(1, p.MemberID))).Err, ErrUnknownMember)
	})

	t.Run("a pending member leaving releases the join phase", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.stable(memberReq("g", 0))
		p := first(h, 1)
		ch0 := h.c.Join(rejoin(memberReq("g", 0), res[0].MemberID))
		none(t, ch0)
		wantErrs(t, "LeaveGroup", h.c.Leave("g", []Leaving{{MemberID: p.MemberID}}), nil)
		if r0 := h.joinOK(ch0); r0.Generation != 2 || len(r0.Members) != 1 {
			t.Fatalf("answer %+v", r0)
		}
	})

	t.Run("static members need no known id", func(t *testing.T) {
		h := newHarness(t, Config{})
		req := staticReq("g", 0)
		req.RequireKnownMemberID = true
		r := h.joinOK(h.c.Join(req))
		if r.Generation != 1 {
			t.Fatalf("answer %+v", r)
		}
	})
}

func memberIDsOf(ms []MemberMetadata) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.MemberID)
	}
	return out
}

func TestJoinGenerationsLeaderAndMembers(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("%d members", n), func(t *testing.T) {
			h := newHarness(t, Config{})
			var reqs []JoinRequest
			for i := range n {
				reqs = append(reqs, memberReq("g", i))
			}
			res := h.form(reqs...)
			wantGen := int32(2)
			if n == 1 {
				wantGen = 1
			}
			leader := res[0].MemberID
			for i, r := range res {
				if r.Generation != wantGen || r.Leader != leader || r.ProtocolType != "consumer" || r.Protocol != "range" || r.SkipAssignment {
					t.Fatalf("member %d answered %+v; want generation %d, leader %s", i, r, wantGen, leader)
				}
				if i > 0 && r.Members != nil {
					t.Fatalf("follower %d got members %+v", i, r.Members)
				}
			}
			if len(res[0].Members) != n {
				t.Fatalf("leader got %d members, want %d", len(res[0].Members), n)
			}
			for i, m := range res[0].Members {
				if m.MemberID != res[i].MemberID || !bytes.Equal(m.Metadata, memberMeta(i)) || m.InstanceID != "" {
					t.Fatalf("leader's member %d is %+v, want %s with %q", i, m, res[i].MemberID, memberMeta(i))
				}
			}
			d := h.describe("g")
			if d.State != CompletingRebalance || d.Generation != wantGen || d.Protocol != "range" || d.ProtocolType != "consumer" {
				t.Fatalf("described %+v", d)
			}
			if !equalStrings(h.memberIDs("g"), ids(res...)) {
				t.Fatalf("members %v, want %v", h.memberIDs("g"), ids(res...))
			}
			h.syncAll("g", res)
			if g := h.describe("g").Generation; g != wantGen {
				t.Fatalf("generation %d after sync", g)
			}
			// One more member: one more generation, same leader.
			ch := h.c.Join(memberReq("g", n))
			var chans []<-chan JoinResult
			for i := range res {
				chans = append(chans, h.c.Join(rejoin(reqs[i], res[i].MemberID)))
			}
			chans = append(chans, ch)
			for i, ch := range chans {
				r := h.joinOK(ch)
				if r.Generation != wantGen+1 || r.Leader != leader || (i == 0) != (r.Members != nil) {
					t.Fatalf("member %d answered %+v in the next generation", i, r)
				}
			}
		})
	}
}

func TestProtocolSelection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members [][]string // each member's protocols, most preferred first, in join order
		want    string
	}{
		{"one member", [][]string{{"range", "rr"}}, "range"},
		{"same preferences", [][]string{{"range", "rr"}, {"range", "rr"}}, "range"},
		{"majority", [][]string{{"range", "rr"}, {"rr", "range"}, {"rr", "range"}}, "rr"},
		{"majority against the oldest", [][]string{{"rr", "range"}, {"range", "rr"}, {"range", "rr"}}, "range"},
		{"tie goes to the oldest member's choice", [][]string{{"range", "rr"}, {"rr", "range"}}, "range"},
		{"tie goes to the oldest member's choice, reversed", [][]string{{"rr", "range"}, {"range", "rr"}}, "rr"},
		{"only the common protocol", [][]string{{"a", "b"}, {"c", "b"}}, "b"},
		{"votes only for common protocols", [][]string{{"x", "range", "rr"}, {"rr", "range"}, {"y", "range"}}, "range"},
		{"three-way tie", [][]string{{"a", "b", "c"}, {"b", "c", "a"}, {"c", "a", "b"}}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			var reqs []JoinRequest
			for i, names := range tc.members {
				r := memberReq("g", i)
				r.Protocols = protos(memberMeta(i), names...)
				reqs = append(reqs, r)
			}
			res := h.form(reqs...)
			for i, r := range res {
				if r.Protocol != tc.want {
					t.Fatalf("member %d told protocol %q, want %q", i, r.Protocol, tc.want)
				}
			}
			if p := h.describe("g").Protocol; p != tc.want {
				t.Fatalf("described protocol %q", p)
			}
			// The leader gets each member's metadata for the chosen protocol.
			for i, m := range res[0].Members {
				if !bytes.Equal(m.Metadata, memberMeta(i)) {
					t.Fatalf("member %d metadata %q", i, m.Metadata)
				}
			}
		})
	}
}

func TestJoinInconsistentProtocol(t *testing.T) {
	for _, tc := range []struct {
		name         string
		member       int // -1: a new member; else that member rejoins
		protocolType string
		protocols    []string
		want         error
	}{
		{"new member, other protocol type", -1, "connect", []string{"range"}, ErrInconsistentProtocol},
		{"new member, no common protocol", -1, "consumer", []string{"rr", "sticky"}, ErrInconsistentProtocol},
		{"new member, no protocols", -1, "consumer", nil, ErrInconsistentProtocol},
		{"member rejoining with another protocol type", 1, "connect", []string{"range"}, ErrInconsistentProtocol},
		{"new member, one common protocol", -1, "consumer", []string{"rr", "range"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			res := h.stable(memberReq("g", 0), memberReq("g", 1))
			req := memberReq("g", 2)
			if tc.member >= 0 {
				req = rejoin(memberReq("g", tc.member), res[tc.member].MemberID)
			}
			req.ProtocolType = tc.protocolType
			req.Protocols = protos(nil, tc.protocols...)
			ch := h.c.Join(req)
			if tc.want == nil {
				none(t, ch)
				if st := h.state("g"); st != PreparingRebalance {
					t.Fatalf("state %v after a compatible join", st)
				}
				return
			}
			wantErr(t, "JoinGroup", recv(t, ch).Err, tc.want)
			d := h.describe("g")
			if d.State != Stable || d.Generation != 2 || !equalStrings(h.memberIDs("g"), ids(res...)) {
				t.Fatalf("a rejected join changed the group: %+v", d)
			}
			for _, r := range res {
				wantErr(t, "heartbeat", h.heartbeat("g", r), nil)
			}
		})
	}
}

func TestInitialRebalanceDelay(t *testing.T) {
	const delay = 3 * time.Second
	cfg := Config{InitialRebalanceDelay: delay}

	t.Run("a lone member waits out the delay", func(t *testing.T) {
		h := newHarness(t, cfg)
		ch := h.c.Join(memberReq("g", 0))
		if st := h.state("g"); st != PreparingRebalance {
			t.Fatalf("state %v", st)
		}
		h.clock.Advance(delay - 1)
		none(t, ch)
		h.clock.Advance(1)
		if r := h.joinOK(ch); r.Generation != 1 || r.Leader != r.MemberID {
			t.Fatalf("answer %+v", r)
		}
	})

	t.Run("each new member extends the delay", func(t *testing.T) {
		h := newHarness(t, cfg)
		chans := []<-chan JoinResult{h.c.Join(memberReq("g", 0))}
		h.clock.AdvanceTo(2 * time.Second)
		chans = append(chans, h.c.Join(memberReq("g", 1)))
		h.clock.AdvanceTo(6*time.Second - 1) // extended at 3 s by 3 s
		for _, ch := range chans {
			none(t, ch)
		}
		chans = append(chans, h.c.Join(memberReq("g", 2)))
		h.clock.AdvanceTo(9*time.Second - 1) // extended at 6 s by 3 s
		for _, ch := range chans {
			none(t, ch)
		}
		h.clock.AdvanceTo(9 * time.Second)
		var res []JoinResult
		for _, ch := range chans {
			res = append(res, h.joinOK(ch))
		}
		for i, r := range res {
			if r.Generation != 1 || r.Leader != res[0].MemberID || (i == 0) != (len(r.Members) == 3) {
				t.Fatalf("member %d answered %+v", i, r)
			}
		}
	})

	t.Run("the delay is capped by the rebalance timeout", func(t *testing.T) {
		h := newHarness(t, cfg)
		var chans []<-chan JoinResult
		// rebalance timeout 10 s; a new member every 2.4 s, the last at 9.6 s.
		for i := range 5 {
			h.clock.AdvanceTo(time.Duration(i) * 2400 * time.Millisecond)
			for _, ch := range chans {
				none(t, ch)
			}
			req := memberReq("g", i)
			req.RebalanceTimeout = 10 * time.Second
			chans = append(chans, h.c.Join(req))
		}
		h.clock.AdvanceTo(10*time.Second - 1)
		for _, ch := range chans {
			none(t, ch)
		}
		h.clock.AdvanceTo(10 * time.Second)
		for i, ch := range chans {
			if r := h.joinOK(ch); r.Generation != 1 || (i == 0) != (len(r.Members) == 5) {
				t.Fatalf("member %d answered %+v", i, r)
			}
		}
	})

	t.Run("a delay longer than the rebalance timeout is cut to it", func(t *testing.T) {
		h := newHarness(t, Config{InitialRebalanceDelay: time.Minute})
		ch := h.c.Join(memberReq("g", 0))
		h.clock.Advance(rebalanceTimeout - 1)
		none(t, ch)
		h.clock.Advance(1)
		h.joinOK(ch)
	})

	t.Run("only the first join phase is delayed", func(t *testing.T) {
		h := newHarness(t, cfg)
		ch := h.c.Join(memberReq("g", 0))
		h.clock.Advance(delay)
		r0 := h.joinOK(ch)
		h.syncAll("g", []JoinResult{r0})
		ch1 := h.c.Join(memberReq("g", 1))
		ch0 := h.c.Join(rejoin(memberReq("g", 0), r0.MemberID))
		if r := h.joinOK(ch0); r.Generation != 2 || len(r.Members) != 2 {
			t.Fatalf("answer %+v", r)
		}
		h.joinOK(ch1)
	})

	t.Run("a group emptied during the delay completes empty", func(t *testing.T) {
		h := newHarness(t, cfg)
		ch := h.c.Join(memberReq("g", 0))
		h.clock.Advance(time.Second)
		// The member has no answer yet; its id is read from the group.
		id := h.memberIDs("g")[0]
		wantErrs(t, "LeaveGroup", h.c.Leave("g", []Leaving{{MemberID: id}}), nil)
		wantErr(t, "left member's join", recv(t, ch).Err, ErrUnknownMember)
		h.clock.Advance(delay)
		if _, ok := h.listed("g"); ok {
			t.Fatalf("an empty group without offsets is still listed: %+v", h.c.ListGroups())
		}
	})

	t.Run("zero delay completes a lone member at once", func(t *testing.T) {
		h := newHarness(t, Config{})
		if r := h.joinOK(h.c.Join(memberReq("g", 0))); r.Generation != 1 {
			t.Fatalf("answer %+v", r)
		}
	})
}

func TestSyncGroup(t *testing.T) {
	t.Run("followers wait for the leader and get their own assignment", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.form(memberReq("g", 0), memberReq("g", 1), memberReq("g", 2))
		leader, f1, f2 := res[0], res[1], res[2]
		ch1 := h.c.Sync(SyncRequest{Group: "g", MemberID: f1.MemberID, Generation: f1.Generation})
		ch2 := h.c.Sync(SyncRequest{Group: "g", MemberID: f2.MemberID, Generation: f2.Generation, ProtocolType: "consumer", Protocol: "range"})
		none(t, ch1)
		none(t, ch2)
		if st := h.state("g"); st != CompletingRebalance {
			t.Fatalf("state %v before the leader syncs", st)
		}
		// f2 is left out of the assignment; an unknown id is ignored.
		chL := h.c.Sync(SyncRequest{Group: "g", MemberID: leader.MemberID, Generation: leader.Generation,
			Assignments: map[string][]byte{leader.MemberID: []byte("L"), f1.MemberID: []byte("F1"), "stranger": []byte("S")}})
		for _, c := range []struct {
			name string
			ch   <-chan SyncResult
			want string
		}{{"leader", chL, "L"}, {"follower 1", ch1, "F1"}, {"follower 2", ch2, ""}} {
			s := recv(t, c.ch)
			if s.Err != nil || string(s.Assignment) != c.want || len(s.Assignment) != len(c.want) || s.Protocol != "range" || s.ProtocolType != "consumer" {
				t.Fatalf("%s got %+v, want assignment %q", c.name, s, c.want)
			}
		}
		d := h.describe("g")
		if d.State != Stable {
			t.Fatalf("state %v", d.State)
		}
		for i, want := range []string{"L", "F1", ""} {
			if string(d.Members[i].Assignment) != want {
				t.Fatalf("described member %d assignment %q", i, d.Members[i].Assignment)
			}
		}
		// SyncGroup in Stable answers with the current assignment at once.
		for _, c := range []struct {
			r    JoinResult
			want string
		}{{f1, "F1"}, {f2, ""}, {leader, "L"}} {
			s := recv(t, h.c.Sync(SyncRequest{Group: "g", MemberID: c.r.MemberID, Generation: c.r.Generation}))
			if s.Err != nil || string(s.Assignment) != c.want {
				t.Fatalf("late sync of %s: %+v", c.r.MemberID, s)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			state State // the group's state when the request arrives
			req   func(res []JoinResult) SyncRequest
			want  error
		}{
			{"wrong generation", CompletingRebalance, func(res []JoinResult) SyncRequest {
				return SyncRequest{Group: "g", MemberID: res[1].MemberID, Generation: res[1].Generation - 1}
			}, ErrIllegalGeneration},
			{"generation ahead", Stable, func(res []JoinResult) SyncRequest {
				return SyncRequest{Group: "g", MemberID: res[1].MemberID, Generation: res[1].Generation + 1}
			}, ErrIllegalGeneration},
			{"unknown member", CompletingRebalance, func(res []JoinResult) SyncRequest {
				return SyncRequest{Group: "g", MemberID: "c9-nobody", Generation: res[1].Generation}
			}, ErrUnknownMember},
			{"unknown group", CompletingRebalance, func(res []JoinResult) SyncRequest {
				return SyncRequest{Group: "other", MemberID: res[1].MemberID, Generation: res[1].Generation}
			}, ErrUnknownMember},
			{"during PreparingRebalance", PreparingRebalance, func(res []JoinResult) SyncRequest {
				return SyncRequest{Group: "g", MemberID: res[1].MemberID, Generation: res[1].Generation}
			}, ErrRebalanceInProgress},
			{"other protocol type", CompletingRebalance, func(res []JoinResult) SyncRequest {
				return SyncRequest{Group: "g", MemberID: res[1].MemberID, Generation: res[1].Generation, ProtocolType: "connect"}
			}, ErrInconsistentProtocol},
			{"other protocol", Stable, func(res []JoinResult) SyncRequest {
				return SyncRequest{Group: "g", MemberID: res[1].MemberID, Generation: res[1].Generation, Protocol: "rr"}
			}, ErrInconsistentProtocol},
			{"instance id of a dynamic member", Stable, func(res []JoinResult) SyncRequest {
				return SyncRequest{Group: "g", MemberID: res[1].MemberID, InstanceID: "i1", Generation: res[1].Generation}
			}, ErrFencedInstanceID},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := newHarness(t, Config{})
				var res []JoinResult
				switch tc.state {
				case CompletingRebalance:
					res = h.form(memberReq("g", 0), memberReq("g", 1))
				case Stable:
					res = h.stable(memberReq("g", 0), memberReq("g", 1))
				case PreparingRebalance:
					res = h.stable(memberReq("g", 0), memberReq("g", 1))
					h.c.Join(memberReq("g", 2))
				}
				if st := h.state("g"); st != tc.state {
					t.Fatalf("set-up state %v, want %v", st, tc.state)
				}
				wantErr(t, "SyncGroup", recv(t, h.c.Sync(tc.req(res))).Err, tc.want)
				if st := h.state("g"); st != tc.state {
					t.Fatalf("a failed sync moved the group to %v", st)
				}
			})
		}
	})

	t.Run("a repeated sync supersedes the waiting one", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.form(memberReq("g", 0), memberReq("g", 1))
		req := SyncRequest{Group: "g", MemberID: res[1].MemberID, Generation: res[1].Generation}
		first := h.c.Sync(req)
		second := h.c.Sync(req)
		wantErr(t, "superseded sync", recv(t, first).Err, ErrRebalanceInProgress)
		none(t, second)
		h.c.Sync(SyncRequest{Group: "g", MemberID: res[0].MemberID, Generation: res[0].Generation,
			Assignments: map[string][]byte{res[1].MemberID: []byte("x")}})
		if s := recv(t, second); s.Err != nil || string(s.Assignment) != "x" {
			t.Fatalf("sync answered %+v", s)
		}
	})

	t.Run("a rebalance answers waiting syncs", func(t *testing.T) {
		h := newHarness(t, Config{})
		res := h.form(memberReq("g", 0), memberReq("g", 1))
		ch := h.c.Sync(SyncRequest{Group: "g", MemberID: res[1].MemberID, Generation: res[1].Generation})
		h.c.Join(memberReq("g", 2))
		wantErr(t, "waiting sync", recv(t, ch).Err, ErrRebalanceInProgress)
	})
}

func TestHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state State
		hb    func(res []JoinResult) (group, member, instance string, gen int32)
		want  error
	}{
		{"stable", Stable, func(res []JoinResult) (string, string, string, int32) {
			return "g", res[1].MemberID, "", res[1].Generation
		}, nil},
		{"completing rebalance", CompletingRebalance, func(res []JoinResult) (string, string, string, int32) {
			return "g", res[1].MemberID, "", res[1].Generation
		}, nil},
		{"preparing rebalance", PreparingRebalance, func(res []JoinResult) (string, string, string, int32) {
			return "g", res[1].MemberID, "", res[1].Generation
		}, ErrRebalanceInProgress},
		{"old generation", Stable, func(res []JoinResult) (string, string, string, int32) {
			return "g", res[1].MemberID, "", res[1].Generation - 1
		}, ErrIllegalGeneration},
		{"old generation while preparing", PreparingRebalance, func(res []JoinResult) (string, string, string, int32) {
			return "g", res[1].MemberID, "", res[1].Generation - 1
		}, ErrIllegalGeneration},
		{"unknown member", Stable, func(res []JoinResult) (string, string, string, int32) {
			return "g", "c7-nobody", "", res[1].Generation
		}, ErrUnknownMember},
		{"unknown group", Stable, func(res []JoinResult) (string, string, string, int32) {
			return "nope", res[1].MemberID, "", res[1].Generation
		}, ErrUnknownMember},
		{"instance id of a dynamic member", Stable, func(res []JoinResult) (string, string, string, int32) {
			return "g", res[1].MemberID, "i1", res[1].Generation
		}, ErrFencedInstanceID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			var res []JoinResult
			switch tc.state {
			case CompletingRebalance:
				res = h.form(memberReq("g", 0), memberReq("g", 1))
			default:
				res = h.stable(memberReq("g", 0), memberReq("g", 1))
			}
			if tc.state == PreparingRebalance {
				h.c.Join(memberReq("g", 2))
			}
			if st := h.state("g"); st != tc.state {
				t.Fatalf("set-up state %v, want %v", st, tc.state)
			}
			g, m, inst, gen := tc.hb(res)
			wantErr(t, "Heartbeat", h.c.Heartbeat(g, m, inst, gen), tc.want)
		})
	}
}

// A heartbeat restarts the session: a member heartbeating just inside its
// session timeout stays forever.
func TestHeartbeatKeepsSession(t *testing.T) {
	h := newHarness(t, Config{})
	res := h.stable(memberReq("g", 0), memberReq("g", 1))
	for range 20 {
		h.clock.Advance(sessionTimeout - 1)
		for _, r := range res {
			wantErr(t, "heartbeat", h.heartbeat("g", r), nil)
		}
	}
	if d := h.describe("g"); d.State != Stable || len(d.Members) != 2 || d.Generation != 2 {
		t.Fatalf("described %+v", d)
	}
}
