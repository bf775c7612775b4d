package group

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumerMeta is the consumer protocol's member metadata subscribing to
// topics.
func consumerMeta(topics ...string) []byte {
	m := kmsg.ConsumerMemberMetadata{Version: 0, Topics: topics}
	return m.AppendTo(nil)
}

func consumerReq(g string, i int, topics ...string) JoinRequest {
	r := memberReq(g, i)
	r.Protocols = []Protocol{proto("range", consumerMeta(topics...))}
	return r
}

func fetchAll(t *testing.T, h *harness, g string) map[TopicPartition]Offset {
	t.Helper()
	got, err := h.c.FetchOffsets(g, nil)
	if err != nil {
		t.Fatalf("FetchOffsets(%q): %v", g, err)
	}
	return got
}

func wantOffsets(t *testing.T, what string, got map[TopicPartition]Offset, want ...Offset) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d offsets %+v, want %+v", what, len(got), got, want)
	}
	for _, w := range want {
		g, ok := got[TopicPartition{w.Topic, w.Partition}]
		if !ok || g.Offset != w.Offset || g.LeaderEpoch != w.LeaderEpoch || g.Metadata != w.Metadata ||
			!w.CommitTime.IsZero() && !g.CommitTime.Equal(w.CommitTime) {
			t.Fatalf("%s: %s/%d is %+v (present %v), want %+v", what, w.Topic, w.Partition, g, ok, w)
		}
	}
}

func at(o Offset, when time.Time) Offset {
	o.CommitTime = when
	return o
}

func TestCommitWhoMayCommit(t *testing.T) {
	type setup func(h *harness) []JoinResult
	noSetup := func(*harness) []JoinResult { return nil }
	emptyWithOffsets := func(h *harness) []JoinResult {
		errs, _ := h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("x", 0, 1)}})
		wantErrs(h.t, "set-up commit", errs, nil)
		return nil
	}
	stable := func(h *harness) []JoinResult { return h.stable(memberReq("g", 0), staticReq("g", 1)) }
	completing := func(h *harness) []JoinResult { return h.form(memberReq("g", 0), staticReq("g", 1)) }
	preparing := func(h *harness) []JoinResult {
		res := stable(h)
		h.c.Join(memberReq("g", 2))
		return res
	}
	for _, tc := range []struct {
		name    string
		setup   setup
		req     func(res []JoinResult) CommitRequest
		want    error
		created bool // the commit leaves an Empty group behind
	}{
		{"admin commit to an unknown group", noSetup, func([]JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: -1}
		}, nil, true},
		{"generation 0 to an unknown group", noSetup, func([]JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: 0}
		}, ErrIllegalGeneration, false},
		{"member with a generation to an unknown group", noSetup, func([]JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: 3, MemberID: "c0-x"}
		}, ErrIllegalGeneration, false},
		{"empty group id", noSetup, func([]JoinResult) CommitRequest {
			return CommitRequest{Group: "", Generation: -1}
		}, ErrInvalidGroupID, false},
		{"admin commit to an empty group", emptyWithOffsets, func([]JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: -1}
		}, nil, true},
		{"generation to an empty group", emptyWithOffsets, func([]JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: 0}
		}, ErrUnknownMember, true},
		{"admin commit to a group with members", stable, func([]JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: -1}
		}, ErrUnknownMember, false},
		{"member, current generation", stable, func(res []JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: res[0].Generation, MemberID: res[0].MemberID}
		}, nil, false},
		{"static member, current generation", stable, func(res []JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: res[1].Generation, MemberID: res[1].MemberID, InstanceID: "i1"}
		}, nil, false},
		{"member, old generation", stable, func(res []JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: res[0].Generation - 1, MemberID: res[0].MemberID}
		}, ErrIllegalGeneration, false},
		{"member, no generation", stable, func(res []JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: -1, MemberID: res[0].MemberID}
		}, ErrIllegalGeneration, false},
		{"unknown member", stable, func(res []JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: res[0].Generation, MemberID: "c5-who"}
		}, ErrUnknownMember, false},
		{"member with another's instance id", stable, func(res []JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: res[0].Generation, MemberID: res[0].MemberID, InstanceID: "i1"}
		}, ErrFencedInstanceID, false},
		{"during CompletingRebalance", completing, func(res []JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: res[0].Generation, MemberID: res[0].MemberID}
		}, ErrRebalanceInProgress, false},
		{"during PreparingRebalance, current generation", preparing, func(res []JoinResult) CommitRequest {
			return CommitRequest{Group: "g", Generation: res[0].Generation, MemberID: res[0].MemberID}
		}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			res := tc.setup(h)
			stateBefore := h.state("g")
			h.clock.Advance(time.Second)
			req := tc.req(res)
			req.Offsets = []Offset{off("t", 0, 10), {Topic: "t", Partition: 1, Offset: 20, LeaderEpoch: 3, Metadata: "m"}}
			errs, wait := h.c.Commit(req)
			wantErrs(t, "Commit", errs, tc.want, tc.want)
			wantErr(t, "wait", wait(), nil)
			got, err := h.c.FetchOffsets(req.Group, []TopicPartition{tp("t", 0), tp("t", 1)})
			wantErr(t, "FetchOffsets", err, nil)
			if tc.want != nil {
				wantOffsets(t, "after a refused commit", got)
				if len(h.store.get("g")[tp("t", 0)].Topic) != 0 {
					t.Fatal("a refused commit reached the store")
				}
			} else {
				now := h.clock.Now()
				wantOffsets(t, "after the commit", got, at(off("t", 0, 10), now), Offset{Topic: "t", Partition: 1, Offset: 20, LeaderEpoch: 3, Metadata: "m", CommitTime: now})
				wantOffsets(t, "stored", h.store.get("g"), append([]Offset{at(off("t", 0, 10), now), at(Offset{Topic: "t", Partition: 1, Offset: 20, LeaderEpoch: 3, Metadata: "m"}, now)},
					func() []Offset {
						if stateBefore == Empty {
							return []Offset{off("x", 0, 1)}
						}
						return nil
					}()...)...)
			}
			l, ok := h.listed("g")
			switch {
			case res != nil && !ok:
				t.Fatal("group vanished")
			case res == nil && ok != tc.created:
				t.Fatalf("group listed %v %+v, want %v", ok, l, tc.created)
			case res == nil && ok && (l.State != Empty || l.ProtocolType != ""):
				t.Fatalf("listed %+v", l)
			}
			if res != nil {
				if st := h.state("g"); st != stateBefore {
					t.Fatalf("state %v after the commit, was %v", st, stateBefore)
				}
			}
		})
	}
}

