package coordinator

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

const waitLong = 10 * time.Second

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// kv is a shard whose state is the latest value of each key.
type kv struct {
	mu      sync.Mutex
	state   map[string]string
	w       *Writer
	unload  error
	records int
}

// kvLoader replays into a kv; gate, if set, holds every Replay until it
// is closed.
type kvLoader struct {
	kv   *kv
	gate chan struct{}
}

func (l *kvLoader) Replay(r Record) error {
	if l.gate != nil {
		<-l.gate
	}
	l.kv.records++
	if r.Value == nil {
		delete(l.kv.state, string(r.Key))
	} else {
		l.kv.state[string(r.Key)] = string(r.Value)
	}
	return nil
}

func (l *kvLoader) Loaded(w *Writer) (Shard, error) { l.kv.w = w; return l.kv, nil }

func (s *kv) Unload(err error) {
	s.mu.Lock()
	s.unload = err
	s.mu.Unlock()
}

// put writes and applies one key's value (nil: delete), as a shard does:
// append, then apply.
func (s *kv) put(key string, value []byte) (func() error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wait, err := s.w.Append([]Record{{Key: []byte(key), Value: value}})
	if err != nil {
		return nil, err
	}
	if value == nil {
		delete(s.state, key)
	} else {
		s.state[key] = string(value)
	}
	return wait, nil
}

func (s *kv) unloaded() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unload
}

func (s *kv) snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, v := range s.state {
		out[k] = v
	}
	return out
}

