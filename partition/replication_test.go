package partition

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

// Replication is simulated without a network: a leader Manager and
// follower Managers in their own folders, the follower's fetch being
// FollowerFetched on the leader, ReadReplica there, and AppendReplica with
// the bytes on the follower. The leader's node id is 1, followers 2 and 3.

var (
	fsyncNever  = segment.FsyncPolicy{Mode: segment.FsyncNever}
	fsyncAlways = segment.FsyncPolicy{Mode: segment.FsyncAlways}
)

// waitLong bounds a wait that should end at once; reaching it is a failure.
const waitLong = 10 * time.Second

func newManager(t *testing.T, dir string, node int32, fsync segment.FsyncPolicy) *Manager {
	t.Helper()
	m, err := OpenManager(Options{DataDir: dir, Fsync: fsync, NodeID: node, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// testTopic is topic "t" with one partition, small segments and configs.
func testTopic(configs map[string]string) cluster.Topic {
	c := map[string]string{"segment.bytes": "1048576"}
	maps.Copy(c, configs)
	return cluster.Topic{Name: "t", ID: cluster.TopicID{1, 2, 3, 4}, Partitions: 1, Configs: c}
}

func leaderRole(self, epoch int32, isr []int32, replicas ...int32) Role {
	return Role{Leader: true, LeaderID: self, Epoch: epoch, ISR: isr, Replicas: replicas}
}

func followerRole(leader, epoch int32, replicas ...int32) Role {
	return Role{LeaderID: leader, Epoch: epoch, Replicas: replicas}
}

func openReplica(t *testing.T, m *Manager, topic cluster.Topic, r Role) *Partition {
	t.Helper()
	p, err := m.Open(topic, 0, r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// replicaSet is one partition's leader (node 1) and its followers.
type replicaSet struct {
	leader    *Partition
	followers map[int32]*Partition
}

// newReplicaSet opens the leader at epoch 1 with isr and a follower for
// every other replica.
func newReplicaSet(t *testing.T, configs map[string]string, isr []int32, replicas ...int32) *replicaSet {
	t.Helper()
	topic := testTopic(configs)
	rs := &replicaSet{followers: map[int32]*Partition{}}
	for _, id := range replicas {
		m := newManager(t, t.TempDir(), id, fsyncNever)
		if id == 1 {
			rs.leader = openReplica(t, m, topic, leaderRole(1, 1, isr, replicas...))
		} else {
			rs.followers[id] = openReplica(t, m, topic, followerRole(1, 1, replicas...))
		}
	}
	return rs
}

func (rs *replicaSet) fetch(t *testing.T, id int32) int {
	return fetchOnce(t, rs.leader, rs.followers[id], id, -1)
}
func (rs *replicaSet) catchUp(t *testing.T, id int32) {
	catchUp(t, rs.leader, rs.followers[id], id, -1)
}
func (rs *replicaSet) role() Role { return rs.leader.Role() }
func (rs *replicaSet) hw() int64  { return rs.leader.HighWatermark() }

// produce appends n records to the leader with acks=1.
func (rs *replicaSet) produce(t *testing.T, n int) { produce(t, rs.leader, plain(n), 1) }

// plain is a batch of n records from a producer without idempotence.
func plain(n int) []byte {
	return testbatch.Make(testbatch.Spec{Timestamp: 1000, Values: testbatch.Values(n, 16, byte(n))})
}

// idempotent is a batch of n records from producer pid.
func idempotent(pid int64, epoch int16, seq int32, n int) []byte {
	return testbatch.Make(testbatch.Spec{Timestamp: 1000, Idempotent: true, ProducerID: pid, ProducerEpoch: epoch,
		BaseSequence: seq, Values: testbatch.Values(n, 16, byte(seq))})
}

// transactional is a transactional batch of n records from producer pid.
func transactional(pid int64, epoch int16, seq int32, n int) []byte {
	return testbatch.Make(testbatch.Spec{Timestamp: 1000, Idempotent: true, ProducerID: pid, ProducerEpoch: epoch,
		BaseSequence: seq, Attributes: segment.AttrTransactional, Values: testbatch.Values(n, 16, byte(seq))})
}

// writeMarker writes a commit or abort marker for producer pid.
func writeMarker(t *testing.T, p *Partition, pid int64, epoch int16, coordinatorEpoch int32, commit bool) AppendResult {
	t.Helper()
	r, err := p.WriteMarker(pid, epoch, coordinatorEpoch, commit)
	if err != nil {
		t.Fatalf("marker for producer %d: %v", pid, err)
	}
	return r
}

// replicaBatch is a batch as a leader stored it: offsets from base, leader
// epoch stamped.
func replicaBatch(base int64, epoch int32, n int, seed byte) []byte {
	b := testbatch.Make(testbatch.Spec{BaseOffset: base, Timestamp: 1000, Values: testbatch.Values(n, 16, seed)})
	segment.SetPartitionLeaderEpoch(b, epoch)
	return b
}

func idempotentReplicaBatch(base int64, epoch int32, pid int64, seq int32, n int) []byte {
	b := testbatch.Make(testbatch.Spec{BaseOffset: base, Timestamp: 1000, Idempotent: true, ProducerID: pid,
		BaseSequence: seq, Values: testbatch.Values(n, 16, byte(seq))})
	segment.SetPartitionLeaderEpoch(b, epoch)
	return b
}

func produce(t *testing.T, p *Partition, batch []byte, acks int16) AppendResult {
	t.Helper()
	r, err := p.Append(batch, acks)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return r
}

func appendReplica(t *testing.T, p *Partition, batches []byte) int64 {
	t.Helper()
	leo, err := p.AppendReplica(batches)
	if err != nil {
		t.Fatalf("AppendReplica: %v", err)
	}
	return leo
}

// readReplica returns the bytes of p.ReadReplica(from, maxBytes).
func readReplica(t *testing.T, p *Partition, from int64, maxBytes int) []byte {
	t.Helper()
	r, err := p.ReadReplica(from, maxBytes)
	if err != nil {
		t.Fatalf("ReadReplica(%d): %v", from, err)
	}
	defer r.Release()
	if r.Length == 0 {
		return nil
	}
	b := make([]byte, r.Length)
	if _, err := r.File().ReadAt(b, r.Position); err != nil {
		t.Fatalf("reading region at %d: %v", r.Position, err)
	}
	return b
}

// headers parses whole batches, ignoring a trailing partial one.
func headers(t *testing.T, b []byte) []segment.Header {
	t.Helper()
	var hs []segment.Header
	for len(b) >= segment.HeaderSize {
		h, err := segment.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if h.Size() > len(b) {
			break
		}
		hs = append(hs, h)
		b = b[h.Size():]
	}
	return hs
}

// logBytes returns every whole batch p holds, as stored.
func logBytes(t *testing.T, p *Partition) []byte {
	t.Helper()
	var out []byte
	for off := p.LogStartOffset(); off < p.LogEndOffset(); {
		b := readReplica(t, p, off, 1<<20)
		hs := headers(t, b)
		if len(hs) == 0 {
			t.Fatalf("no whole batch at %d", off)
		}
		n := 0
		for _, h := range hs {
			n += h.Size()
		}
		out = append(out, b[:n]...)
		off = hs[len(hs)-1].NextOffset()
	}
	return out
}

// fetchOnce is one fetch of follower id from leader at epoch (-1: any):
// the leader learns the fetch offset, the follower appends what it got and
// takes the leader's high watermark. It returns the bytes fetched.
func fetchOnce(t *testing.T, leader, follower *Partition, id, epoch int32) int {
	t.Helper()
	off := follower.LogEndOffset()
	if err := leader.FollowerFetched(id, off, epoch); err != nil {
		t.Fatalf("FollowerFetched(%d, %d): %v", id, off, err)
	}
	b := readReplica(t, leader, off, 1<<20)
	if len(b) > 0 {
		appendReplica(t, follower, b)
	}
	follower.SetFollowerHW(leader.HighWatermark())
	return len(b)
}

// catchUp fetches until the follower holds the leader's log and has told
// the leader so.
func catchUp(t *testing.T, leader, follower *Partition, id, epoch int32) {
	t.Helper()
	for range 100 {
		if fetchOnce(t, leader, follower, id, epoch) == 0 {
			return
		}
	}
	t.Fatal("follower did not catch up in 100 fetches")
}

// ageFollower moves what the leader knows of follower id's fetches d into
// the past, as if the lag window had passed without waiting for it.
func ageFollower(t *testing.T, p *Partition, id int32, d time.Duration) {
	t.Helper()
	p.rep.Lock()
	defer p.rep.Unlock()
	f := p.rep.followers[id]
	if f == nil {
		t.Fatalf("leader knows no follower %d", id)
	}
	f.caughtUp = f.caughtUp.Add(-d)
	f.lastFetch = f.lastFetch.Add(-d)
}

// setFollowerTimes sets when follower id last caught up and last fetched.
func setFollowerTimes(p *Partition, id int32, caughtUpAgo, lastFetchAgo time.Duration) {
	now := time.Now()
	p.rep.Lock()
	f := p.rep.followers[id]
	f.caughtUp, f.lastFetch = now.Add(-caughtUpAgo), now.Add(-lastFetchAgo)
	p.rep.Unlock()
}

// waitAsync runs WaitReplicated in a goroutine.
func waitAsync(ctx context.Context, p *Partition, next int64, epoch int32) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- p.WaitReplicated(ctx, next, epoch) }()
	return ch
}

func result(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitLong):
		t.Fatal("WaitReplicated did not return")
		return nil
	}
}

func notReturned(t *testing.T, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("WaitReplicated returned early: %v", err)
	default:
	}
}

