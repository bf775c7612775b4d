package txns

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

const waitLong = 10 * time.Second

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeMeta: one broker (id 1) leading every partition.
type fakeMeta struct {
	mu     sync.Mutex
	topics map[string]cluster.Topic
}

func (m *fakeMeta) Topic(name string) (cluster.Topic, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[name]
	return t, ok
}

func (m *fakeMeta) Partition(topic string, p int32) (cluster.PartitionInfo, bool) {
	t, ok := m.Topic(topic)
	if !ok || p < 0 || p >= t.Partitions {
		return cluster.PartitionInfo{}, false
	}
	return cluster.PartitionInfo{Leader: 1, LeaderEpoch: 1, Replicas: []int32{1}, ISR: []int32{1}}, true
}

func (m *fakeMeta) Brokers() []cluster.BrokerInfo {
	return []cluster.BrokerInfo{{ID: 1, Addr: "127.0.0.1:1"}}
}

func (m *fakeMeta) CreateTopic(t cluster.Topic) (cluster.Topic, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.topics[t.Name]; ok {
		return cluster.Topic{}, cluster.ErrTopicExists
	}
	t.ID = cluster.NewTopicID()
	m.topics[t.Name] = t
	return t, nil
}

// fakeMarkers records the markers written; while fail is set every marker
// fails, as when a partition's leader is away.
type fakeMarkers struct {
	mu      sync.Mutex
	written []Marker
	fail    atomic.Bool
	calls   chan struct{}
}

func newFakeMarkers() *fakeMarkers { return &fakeMarkers{calls: make(chan struct{}, 1000)} }

func (f *fakeMarkers) WriteMarkers(_ context.Context, m Marker) []error {
	select {
	case f.calls <- struct{}{}:
	default:
	}
	errs := make([]error, len(m.Partitions))
	if f.fail.Load() {
		for i := range errs {
			errs[i] = partition.ErrNotLeader
		}
		return errs
	}
	f.mu.Lock()
	f.written = append(f.written, m)
	f.mu.Unlock()
	return errs
}

func (f *fakeMarkers) all() []Marker {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Marker(nil), f.written...)
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// broker is a Service over real partitions, restartable on its directory.
type broker struct {
	t       *testing.T
	dir     string
	meta    *fakeMeta
	parts   *partition.Manager
	svc     *Service
	markers *fakeMarkers
	clock   *clock
	pids    *atomic.Int64
}

func newBroker(t *testing.T, dir string, meta *fakeMeta, pids *atomic.Int64, markers *fakeMarkers, c *clock) *broker {
	t.Helper()
	parts, err := partition.OpenManager(partition.Options{DataDir: dir, Logger: quiet,
		Fsync: segment.FsyncPolicy{Mode: segment.FsyncNever}})
	if err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, dir: dir, meta: meta, parts: parts, markers: markers, clock: c, pids: pids}
	b.svc = New(Options{Meta: meta, Parts: parts, NodeID: 1, Partitions: 3, Logger: quiet, Markers: markers,
		MarkerRetry: time.Millisecond, CheckInterval: time.Hour, Now: c.Now, MaxTimeout: time.Minute,
		AllocateProducerID: func() (int64, error) { return pids.Add(1), nil }})
	if err := b.svc.CreateTopic(); err != nil {
		t.Fatal(err)
	}
	tp, _ := meta.Topic(Topic)
	for i := int32(0); i < tp.Partitions; i++ {
		r := partition.Role{Leader: true, LeaderID: 1, Epoch: 1, ISR: []int32{1}, Replicas: []int32{1}}
		p, err := parts.Open(tp, i, r)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.SetRole(r); err != nil {
			t.Fatal(err)
		}
	}
	b.svc.Reconciled()
	t.Cleanup(b.close)
	return b
}

func (b *broker) close() {
	if b.svc != nil {
		b.svc.Close()
		b.parts.Close()
		b.svc = nil
	}
}

func setup(t *testing.T) *broker {
	c := &clock{now: time.UnixMilli(1_700_000_000_000)}
	return newBroker(t, t.TempDir(), &fakeMeta{topics: map[string]cluster.Topic{}}, new(atomic.Int64), newFakeMarkers(), c)
}