func TestCommitPerPartitionErrors(t *testing.T) {
	cfg := Config{
		MaxOffsetMetadata: 8,
		PartitionExists:   func(topic string, p int32) bool { return topic != "gone" && p >= 0 && p < 4 },
	}
	h := newHarness(t, cfg)
	res := h.stable(memberReq("g", 0))
	errs, wait := h.c.Commit(CommitRequest{Group: "g", Generation: res[0].Generation, MemberID: res[0].MemberID, Offsets: []Offset{
		offMeta("t", 0, "12345678"),
		offMeta("t", 1, "123456789"),
		offMeta("gone", 0, ""),
		offMeta("t", 4, ""),
		offMeta("t", 3, ""),
		offMeta("t", -1, ""),
	}})
	wantErrs(t, "Commit", errs, nil, ErrMetadataTooLarge, ErrUnknownPartition, ErrUnknownPartition, nil, ErrUnknownPartition)
	wantErr(t, "wait", wait(), nil)
	now := h.clock.Now()
	want := []Offset{at(offMeta("t", 0, "12345678"), now), at(offMeta("t", 3, ""), now)}
	wantOffsets(t, "fetched", fetchAll(t, h, "g"), want...)
	wantOffsets(t, "stored", h.store.get("g"), want...)

	t.Run("all refused on an unknown group", func(t *testing.T) {
		h := newHarness(t, cfg)
		errs, wait := h.c.Commit(CommitRequest{Group: "new", Generation: -1, Offsets: []Offset{offMeta("gone", 0, ""), offMeta("t", 0, "too much metadata")}})
		wantErrs(t, "Commit", errs, ErrUnknownPartition, ErrMetadataTooLarge)
		wantErr(t, "wait", wait(), nil)
		if _, ok := h.listed("new"); ok {
			t.Fatal("a commit refusing every offset left a group behind")
		}
		if h.store.commits != 0 {
			t.Fatalf("%d store commits", h.store.commits)
		}
	})

	t.Run("metadata size is in bytes", func(t *testing.T) {
		h := newHarness(t, Config{MaxOffsetMetadata: 4})
		errs, _ := h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{offMeta("t", 0, "éé"), offMeta("t", 1, "ééé")}})
		wantErrs(t, "Commit", errs, nil, ErrMetadataTooLarge)
	})
}

