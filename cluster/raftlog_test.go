package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func openRaftStore(t *testing.T, dir string) *RaftStore {
	t.Helper()
	s, err := OpenRaftStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func entry(i uint64) *raft.Log {
	return &raft.Log{Index: i, Term: i/10 + 1, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry %d", i)),
		AppendedAt: time.Unix(1_700_000_000, int64(i))}
}

func TestRaftStoreLog(t *testing.T) {
	dir := t.TempDir()
	s := openRaftStore(t, dir)
	for _, f := range []func() (uint64, error){s.FirstIndex, s.LastIndex} {
		if i, err := f(); i != 0 || err != nil {
			t.Fatalf("empty log: index %d, %v", i, err)
		}
	}
	var batch []*raft.Log
	for i := uint64(5); i <= 50; i++ {
		batch = append(batch, entry(i))
	}
	if err := s.StoreLogs(batch); err != nil {
		t.Fatal(err)
	}
	withExt := entry(51)
	withExt.Extensions, withExt.Type, withExt.AppendedAt = []byte{1, 2, 3}, raft.LogConfiguration, time.Time{}
	if err := s.StoreLog(withExt); err != nil {
		t.Fatal(err)
	}
	check := func(s *RaftStore, first, last uint64) {
		t.Helper()
		if i, err := s.FirstIndex(); i != first || err != nil {
			t.Fatalf("first index %d (%v), want %d", i, err, first)
		}
		if i, err := s.LastIndex(); i != last || err != nil {
			t.Fatalf("last index %d (%v), want %d", i, err, last)
		}
		for i := first; i <= last; i++ {
			var got raft.Log
			if err := s.GetLog(i, &got); err != nil {
				t.Fatalf("get %d: %v", i, err)
			}
			want := entry(i)
			if i == 51 {
				want = withExt
			}
			if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type || !bytes.Equal(got.Data, want.Data) ||
				!bytes.Equal(got.Extensions, want.Extensions) || !got.AppendedAt.Equal(want.AppendedAt) {
				t.Fatalf("entry %d: %+v, want %+v", i, got, want)
			}
		}
		var l raft.Log
		if err := s.GetLog(first-1, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("entry before the first: %v", err)
		}
		if err := s.GetLog(last+1, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("entry after the last: %v", err)
		}
	}
	check(s, 5, 51)
	// Raft compacts the head and truncates conflicting tails.
	if err := s.DeleteRange(5, 9); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(48, 51); err != nil {
		t.Fatal(err)
	}
	check(s, 10, 47)
	s.Close()
	s = openRaftStore(t, dir)
	check(s, 10, 47)
	if err := s.DeleteRange(0, ^uint64(0)); err != nil {
		t.Fatal(err)
	}
	if i, _ := s.LastIndex(); i != 0 {
		t.Fatalf("last index %d after deleting everything", i)
	}
	s.Close()
	var l raft.Log
	for name, err := range map[string]error{"GetLog": s.GetLog(1, &l), "StoreLog": s.StoreLog(entry(1)), "DeleteRange": s.DeleteRange(1, 2), "Set": s.Set([]byte("k"), nil)} {
		if !errors.Is(err, ErrRaftStoreClosed) {
			t.Errorf("%s after close: %v", name, err)
		}
	}
}

func TestRaftStoreStable(t *testing.T) {
	dir := t.TempDir()
	s := openRaftStore(t, dir)
	if _, err := s.Get([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key: %v; raft needs the message %q", err, "not found")
	}
	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing integer: %v", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openRaftStore(t, dir)
	if v, err := s.GetUint64([]byte("CurrentTerm")); v != 42 || err != nil {
		t.Fatalf("term %d, %v", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); string(v) != "node-2" || err != nil {
		t.Fatalf("vote %q, %v", v, err)
	}
	if _, err := s.GetUint64([]byte("LastVoteCand")); !errors.Is(err, ErrBadRaftRecord) {
		t.Fatalf("a non-integer read as an integer: %v", err)
	}
	// Stable keys and log entries do not see each other.
	if i, _ := s.LastIndex(); i != 0 {
		t.Fatalf("stable keys counted as log entries: last index %d", i)
	}
}

// counterFSM applies commands "add N" and remembers every command.
type counterFSM struct {
	mu      sync.Mutex
	applied []string
}

func (f *counterFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, string(l.Data))
	return len(f.applied)
}

func (f *counterFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &counterSnapshot{applied: append([]string(nil), f.applied...)}, nil
}

func (f *counterFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = nil
	if len(b) > 0 {
		for _, s := range bytes.Split(b, []byte{'\n'}) {
			f.applied = append(f.applied, string(s))
		}
	}
	return nil
}

func (f *counterFSM) state() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.applied...)
}

type counterSnapshot struct{ applied []string }

func (s *counterSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(bytes.Join(func() [][]byte {
		var out [][]byte
		for _, a := range s.applied {
			out = append(out, []byte(a))
		}
		return out
	}(), []byte{'\n'})); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *counterSnapshot) Release() {}