// fixture is a runtime over real partitions in a temporary directory.
type fixture struct {
	parts   *partition.Manager
	rt      *Runtime
	mu      sync.Mutex
	loaders map[int32][]*kvLoader
	gate    chan struct{}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	parts, err := partition.OpenManager(partition.Options{DataDir: t.TempDir(), Logger: quiet,
		Fsync: segment.FsyncPolicy{Mode: segment.FsyncNever}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { parts.Close() })
	f := &fixture{parts: parts, loaders: map[int32][]*kvLoader{}}
	f.rt = New(Config{Topic: "__kv", Logger: quiet, WriteTimeout: waitLong, LoadRetry: 10 * time.Millisecond,
		NewLoader: func(i int32) Loader {
			f.mu.Lock()
			defer f.mu.Unlock()
			l := &kvLoader{kv: &kv{state: map[string]string{}}, gate: f.gate}
			f.loaders[i] = append(f.loaders[i], l)
			return l
		}})
	t.Cleanup(f.rt.Close)
	return f
}

var kvTopic = cluster.Topic{Name: "__kv", ID: cluster.TopicID{9}, Partitions: 2}

// open opens partition i of the topic here with role r.
func (f *fixture) open(t *testing.T, i int32, r partition.Role) *partition.Partition {
	t.Helper()
	p, err := f.parts.Open(kvTopic, i, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetRole(r); err != nil {
		t.Fatal(err)
	}
	return p
}

func leader(epoch int32) partition.Role {
	return partition.Role{Leader: true, LeaderID: 1, Epoch: epoch, ISR: []int32{1}, Replicas: []int32{1}}
}

// active waits for partition i's shard to be active and returns it.
func (f *fixture) active(t *testing.T, i int32) *kv {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		sh, err := f.rt.Shard(i)
		if err == nil {
			return sh.(*kv)
		}
		if !errors.Is(err, ErrLoadInProgress) || time.Now().After(deadline) {
			t.Fatalf("shard %d: %v", i, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLoadReplaysWrites: what a shard wrote is what the next leader term
// loads, tombstones included, and only from the partition it belongs to.
func TestLoadReplaysWrites(t *testing.T) {
	f := newFixture(t)
	p0, p1 := f.open(t, 0, leader(1)), f.open(t, 1, leader(1))
	f.rt.Lead([]Led{{0, 1, p0}, {1, 1, p1}})
	s0, s1 := f.active(t, 0), f.active(t, 1)
	want0 := map[string]string{}
	for i := 0; i < 50; i++ {
		k := fmt.Sprintf("k%d", i%7)
		var v []byte
		if i%5 != 4 {
			v = []byte(fmt.Sprintf("v%d", i))
			want0[k] = string(v)
		} else {
			delete(want0, k)
		}
		wait, err := s0.put(k, v)
		if err != nil {
			t.Fatal(err)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s1.put("only-on-1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// A new leader epoch: the shard is unloaded and loaded again.
	if err := p0.SetRole(leader(2)); err != nil {
		t.Fatal(err)
	}
	f.rt.Lead([]Led{{0, 2, p0}, {1, 1, p1}})
	if !errors.Is(s0.unloaded(), ErrNotCoordinator) {
		t.Fatalf("old shard unloaded with %v, want ErrNotCoordinator", s0.unload)
	}
	if f.active(t, 1) != s1 {
		t.Fatal("partition 1's shard was reloaded though its leadership did not change")
	}
	got := f.active(t, 0).snapshot()
	if fmt.Sprint(got) != fmt.Sprint(want0) {
		t.Fatalf("loaded %v, want %v", got, want0)
	}
	if n := f.active(t, 0).records; n != 50 {
		t.Fatalf("replayed %d records, want 50", n)
	}
}

// TestShardStates: a partition not led here is ErrNotCoordinator; one
// being loaded is ErrLoadInProgress; unloading stops the load.
func TestShardStates(t *testing.T) {
	f := newFixture(t)
	p0 := f.open(t, 0, leader(1))
	if _, err := f.rt.Shard(0); !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("before Lead: %v", err)
	}
	f.rt.Lead([]Led{{0, 1, p0}})
	s := f.active(t, 0)
	if _, err := s.put("a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	if err := p0.SetRole(leader(2)); err != nil {
		t.Fatal(err)
	}
	f.rt.Lead([]Led{{0, 2, p0}})
	if _, err := f.rt.Shard(0); !errors.Is(err, ErrLoadInProgress) {
		t.Fatalf("while loading: %v", err)
	}
	if loading, active := f.rt.Loading(); loading != 1 || active != 0 {
		t.Fatalf("loading %d, active %d", loading, active)
	}
	f.rt.Lead(nil)
	close(gate)
	if _, err := f.rt.Shard(0); !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("after losing leadership mid-load: %v", err)
	}
	f.rt.Close()
	if _, err := f.rt.Shard(0); !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestWriteRefused: an append the partition refuses writes nothing, and
// the error says whether to look for another coordinator or try again.
func TestWriteRefused(t *testing.T) {
	f := newFixture(t)
	p0 := f.open(t, 0, partition.Role{Leader: true, LeaderID: 1, Epoch: 1, ISR: []int32{1}, Replicas: []int32{1, 2}})
	f.rt.Lead([]Led{{0, 1, p0}})
	s := f.active(t, 0)
	end := p0.LogEndOffset()

	// min.insync.replicas 2 with an ISR of one: not available.
	f2 := newFixture(t)
	p, err := f2.parts.Open(cluster.Topic{Name: "__kv", ID: cluster.TopicID{9}, Partitions: 1,
		Configs: map[string]string{"min.insync.replicas": "2"}}, 0, leader(1))
	if err != nil {
		t.Fatal(err)
	}
	f2.rt.Lead([]Led{{0, 1, p}})
	if _, err := f2.active(t, 0).put("a", []byte("1")); !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("append below min.insync.replicas: %v, want ErrNotAvailable", err)
	}
	if got := f2.active(t, 0).snapshot(); len(got) != 0 {
		t.Fatalf("a refused write was applied: %v", got)
	}

	// A follower now: not the coordinator.
	if err := p0.SetRole(partition.Role{LeaderID: 2, Epoch: 2, ISR: []int32{1, 2}, Replicas: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.put("a", []byte("1")); !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("append on a follower: %v, want ErrNotCoordinator", err)
	}
	if p0.LogEndOffset() != end {
		t.Fatal("a refused append reached the log")
	}
}

// TestWaitFailsOnLeadershipLoss: a write waiting for the ISR when the
// partition's leadership moves fails with ErrNotCoordinator, and the shard
// is reloaded from the log if the broker still leads (its memory may hold
// what a new leader truncated).
func TestWaitFailsOnLeadershipLoss(t *testing.T) {
	f := newFixture(t)
	p0 := f.open(t, 0, partition.Role{Leader: true, LeaderID: 1, Epoch: 1, ISR: []int32{1, 2}, Replicas: []int32{1, 2}})
	f.rt.Lead([]Led{{0, 1, p0}})
	s := f.active(t, 0)
	wait, err := s.put("a", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- wait() }()
	if err := p0.SetRole(partition.Role{Leader: true, LeaderID: 1, Epoch: 2, ISR: []int32{1}, Replicas: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotCoordinator) {
			t.Fatalf("wait = %v, want ErrNotCoordinator", err)
		}
	case <-time.After(waitLong):
		t.Fatal("the wait did not end when the leader epoch changed")
	}
	deadline := time.Now().Add(waitLong)
	for {
		sh, err := f.rt.Shard(0)
		if err == nil && sh != Shard(s) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shard was not reloaded: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.unloaded(); !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("old shard unloaded with %v", err)
	}
}