func TestCommitOrderAndOverwrite(t *testing.T) {
	h := newHarness(t, Config{})
	h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 0, 1), off("t", 1, 1)}})
	h.clock.Advance(time.Minute)
	h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 0, 2)}})
	want := []Offset{at(off("t", 0, 2), epoch.Add(time.Minute)), at(off("t", 1, 1), epoch)}
	wantOffsets(t, "fetched", fetchAll(t, h, "g"), want...)
	wantOffsets(t, "stored", h.store.get("g"), want...)
	if h.store.commits != 2 {
		t.Fatalf("%d store commits", h.store.commits)
	}
}

func TestCommitStoreFailure(t *testing.T) {
	h := newHarness(t, Config{})
	boom := errBoom("commit")
	h.store.set(func(s *memStore) { s.commitErr = boom })
	errs, wait := h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
	wantErrs(t, "Commit", errs, nil)
	if err := wait(); !errors.Is(err, boom) {
		t.Fatalf("wait = %v, want the store's error", err)
	}
}

// A commit the store refuses (nothing written) is not applied: fetching
// the offsets must not show what the log does not hold.
func TestCommitStoreRefusal(t *testing.T) {
	h := newHarness(t, Config{})
	h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
	refused := errBoom("not leader")
	h.store.set(func(s *memStore) { s.commitRefused = refused })
	errs, wait := h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 0, 7), off("t", 1, 8)}})
	wantErrs(t, "Commit", errs, refused, refused)
	if err := wait(); err != nil {
		t.Fatalf("wait = %v, want nil: nothing was written", err)
	}
	wantOffsets(t, "fetched", fetchAll(t, h, "g"), at(off("t", 0, 1), epoch))
	h.store.set(func(s *memStore) { s.commitRefused = nil })
	errs, _ = h.c.Commit(CommitRequest{Group: "fresh", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
	wantErrs(t, "Commit", errs, nil)
}

func TestFetchOffsets(t *testing.T) {
	h := newHarness(t, Config{})
	h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 0, 1), off("t", 1, 2), off("u", 0, 3)}})
	all := []Offset{at(off("t", 0, 1), epoch), at(off("t", 1, 2), epoch), at(off("u", 0, 3), epoch)}
	for _, tc := range []struct {
		name  string
		group string
		parts []TopicPartition
		want  []Offset
	}{
		{"all", "g", nil, all},
		{"some", "g", []TopicPartition{tp("t", 1), tp("u", 0)}, all[1:]},
		{"some missing", "g", []TopicPartition{tp("t", 1), tp("t", 2), tp("v", 0)}, all[1:2]},
		{"none asked", "g", []TopicPartition{}, nil},
		{"unknown group, all", "other", nil, nil},
		{"unknown group, some", "other", []TopicPartition{tp("t", 0)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.c.FetchOffsets(tc.group, tc.parts)
			wantErr(t, "FetchOffsets", err, nil)
			if got == nil {
				t.Fatal("nil map")
			}
			wantOffsets(t, "fetched", got, tc.want...)
			// The answer is the caller's.
			for k := range got {
				delete(got, k)
			}
		})
	}
	wantOffsets(t, "after callers changed their answers", fetchAll(t, h, "g"), all...)
	if _, ok := h.listed("other"); ok {
		t.Fatal("fetching created a group")
	}
}