type raftNode struct {
	id    raft.ServerID
	dir   string
	store *RaftStore
	fsm   *counterFSM
	trans *raft.InmemTransport
	r     *raft.Raft
}

func startRaftNode(t *testing.T, n *raftNode, conf raft.Configuration, bootstrap bool) {
	t.Helper()
	cfg := raft.DefaultConfig()
	cfg.LocalID = n.id
	// Short enough for quick elections, long enough that a loaded machine
	// running the race detector does not lose the leader mid-apply (the
	// test counts applied entries, so a retried apply would be wrong).
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 400*time.Millisecond, 400*time.Millisecond, 400*time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.SnapshotThreshold, cfg.TrailingLogs = 20, 10
	cfg.LogOutput = io.Discard
	store, err := OpenRaftStore(n.dir+"/raft", nil)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := raft.NewFileSnapshotStore(n.dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	n.store, n.fsm = store, &counterFSM{}
	if bootstrap {
		if err := raft.BootstrapCluster(cfg, store, store, snaps, n.trans, conf); err != nil {
			t.Fatal(err)
		}
	}
	r, err := raft.NewRaft(cfg, n.fsm, store, store, snaps, n.trans)
	if err != nil {
		t.Fatal(err)
	}
	n.r = r
}

func (n *raftNode) stop(t *testing.T) {
	if err := n.r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	n.store.Close()
}

func waitLeader(t *testing.T, nodes []*raftNode) *raftNode {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n.r != nil && n.r.State() == raft.Leader {
				return n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader elected")
	return nil
}

// TestRaftOnRaftStore runs a three-node Raft cluster whose logs and stable
// state live in RaftStores: entries commit, a new leader is elected when
// the leader stops, snapshots compact the log, and a restarted node catches
// up from its own store to the same state as the others.
func TestRaftOnRaftStore(t *testing.T) {
	var nodes []*raftNode
	var conf raft.Configuration
	for i := 1; i <= 3; i++ {
		id := raft.ServerID(strconv.Itoa(i))
		_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
		nodes = append(nodes, &raftNode{id: id, dir: t.TempDir(), trans: trans})
		conf.Servers = append(conf.Servers, raft.Server{ID: id, Address: raft.ServerAddress(id)})
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.trans.LocalAddr(), b.trans)
			}
		}
	}
	for _, n := range nodes {
		startRaftNode(t, n, conf, true)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if n.r != nil {
				n.r.Shutdown().Error()
				n.store.Close()
			}
		}
	})
	apply := func(from, to int) {
		t.Helper()
		leader := waitLeader(t, nodes)
		for i := from; i < to; i++ {
			if err := leader.r.Apply([]byte(fmt.Sprintf("add %d", i)), 10*time.Second).Error(); err != nil {
				t.Fatalf("apply %d: %v", i, err)
			}
		}
	}
	apply(0, 50)
	old := waitLeader(t, nodes)
	old.stop(t)
	old.r = nil
	apply(50, 100)
	// The old leader restarts on its own store and catches up.
	startRaftNode(t, old, conf, false)
	apply(100, 110)
	want := waitLeader(t, nodes).fsm.state()
	if len(want) != 110 {
		t.Fatalf("leader applied %d entries, want 110", len(want))
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range nodes {
		for fmt.Sprint(n.fsm.state()) != fmt.Sprint(want) {
			if time.Now().After(deadline) {
				t.Fatalf("node %s applied %d entries, the leader %d", n.id, len(n.fsm.state()), len(want))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	leader := waitLeader(t, nodes)
	if err := leader.r.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if first, _ := leader.store.FirstIndex(); first <= 1 {
		t.Fatalf("first index %d: the snapshot did not compact the log", first)
	}
	// A node restarted after the compaction restores from the snapshot
	// and its own store.
	leader.stop(t)
	leader.r = nil
	apply(110, 120)
	startRaftNode(t, leader, conf, false)
	apply(120, 125)
	want = waitLeader(t, nodes).fsm.state()
	for fmt.Sprint(leader.fsm.state()) != fmt.Sprint(want) {
		if time.Now().After(deadline) {
			t.Fatalf("restarted node applied %d entries, the leader %d", len(leader.fsm.state()), len(want))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FuzzDecodeRaftLog: a damaged stored entry is an error, never a panic.
func FuzzDecodeRaftLog(f *testing.F) {
	f.Add(encodeRaftLog(entry(7)))
	f.Add([]byte{raftLogV1})
	f.Fuzz(func(t *testing.T, v []byte) {
		var l raft.Log
		if err := decodeRaftLog(7, v, &l); err != nil {
			return
		}
		if got := encodeRaftLog(&l); !bytes.Equal(got, v) && len(got) > len(v) {
			t.Fatalf("decoded %+v from %d bytes, which encodes to %d", l, len(v), len(got))
		}
	})
}
