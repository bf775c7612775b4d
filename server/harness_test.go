package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// fakeMeta is a single broker's metadata held in memory: broker 1 leads
// every partition of every topic. Methods the handlers under test do not
// call are left to the embedded interface (and would panic).
type fakeMeta struct {
	Cluster
	brokers []cluster.BrokerInfo

	mu      sync.Mutex
	topics  map[string]cluster.Topic
	creates int // CreateTopic and SetPartitions calls that reached the store

	// beforeCreate, if set, runs at the start of CreateTopic without the
	// lock, as a proposal's round trip to the Raft leader would.
	beforeCreate func(name string)
}

func newFakeMeta(brokers int) *fakeMeta {
	m := &fakeMeta{topics: map[string]cluster.Topic{}}
	for id := int32(1); id <= int32(brokers); id++ {
		m.brokers = append(m.brokers, cluster.BrokerInfo{ID: id, Addr: fmt.Sprintf("127.0.0.1:%d", 9091+id)})
	}
	return m
}

func (m *fakeMeta) Topics() []cluster.Topic {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]cluster.Topic, 0, len(m.topics))
	for _, t := range m.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (m *fakeMeta) Topic(name string) (cluster.Topic, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[name]
	return t, ok
}

func (m *fakeMeta) TopicByID(id cluster.TopicID) (cluster.Topic, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.topics {
		if t.ID == id {
			return t, true
		}
	}
	return cluster.Topic{}, false
}