// until retries f while it fails with a retriable error of the
// coordinator, as a client does.
func until[T any](t *testing.T, f func() (T, error)) T {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		v, err := f()
		if err == nil {
			return v
		}
		if !errors.Is(err, coordinator.ErrLoadInProgress) && !errors.Is(err, ErrConcurrentTransactions) || time.Now().After(deadline) {
			t.Fatalf("%v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

type pe struct {
	pid   int64
	epoch int16
}

func (b *broker) init(id string, pid int64, epoch int16) pe {
	b.t.Helper()
	return until(b.t, func() (pe, error) {
		p, e, err := b.svc.InitProducerID(id, 30*time.Second, pid, epoch)
		return pe{p, e}, err
	})
}

// state waits for the id to reach st.
func (b *broker) state(id string, st State) Txn {
	b.t.Helper()
	return until(b.t, func() (Txn, error) {
		tx, err := b.svc.Describe(id)
		if err == nil && tx.State != st {
			err = ErrConcurrentTransactions
		}
		return tx, err
	})
}

var tpA, tpB = TopicPartition{"a", 0}, TopicPartition{"b", 3}

func TestCommitWritesMarkersThenComplete(t *testing.T) {
	b := setup(t)
	p := b.init("t1", -1, -1)
	if p.epoch != 0 {
		t.Fatalf("first init: %+v", p)
	}
	if err := b.svc.AddPartitions("t1", p.pid, p.epoch, []TopicPartition{tpB, tpA}); err != nil {
		t.Fatal(err)
	}
	if tx := b.state("t1", Ongoing); len(tx.Partitions) != 2 || tx.Partitions[0] != tpA {
		t.Fatalf("ongoing: %+v", tx)
	}
	if err := b.svc.EndTxn("t1", p.pid, p.epoch, true); err != nil {
		t.Fatal(err)
	}
	b.state("t1", CompleteCommit)
	ms := b.markers.all()
	if len(ms) != 1 || !ms[0].Commit || ms[0].ProducerID != p.pid || ms[0].CoordinatorEpoch != 1 || len(ms[0].Partitions) != 2 {
		t.Fatalf("markers %+v", ms)
	}
	// A retried EndTxn is answered as the first; the other outcome is not.
	if err := b.svc.EndTxn("t1", p.pid, p.epoch, true); err != nil {
		t.Fatalf("retried commit: %v", err)
	}
	if err := b.svc.EndTxn("t1", p.pid, p.epoch, false); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("abort after commit: %v", err)
	}
	if err := b.svc.EndTxn("t1", p.pid+100, p.epoch, true); !errors.Is(err, ErrInvalidProducerIDMapping) {
		t.Fatalf("another producer id: %v", err)
	}
	if _, _, err := b.svc.InitProducerID("t1", 2*time.Minute, -1, -1); !errors.Is(err, ErrInvalidTimeout) {
		t.Fatalf("timeout above the maximum: %v", err)
	}
}

// TestFencing: a second InitProducerId bumps the epoch and fences the
// first producer; with a transaction open, it is aborted under the bumped
// epoch first.
func TestFencing(t *testing.T) {
	b := setup(t)
	p0 := b.init("t", -1, -1)
	p1 := b.init("t", -1, -1)
	if p1.pid != p0.pid || p1.epoch != 1 {
		t.Fatalf("second init %+v after %+v", p1, p0)
	}
	if err := b.svc.AddPartitions("t", p0.pid, p0.epoch, []TopicPartition{tpA}); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("zombie's AddPartitions: %v", err)
	}
	if err := b.svc.AddPartitions("t", p1.pid, p1.epoch, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	// A third producer while the transaction is open: it is aborted under
	// epoch 2, and the new producer gets epoch 3.
	p2 := b.init("t", -1, -1)
	if p2.epoch != 3 {
		t.Fatalf("init over an open transaction: %+v", p2)
	}
	ms := b.markers.all()
	if len(ms) != 1 || ms[0].Commit || ms[0].ProducerEpoch != 2 {
		t.Fatalf("markers %+v", ms)
	}
	if err := b.svc.EndTxn("t", p1.pid, p1.epoch, true); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("fenced producer's commit: %v", err)
	}
	// KIP-360: the current producer bumps its own epoch; a retry of that
	// bump gets the same answer; a stale epoch is fenced.
	p3 := b.init("t", p2.pid, p2.epoch)
	if p3.epoch != 4 {
		t.Fatalf("KIP-360 bump %+v", p3)
	}
	if again := b.init("t", p2.pid, p2.epoch); again != p3 {
		t.Fatalf("retried bump %+v, want %+v", again, p3)
	}
	if _, _, err := b.svc.InitProducerID("t", time.Second, p2.pid, 1); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("stale epoch: %v", err)
	}
	// An exhausted epoch rotates the producer id.
	sh, _ := b.svc.shardOf("t")
	sh.mu.Lock()
	sh.mu.ids["t"].t.Epoch = exhaustedEpoch
	sh.mu.Unlock()
	p4 := b.init("t", -1, -1)
	if p4.pid == p3.pid || p4.epoch != 0 {
		t.Fatalf("after an exhausted epoch: %+v", p4)
	}
	if tx := b.state("t", Empty); tx.PrevProducerID != p3.pid {
		t.Fatalf("previous producer id %d, want %d", tx.PrevProducerID, p3.pid)
	}
}

