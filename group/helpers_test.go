package group

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"
)

// epoch is where every manual clock starts.
var epoch = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// manualClock is a Clock that moves only when told to. Advance runs the
// callbacks that fall due, one at a time in deadline order (ties in the
// order they were armed), synchronously and without holding the clock's
// lock, so a callback may take the coordinator's lock and arm new timers;
// those fire within the same Advance if they are due by its end.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*manualTimer // armed and not yet fired or stopped
	// ignoreStop is fault injection: Stop reports false and the call still
	// happens, as with time.AfterFunc when the callback has already started
	// and is blocked on the coordinator's lock.
	ignoreStop bool
}

type manualTimer struct {
	clock *manualClock
	when  time.Time
	seq   uint64
	f     func()
	done  bool // fired or stopped
}

func newManualClock() *manualClock { return &manualClock{now: epoch} }

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &manualTimer{clock: c, when: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *manualTimer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.done || c.ignoreStop {
		return false
	}
	t.done = true
	c.removeLocked(t)
	return true
}

func (c *manualClock) removeLocked(t *manualTimer) {
	for i, o := range c.timers {
		if o == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return
		}
	}
}

// nextDueLocked returns the earliest timer due by target, or nil.
func (c *manualClock) nextDueLocked(target time.Time) *manualTimer {
	var next *manualTimer
	for _, t := range c.timers {
		if t.when.After(target) {
			continue
		}
		if next == nil || t.when.Before(next.when) || t.when.Equal(next.when) && t.seq < next.seq {
			next = t
		}
	}
	return next
}

// Advance moves the clock d ahead, running every callback due on the way
// at its own deadline.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		t := c.nextDueLocked(target)
		if t == nil {
			c.now = target
			c.mu.Unlock()
			return
		}
		if t.when.After(c.now) {
			c.now = t.when
		}
		t.done = true
		c.removeLocked(t)
		c.mu.Unlock()
		t.f()
	}
}

// AdvanceTo moves the clock to epoch+at.
func (c *manualClock) AdvanceTo(at time.Duration) {
	d := epoch.Add(at).Sub(c.Now())
	if d < 0 {
		panic(fmt.Sprintf("manualClock: AdvanceTo(%v) is in the past", at))
	}
	c.Advance(d)
}

// Armed is how many timers are armed.
func (c *manualClock) Armed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func (c *manualClock) setIgnoreStop(v bool) {
	c.mu.Lock()
	c.ignoreStop = v
	c.mu.Unlock()
}

// memStore is an in-memory OffsetStore honouring the contract: commits are
// applied at once, in call order. Each operation can be made to fail.
type memStore struct {
	mu      sync.Mutex
	groups  map[string]map[TopicPartition]Offset
	commits int // Commit calls

	// commitErr fails a commit's wait (written, not durable);
	// commitRefused fails the commit itself (nothing written).
	commitErr, commitRefused, deleteErr, deleteGroupErr, loadErr error
}

func newMemStore() *memStore { return &memStore{groups: map[string]map[TopicPartition]Offset{}} }

func (s *memStore) Commit(g string, offsets []Offset) (func() error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits++
	if err := s.commitErr; err != nil {
		return func() error { return err }, nil
	}
	if err := s.commitRefused; err != nil {
		return nil, err
	}
	m := s.groups[g]
	if m == nil {
		m = map[TopicPartition]Offset{}
		s.groups[g] = m
	}
	for _, o := range offsets {
		m[TopicPartition{o.Topic, o.Partition}] = o
	}
	return noWait, nil
}

func (s *memStore) Delete(g string, partitions []TopicPartition) (func() error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleteErr != nil {
		return nil, s.deleteErr
	}
	for _, tp := range partitions {
		delete(s.groups[g], tp)
	}
	if len(s.groups[g]) == 0 {
		delete(s.groups, g)
	}
	return noWait, nil
}

func (s *memStore) DeleteGroup(g string, _ []TopicPartition) (func() error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleteGroupErr != nil {
		return nil, s.deleteGroupErr
	}
	delete(s.groups, g)
	return noWait, nil
}

func (s *memStore) Load() (map[string][]Offset, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadErr != nil {
		return nil, s.loadErr
	}
	out := map[string][]Offset{}
	for g, m := range s.groups {
		for _, o := range m {
			out[g] = append(out[g], o)
		}
		sortOffsets(out[g])
	}
	return out, nil
}

