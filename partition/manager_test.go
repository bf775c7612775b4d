package partition

import (
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/segment"
)

func namedTopic(name string, id byte) cluster.Topic {
	t := testTopic(nil)
	t.Name, t.ID = name, cluster.TopicID{id}
	return t
}

// gate blocks the hook's caller for one partition name until opened, and
// says when the caller got there.
type gate struct {
	name    string
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate(name string) *gate {
	return &gate{name: name, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) hook(name string) {
	if name != g.name {
		return
	}
	g.once.Do(func() { close(g.entered) })
	<-g.release
}

func (g *gate) open() {
	select {
	case <-g.release:
	default:
		close(g.release)
	}
}

// within runs fn and fails the test if it does not return within waitLong:
// it would be waiting behind the blocked open or removal.
func within(t *testing.T, what string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(waitLong):
		t.Fatalf("%s waited behind another partition's open or removal", what)
	}
}

// useA produces to partition a-0 and looks it up, as produce and fetch do.
func useA(m *Manager) error {
	p, err := m.Get("a", 0)
	if err != nil {
		return err
	}
	if _, err := p.Append(plain(2), 1); err != nil {
		return err
	}
	if len(m.Partitions()) == 0 {
		return errors.New("no partitions listed")
	}
	r, err := p.Read(0, 1<<20)
	r.Release()
	return err
}

// TestOpenDoesNotBlockOtherPartitions: while partition b-0 is being opened
// (recovery, fsyncs), a-0 takes produces and lookups.
func TestOpenDoesNotBlockOtherPartitions(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncAlways)
	openReplica(t, m, namedTopic("a", 1), leaderRole(1, 1, []int32{1}, 1))
	g := newGate("b-0")
	defer g.open()
	m.beforeOpen = g.hook
	opened := make(chan error, 1)
	go func() {
		_, err := m.Open(namedTopic("b", 2), 0, leaderRole(1, 1, []int32{1}, 1))
		opened <- err
	}()
	<-g.entered
	within(t, "produce to a-0", func() error { return useA(m) })
	if _, err := m.Get("b", 0); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("Get of a partition being opened: %v, want ErrUnknownPartition", err)
	}
	g.open()
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get("b", 0); err != nil {
		t.Fatal(err)
	}
}

// TestRemoveDoesNotBlockOtherPartitions: while b-0 is being closed and
// deleted, a-0 takes produces and lookups, b-0 is already gone from the
// set, and an Open of b-0 waits for the removal and starts afresh.
func TestRemoveDoesNotBlockOtherPartitions(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncAlways)
	openReplica(t, m, namedTopic("a", 1), leaderRole(1, 1, []int32{1}, 1))
	b := openReplica(t, m, namedTopic("b", 2), leaderRole(1, 1, []int32{1}, 1))
	produce(t, b, plain(3), 1)
	g := newGate("b-0")
	defer g.open()
	m.beforeRemove = g.hook
	removed := make(chan error, 1)
	go func() { removed <- m.Remove(b) }()
	<-g.entered
	within(t, "produce to a-0", func() error { return useA(m) })
	if _, err := m.Get("b", 0); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("Get of a partition being removed: %v, want ErrUnknownPartition", err)
	}
	reopened := make(chan *Partition, 1)
	go func() {
		p, err := m.Open(namedTopic("b", 2), 0, leaderRole(1, 1, []int32{1}, 1))
		if err != nil {
			t.Error(err)
		}
		reopened <- p
	}()
	g.open()
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if p := <-reopened; p == nil || p == b || p.LogEndOffset() != 0 {
		t.Fatalf("reopened after the removal: %v", p)
	}
}

// TestCloseWaitsForOpen: Close during an open waits for it; the open then
// fails with ErrClosed and leaves nothing open.
func TestCloseWaitsForOpen(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir, 1, fsyncNever)
	g := newGate("b-0")
	defer g.open()
	m.beforeOpen = g.hook
	opened := make(chan error, 1)
	go func() {
		_, err := m.Open(namedTopic("b", 2), 0, leaderRole(1, 1, []int32{1}, 1))
		opened <- err
	}()
	<-g.entered
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	g.open()
	if err := <-opened; !errors.Is(err, segment.ErrClosed) {
		t.Fatalf("open during Close: %v, want ErrClosed", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	// Everything was closed: the folder opens again in a new manager.
	m2 := newManager(t, dir, 1, fsyncNever)
	openReplica(t, m2, namedTopic("b", 2), leaderRole(1, 1, []int32{1}, 1))
}

// TestConcurrentOpenRemove races opens (of the topic and of a new topic of
// the same name) and removals of one partition: they take turns, and the
// manager ends holding at most the partition the last of them left.
func TestConcurrentOpenRemove(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncNever)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				topic := namedTopic("b", byte(1+(w+i)%2)) // two topic ids
				p, err := m.Open(topic, 0, leaderRole(1, 1, []int32{1}, 1))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := p.Append(plain(1), 1); err != nil && !errors.Is(err, segment.ErrClosed) && !errors.Is(err, ErrLeaderNotAvailable) {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if err := m.Remove(p); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if p, err := m.Get("b", 0); err == nil {
		if _, err := os.Stat(p.Log().Dir()); err != nil {
			t.Fatalf("the partition held has no folder: %v", err)
		}
	}
}