// TestTimeoutAborts: a transaction open past its timeout is aborted under
// a bumped epoch, which fences its producer.
func TestTimeoutAborts(t *testing.T) {
	b := setup(t)
	p := b.init("slow", -1, -1)
	if err := b.svc.AddPartitions("slow", p.pid, p.epoch, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	sh, _ := b.svc.shardOf("slow")
	sh.expire()
	if tx := b.state("slow", Ongoing); tx.Epoch != 0 {
		t.Fatalf("aborted before its timeout: %+v", tx)
	}
	b.clock.advance(31 * time.Second)
	sh.expire()
	tx := b.state("slow", CompleteAbort)
	if tx.Epoch != 1 {
		t.Fatalf("after the timeout: %+v", tx)
	}
	if ms := b.markers.all(); len(ms) != 1 || ms[0].Commit || ms[0].ProducerEpoch != 1 {
		t.Fatalf("markers %+v", ms)
	}
	if err := b.svc.EndTxn("slow", p.pid, p.epoch, true); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("commit after the timeout abort: %v", err)
	}
	// An idle id expires.
	b.clock.advance(8 * 24 * time.Hour)
	sh.expire()
	if _, err := b.svc.Describe("slow"); !errors.Is(err, ErrUnknownID) {
		t.Fatalf("after the expiration: %v", err)
	}
	if st := b.svc.Stats(); st.TimedOut != 1 || st.Expired != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestFailoverResumesMarkers: a coordinator that stops between the Prepare
// record and the markers leaves the transaction to the next one, which
// writes the markers and completes it; after losing the partition the
// first answers NOT_COORDINATOR.
func TestFailoverResumesMarkers(t *testing.T) {
	b := setup(t)
	p := b.init("f", -1, -1)
	if err := b.svc.AddPartitions("f", p.pid, p.epoch, []TopicPartition{tpA, tpB}); err != nil {
		t.Fatal(err)
	}
	b.markers.fail.Store(true)
	if err := b.svc.EndTxn("f", p.pid, p.epoch, true); err != nil {
		t.Fatal(err)
	}
	<-b.markers.calls
	if tx, err := b.svc.Describe("f"); err != nil || tx.State != PrepareCommit {
		t.Fatalf("while the markers fail: %+v, %v", tx, err)
	}
	if err := b.svc.EndTxn("f", p.pid, p.epoch, true); !errors.Is(err, ErrConcurrentTransactions) {
		t.Fatalf("retried commit while the markers fail: %v", err)
	}
	<-b.markers.calls // the second round: the first one's failures are counted
	if b.svc.Stats().MarkerRetries == 0 {
		t.Fatal("the failed markers were not counted")
	}
	b.svc.Lead(nil)
	if _, err := b.svc.Describe("f"); !errors.Is(err, coordinator.ErrNotCoordinator) {
		t.Fatalf("after losing the partition: %v", err)
	}
	b.close()
	markers := newFakeMarkers()
	b2 := newBroker(t, b.dir, b.meta, b.pids, markers, b.clock)
	tx := b2.state("f", CompleteCommit)
	if tx.ProducerID != p.pid || len(tx.Partitions) != 0 {
		t.Fatalf("resumed: %+v", tx)
	}
	if ms := markers.all(); len(ms) != 1 || !ms[0].Commit || len(ms[0].Partitions) != 2 {
		t.Fatalf("resumed markers %+v", ms)
	}

	// The state survives a reload: the producer's epoch goes on.
	b2.close()
	b3 := newBroker(t, b.dir, b.meta, b.pids, newFakeMarkers(), b.clock)
	if q := b3.init("f", -1, -1); q.pid != p.pid || q.epoch != 1 {
		t.Fatalf("init after reload %+v", q)
	}
}

func TestVerifyPartitions(t *testing.T) {
	b := setup(t)
	p := b.init("v", -1, -1)
	if err := b.svc.AddPartitions("v", p.pid, p.epoch, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	errs, err := b.svc.VerifyPartitions("v", p.pid, p.epoch, []TopicPartition{tpA, tpB})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], ErrInvalidTxnState) {
		t.Fatalf("verify: %v, %v", errs, err)
	}
	if _, err := b.svc.VerifyPartitions("v", p.pid, p.epoch+1, []TopicPartition{tpA}); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("verify with another epoch: %v", err)
	}
}