// get returns a copy of group's stored offsets.
func (s *memStore) get(g string) map[TopicPartition]Offset {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[TopicPartition]Offset{}
	for tp, o := range s.groups[g] {
		out[tp] = o
	}
	return out
}

func (s *memStore) set(f func(s *memStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// brokenStore fails every operation.
type brokenStore struct{ err error }

func (b brokenStore) Commit(string, []Offset) (func() error, error) { return nil, b.err }
func (b brokenStore) Delete(string, []TopicPartition) (func() error, error) {
	return nil, b.err
}
func (b brokenStore) DeleteGroup(string, []TopicPartition) (func() error, error) {
	return nil, b.err
}
func (b brokenStore) Load() (map[string][]Offset, error) { return nil, b.err }
func sortOffsets(o []Offset)                             { sort.Slice(o, func(i, j int) bool { return lessOffset(o[i], o[j]) }) }
func lessOffset(a, b Offset) bool {
	return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
}
func discardLogger() *slog.Logger                     { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func errBoom(what string) error                       { return errors.New("injected failure: " + what) }
func tp(topic string, partition int32) TopicPartition { return TopicPartition{topic, partition} }
func off(topic string, partition int32, offset int64) Offset {
	return Offset{Topic: topic, Partition: partition, Offset: offset, LeaderEpoch: -1}
}
func offMeta(topic string, partition int32, meta string) Offset {
	o := off(topic, partition, 1)
	o.Metadata = meta
	return o
}
func assignment(memberID string) []byte       { return []byte("assign-" + memberID) }
func memberMeta(i int) []byte                 { return []byte(fmt.Sprintf("meta-%d", i)) }
func proto(name string, meta []byte) Protocol { return Protocol{Name: name, Metadata: meta} }
func protos(meta []byte, names ...string) (ps []Protocol) {
	for _, n := range names {
		ps = append(ps, proto(n, meta))
	}
	return ps
}

const (
	sessionTimeout   = 10 * time.Second
	rebalanceTimeout = 30 * time.Second
)

// harness is a coordinator on a manual clock and an in-memory store.
type harness struct {
	t     *testing.T
	clock *manualClock
	store *memStore
	c     *Coordinator
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	return newHarnessWithStore(t, cfg, newMemStore())
}

func newHarnessWithStore(t *testing.T, cfg Config, store *memStore) *harness {
	t.Helper()
	h := &harness{t: t, clock: newManualClock(), store: store}
	cfg.Clock = h.clock
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	c, err := New(cfg, store)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.c = c
	t.Cleanup(c.Close)
	return h
}

// memberReq is the JoinGroup of a new dynamic member number i of group g,
// supporting "range" with metadata meta-i.
func memberReq(g string, i int) JoinRequest {
	return JoinRequest{
		Group: g, ClientID: fmt.Sprintf("c%d", i), ClientHost: "/10.0.0.1", ProtocolType: "consumer",
		Protocols:      []Protocol{proto("range", memberMeta(i))},
		SessionTimeout: sessionTimeout, RebalanceTimeout: rebalanceTimeout,
	}
}

func staticReq(g string, i int) JoinRequest {
	r := memberReq(g, i)
	r.InstanceID = fmt.Sprintf("i%d", i)
	return r
}

func rejoin(r JoinRequest, memberID string) JoinRequest {
	r.MemberID = memberID
	return r
}

// recv takes the answer that must already be on ch.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	default:
		t.Fatalf("no answer yet")
		panic("unreachable")
	}
}

// none checks that ch has no answer yet.
func none[T any](t *testing.T, ch <-chan T) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected answer: %+v", v)
	default:
	}
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if want == nil && got != nil || want != nil && !errors.Is(got, want) {
		t.Fatalf("%s: error %v, want %v", what, got, want)
	}
}

func wantErrs(t *testing.T, what string, got []error, want ...error) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d errors %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if want[i] == nil && got[i] != nil || want[i] != nil && !errors.Is(got[i], want[i]) {
			t.Fatalf("%s: error %d is %v, want %v (all: %v)", what, i, got[i], want[i], got)
		}
	}
}