func TestOffsetsRetention(t *testing.T) {
	const retention = time.Hour
	// Expiry by explicit ExpireOffsets; the periodic check is out of the way.
	cfg := Config{OffsetsRetention: retention, RetentionCheckInterval: 1000 * time.Hour}
	longSession := func(i int) JoinRequest {
		r := memberReq("g", i)
		r.SessionTimeout = 30 * time.Minute
		return r
	}
	for _, tc := range []struct {
		name   string
		setup  func(h *harness) // starts at epoch
		expiry map[TopicPartition]time.Duration
	}{
		{"admin commit to a new group", func(h *harness) {
			h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
		}, map[TopicPartition]time.Duration{tp("t", 0): retention}},
		{"commits at different times", func(h *harness) {
			h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 0, 1), off("t", 1, 1)}})
			h.clock.AdvanceTo(20 * time.Minute)
			h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 1, 2)}})
		}, map[TopicPartition]time.Duration{tp("t", 0): retention, tp("t", 1): retention + 20*time.Minute}},
		{"commit after the group became empty", func(h *harness) {
			h.clock.AdvanceTo(30 * time.Minute)
			h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
		}, map[TopicPartition]time.Duration{tp("t", 0): retention + 30*time.Minute}},
		{"group became empty after the commit", func(h *harness) {
			res := h.stable(longSession(0))
			h.c.Commit(CommitRequest{Group: "g", Generation: res[0].Generation, MemberID: res[0].MemberID, Offsets: []Offset{off("t", 0, 1)}})
			h.clock.AdvanceTo(20 * time.Minute)
			wantErrs(t, "LeaveGroup", h.c.Leave("g", []Leaving{{MemberID: res[0].MemberID}}), nil)
		}, map[TopicPartition]time.Duration{tp("t", 0): retention + 20*time.Minute}},
		{"group emptied by a session expiry", func(h *harness) {
			res := h.stable(memberReq("g", 0))
			h.c.Commit(CommitRequest{Group: "g", Generation: res[0].Generation, MemberID: res[0].MemberID, Offsets: []Offset{off("t", 0, 1)}})
			h.clock.AdvanceTo(sessionTimeout)
		}, map[TopicPartition]time.Duration{tp("t", 0): retention + sessionTimeout}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, cfg)
			tc.setup(h)
			if st := h.state("g"); st != Empty {
				t.Fatalf("set-up left the group %v", st)
			}
			// Visit each expiry in order: just before, nothing of it goes.
			var times []time.Duration
			for _, d := range tc.expiry {
				times = append(times, d)
			}
			for len(times) > 0 {
				next := times[0]
				for _, d := range times {
					next = min(next, d)
				}
				h.clock.AdvanceTo(next - 1)
				if n := h.c.ExpireOffsets(); n != 0 {
					t.Fatalf("%d offsets expired at %v", n, next-1)
				}
				h.clock.AdvanceTo(next)
				gone := 0
				var rest []time.Duration
				for p, d := range tc.expiry {
					if d == next {
						gone++
						if _, ok := fetchAll(t, h, "g")[p]; !ok {
							t.Fatalf("%v gone before ExpireOffsets", p)
						}
					}
				}
				for _, d := range times {
					if d != next {
						rest = append(rest, d)
					}
				}
				times = rest
				if n := h.c.ExpireOffsets(); n != gone {
					t.Fatalf("%d offsets expired at %v, want %d", n, next, gone)
				}
				fetched := fetchAll(t, h, "g")
				stored := h.store.get("g")
				for p, d := range tc.expiry {
					_, inMem := fetched[p]
					_, inStore := stored[p]
					if want := d > next; inMem != want || inStore != want {
						t.Fatalf("at %v %v fetched %v stored %v, want %v", next, p, inMem, inStore, want)
					}
				}
				_, listed := h.listed("g")
				if listed != (len(times) > 0) {
					t.Fatalf("at %v listed %v with %d expiries to come", next, listed, len(times))
				}
			}
		})
	}

	t.Run("the periodic check expires offsets", func(t *testing.T) {
		h := newHarness(t, Config{OffsetsRetention: retention, RetentionCheckInterval: 7 * time.Minute})
		h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
		h.c.Commit(CommitRequest{Group: "h", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
		h.clock.AdvanceTo(63*time.Minute - 1) // checks at 7, 14, ..., 56 min
		if len(fetchAll(t, h, "g")) != 1 || len(h.c.ListGroups()) != 2 {
			t.Fatal("expired early")
		}
		h.clock.AdvanceTo(63 * time.Minute)
		if len(fetchAll(t, h, "g")) != 0 || len(h.store.get("g")) != 0 || len(h.store.get("h")) != 0 {
			t.Fatal("not expired by the check at 63 min")
		}
		if l := h.c.ListGroups(); len(l) != 0 {
			t.Fatalf("groups without members or offsets still listed: %+v", l)
		}
	})

	t.Run("offsets of a group with members do not expire", func(t *testing.T) {
		h := newHarness(t, Config{OffsetsRetention: retention, RetentionCheckInterval: 10 * time.Minute})
		res := h.stable(longSession(0))
		h.c.Commit(CommitRequest{Group: "g", Generation: res[0].Generation, MemberID: res[0].MemberID, Offsets: []Offset{off("t", 0, 1)}})
		for range 12 {
			h.clock.Advance(20 * time.Minute)
			wantErr(t, "heartbeat", h.heartbeat("g", res[0]), nil)
			if n := h.c.ExpireOffsets(); n != 0 {
				t.Fatalf("%d expired", n)
			}
		}
		if len(fetchAll(t, h, "g")) != 1 {
			t.Fatal("offsets of a live group expired")
		}
		// Once empty, the retention counts from then.
		wantErrs(t, "LeaveGroup", h.c.Leave("g", []Leaving{{MemberID: res[0].MemberID}}), nil)
		h.clock.Advance(retention - 1)
		if len(fetchAll(t, h, "g")) != 1 {
			t.Fatal("expired early")
		}
		h.clock.Advance(10 * time.Minute)
		if _, ok := h.listed("g"); ok {
			t.Fatal("still listed")
		}
	})

	t.Run("a failed delete keeps the offsets for the next check", func(t *testing.T) {
		h := newHarness(t, cfg)
		h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
		h.clock.Advance(retention)
		h.store.set(func(s *memStore) { s.deleteErr = errBoom("delete") })
		if n := h.c.ExpireOffsets(); n != 0 {
			t.Fatalf("%d expired though the store failed", n)
		}
		if len(fetchAll(t, h, "g")) != 1 {
			t.Fatal("offsets gone though the store failed")
		}
		h.store.set(func(s *memStore) { s.deleteErr = nil })
		if n := h.c.ExpireOffsets(); n != 1 {
			t.Fatalf("%d expired", n)
		}
	})
}

func TestDeleteGroups(t *testing.T) {
	h := newHarness(t, Config{})
	h.stable(memberReq("live", 0))
	h.c.Commit(CommitRequest{Group: "empty", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
	h.c.Commit(CommitRequest{Group: "kept", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
	res := h.stable(memberReq("preparing", 0))
	h.c.Join(memberReq("preparing", 1))
	_ = res
	pendingReq := memberReq("pending", 0)
	pendingReq.RequireKnownMemberID = true
	p := recv(t, h.c.Join(pendingReq))

	errs := h.c.DeleteGroups([]string{"nope", "live", "empty", "preparing", "pending", "empty"})
	wantErrs(t, "DeleteGroups", errs, ErrGroupNotFound, ErrNonEmptyGroup, nil, ErrNonEmptyGroup, nil, ErrGroupNotFound)
	if len(h.store.get("empty")) != 0 || len(fetchAll(t, h, "empty")) != 0 {
		t.Fatal("a deleted group's offsets remain")
	}
	if len(h.store.get("kept")) != 1 {
		t.Fatal("another group's offsets went")
	}
	var listed []string
	for _, l := range h.c.ListGroups() {
		listed = append(listed, l.Group)
	}
	if !equalStrings(listed, []string{"kept", "live", "preparing"}) {
		t.Fatalf("listed %v", listed)
	}
	wantErr(t, "pending id after delete", recv(t, h.c.Join(rejoin(pendingReq, p.MemberID))).Err, ErrUnknownMember)

	t.Run("store failure", func(t *testing.T) {
		h := newHarness(t, Config{})
		boom := errBoom("delete group")
		h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
		h.store.set(func(s *memStore) { s.deleteGroupErr = boom })
		wantErrs(t, "DeleteGroups", h.c.DeleteGroups([]string{"g"}), boom)
		if len(fetchAll(t, h, "g")) != 1 {
			t.Fatal("offsets gone though the store failed")
		}
	})
}

func TestDeleteOffsets(t *testing.T) {
	boom := errBoom("delete")
	for _, tc := range []struct {
		name      string
		members   []JoinRequest // joined and synced before
		storeErr  error
		delete    []TopicPartition
		want      []error
		wantErr   error
		remaining []TopicPartition // of t1/0, t1/1, t2/0
		listed    bool
	}{
		{"empty group", nil, nil, []TopicPartition{tp("t1", 0), tp("t9", 0)}, []error{nil, nil},
			nil, []TopicPartition{tp("t1", 1), tp("t2", 0)}, true},
		{"empty group, every offset", nil, nil, []TopicPartition{tp("t1", 0), tp("t1", 1), tp("t2", 0)}, []error{nil, nil, nil},
			nil, nil, false},
		{"consumer group subscribed to t1", []JoinRequest{consumerReq("g", 0, "t1"), consumerReq("g", 1, "t1", "t3")}, nil,
			[]TopicPartition{tp("t1", 0), tp("t2", 0)}, []error{ErrSubscribedToTopic, nil}, nil, []TopicPartition{tp("t1", 0), tp("t1", 1)}, true},
		{"consumer group, one member subscribed to t2", []JoinRequest{consumerReq("g", 0, "t1"), consumerReq("g", 1, "t2")}, nil,
			[]TopicPartition{tp("t1", 1), tp("t2", 0)}, []error{ErrSubscribedToTopic, ErrSubscribedToTopic}, nil, []TopicPartition{tp("t1", 0), tp("t1", 1), tp("t2", 0)}, true},
		{"consumer group with unreadable metadata", []JoinRequest{memberReq("g", 0)}, nil,
			[]TopicPartition{tp("t2", 0)}, []error{ErrSubscribedToTopic}, nil, []TopicPartition{tp("t1", 0), tp("t1", 1), tp("t2", 0)}, true},
		{"other protocol type with members", []JoinRequest{func() JoinRequest { r := memberReq("g", 0); r.ProtocolType = "connect"; return r }()}, nil,
			[]TopicPartition{tp("t2", 0)}, nil, ErrNonEmptyGroup, []TopicPartition{tp("t1", 0), tp("t1", 1), tp("t2", 0)}, true},
		{"store failure", nil, boom, []TopicPartition{tp("t1", 0)}, nil, boom, []TopicPartition{tp("t1", 0), tp("t1", 1), tp("t2", 0)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t1", 0, 1), off("t1", 1, 1), off("t2", 0, 1)}})
			if tc.members != nil {
				h.stable(tc.members...)
			}
			h.store.set(func(s *memStore) { s.deleteErr = tc.storeErr })
			errs, err := h.c.DeleteOffsets("g", tc.delete)
			wantErr(t, "DeleteOffsets", err, tc.wantErr)
			if tc.wantErr == nil {
				wantErrs(t, "DeleteOffsets", errs, tc.want...)
			}
			var want []Offset
			for _, p := range tc.remaining {
				want = append(want, at(off(p.Topic, p.Partition, 1), epoch))
			}
			wantOffsets(t, "fetched", fetchAll(t, h, "g"), want...)
			wantOffsets(t, "stored", h.store.get("g"), want...)
			if _, ok := h.listed("g"); ok != tc.listed {
				t.Fatalf("listed %v", ok)
			}
		})
	}

	t.Run("unknown group", func(t *testing.T) {
		h := newHarness(t, Config{})
		_, err := h.c.DeleteOffsets("nope", []TopicPartition{tp("t", 0)})
		wantErr(t, "DeleteOffsets", err, ErrGroupNotFound)
	})

	t.Run("subscriptions during a rebalance", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []Offset{off("t1", 0, 1), off("t2", 0, 1)}})
		h.c.Join(consumerReq("g", 0, "t2")) // generation 1 at once
		h.c.Join(consumerReq("g", 1, "t1"))
		errs, err := h.c.DeleteOffsets("g", []TopicPartition{tp("t1", 0), tp("t2", 0)})
		wantErr(t, "DeleteOffsets", err, nil)
		wantErrs(t, "DeleteOffsets", errs, ErrSubscribedToTopic, ErrSubscribedToTopic)
	})
}

func TestDeleteTopic(t *testing.T) {
	h := newHarness(t, Config{})
	h.c.Commit(CommitRequest{Group: "a", Generation: -1, Offsets: []Offset{off("t", 0, 1), off("t", 1, 1), off("u", 0, 1), off("tt", 0, 1)}})
	h.c.Commit(CommitRequest{Group: "c", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
	res := h.stable(memberReq("b", 0))
	h.c.Commit(CommitRequest{Group: "b", Generation: res[0].Generation, MemberID: res[0].MemberID, Offsets: []Offset{off("t", 3, 1)}})
	wantErr(t, "DeleteTopic", h.c.DeleteTopic("t"), nil)
	wantOffsets(t, "a", fetchAll(t, h, "a"), off("u", 0, 1), off("tt", 0, 1))
	wantOffsets(t, "a stored", h.store.get("a"), off("u", 0, 1), off("tt", 0, 1))
	wantOffsets(t, "b", fetchAll(t, h, "b"))
	wantOffsets(t, "b stored", h.store.get("b"))
	if _, ok := h.listed("b"); !ok {
		t.Fatal("group with members gone")
	}
	if _, ok := h.listed("c"); ok {
		t.Fatal("empty group without offsets still listed")
	}
	wantErr(t, "DeleteTopic of a topic without offsets", h.c.DeleteTopic("nothing"), nil)

	t.Run("store failure", func(t *testing.T) {
		h := newHarness(t, Config{})
		boom := errBoom("delete")
		h.c.Commit(CommitRequest{Group: "a", Generation: -1, Offsets: []Offset{off("t", 0, 1)}})
		h.store.set(func(s *memStore) { s.deleteErr = boom })
		wantErr(t, "DeleteTopic", h.c.DeleteTopic("t"), boom)
		if len(fetchAll(t, h, "a")) != 1 {
			t.Fatal("offsets gone though the store failed")
		}
	})
}

func TestRestartLoadsOffsets(t *testing.T) {
	store := newMemStore()
	long := epoch.Add(-30 * 24 * time.Hour)
	x := []Offset{
		{Topic: "t", Partition: 0, Offset: 42, LeaderEpoch: 7, Metadata: "meta", CommitTime: long},
		{Topic: "t", Partition: 1, Offset: 43, LeaderEpoch: -1, CommitTime: epoch.Add(-time.Minute)},
	}
	store.Commit("x", x)
	store.Commit("y", []Offset{{Topic: "u", Partition: 0, Offset: 1, LeaderEpoch: -1, CommitTime: long}})
	h := newHarnessWithStore(t, Config{OffsetsRetention: time.Hour, RetentionCheckInterval: 1000 * time.Hour}, store)

	wantOffsets(t, "x", fetchAll(t, h, "x"), x...)
	got, err := h.c.FetchOffsets("y", []TopicPartition{tp("u", 0)})
	wantErr(t, "FetchOffsets", err, nil)
	wantOffsets(t, "y", got, Offset{Topic: "u", Partition: 0, Offset: 1, LeaderEpoch: -1, CommitTime: long})
	l := h.c.ListGroups()
	if len(l) != 2 || l[0] != (Listing{Group: "x", State: Empty}) || l[1] != (Listing{Group: "y", State: Empty}) {
		t.Fatalf("listed %+v", l)
	}
	if d := h.describe("x"); d.State != Empty || d.Generation != 0 || len(d.Members) != 0 || d.Protocol != "" {
		t.Fatalf("described %+v", d)
	}
	// Members of before the restart are unknown.
	wantErr(t, "heartbeat", h.c.Heartbeat("x", "c0-before", "", 5), ErrUnknownMember)
	wantErr(t, "sync", recv(t, h.c.Sync(SyncRequest{Group: "x", MemberID: "c0-before", Generation: 5})).Err, ErrUnknownMember)
	wantErr(t, "join", recv(t, h.c.Join(rejoin(memberReq("x", 0), "c0-before"))).Err, ErrUnknownMember)
	errs, _ := h.c.Commit(CommitRequest{Group: "x", MemberID: "c0-before", Generation: 5, Offsets: []Offset{off("t", 0, 1)}})
	wantErrs(t, "commit", errs, ErrUnknownMember)
	// Loaded offsets count as committed no earlier than the load: an old
	// commit does not expire at once.
	if n := h.c.ExpireOffsets(); n != 0 {
		t.Fatalf("%d loaded offsets expired at once", n)
	}
	h.clock.Advance(time.Hour)
	if n := h.c.ExpireOffsets(); n != 3 {
		t.Fatalf("%d expired an hour after the load", n)
	}
	// A new member starts generation 1.
	if r := h.joinOK(h.c.Join(memberReq("x", 0))); r.Generation != 1 {
		t.Fatalf("answer %+v", r)
	}
}