// TestVerify: a partition's leader verifies a transaction's first batch
// with the coordinator; while the coordinator is not loaded, it cannot.
func TestVerify(t *testing.T) {
	b := setup(t)
	p := b.init("w", -1, -1)
	if err := b.svc.Verify("w", p.pid, p.epoch, tpA); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("before AddPartitions: %v", err)
	}
	if err := b.svc.AddPartitions("w", p.pid, p.epoch, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.Verify("w", p.pid, p.epoch, tpA); err != nil {
		t.Fatalf("after AddPartitions: %v", err)
	}
	if err := b.svc.Verify("w", p.pid, p.epoch-1, tpA); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("older epoch: %v", err)
	}
	b.svc.Lead(nil)
	if err := b.svc.Verify("w", p.pid, p.epoch, tpA); !errors.Is(err, coordinator.ErrNotAvailable) {
		t.Fatalf("without a coordinator: %v", err)
	}
}

// TestStateRefusals: what each state refuses, as Kafka does.
func TestStateRefusals(t *testing.T) {
	b := setup(t)
	p := b.init("s", -1, -1)
	if err := b.svc.EndTxn("s", p.pid, p.epoch, true); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("EndTxn with no transaction: %v", err)
	}
	if err := b.svc.AddPartitions("nobody", p.pid, p.epoch, []TopicPartition{tpA}); !errors.Is(err, ErrInvalidProducerIDMapping) {
		t.Fatalf("AddPartitions of an unknown id: %v", err)
	}
	if err := b.svc.AddPartitions("s", p.pid, p.epoch, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	// Adding what is in the transaction already writes nothing.
	if err := b.svc.AddPartitions("s", p.pid, p.epoch, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	b.markers.fail.Store(true)
	if err := b.svc.EndTxn("s", p.pid, p.epoch, false); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		b.svc.AddPartitions("s", p.pid, p.epoch, []TopicPartition{tpB}),
		b.svc.EndTxn("s", p.pid, p.epoch, false),
		func() error { _, _, err := b.svc.InitProducerID("s", time.Second, -1, -1); return err }(),
	} {
		if !errors.Is(err, ErrConcurrentTransactions) {
			t.Fatalf("during PrepareAbort: %v, want ErrConcurrentTransactions", err)
		}
	}
	if err := b.svc.EndTxn("s", p.pid, p.epoch, true); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("commit during PrepareAbort: %v", err)
	}
	b.markers.fail.Store(false)
	b.state("s", CompleteAbort)
	// A new transaction starts from the completed one.
	if err := b.svc.AddPartitions("s", p.pid, p.epoch, []TopicPartition{tpB}); err != nil {
		t.Fatal(err)
	}
	if tx := b.state("s", Ongoing); len(tx.Partitions) != 1 || tx.Partitions[0] != tpB {
		t.Fatalf("second transaction: %+v", tx)
	}
	if n := len(b.svc.List()); n != 1 {
		t.Fatalf("listed %d ids", n)
	}
}
