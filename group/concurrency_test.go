package group

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// await takes an answer, failing the test if none comes before ctx ends: a
// coordinator that never answers is deadlocked.
func await[T any](ctx context.Context, t *testing.T, what string, ch <-chan T) (T, bool) {
	select {
	case v := <-ch:
		return v, true
	case <-ctx.Done():
		t.Errorf("%s: no answer (deadlock?)", what)
		var zero T
		return zero, false
	}
}

// consumer plays one member with the real clock and short timeouts until
// rounds are done or the coordinator closes. Every answer is checked for
// consistency; errors of a busy group are expected and handled as a client
// would.
type consumer struct {
	t        *testing.T
	c        *Coordinator
	group    string
	n        int
	instance string
	progress chan<- struct{}
	syncs    *atomic.Int64
}

func (w *consumer) run(ctx context.Context, rounds int) {
	memberID := ""
	for round := 0; rounds == 0 || round < rounds; round++ {
		if ctx.Err() != nil {
			return
		}
		req := JoinRequest{
			Group: w.group, MemberID: memberID, InstanceID: w.instance, ClientID: fmt.Sprintf("w%d", w.n),
			ProtocolType: "consumer", Protocols: []Protocol{proto("range", consumerMeta("t"))},
			SessionTimeout: 30 * time.Millisecond, RebalanceTimeout: 20 * time.Millisecond,
			RequireKnownMemberID: w.n%2 == 0, SupportsSkipAssignment: true,
		}
		jr, ok := await(ctx, w.t, "JoinGroup", w.c.Join(req))
		if !ok {
			return
		}
		switch {
		case errors.Is(jr.Err, ErrCoordinatorNotAvailable):
			return
		case errors.Is(jr.Err, ErrMemberIDRequired):
			memberID = jr.MemberID
			continue
		case errors.Is(jr.Err, ErrUnknownMember), errors.Is(jr.Err, ErrFencedInstanceID):
			memberID = ""
			continue
		case jr.Err != nil:
			continue
		}
		memberID = jr.MemberID
		if jr.Generation <= 0 || jr.Leader == "" || jr.Protocol != "range" {
			w.t.Errorf("inconsistent JoinGroup answer %+v", jr)
		}
		var assign map[string][]byte
		if jr.Leader == memberID {
			assign = map[string][]byte{}
			for _, m := range jr.Members {
				assign[m.MemberID] = []byte(m.MemberID)
			}
		} else if jr.Members != nil {
			w.t.Errorf("follower got members: %+v", jr)
		}
		sr, ok := await(ctx, w.t, "SyncGroup", w.c.Sync(SyncRequest{Group: w.group, MemberID: memberID, InstanceID: w.instance,
			Generation: jr.Generation, Assignments: assign}))
		if !ok {
			return
		}
		if errors.Is(sr.Err, ErrCoordinatorNotAvailable) {
			return
		}
		if sr.Err == nil {
			// The leader assigned each member its own id; a static
			// leader's skipped assignment keeps the previous one.
			if w.instance == "" && !jr.SkipAssignment && len(sr.Assignment) > 0 && !bytes.Equal(sr.Assignment, []byte(memberID)) {
				w.t.Errorf("member %s got assignment %q", memberID, sr.Assignment)
			}
			w.syncs.Add(1)
			select {
			case w.progress <- struct{}{}:
			default:
			}
		}
		for k := range 3 {
			err := w.c.Heartbeat(w.group, memberID, w.instance, jr.Generation)
			if errors.Is(err, ErrCoordinatorNotAvailable) {
				return
			}
			errs, wait := w.c.Commit(CommitRequest{Group: w.group, Generation: jr.Generation, MemberID: memberID, InstanceID: w.instance,
				Offsets: []Offset{off("t", int32(w.n), int64(round*3+k))}})
			if len(errs) != 1 {
				w.t.Errorf("%d commit errors", len(errs))
			}
			if err := wait(); err != nil {
				w.t.Errorf("commit wait: %v", err)
			}
		}
		if round%3 == 2 {
			w.c.Leave(w.group, []Leaving{{MemberID: memberID, InstanceID: w.instance}})
			memberID = ""
		}
	}
}

// admin pokes at every group with the admin APIs until ctx ends.
func admin(ctx context.Context, c *Coordinator, groups []string, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		g := groups[i%len(groups)]
		c.ListGroups()
		c.Describe(g)
		c.FetchOffsets(g, nil)
		c.ExpireOffsets()
		c.Commit(CommitRequest{Group: g, Generation: -1, Offsets: []Offset{off("admin", 0, int64(i))}})
		c.DeleteOffsets(g, []TopicPartition{tp("admin", 0), tp("t", 0)})
		if i%10 == 0 {
			c.DeleteGroups([]string{g})
			c.DeleteTopic("admin")
		}
	}
}

func newRaceCoordinator(t *testing.T) *Coordinator {
	c, err := New(Config{
		MinSessionTimeout:      time.Millisecond,
		InitialRebalanceDelay:  time.Millisecond,
		OffsetsRetention:       5 * time.Millisecond,
		RetentionCheckInterval: time.Millisecond,
		Logger:                 discardLogger(),
	}, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Many members joining, syncing, heartbeating, committing and leaving on
// the system clock with short timeouts, while admin calls run: no data
// race (under -race), no deadlock, no answer that contradicts itself.
func TestConcurrentMembers(t *testing.T) {
	for _, tc := range []struct {
		name        string
		closeEarly  bool
		rounds      int
		wantAnswers int64
	}{
		{"to completion", false, 30, 1},
		{"closed while busy", true, 0, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c := newRaceCoordinator(t)
			defer c.Close()
			groups := []string{"a", "b", "c"}
			progress := make(chan struct{}, 1)
			var syncs atomic.Int64
			var wg sync.WaitGroup
			for n := range 12 {
				w := &consumer{t: t, c: c, group: groups[n%len(groups)], n: n, progress: progress, syncs: &syncs}
				if n%4 == 1 {
					w.instance = fmt.Sprintf("static-%d", n)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					w.run(ctx, tc.rounds)
				}()
			}
			stopAdmin := make(chan struct{})
			adminDone := make(chan struct{})
			go func() {
				defer close(adminDone)
				admin(ctx, c, groups, stopAdmin)
			}()
			if tc.closeEarly {
				for got := int64(0); got < tc.wantAnswers; got = syncs.Load() {
					if _, ok := await(ctx, t, "progress", (<-chan struct{})(progress)); !ok {
						break
					}
				}
				c.Close()
			}
			done := make(chan struct{})
			go func() {
				wg.Wait()
				close(done)
			}()
			await(ctx, t, "members to finish", (<-chan struct{})(done))
			close(stopAdmin)
			await(ctx, t, "admin to finish", (<-chan struct{})(adminDone))
			t.Logf("%d successful SyncGroups", syncs.Load())
			if n := syncs.Load(); n < tc.wantAnswers {
				t.Errorf("%d successful SyncGroups", n)
			}
			c.Close()
			for _, g := range groups {
				if _, err := c.FetchOffsets(g, nil); !errors.Is(err, ErrCoordinatorNotAvailable) {
					t.Errorf("FetchOffsets after Close: %v", err)
				}
			}
		})
	}
}