// parked waits until n waiters are registered on p and gives them a moment
// to block.
func parked(t *testing.T, p *Partition, n int) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		p.waitMu.Lock()
		got := len(p.waiters)
		p.waitMu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters registered, want %d", got, n)
		}
		time.Sleep(100 * time.Microsecond)
	}
	time.Sleep(2 * time.Millisecond)
}

// shrinkISR runs the leader's own ISR check and applies what it proposes,
// as package replica does when the metadata accepts it.
func shrinkISR(t *testing.T, p *Partition, maxLag time.Duration, want []int32) Role {
	t.Helper()
	isr, r, ok := p.ISRChange(maxLag)
	if !ok || !slices.Equal(isr, want) {
		t.Fatalf("ISRChange = %v, %v; want %v", isr, ok, want)
	}
	p.BeginISRChange(isr)
	p.EndISRChange(r, isr, true)
	return p.Role()
}

func TestRole(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncNever)
	isr := []int32{1, 2}
	r := leaderRole(1, 3, isr, 1, 2, 3)
	r.PartitionEpoch = 5
	p := openReplica(t, m, testTopic(nil), r)

	isr[1] = 9 // the partition keeps its own copy
	got := p.Role()
	if !got.Leader || got.LeaderID != 1 || got.Epoch != 3 || got.PartitionEpoch != 5 ||
		!slices.Equal(got.ISR, []int32{1, 2}) || !slices.Equal(got.Replicas, []int32{1, 2, 3}) {
		t.Fatalf("Role() = %+v", got)
	}
	got.ISR[0], got.Replicas[0] = 7, 7 // and hands out copies
	if got := p.Role(); got.ISR[0] != 1 || got.Replicas[0] != 1 {
		t.Fatalf("Role() shares its slices: %+v", got)
	}

	// An older metadata view of the same leader epoch is ignored.
	old := leaderRole(1, 3, []int32{1}, 1, 2, 3)
	old.PartitionEpoch = 4
	if err := p.SetRole(old); err != nil {
		t.Fatal(err)
	}
	if got := p.Role(); got.PartitionEpoch != 5 || !slices.Equal(got.ISR, []int32{1, 2}) {
		t.Fatalf("older partition epoch applied: %+v", got)
	}
	newer := leaderRole(1, 3, []int32{1, 2, 3}, 1, 2, 3)
	newer.PartitionEpoch = 6
	if err := p.SetRole(newer); err != nil {
		t.Fatal(err)
	}
	if got := p.Role(); got.PartitionEpoch != 6 || !slices.Equal(got.ISR, []int32{1, 2, 3}) {
		t.Fatalf("newer partition epoch not applied: %+v", got)
	}
	// A new leader epoch is applied whatever its partition epoch.
	if err := p.SetRole(followerRole(2, 4, 1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	if got := p.Role(); got.Leader || got.LeaderID != 2 || got.Epoch != 4 {
		t.Fatalf("new leader epoch not applied: %+v", got)
	}
	if got := p.LatestEpoch(); got != 3 {
		t.Fatalf("LatestEpoch = %d, want 3: a follower's epoch is not this log's until it holds a batch of it", got)
	}
	if err := p.SetRole(leaderRole(1, 6, []int32{1}, 1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	if got := p.LatestEpoch(); got != 6 {
		t.Fatalf("LatestEpoch = %d, want 6", got)
	}
	// Epochs that appended nothing are not written; the first batch of
	// one writes the history before it reaches the log.
	if _, err := os.Stat(filepath.Join(p.log.Dir(), epochsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("history written with no batch appended: %v", err)
	}
	if _, err := p.Append(plain(2), 1); err != nil {
		t.Fatal(err)
	}
	if got := readEpochsFile(t, p.log.Dir()); !slices.Equal(got, []EpochEntry{{3, 0}, {6, 0}}) {
		t.Fatalf("history on disk: %v", got)
	}
}

func TestCheckLeader(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncNever)
	p := openReplica(t, m, testTopic(nil), leaderRole(1, 3, []int32{1}, 1, 2))
	tests := []struct {
		role  Role
		epoch int32
		want  error
	}{
		{leaderRole(1, 3, []int32{1}, 1, 2), -1, nil},
		{leaderRole(1, 3, []int32{1}, 1, 2), 3, nil},
		{leaderRole(1, 3, []int32{1}, 1, 2), 2, ErrFencedEpoch},
		{leaderRole(1, 3, []int32{1}, 1, 2), 4, ErrUnknownEpoch},
		{followerRole(2, 4, 1, 2), -1, ErrNotLeader},
		{followerRole(2, 4, 1, 2), 4, ErrNotLeader},
		{followerRole(-1, 5, 1, 2), -1, ErrLeaderNotAvailable},
	}
	for _, tt := range tests {
		if err := p.SetRole(tt.role); err != nil {
			t.Fatal(err)
		}
		err := p.CheckLeader(tt.epoch)
		if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("role %+v, CheckLeader(%d) = %v, want %v", tt.role, tt.epoch, err, tt.want)
		}
	}
}

func TestAppendRefusedOnFollower(t *testing.T) {
	m := newManager(t, t.TempDir(), 2, fsyncNever)
	p := openReplica(t, m, testTopic(nil), followerRole(1, 1, 1, 2))
	for _, acks := range []int16{0, 1, -1} {
		if _, err := p.Append(plain(3), acks); !errors.Is(err, ErrNotLeader) {
			t.Errorf("acks=%d: Append on a follower: %v, want ErrNotLeader", acks, err)
		}
	}
	if _, err := p.Append(idempotent(5, 0, 0, 3), 1); !errors.Is(err, ErrNotLeader) {
		t.Errorf("idempotent Append on a follower: %v, want ErrNotLeader", err)
	}
	if p.LogEndOffset() != 0 {
		t.Fatalf("a refused append wrote: log end %d", p.LogEndOffset())
	}
	if err := p.FollowerFetched(3, 0, -1); !errors.Is(err, ErrNotLeader) {
		t.Errorf("FollowerFetched on a follower: %v, want ErrNotLeader", err)
	}
}

// TestAppendWithoutLeader: while no broker leads the partition, a produce
// gets LEADER_NOT_AVAILABLE, as CheckLeader answers.
func TestAppendWithoutLeader(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncNever)
	p := openReplica(t, m, testTopic(nil), leaderRole(1, 1, []int32{1}, 1, 2))
	if err := p.SetRole(Role{LeaderID: -1, Epoch: 2, Replicas: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := p.CheckLeader(-1); !errors.Is(err, ErrLeaderNotAvailable) {
		t.Fatalf("CheckLeader: %v, want ErrLeaderNotAvailable", err)
	}
	if _, err := p.Append(plain(1), 1); !errors.Is(err, ErrLeaderNotAvailable) {
		t.Errorf("Append without a leader: %v, want ErrLeaderNotAvailable", err)
	}
	if p.LogEndOffset() != 0 {
		t.Fatalf("a refused append wrote: log end %d", p.LogEndOffset())
	}
}

func TestAppendMinInsyncReplicas(t *testing.T) {
	tests := []struct {
		isr  []int32
		acks int16
		want error
	}{
		{[]int32{1}, -1, ErrNotEnoughReplicas},
		{[]int32{1}, 1, nil},
		{[]int32{1}, 0, nil},
		{[]int32{1, 3}, -1, nil},
		{[]int32{1, 2, 3}, -1, nil},
	}
	for _, tt := range tests {
		m := newManager(t, t.TempDir(), 1, fsyncNever)
		p := openReplica(t, m, testTopic(map[string]string{"min.insync.replicas": "2"}), leaderRole(1, 1, tt.isr, 1, 2, 3))
		if p.MinInsyncReplicas() != 2 {
			t.Fatalf("MinInsyncReplicas = %d, want 2", p.MinInsyncReplicas())
		}
		_, err := p.Append(idempotent(8, 0, 0, 4), tt.acks)
		if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("ISR %v acks=%d: %v, want %v", tt.isr, tt.acks, err, tt.want)
		}
		if err == nil {
			continue
		}
		if p.LogEndOffset() != 0 {
			t.Errorf("ISR %v acks=%d: refused batch written, log end %d", tt.isr, tt.acks, p.LogEndOffset())
		}
		// Nothing of the refused batch was remembered: once the ISR is
		// back, the retry is appended, not taken for a duplicate.
		r := leaderRole(1, 1, []int32{1, 2}, 1, 2, 3)
		r.PartitionEpoch = 1
		if err := p.SetRole(r); err != nil {
			t.Fatal(err)
		}
		if res := produce(t, p, idempotent(8, 0, 0, 4), -1); res.Duplicate || res.BaseOffset != 0 || res.LastOffset != 3 {
			t.Errorf("retry after the ISR grew: %+v", res)
		}
	}
}

func TestAppendStampsLeaderEpoch(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncNever)
	p := openReplica(t, m, testTopic(nil), leaderRole(1, 7, []int32{1}, 1))
	b := plain(3)
	segment.SetPartitionLeaderEpoch(b, 99) // whatever the producer sent
	if res := produce(t, p, b, 1); res.Epoch != 7 || res.BaseOffset != 0 || res.LastOffset != 2 {
		t.Fatalf("first append: %+v", res)
	}
	if err := p.SetRole(leaderRole(1, 9, []int32{1}, 1)); err != nil {
		t.Fatal(err)
	}
	if res := produce(t, p, idempotent(1, 0, 0, 2), 1); res.Epoch != 9 || res.BaseOffset != 3 {
		t.Fatalf("second append: %+v", res)
	}
	hs := headers(t, logBytes(t, p))
	if len(hs) != 2 || hs[0].PartitionLeaderEpoch != 7 || hs[1].PartitionLeaderEpoch != 9 ||
		hs[0].BaseOffset != 0 || hs[1].BaseOffset != 3 {
		t.Fatalf("stored headers: %+v", hs)
	}
	if want := []EpochEntry{{7, 0}, {9, 3}}; !slices.Equal(p.epochs.entries, want) {
		t.Fatalf("history %v, want %v", p.epochs.entries, want)
	}
	for _, tt := range []struct {
		epoch, wantEpoch int32
		wantEnd          int64
	}{{6, 6, 0}, {7, 7, 3}, {8, 7, 3}, {9, 9, 5}, {10, UndefinedEpoch, UndefinedEpoch}} {
		if e, end := p.EndOffsetForEpoch(tt.epoch); e != tt.wantEpoch || end != tt.wantEnd {
			t.Errorf("EndOffsetForEpoch(%d) = (%d, %d), want (%d, %d)", tt.epoch, e, end, tt.wantEpoch, tt.wantEnd)
		}
	}
}

// TestHighWatermark: the high watermark is the lowest log end among the
// ISR, held while an in-sync follower has not fetched in this epoch; a
// replica outside the ISR does not hold it; consumers read below it only.
func TestHighWatermark(t *testing.T) {
	rs := newReplicaSet(t, nil, []int32{1, 2, 3}, 1, 2, 3)
	rs.produce(t, 10)
	if rs.hw() != 0 {
		t.Fatalf("HW %d before any follower fetched, want 0", rs.hw())
	}
	if r, err := rs.leader.Read(0, 1<<20); err != nil || r.Length != 0 {
		t.Fatalf("consumer read past the HW: %+v %v", r, err)
	} else {
		r.Release()
	}
	rs.catchUp(t, 2)
	if rs.hw() != 0 {
		t.Fatalf("HW %d while follower 3 has not fetched, want 0", rs.hw())
	}
	rs.fetch(t, 3) // fetches from 0: holds nothing yet
	if rs.hw() != 0 {
		t.Fatalf("HW %d after follower 3 fetched from 0, want 0", rs.hw())
	}
	rs.catchUp(t, 3)
	if rs.hw() != 10 {
		t.Fatalf("HW %d after both caught up, want 10", rs.hw())
	}
	r, err := rs.leader.Read(0, 1<<20)
	if err != nil || r.Length == 0 {
		t.Fatalf("consumer read below the HW: %+v %v", r, err)
	}
	r.Release()

	rs.produce(t, 5)
	rs.catchUp(t, 2)
	if rs.hw() != 10 {
		t.Fatalf("HW %d with follower 3 at 10, want 10", rs.hw())
	}
	rs.fetch(t, 3)
	if rs.hw() != 10 {
		t.Fatalf("HW %d: follower 3 fetched from 10, so holds only below it; want 10", rs.hw())
	}
	rs.catchUp(t, 3)
	if rs.hw() != 15 {
		t.Fatalf("HW %d after both caught up, want 15", rs.hw())
	}
	if got := rs.followers[3].HighWatermark(); got != 15 {
		t.Fatalf("follower 3 HW %d, want the leader's 15", got)
	}
	// A follower's HW is the leader's, bounded by what it holds.
	f := rs.followers[2]
	f.SetFollowerHW(1000)
	if got := f.HighWatermark(); got != f.LogEndOffset() {
		t.Fatalf("follower HW %d past its log end %d", got, f.LogEndOffset())
	}

	// Follower 3 leaves the ISR: only follower 2 holds the HW now.
	r3 := leaderRole(1, 1, []int32{1, 2}, 1, 2, 3)
	r3.PartitionEpoch = 1
	if err := rs.leader.SetRole(r3); err != nil {
		t.Fatal(err)
	}
	rs.produce(t, 5)
	if rs.hw() != 15 {
		t.Fatalf("HW %d before follower 2 fetched, want 15", rs.hw())
	}
	rs.catchUp(t, 2)
	if rs.hw() != 20 {
		t.Fatalf("HW %d with follower 3 out of the ISR, want 20", rs.hw())
	}
}

// TestHighWatermarkNewLeader: a new leader's high watermark does not move
// until its in-sync followers have fetched in its epoch; fetches naming the
// old epoch are fenced.
func TestHighWatermarkNewLeader(t *testing.T) {
	rs := newReplicaSet(t, nil, []int32{1, 2}, 1, 2)
	rs.produce(t, 10)
	rs.catchUp(t, 2)
	rs.produce(t, 5) // follower 2 has not seen these
	rs.fetch(t, 2)   // now it holds them, but its HW is still 10
	old, nl := rs.leader, rs.followers[2]
	if nl.HighWatermark() != 10 || nl.LogEndOffset() != 15 {
		t.Fatalf("follower: HW %d, log end %d", nl.HighWatermark(), nl.LogEndOffset())
	}
	if err := nl.SetRole(leaderRole(2, 2, []int32{1, 2}, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := old.SetRole(followerRole(2, 2, 1, 2)); err != nil {
		t.Fatal(err)
	}
	produce(t, nl, plain(5), 1)
	if nl.HighWatermark() != 10 {
		t.Fatalf("new leader's HW %d before its follower fetched, want 10", nl.HighWatermark())
	}
	if err := nl.FollowerFetched(1, 15, 1); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("fetch at the old epoch: %v, want ErrFencedEpoch", err)
	}
	if err := nl.FollowerFetched(1, 15, 3); !errors.Is(err, ErrUnknownEpoch) {
		t.Fatalf("fetch at a future epoch: %v, want ErrUnknownEpoch", err)
	}
	if nl.HighWatermark() != 10 {
		t.Fatalf("a refused fetch moved the HW to %d", nl.HighWatermark())
	}
	if err := nl.FollowerFetched(9, 15, 2); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("fetch from a broker that is no replica: %v, want ErrNotLeader", err)
	}
	catchUp(t, nl, old, 1, 2)
	if nl.HighWatermark() != 20 || old.HighWatermark() != 20 {
		t.Fatalf("HW leader %d, follower %d; want 20", nl.HighWatermark(), old.HighWatermark())
	}
}

// TestHighWatermarkFsyncAlways: under fsync always the leader's own log
// end counts only once it is on disk.
func TestHighWatermarkFsyncAlways(t *testing.T) {
	topic := testTopic(nil)
	lm := newManager(t, t.TempDir(), 1, fsyncAlways)
	fm := newManager(t, t.TempDir(), 2, fsyncAlways)
	leader := openReplica(t, lm, topic, leaderRole(1, 1, []int32{1, 2}, 1, 2))
	follower := openReplica(t, fm, topic, followerRole(1, 1, 1, 2))
	res := produce(t, leader, plain(5), -1)
	catchUp(t, leader, follower, 2, 1)
	if follower.LogEndOffset() != 5 {
		t.Fatalf("follower log end %d, want 5", follower.LogEndOffset())
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := follower.WaitDurable(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if err := leader.WaitReplicated(ctx, res.LastOffset+1, res.Epoch); err != nil {
		t.Fatalf("WaitReplicated: %v", err)
	}
	if leader.HighWatermark() != 5 {
		t.Fatalf("HW %d after the leader's flush, want 5", leader.HighWatermark())
	}
}

func TestWaitReplicated(t *testing.T) {
	t.Run("returns when the HW passes", func(t *testing.T) {
		rs := newReplicaSet(t, map[string]string{"min.insync.replicas": "2"}, []int32{1, 2}, 1, 2)
		res := produce(t, rs.leader, plain(5), -1)
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		ch := waitAsync(ctx, rs.leader, res.LastOffset+1, res.Epoch)
		rs.fetch(t, 2) // from 0: holds nothing yet
		notReturned(t, ch)
		rs.fetch(t, 2) // from 5
		if err := result(t, ch); err != nil {
			t.Fatalf("WaitReplicated: %v", err)
		}
		// Offsets already below the HW need no wait.
		if err := rs.leader.WaitReplicated(ctx, 3, res.Epoch); err != nil {
			t.Fatalf("WaitReplicated below the HW: %v", err)
		}
	})
	t.Run("times out", func(t *testing.T) {
		rs := newReplicaSet(t, nil, []int32{1, 2}, 1, 2)
		res := produce(t, rs.leader, plain(5), -1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		if err := rs.leader.WaitReplicated(ctx, res.LastOffset+1, res.Epoch); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitReplicated: %v, want a deadline error", err)
		}
	})
	t.Run("leadership moves", func(t *testing.T) {
		for _, next := range []Role{followerRole(2, 2, 1, 2), leaderRole(1, 2, []int32{1, 2}, 1, 2), {LeaderID: -1, Epoch: 2}} {
			rs := newReplicaSet(t, nil, []int32{1, 2}, 1, 2)
			res := produce(t, rs.leader, plain(5), -1)
			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			ch := waitAsync(ctx, rs.leader, res.LastOffset+1, res.Epoch)
			parked(t, rs.leader, 1)
			if err := rs.leader.SetRole(next); err != nil {
				t.Fatal(err)
			}
			if err := result(t, ch); !errors.Is(err, ErrNotLeader) {
				t.Errorf("role %+v: WaitReplicated: %v, want ErrNotLeader", next, err)
			}
			cancel()
		}
	})
	t.Run("older epoch", func(t *testing.T) {
		rs := newReplicaSet(t, nil, []int32{1, 2}, 1, 2)
		res := produce(t, rs.leader, plain(5), -1)
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		if err := rs.leader.WaitReplicated(ctx, res.LastOffset+1, res.Epoch-1); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("WaitReplicated at an older epoch: %v, want ErrNotLeader", err)
		}
	})
	t.Run("ISR shrinks below min.insync.replicas", func(t *testing.T) {
		// Follower 3 lags and leaves; follower 2 has not fetched, so the
		// HW stays put and the ISR is now too small.
		rs := newReplicaSet(t, map[string]string{"min.insync.replicas": "3"}, []int32{1, 2, 3}, 1, 2, 3)
		res := produce(t, rs.leader, plain(5), -1)
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		ch := waitAsync(ctx, rs.leader, res.LastOffset+1, res.Epoch)
		rs.fetch(t, 3)
		ageFollower(t, rs.leader, 3, time.Hour)
		parked(t, rs.leader, 1)
		shrinkISR(t, rs.leader, time.Minute, []int32{1, 2})
		if err := result(t, ch); !errors.Is(err, ErrNotEnoughReplicasAfterAppend) {
			t.Fatalf("WaitReplicated: %v, want ErrNotEnoughReplicasAfterAppend", err)
		}
		if _, err := rs.leader.Append(plain(1), -1); !errors.Is(err, ErrNotEnoughReplicas) {
			t.Fatalf("acks=all append with the ISR too small: %v, want ErrNotEnoughReplicas", err)
		}
	})
	t.Run("ISR shrink lets the HW pass", func(t *testing.T) {
		// The only follower lags and leaves: the HW then passes the batch,
		// but only the leader holds it, fewer than min.insync.replicas.
		// Kafka answers NOT_ENOUGH_REPLICAS_AFTER_APPEND here.
		rs := newReplicaSet(t, map[string]string{"min.insync.replicas": "2"}, []int32{1, 2}, 1, 2)
		res := produce(t, rs.leader, plain(5), -1)
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		ch := waitAsync(ctx, rs.leader, res.LastOffset+1, res.Epoch)
		rs.fetch(t, 2)
		ageFollower(t, rs.leader, 2, time.Hour)
		parked(t, rs.leader, 1)
		shrinkISR(t, rs.leader, time.Minute, []int32{1})
		if err := result(t, ch); !errors.Is(err, ErrNotEnoughReplicasAfterAppend) {
			t.Fatalf("WaitReplicated after the ISR shrank to %v (min.insync.replicas 2): %v, want ErrNotEnoughReplicasAfterAppend",
				rs.role().ISR, err)
		}
	})
	t.Run("controller shrinks the ISR", func(t *testing.T) {
		// The metadata takes follower 3 out of the ISR (same leader
		// epoch, next partition epoch); the HW does not move.
		rs := newReplicaSet(t, map[string]string{"min.insync.replicas": "3"}, []int32{1, 2, 3}, 1, 2, 3)
		res := produce(t, rs.leader, plain(5), -1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ch := waitAsync(ctx, rs.leader, res.LastOffset+1, res.Epoch)
		parked(t, rs.leader, 1)
		r := leaderRole(1, 1, []int32{1, 2}, 1, 2, 3)
		r.PartitionEpoch = 1
		if err := rs.leader.SetRole(r); err != nil {
			t.Fatal(err)
		}
		if err := result(t, ch); !errors.Is(err, ErrNotEnoughReplicasAfterAppend) {
			t.Fatalf("WaitReplicated after the metadata shrank the ISR to %v: %v, want ErrNotEnoughReplicasAfterAppend",
				rs.role().ISR, err)
		}
	})
}

func TestISRChangeShrink(t *testing.T) {
	rs := newReplicaSet(t, nil, []int32{1, 2, 3}, 1, 2, 3)
	rs.produce(t, 10)
	rs.catchUp(t, 2)
	rs.fetch(t, 3) // from 0: behind
	if isr, _, ok := rs.leader.ISRChange(time.Minute); ok {
		t.Fatalf("ISRChange within the lag window: %v", isr)
	}
	ageFollower(t, rs.leader, 2, time.Hour)
	ageFollower(t, rs.leader, 3, time.Hour)
	rs.fetch(t, 2) // caught up again just now
	isr, r, ok := rs.leader.ISRChange(time.Minute)
	if !ok || !slices.Equal(isr, []int32{1, 2}) {
		t.Fatalf("ISRChange = %v, %v; want [1 2]", isr, ok)
	}
	if !slices.Equal(r.ISR, []int32{1, 2, 3}) || r.Epoch != 1 {
		t.Fatalf("ISRChange role %+v: want the role the change is made from", r)
	}
	r.ISR[0] = 42
	if got := rs.role().ISR; got[0] != 1 {
		t.Fatalf("ISRChange shares the role's ISR: %v", got)
	}
	// Nothing changes until the metadata takes it.
	if got := rs.role().ISR; !slices.Equal(got, []int32{1, 2, 3}) {
		t.Fatalf("ISR %v before the change applied", got)
	}
}

// TestISRChangeCaughtUpTime: a follower is caught up at a fetch at the
// leader's log end, or at its previous fetch when it now fetches from the
// leader's log end as of then (Kafka's lastCaughtUpTime).
func TestISRChangeCaughtUpTime(t *testing.T) {
	tests := []struct {
		name     string
		offset   int64 // of the second fetch; the leader's end was 10 at the first, is 15 now
		maxLag   time.Duration
		wantKept bool
	}{
		{"at the log end", 15, time.Second, true},
		{"at the previous log end, lag window not passed", 10, time.Minute, true},
		{"at the previous log end, caught up as of the previous fetch", 10, 10 * time.Second, false},
		{"behind the previous log end", 9, time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := newReplicaSet(t, nil, []int32{1, 2, 3}, 1, 2, 3)
			rs.produce(t, 10)
			rs.catchUp(t, 2)
			if err := rs.leader.FollowerFetched(3, 0, -1); err != nil {
				t.Fatal(err)
			}
			// Follower 3 last caught up ten minutes ago, and fetched
			// (from 0, leader end 10) thirty seconds ago.
			setFollowerTimes(rs.leader, 3, 10*time.Minute, 30*time.Second)
			rs.produce(t, 5)
			rs.catchUp(t, 2)
			if err := rs.leader.FollowerFetched(3, tt.offset, -1); err != nil {
				t.Fatal(err)
			}
			isr, _, ok := rs.leader.ISRChange(tt.maxLag)
			if kept := !ok; kept != tt.wantKept {
				t.Fatalf("ISRChange(%v) = %v, %v; want follower 3 kept: %v", tt.maxLag, isr, ok, tt.wantKept)
			}
			if ok && !slices.Equal(isr, []int32{1, 2}) {
				t.Fatalf("ISRChange = %v, want [1 2]", isr)
			}
		})
	}
}

func TestISRChangeExpand(t *testing.T) {
	rs := newReplicaSet(t, nil, []int32{1, 2}, 1, 2, 3)
	rs.produce(t, 10)
	rs.catchUp(t, 2)
	if rs.hw() != 10 {
		t.Fatalf("HW %d, want 10", rs.hw())
	}
	if isr, _, ok := rs.leader.ISRChange(time.Hour); ok {
		t.Fatalf("follower 3 joins before fetching: %v", isr)
	}
	rs.fetch(t, 3) // from 0, below the HW
	if isr, _, ok := rs.leader.ISRChange(time.Hour); ok {
		t.Fatalf("follower 3 joins while below the HW: %v", isr)
	}
	rs.fetch(t, 3) // from 10
	isr, r, ok := rs.leader.ISRChange(time.Hour)
	if !ok || !slices.Equal(isr, []int32{1, 2, 3}) {
		t.Fatalf("ISRChange = %v, %v; want [1 2 3]", isr, ok)
	}
	rs.leader.BeginISRChange(isr)
	rs.leader.EndISRChange(r, isr, true)
	if got := rs.role(); !slices.Equal(got.ISR, []int32{1, 2, 3}) || got.PartitionEpoch != r.PartitionEpoch+1 {
		t.Fatalf("after the change: %+v", got)
	}
	if isr, _, ok := rs.leader.ISRChange(time.Hour); ok {
		t.Fatalf("ISRChange after the change: %v", isr)
	}
}

// TestISRChangeExpandNeedsEpochStart: a follower joins only once it holds
// everything up to where this leader's epoch began, even when the high
// watermark it inherited is lower.
func TestISRChangeExpandNeedsEpochStart(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncNever)
	p := openReplica(t, m, testTopic(nil), followerRole(2, 1, 1, 2, 3))
	appendReplica(t, p, replicaBatch(0, 1, 10, 1))
	p.SetFollowerHW(5)
	if err := p.SetRole(leaderRole(1, 2, []int32{1, 2}, 1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	if p.HighWatermark() != 5 {
		t.Fatalf("new leader's HW %d, want the 5 it had", p.HighWatermark())
	}
	if err := p.FollowerFetched(3, 7, 2); err != nil {
		t.Fatal(err)
	}
	if isr, _, ok := p.ISRChange(time.Hour); ok {
		t.Fatalf("follower 3 at 7 joins though the epoch began at 10: %v", isr)
	}
	if err := p.FollowerFetched(3, 10, 2); err != nil {
		t.Fatal(err)
	}
	if isr, _, ok := p.ISRChange(time.Hour); !ok || !slices.Equal(isr, []int32{1, 2, 3}) {
		t.Fatalf("ISRChange = %v, %v; want [1 2 3]", isr, ok)
	}
}

// TestISRChangeRejoinNeedsFetch: a follower taken out of the ISR, by the
// metadata or by this leader, must fetch again before it rejoins.
func TestISRChangeRejoinNeedsFetch(t *testing.T) {
	t.Run("removed by the metadata", func(t *testing.T) {
		rs := newReplicaSet(t, nil, []int32{1, 2, 3}, 1, 2, 3)
		rs.produce(t, 5)
		rs.catchUp(t, 2)
		rs.catchUp(t, 3)
		r := leaderRole(1, 1, []int32{1, 2}, 1, 2, 3)
		r.PartitionEpoch = 1
		if err := rs.leader.SetRole(r); err != nil {
			t.Fatal(err)
		}
		if isr, _, ok := rs.leader.ISRChange(time.Hour); ok {
			t.Fatalf("follower 3 rejoins without fetching: %v", isr)
		}
		rs.fetch(t, 3)
		if isr, _, ok := rs.leader.ISRChange(time.Hour); !ok || !slices.Equal(isr, []int32{1, 2, 3}) {
			t.Fatalf("after fetching: ISRChange = %v, %v; want [1 2 3]", isr, ok)
		}
	})
	t.Run("removed by the leader", func(t *testing.T) {
		rs := newReplicaSet(t, nil, []int32{1, 2, 3}, 1, 2, 3)
		rs.produce(t, 5)
		rs.catchUp(t, 2)
		rs.catchUp(t, 3) // then follower 3 goes silent
		ageFollower(t, rs.leader, 3, time.Hour)
		r := shrinkISR(t, rs.leader, time.Minute, []int32{1, 2})
		// The metadata's view of the change comes back as a role.
		if err := rs.leader.SetRole(r); err != nil {
			t.Fatal(err)
		}
		if isr, _, ok := rs.leader.ISRChange(time.Minute); ok {
			t.Fatalf("follower 3, silent for an hour, rejoins without fetching: ISRChange = %v", isr)
		}
		rs.fetch(t, 3)
		if isr, _, ok := rs.leader.ISRChange(time.Minute); !ok || !slices.Equal(isr, []int32{1, 2, 3}) {
			t.Fatalf("after fetching: ISRChange = %v, %v; want [1 2 3]", isr, ok)
		}
	})
	t.Run("new leader epoch", func(t *testing.T) {
		rs := newReplicaSet(t, nil, []int32{1, 2}, 1, 2, 3)
		rs.produce(t, 5)
		rs.catchUp(t, 2)
		rs.catchUp(t, 3)
		if err := rs.leader.SetRole(leaderRole(1, 2, []int32{1, 2}, 1, 2, 3)); err != nil {
			t.Fatal(err)
		}
		rs.fetch(t, 2)
		if isr, _, ok := rs.leader.ISRChange(time.Hour); ok {
			t.Fatalf("follower 3 joins on a fetch of the previous epoch: %v", isr)
		}
		if err := rs.leader.FollowerFetched(3, 5, 2); err != nil {
			t.Fatal(err)
		}
		if isr, _, ok := rs.leader.ISRChange(time.Hour); !ok || !slices.Equal(isr, []int32{1, 2, 3}) {
			t.Fatalf("ISRChange = %v, %v; want [1 2 3]", isr, ok)
		}
	})
}

func TestISRChangeNotLeader(t *testing.T) {
	m := newManager(t, t.TempDir(), 2, fsyncNever)
	p := openReplica(t, m, testTopic(nil), followerRole(1, 1, 1, 2))
	if isr, _, ok := p.ISRChange(-1); ok {
		t.Fatalf("a follower proposes ISR %v", isr)
	}
}

// TestISRChangePending: while a change is proposed, its members hold the
// high watermark too, and no other change is proposed.
func TestISRChangePending(t *testing.T) {
	setup := func(t *testing.T) (*replicaSet, []int32, Role) {
		rs := newReplicaSet(t, nil, []int32{1}, 1, 2)
		rs.produce(t, 10)
		if rs.hw() != 10 {
			t.Fatalf("HW %d with the leader alone in the ISR, want 10", rs.hw())
		}
		rs.catchUp(t, 2)
		isr, r, ok := rs.leader.ISRChange(time.Hour)
		if !ok || !slices.Equal(isr, []int32{1, 2}) {
			t.Fatalf("ISRChange = %v, %v; want [1 2]", isr, ok)
		}
		rs.leader.BeginISRChange(isr)
		rs.produce(t, 5)
		if rs.hw() != 10 {
			t.Fatalf("HW %d while follower 2 (at 10) is being added, want 10", rs.hw())
		}
		if isr, _, ok := rs.leader.ISRChange(-1); ok {
			t.Fatalf("a second change proposed while one is pending: %v", isr)
		}
		return rs, isr, r
	}
	t.Run("applied", func(t *testing.T) {
		rs, isr, r := setup(t)
		rs.catchUp(t, 2)
		if rs.hw() != 15 {
			t.Fatalf("HW %d after follower 2 caught up, want 15", rs.hw())
		}
		rs.leader.EndISRChange(r, isr, true)
		if got := rs.role(); !slices.Equal(got.ISR, []int32{1, 2}) || got.PartitionEpoch != r.PartitionEpoch+1 {
			t.Fatalf("after the change: %+v", got)
		}
		rs.produce(t, 5)
		if rs.hw() != 15 {
			t.Fatalf("HW %d: follower 2 is in the ISR now, want 15", rs.hw())
		}
	})
	t.Run("refused", func(t *testing.T) {
		rs, isr, r := setup(t)
		rs.leader.EndISRChange(r, isr, false)
		if got := rs.role(); !slices.Equal(got.ISR, []int32{1}) || got.PartitionEpoch != r.PartitionEpoch {
			t.Fatalf("after a refused change: %+v", got)
		}
		if rs.hw() != 15 {
			t.Fatalf("HW %d after the refused change, want the log end 15", rs.hw())
		}
		rs.catchUp(t, 2)
		if _, _, ok := rs.leader.ISRChange(time.Hour); !ok {
			t.Fatal("no change proposed once the pending one ended")
		}
	})
	t.Run("stale", func(t *testing.T) {
		rs, isr, r := setup(t)
		// The metadata moved on meanwhile (a newer partition epoch).
		next := leaderRole(1, 1, []int32{1}, 1, 2)
		next.PartitionEpoch = r.PartitionEpoch + 1
		if err := rs.leader.SetRole(next); err != nil {
			t.Fatal(err)
		}
		rs.leader.EndISRChange(r, isr, true)
		if got := rs.role(); !slices.Equal(got.ISR, []int32{1}) || got.PartitionEpoch != next.PartitionEpoch {
			t.Fatalf("a change made from an older role applied: %+v", got)
		}
	})
	t.Run("pending member not fetched", func(t *testing.T) {
		rs := newReplicaSet(t, nil, []int32{1}, 1, 2)
		rs.produce(t, 10)
		rs.leader.BeginISRChange([]int32{1, 2})
		rs.produce(t, 5)
		if rs.hw() != 10 {
			t.Fatalf("HW %d while a member that never fetched is being added, want 10", rs.hw())
		}
		rs.leader.EndISRChange(rs.role(), []int32{1, 2}, false)
		if rs.hw() != 15 {
			t.Fatalf("HW %d after the change ended, want 15", rs.hw())
		}
	})
}

func TestAppendReplica(t *testing.T) {
	open := func(t *testing.T) *Partition {
		m := newManager(t, t.TempDir(), 2, fsyncNever)
		return openReplica(t, m, testTopic(nil), followerRole(1, 4, 1, 2))
	}
	t.Run("keeps offsets and epochs", func(t *testing.T) {
		p := open(t)
		in := slices.Concat(replicaBatch(0, 2, 3, 1), replicaBatch(3, 2, 4, 2), replicaBatch(7, 4, 1, 3))
		if leo := appendReplica(t, p, in); leo != 8 {
			t.Fatalf("log end %d, want 8", leo)
		}
		if got := logBytes(t, p); !slices.Equal(got, in) {
			t.Fatal("stored batches differ from the leader's")
		}
		if want := []EpochEntry{{2, 0}, {4, 7}}; !slices.Equal(p.epochs.entries, want) {
			t.Fatalf("history %v, want %v", p.epochs.entries, want)
		}
		if got := readEpochsFile(t, p.log.Dir()); !slices.Equal(got, p.epochs.entries) {
			t.Fatalf("history on disk %v, in memory %v", got, p.epochs.entries)
		}
		if p.HighWatermark() != 0 {
			t.Fatalf("a follower's HW moved to %d without the leader's", p.HighWatermark())
		}
	})
	t.Run("skips held batches", func(t *testing.T) {
		p := open(t)
		a, b, c := replicaBatch(0, 1, 3, 1), replicaBatch(3, 1, 2, 2), replicaBatch(5, 1, 2, 3)
		appendReplica(t, p, slices.Concat(a, b))
		if leo := appendReplica(t, p, slices.Concat(a, b)); leo != 5 {
			t.Fatalf("re-sent batches: log end %d, want 5", leo)
		}
		if leo := appendReplica(t, p, slices.Concat(b, c)); leo != 7 {
			t.Fatalf("overlapping batches: log end %d, want 7", leo)
		}
		if got := logBytes(t, p); !slices.Equal(got, slices.Concat(a, b, c)) {
			t.Fatal("stored batches differ from the leader's")
		}
	})
	t.Run("gap", func(t *testing.T) {
		p := open(t)
		appendReplica(t, p, replicaBatch(0, 1, 3, 1))
		leo, err := p.AppendReplica(replicaBatch(4, 1, 2, 2))
		if !errors.Is(err, ErrReplicaGap) || leo != 3 {
			t.Fatalf("AppendReplica past the log end: %d, %v; want 3, ErrReplicaGap", leo, err)
		}
		// A batch straddling the log end does not start there either.
		leo, err = p.AppendReplica(replicaBatch(2, 1, 3, 2))
		if !errors.Is(err, ErrReplicaGap) || leo != 3 {
			t.Fatalf("AppendReplica across the log end: %d, %v; want 3, ErrReplicaGap", leo, err)
		}
		// The batches before the gap are kept.
		leo, err = p.AppendReplica(slices.Concat(replicaBatch(3, 1, 2, 3), replicaBatch(9, 1, 1, 4)))
		if !errors.Is(err, ErrReplicaGap) || leo != 5 || p.LogEndOffset() != 5 {
			t.Fatalf("AppendReplica with a gap after a batch: %d, %v, log end %d", leo, err, p.LogEndOffset())
		}
	})
	t.Run("partial trailing batch", func(t *testing.T) {
		p := open(t)
		a, b := replicaBatch(0, 1, 3, 1), replicaBatch(3, 1, 4, 2)
		for _, cut := range []int{len(b) - 1, segment.HeaderSize, segment.HeaderSize - 1, 1} {
			if leo := appendReplica(t, p, slices.Concat(a, b[:cut])); leo != 3 {
				t.Fatalf("cut at %d: log end %d, want 3", cut, leo)
			}
		}
		if leo := appendReplica(t, p, b); leo != 7 {
			t.Fatalf("log end %d, want 7", leo)
		}
		if got := logBytes(t, p); !slices.Equal(got, slices.Concat(a, b)) {
			t.Fatal("stored batches differ from the leader's")
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		p := open(t)
		b := replicaBatch(0, 1, 3, 1)
		b[len(b)-1] ^= 0xff
		if _, err := p.AppendReplica(b); !errors.Is(err, segment.ErrCRC) {
			t.Fatalf("AppendReplica of a corrupt batch: %v, want ErrCRC", err)
		}
		b = replicaBatch(0, 1, 3, 1)
		b[segment.MagicOffset] = 1
		if _, err := p.AppendReplica(b); !errors.Is(err, segment.ErrMagic) {
			t.Fatalf("AppendReplica of a v1 batch: %v, want ErrMagic", err)
		}
		if p.LogEndOffset() != 0 {
			t.Fatalf("log end %d after refused batches", p.LogEndOffset())
		}
	})
	t.Run("empty", func(t *testing.T) {
		p := open(t)
		if leo := appendReplica(t, p, nil); leo != 0 {
			t.Fatalf("log end %d", leo)
		}
	})
	t.Run("fsync always", func(t *testing.T) {
		m := newManager(t, t.TempDir(), 2, fsyncAlways)
		p := openReplica(t, m, testTopic(nil), followerRole(1, 1, 1, 2))
		if leo := appendReplica(t, p, replicaBatch(0, 1, 3, 1)); leo != 3 {
			t.Fatalf("log end %d, want 3", leo)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		if err := p.WaitDurable(ctx, 3); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAppendReplicaProducerState: a follower remembers the idempotent
// producers in what it replicates, so a retry sent to it after it becomes
// the leader is answered as a duplicate with the original offsets.
func TestAppendReplicaProducerState(t *testing.T) {
	rs := newReplicaSet(t, nil, []int32{1, 2}, 1, 2)
	rs.produce(t, 2)
	first := produce(t, rs.leader, idempotent(42, 3, 0, 3), -1)
	second := produce(t, rs.leader, idempotent(42, 3, 3, 2), -1)
	other := produce(t, rs.leader, idempotent(43, 0, 0, 1), -1)
	rs.catchUp(t, 2)

	nl := rs.followers[2]
	if err := nl.SetRole(leaderRole(2, 2, []int32{2}, 1, 2)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		batch []byte
		want  AppendResult
	}{
		{idempotent(42, 3, 3, 2), AppendResult{BaseOffset: second.BaseOffset, LastOffset: second.LastOffset, Duplicate: true, Epoch: 2}},
		{idempotent(42, 3, 0, 3), AppendResult{BaseOffset: first.BaseOffset, LastOffset: first.LastOffset, Duplicate: true, Epoch: 2}},
		{idempotent(43, 0, 0, 1), AppendResult{BaseOffset: other.BaseOffset, LastOffset: other.LastOffset, Duplicate: true, Epoch: 2}},
		{idempotent(42, 3, 5, 1), AppendResult{BaseOffset: 8, LastOffset: 8, Epoch: 2}},
	} {
		if got := produce(t, nl, tt.batch, -1); got != tt.want {
			t.Errorf("retry on the new leader: %+v, want %+v", got, tt.want)
		}
	}
	if _, err := nl.Append(idempotent(42, 3, 9, 1), -1); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Errorf("sequence gap on the new leader: %v, want ErrOutOfOrderSequence", err)
	}
	if _, err := nl.Append(idempotent(42, 2, 0, 1), -1); !errors.Is(err, ErrProducerFenced) {
		t.Errorf("older producer epoch on the new leader: %v, want ErrProducerFenced", err)
	}
}

func TestTruncateTo(t *testing.T) {
	// Epoch 1: [0,5) [5,10); epoch 2: producer 5 at [10,15) and [15,20);
	// epoch 3: [20,25).
	open := func(t *testing.T) *Partition {
		m := newManager(t, t.TempDir(), 2, fsyncNever)
		p := openReplica(t, m, testTopic(nil), followerRole(1, 3, 1, 2))
		appendReplica(t, p, slices.Concat(
			replicaBatch(0, 1, 5, 1), replicaBatch(5, 1, 5, 2),
			idempotentReplicaBatch(10, 2, 5, 0, 5), idempotentReplicaBatch(15, 2, 5, 5, 5),
			replicaBatch(20, 3, 5, 3)))
		p.SetFollowerHW(25)
		return p
	}
	tests := []struct {
		to, wantEnd int64
		want        []EpochEntry
	}{
		{25, 25, []EpochEntry{{1, 0}, {2, 10}, {3, 20}}},
		{100, 25, []EpochEntry{{1, 0}, {2, 10}, {3, 20}}},
		{24, 20, []EpochEntry{{1, 0}, {2, 10}}},
		{20, 20, []EpochEntry{{1, 0}, {2, 10}}},
		{17, 15, []EpochEntry{{1, 0}, {2, 10}}}, // inside a batch: cut at its start
		{10, 10, []EpochEntry{{1, 0}}},
		{3, 0, []EpochEntry{}},
		{0, 0, []EpochEntry{}},
	}
	for _, tt := range tests {
		p := open(t)
		if err := p.TruncateTo(tt.to); err != nil {
			t.Fatalf("TruncateTo(%d): %v", tt.to, err)
		}
		if p.LogEndOffset() != tt.wantEnd || p.HighWatermark() != tt.wantEnd {
			t.Errorf("TruncateTo(%d): log end %d, HW %d; want %d", tt.to, p.LogEndOffset(), p.HighWatermark(), tt.wantEnd)
		}
		if !slices.Equal(p.epochs.entries, tt.want) {
			t.Errorf("TruncateTo(%d): history %v, want %v", tt.to, p.epochs.entries, tt.want)
		}
		if got := readEpochsFile(t, p.log.Dir()); !slices.Equal(got, tt.want) && (len(got) != 0 || len(tt.want) != 0) {
			t.Errorf("TruncateTo(%d): history on disk %v, want %v", tt.to, got, tt.want)
		}
		wantEpoch := int32(UndefinedEpoch)
		if n := len(tt.want); n > 0 {
			wantEpoch = tt.want[n-1].Epoch
		}
		if got := p.LatestEpoch(); got != wantEpoch {
			t.Errorf("TruncateTo(%d): LatestEpoch %d, want %d", tt.to, got, wantEpoch)
		}
		if e, end := p.EndOffsetForEpoch(wantEpoch); wantEpoch >= 0 && (e != wantEpoch || end != tt.wantEnd) {
			t.Errorf("TruncateTo(%d): EndOffsetForEpoch(%d) = (%d, %d), want (%d, %d)", tt.to, wantEpoch, e, end, wantEpoch, tt.wantEnd)
		}
	}
}

// TestTruncateToProducerState: producer state of the batches cut goes, the
// rest stays; the high watermark and this replica's own end follow the cut,
// so as a leader it does not count offsets it no longer holds.
func TestTruncateToProducerState(t *testing.T) {
	m := newManager(t, t.TempDir(), 2, fsyncNever)
	p := openReplica(t, m, testTopic(nil), followerRole(1, 2, 1, 2))
	appendReplica(t, p, slices.Concat(
		replicaBatch(0, 1, 10, 1),
		idempotentReplicaBatch(10, 2, 5, 0, 5), idempotentReplicaBatch(15, 2, 5, 5, 5)))
	p.SetFollowerHW(20)
	if err := p.TruncateTo(15); err != nil {
		t.Fatal(err)
	}
	if p.HighWatermark() != 15 {
		t.Fatalf("HW %d after the cut, want 15", p.HighWatermark())
	}
	if err := p.SetRole(leaderRole(2, 3, []int32{2}, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if p.HighWatermark() != 15 {
		t.Fatalf("leader's HW %d with its log end at 15", p.HighWatermark())
	}
	if got := produce(t, p, idempotent(5, 0, 0, 5), -1); !got.Duplicate || got.BaseOffset != 10 || got.LastOffset != 14 {
		t.Fatalf("retry of a batch kept: %+v", got)
	}
	if got := produce(t, p, idempotent(5, 0, 5, 5), -1); got.Duplicate || got.BaseOffset != 15 || got.Epoch != 3 {
		t.Fatalf("retry of a batch cut: %+v, want it appended at 15", got)
	}
	if p.HighWatermark() != 20 {
		t.Fatalf("HW %d, want 20", p.HighWatermark())
	}
}

// TestTruncateToAfterReopen: the producer snapshot written at the last
// clean close describes a log a truncation may since have replaced; what
// the cut removed must not come back from it.
func TestTruncateToAfterReopen(t *testing.T) {
	dir := t.TempDir()
	topic := testTopic(nil)
	role := followerRole(1, 1, 1, 2)
	m := newManager(t, dir, 2, fsyncNever)
	p := openReplica(t, m, topic, role)
	// Producer 7's batch at [5,10) was written by a leader that lost its
	// epoch before the batch was committed.
	appendReplica(t, p, slices.Concat(replicaBatch(0, 1, 5, 1), idempotentReplicaBatch(5, 1, 7, 0, 5)))
	if err := m.Close(); err != nil { // snapshots producers at offset 10
		t.Fatal(err)
	}

	m = newManager(t, dir, 2, fsyncNever)
	p = openReplica(t, m, topic, followerRole(1, 2, 1, 2))
	if err := p.TruncateTo(5); err != nil {
		t.Fatal(err)
	}
	// The new leader's log from 5 on: other batches, no producer 7.
	appendReplica(t, p, slices.Concat(replicaBatch(5, 2, 5, 2), replicaBatch(10, 2, 5, 3)))
	// Another leader change cuts back to 10.
	if err := p.TruncateTo(12); err != nil {
		t.Fatal(err)
	}
	if p.LogEndOffset() != 10 {
		t.Fatalf("log end %d, want 10", p.LogEndOffset())
	}
	if err := p.SetRole(leaderRole(2, 3, []int32{2}, 1, 2)); err != nil {
		t.Fatal(err)
	}
	// Producer 7 retries: nothing of it is in the log, so it is appended.
	if got := produce(t, p, idempotent(7, 0, 0, 5), -1); got.Duplicate || got.BaseOffset != 10 {
		t.Fatalf("producer 7's retry: %+v; want it appended at 10 (offsets 5-9 hold another leader's batch)", got)
	}
}

// TestFailover replicates end to end through a leader change: the old
// leader's unreplicated tail is cut when it follows the new leader, the
// logs end up identical, and producers' retries find their batches.
func TestFailover(t *testing.T) {
	cfg := map[string]string{"min.insync.replicas": "1"}
	rs := newReplicaSet(t, cfg, []int32{1, 2}, 1, 2)
	old, nl := rs.leader, rs.followers[2]
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()

	a := produce(t, old, idempotent(7, 0, 0, 5), -1)
	b := produce(t, old, idempotent(7, 0, 5, 5), -1)
	ch := waitAsync(ctx, old, b.LastOffset+1, b.Epoch)
	rs.catchUp(t, 2)
	if err := result(t, ch); err != nil {
		t.Fatalf("WaitReplicated: %v", err)
	}
	// The old leader appends a batch nobody fetches, then goes away.
	c := produce(t, old, idempotent(7, 0, 10, 5), -1)
	if c.BaseOffset != 10 || old.LogEndOffset() != 15 || nl.LogEndOffset() != 10 {
		t.Fatalf("old leader end %d, new leader end %d", old.LogEndOffset(), nl.LogEndOffset())
	}

	// The metadata elects follower 2 at epoch 2, alone in the ISR.
	if err := nl.SetRole(leaderRole(2, 2, []int32{2}, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if got := produce(t, nl, idempotent(7, 0, 5, 5), -1); !got.Duplicate || got.BaseOffset != b.BaseOffset {
		t.Fatalf("retry of a replicated batch on the new leader: %+v", got)
	}
	c2 := produce(t, nl, idempotent(7, 0, 10, 5), -1)
	if c2.Duplicate || c2.BaseOffset != 10 || c2.Epoch != 2 {
		t.Fatalf("retry of the lost batch on the new leader: %+v", c2)
	}
	d := produce(t, nl, plain(3), -1)
	if err := nl.WaitReplicated(ctx, d.LastOffset+1, d.Epoch); err != nil {
		t.Fatalf("WaitReplicated with the leader alone in the ISR: %v", err)
	}

	// The old leader comes back as a follower and finds where the logs
	// diverge, as package replica does.
	if err := old.SetRole(followerRole(2, 2, 1, 2)); err != nil {
		t.Fatal(err)
	}
	latest := old.LatestEpoch()
	if latest != 1 {
		t.Fatalf("old leader's latest epoch %d, want 1", latest)
	}
	le, leaderEnd := nl.EndOffsetForEpoch(latest)
	if le != 1 || leaderEnd != 10 {
		t.Fatalf("new leader: EndOffsetForEpoch(1) = (%d, %d), want (1, 10)", le, leaderEnd)
	}
	_, localEnd := old.EndOffsetForEpoch(le)
	if err := old.TruncateTo(min(old.LogEndOffset(), leaderEnd, localEnd)); err != nil {
		t.Fatal(err)
	}
	if old.LogEndOffset() != 10 {
		t.Fatalf("old leader cut to %d, want 10", old.LogEndOffset())
	}
	catchUp(t, nl, old, 1, 2)
	if !slices.Equal(logBytes(t, old), logBytes(t, nl)) {
		t.Fatal("logs differ after the old leader caught up")
	}
	if !slices.Equal(old.epochs.entries, nl.epochs.entries) {
		t.Fatalf("histories differ: old leader %v, new leader %v", old.epochs.entries, nl.epochs.entries)
	}
	isr, r, ok := nl.ISRChange(time.Hour)
	if !ok || !slices.Equal(isr, []int32{1, 2}) {
		t.Fatalf("ISRChange = %v, %v; want [1 2]", isr, ok)
	}
	nl.BeginISRChange(isr)
	nl.EndISRChange(r, isr, true)

	// And back: the old leader leads again at epoch 3 and knows producer
	// 7's batches, whoever appended them.
	if err := nl.SetRole(followerRole(1, 3, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := old.SetRole(leaderRole(1, 3, []int32{1, 2}, 1, 2)); err != nil {
		t.Fatal(err)
	}
	for _, retry := range []struct {
		batch []byte
		want  AppendResult
	}{{idempotent(7, 0, 0, 5), a}, {idempotent(7, 0, 10, 5), c2}} {
		got := produce(t, old, retry.batch, -1)
		if !got.Duplicate || got.BaseOffset != retry.want.BaseOffset || got.LastOffset != retry.want.LastOffset {
			t.Errorf("retry on the old leader: %+v, want the offsets of %+v", got, retry.want)
		}
	}
	e := produce(t, old, plain(2), -1)
	ch = waitAsync(ctx, old, e.LastOffset+1, e.Epoch)
	catchUp(t, old, nl, 2, 3)
	if err := result(t, ch); err != nil {
		t.Fatalf("WaitReplicated at epoch 3: %v", err)
	}
	if want := []EpochEntry{{1, 0}, {2, 10}, {3, 18}}; !slices.Equal(nl.epochs.entries, want) {
		t.Fatalf("history %v, want %v", nl.epochs.entries, want)
	}
}

// TestReplicationConcurrent runs a producer, a follower's fetches, the ISR
// check and acks=all waits at once, for the race detector.
func TestReplicationConcurrent(t *testing.T) {
	rs := newReplicaSet(t, map[string]string{"min.insync.replicas": "2"}, []int32{1, 2}, 1, 2)
	const batches = 50
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	stop := sync.OnceFunc(func() { close(done); wg.Wait() })
	defer stop()
	wg.Add(2)
	go func() { // the follower's fetcher
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			f := rs.followers[2]
			off := f.LogEndOffset()
			if err := rs.leader.FollowerFetched(2, off, 1); err != nil {
				t.Error(err)
				return
			}
			r, err := rs.leader.ReadReplica(off, 1<<20)
			if err != nil {
				t.Error(err)
				return
			}
			b := make([]byte, r.Length)
			if r.Length > 0 {
				if _, err := r.File().ReadAt(b, r.Position); err != nil {
					t.Error(err)
				}
			}
			r.Release()
			if _, err := f.AppendReplica(b); err != nil {
				t.Error(err)
				return
			}
			f.SetFollowerHW(rs.leader.HighWatermark())
			time.Sleep(50 * time.Microsecond)
		}
	}()
	go func() { // the ISR check
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if isr, _, ok := rs.leader.ISRChange(time.Hour); ok {
				t.Errorf("ISR change proposed: %v", isr)
			}
			rs.leader.Role()
			time.Sleep(50 * time.Microsecond)
		}
	}()
	for i := range batches {
		res, err := rs.leader.Append(idempotent(1, 0, int32(i), 1), -1)
		if err != nil {
			t.Fatal(err)
		}
		if err := rs.leader.WaitReplicated(ctx, res.LastOffset+1, res.Epoch); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	stop()
	if rs.hw() != batches || rs.followers[2].LogEndOffset() != batches {
		t.Fatalf("HW %d, follower end %d; want %d", rs.hw(), rs.followers[2].LogEndOffset(), batches)
	}
}

// TestSetRoleConcurrentWithISRChange: the metadata applies roles while the
// leader checks its ISR and followers fetch (for the race detector).
func TestSetRoleConcurrentWithISRChange(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncNever)
	p := openReplica(t, m, testTopic(nil), leaderRole(1, 1, []int32{1, 2}, 1, 2, 3))
	produce(t, p, plain(5), 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	stop := sync.OnceFunc(func() { close(done); wg.Wait() })
	defer stop()
	wg.Add(1)
	go func() { // follower 3 fetches and the leader checks its ISR
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			p.FollowerFetched(3, 5, -1)
			p.ISRChange(time.Hour)
		}
	}()
	for epoch := int32(2); epoch < 40; epoch++ {
		if err := p.SetRole(leaderRole(1, epoch, []int32{1, 2}, 1, 2, 3)); err != nil {
			t.Fatal(err)
		}
	}
}