func (m *fakeMeta) CreateTopic(t cluster.Topic) (cluster.Topic, error) {
	if m.beforeCreate != nil {
		m.beforeCreate(t.Name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creates++
	if _, ok := m.topics[t.Name]; ok {
		return cluster.Topic{}, fmt.Errorf("%w: %s", cluster.ErrTopicExists, t.Name)
	}
	if t.ID == (cluster.TopicID{}) {
		t.ID = cluster.NewTopicID()
	}
	m.topics[t.Name] = t
	return t, nil
}

func (m *fakeMeta) DeleteTopic(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.topics[name]; !ok {
		return fmt.Errorf("%w: %s", cluster.ErrUnknownTopic, name)
	}
	delete(m.topics, name)
	return nil
}

func (m *fakeMeta) SetPartitions(name string, n int32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creates++
	t, ok := m.topics[name]
	if !ok || n <= t.Partitions {
		return cluster.ErrPartitions
	}
	t.Partitions = n
	m.topics[name] = t
	return nil
}

func (m *fakeMeta) storeCalls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.creates
}

func (m *fakeMeta) Brokers() []cluster.BrokerInfo { return m.brokers }
func (m *fakeMeta) Controller() int32             { return 1 }

func (m *fakeMeta) Partition(topic string, p int32) (cluster.PartitionInfo, bool) {
	t, ok := m.Topic(topic)
	if !ok || p < 0 || p >= t.Partitions {
		return cluster.PartitionInfo{}, false
	}
	return cluster.PartitionInfo{Replicas: []int32{1}, Leader: 1, ISR: []int32{1}}, true
}

// maxTestPartitions is the most partitions fakeReplicas opens per topic; a
// test that asks for more has already failed.
const maxTestPartitions = 1000

// fakeReplicas opens, as leader, every partition the fake metadata lists.
type fakeReplicas struct {
	meta  *fakeMeta
	parts *partition.Manager
}

func (r *fakeReplicas) Reconcile() error {
	for _, t := range r.meta.Topics() {
		if t.Partitions > maxTestPartitions {
			return fmt.Errorf("test broker: topic %s has %d partitions, more than %d", t.Name, t.Partitions, maxTestPartitions)
		}
		for i := int32(0); i < t.Partitions; i++ {
			if _, err := r.parts.Open(t, i, partition.Role{Leader: true, LeaderID: 1, ISR: []int32{1}, Replicas: []int32{1}}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *fakeReplicas) FollowerFetched(*partition.Partition, int32, int64, int32) error { return nil }

// memOffsets keeps committed offsets in memory; every commit is durable at
// once.
type memOffsets struct {
	mu      sync.Mutex
	offsets map[string][]group.Offset
}

func (m *memOffsets) Commit(g string, offsets []group.Offset) (func() error, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.offsets == nil {
		m.offsets = map[string][]group.Offset{}
	}
	m.offsets[g] = append(m.offsets[g], offsets...)
	return noWait, nil
}

func (m *memOffsets) Delete(string, []group.TopicPartition) (func() error, error) { return noWait, nil }
func (m *memOffsets) DeleteGroup(string, []group.TopicPartition) (func() error, error) {
	return noWait, nil
}
func (m *memOffsets) Load() (map[string][]group.Offset, error) { return nil, nil }

func noWait() error { return nil }

// oneCoordinator is the Groups of a test server: one coordinator for every
// group, on the controller.
type oneCoordinator struct {
	c    *group.Coordinator
	meta Cluster
}

func (o oneCoordinator) Coordinator(string) (*group.Coordinator, error) { return o.c, nil }
func (o oneCoordinator) Coordinators() []*group.Coordinator             { return []*group.Coordinator{o.c} }
func (o oneCoordinator) Locate(string) (int32, error)                   { return o.meta.Controller(), nil }

// newTestGroups returns a coordinator over memOffsets, closed when the
// test ends.
func newTestGroups(t testing.TB, cfg group.Config, meta Cluster) oneCoordinator {
	t.Helper()
	c, err := group.New(cfg, &memOffsets{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return oneCoordinator{c: c, meta: meta}
}

// testServer is a Server over real partitions in a temporary directory and
// fake metadata, for calling handlers directly.
type testServer struct {
	*Server
	meta  *fakeMeta
	parts *partition.Manager
}

func newTestServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	meta := newFakeMeta(1)
	return newTestServerOver(t, cfg, meta, meta)
}

// newTestServerOver is newTestServer whose server reads meta, a Cluster
// over fm (the fake the tests change).
func newTestServerOver(t testing.TB, cfg Config, meta Cluster, fm *fakeMeta) *testServer {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	parts, err := partition.OpenManager(partition.Options{DataDir: t.TempDir(), Logger: logger,
		Fsync: segment.FsyncPolicy{Mode: segment.FsyncNever}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { parts.Close() })
	groups := newTestGroups(t, group.Config{Logger: logger}, meta)
	cfg.Logger = logger
	s := New(cfg, parts, meta, groups, &fakeReplicas{meta: fm, parts: parts})
	return &testServer{Server: s, meta: fm, parts: parts}
}

// call sends req at its version through the decoder dispatch uses and the
// handler, and returns the answer as a client decodes it.
func (ts *testServer) call(t testing.TB, req kmsg.Request) kmsg.Response {
	t.Helper()
	return ts.callFrom(t, "127.0.0.1", Anonymous, req)
}

// callFrom is call from a client at host with the principal.
func (ts *testServer) callFrom(t testing.TB, host, principal string, req kmsg.Request) kmsg.Response {
	t.Helper()
	v := req.GetVersion()
	h := requestHeader{Key: req.Key(), Version: v, CorrelationID: 7, ClientID: "test", Flexible: req.IsFlexible()}
	// A connection that is never closed: handlers that park watch its
	// context, and log lines name its address.
	c := &conn{s: ts.Server, ctx: context.Background(), remote: host + ":1", addr: host, host: "/" + host,
		listener: cluster.DefaultListener, principal: principal}
	rep, err := ts.dispatch(c, h, req.AppendTo(nil))
	if err != nil {
		t.Fatalf("%s v%d: %v", apiName(req.Key()), v, err)
	}
	got := req.ResponseKind()
	got.SetVersion(v)
	var body []byte
	switch out := rep.finish().(type) {
	case kmsg.Response:
		body = out.AppendTo(nil)
	case *consumer.Encoded:
		frame := encodedFrame(t, out)
		body = frame[8:] // size and correlation id
		if got.IsFlexible() {
			body = body[1:] // response header tags (none)
		}
	default:
		t.Fatalf("%s v%d: answer %T", apiName(req.Key()), v, out)
	}
	if err := got.ReadFrom(body); err != nil {
		t.Fatalf("%s v%d: answer does not decode: %v", apiName(req.Key()), v, err)
	}
	return got
}

// encodedFrame sends e through a socket pair, as a connection would, and
// returns the bytes a client reads: the size prefix and the frame. It fails
// the test if the prefix is not the frame's size.
func encodedFrame(t testing.TB, e *consumer.Encoded) []byte {
	t.Helper()
	conns := socketPair(t)
	defer conns[0].Close()
	defer conns[1].Close()
	size := e.Size()
	sent := make(chan error, 1)
	go func() {
		sent <- consumer.Send(conns[0], e, consumer.Sendfile)
		conns[0].Close()
	}()
	frame, err := io.ReadAll(conns[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if int64(len(frame)) != size || len(frame) < 8 {
		t.Fatalf("read %d bytes, Size says %d", len(frame), size)
	}
	if n := int32(binary.BigEndian.Uint32(frame)); n < 0 || int64(n) != size-4 {
		t.Fatalf("size prefix %d for a %d-byte frame", n, size-4)
	}
	return frame
}

// createTopic creates a topic through the CreateTopics handler and fails
// the test if it is refused.
func (ts *testServer) createTopic(t testing.TB, name string, partitions int32) cluster.Topic {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
	req.Topics = append(req.Topics, rt)
	resp := ts.call(t, req).(*kmsg.CreateTopicsResponse)
	if c := resp.Topics[0].ErrorCode; c != 0 {
		t.Fatalf("create %s with %d partitions: error %d", name, partitions, c)
	}
	topic, _ := ts.meta.Topic(name)
	return topic
}

// produce appends n batches of records of size bytes to one partition.
func (ts *testServer) produce(t *testing.T, topic string, part int32, n, records, size int) {
	t.Helper()
	p, err := ts.parts.Get(topic, part)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		b := testbatch.Make(testbatch.Spec{Timestamp: int64(1000 + i), ProducerID: -1, Values: testbatch.Values(records, size, byte(i))})
		if _, err := p.Append(b, 1); err != nil {
			t.Fatal(err)
		}
	}
}

// socketPair returns the two ends of a Unix stream socket pair (a real
// socket, as sendfile needs), closed when the test ends.
func socketPair(t testing.TB) [2]net.Conn {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		t.Cleanup(func() { c.Close() })
	}
	return conns
}