// joinOK takes the answer on ch, which must be a success.
func (h *harness) joinOK(ch <-chan JoinResult) JoinResult {
	h.t.Helper()
	r := recv(h.t, ch)
	if r.Err != nil {
		h.t.Fatalf("JoinGroup: %v", r.Err)
	}
	return r
}

// form makes one generation of the members of reqs, in that order, with
// no initial rebalance delay: the first member's join completes at once,
// the others join, and the first rejoins. The leader is the first member.
// It returns the answers in the order of reqs.
func (h *harness) form(reqs ...JoinRequest) []JoinResult {
	h.t.Helper()
	first := h.joinOK(h.c.Join(reqs[0]))
	if len(reqs) == 1 {
		return []JoinResult{first}
	}
	chans := make([]<-chan JoinResult, len(reqs))
	for i := 1; i < len(reqs); i++ {
		chans[i] = h.c.Join(reqs[i])
		none(h.t, chans[i])
	}
	chans[0] = h.c.Join(rejoin(reqs[0], first.MemberID))
	out := make([]JoinResult, len(reqs))
	for i, ch := range chans {
		out[i] = h.joinOK(ch)
	}
	return out
}

// syncAll sends every member's SyncGroup, the leader's last with
// assignment(id) for every member, and checks each member gets its own.
func (h *harness) syncAll(g string, res []JoinResult, instanceIDs ...string) {
	h.t.Helper()
	chans := map[string]<-chan SyncResult{}
	var leader JoinResult
	assignments := map[string][]byte{}
	for i, r := range res {
		assignments[r.MemberID] = assignment(r.MemberID)
		inst := ""
		if i < len(instanceIDs) {
			inst = instanceIDs[i]
		}
		if r.MemberID == r.Leader {
			leader = r
			leader.Members = nil
			continue
		}
		ch := h.c.Sync(SyncRequest{Group: g, MemberID: r.MemberID, InstanceID: inst, Generation: r.Generation})
		none(h.t, ch)
		chans[r.MemberID] = ch
	}
	if leader.MemberID == "" {
		h.t.Fatalf("no leader among %+v", res)
	}
	chans[leader.MemberID] = h.c.Sync(SyncRequest{Group: g, MemberID: leader.MemberID, Generation: leader.Generation,
		ProtocolType: leader.ProtocolType, Protocol: leader.Protocol, Assignments: assignments})
	for id, ch := range chans {
		s := recv(h.t, ch)
		if s.Err != nil {
			h.t.Fatalf("SyncGroup of %s: %v", id, s.Err)
		}
		if string(s.Assignment) != string(assignment(id)) {
			h.t.Fatalf("SyncGroup of %s: assignment %q, want %q", id, s.Assignment, assignment(id))
		}
	}
	if st := h.state(g); st != Stable {
		h.t.Fatalf("after SyncGroup the group is %v, want Stable", st)
	}
}

// stable forms a generation of reqs and syncs it.
func (h *harness) stable(reqs ...JoinRequest) []JoinResult {
	h.t.Helper()
	res := h.form(reqs...)
	var inst []string
	for _, r := range reqs {
		inst = append(inst, r.InstanceID)
	}
	h.syncAll(reqs[0].Group, res, inst...)
	return res
}

func (h *harness) describe(g string) Description {
	h.t.Helper()
	d, ok := h.c.Describe(g)
	if !ok {
		h.t.Fatalf("group %q unknown", g)
	}
	return d
}

func (h *harness) state(g string) State {
	d, ok := h.c.Describe(g)
	if !ok {
		return Dead
	}
	return d.State
}

// memberIDs are the group's members in join order.
func (h *harness) memberIDs(g string) []string {
	var ids []string
	d, _ := h.c.Describe(g)
	for _, m := range d.Members {
		ids = append(ids, m.MemberID)
	}
	return ids
}

func (h *harness) listed(g string) (Listing, bool) {
	for _, l := range h.c.ListGroups() {
		if l.Group == g {
			return l, true
		}
	}
	return Listing{}, false
}

func (h *harness) heartbeat(g string, r JoinResult) error {
	return h.c.Heartbeat(g, r.MemberID, "", r.Generation)
}

func ids(res ...JoinResult) []string {
	var out []string
	for _, r := range res {
		out = append(out, r.MemberID)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
