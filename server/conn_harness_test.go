package server

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// waitLong bounds a wait for something that should happen soon; reaching
// it is a failure.
const waitLong = 10 * time.Second

// Topics of the test server: "t" is led here alone; "w" is led here with
// an ISR of two whose other member never fetches, so an acks=all produce
// to it waits until its timeout.
var (
	topicT = cluster.Topic{Name: "t", ID: cluster.TopicID{1}, Partitions: 1}
	topicW = cluster.Topic{Name: "w", ID: cluster.TopicID{2}, Partitions: 1}
)

// testMeta is a Cluster that knows the test topics; the other methods are
// not called by the requests the tests send (and would panic).
type testMeta struct {
	Cluster
}

func (testMeta) Topic(name string) (cluster.Topic, bool) {
	switch name {
	case topicT.Name:
		return topicT, true
	case topicW.Name:
		return topicW, true
	}
	return cluster.Topic{}, false
}

func (testMeta) Partition(string, int32) (cluster.PartitionInfo, bool) {
	return cluster.PartitionInfo{}, false
}

// logCounter is a slog handler that counts records by message.
type logCounter struct {
	mu    sync.Mutex
	count map[string]int
	attrs map[string][]map[string]slog.Value
}

func newLogCounter() *logCounter {
	return &logCounter{count: map[string]int{}, attrs: map[string][]map[string]slog.Value{}}
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCounter) WithGroup(string) slog.Handler            { return l }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	a := map[string]slog.Value{}
	r.Attrs(func(at slog.Attr) bool { a[at.Key] = at.Value; return true })
	l.mu.Lock()
	l.count[r.Message]++
	l.attrs[r.Message] = append(l.attrs[r.Message], a)
	l.mu.Unlock()
	return nil
}

func (l *logCounter) lines(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[msg]
}

func (l *logCounter) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.count {
		n += c
	}
	return n
}

// connServer is a server over real partitions in a temporary folder,
// serving on a loopback listener.
type connServer struct {
	s    *Server
	addr string
	log  *logCounter
	reg  *prometheus.Registry
	// served gets Serve's result.
	served chan error
}

// newConnServer returns a server with cfg; setup, if set, runs on it
// before it serves, and wrap, if set, wraps its listener.
func newConnServer(t *testing.T, cfg Config, setup func(*Server), wrap func(net.Listener) net.Listener) *connServer {
	t.Helper()
	ts := &connServer{log: newLogCounter(), reg: prometheus.NewRegistry(), served: make(chan error, 1)}
	quiet := slog.New(slog.DiscardHandler)
	parts, err := partition.OpenManager(partition.Options{DataDir: t.TempDir(), Fsync: segment.FsyncPolicy{Mode: segment.FsyncNever}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { parts.Close() })
	if _, err := parts.Open(topicT, 0, partition.Role{Leader: true, LeaderID: 1, Epoch: 1, ISR: []int32{1}, Replicas: []int32{1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := parts.Open(topicW, 0, partition.Role{Leader: true, LeaderID: 1, Epoch: 1, ISR: []int32{1, 2}, Replicas: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	groups := newTestGroups(t, group.Config{InitialRebalanceDelay: time.Hour, Logger: quiet}, testMeta{})
	cfg.Logger = slog.New(ts.log)
	cfg.Metrics = NewMetrics(ts.reg)
	ts.s = New(cfg, parts, testMeta{}, groups, nil)
	if setup != nil {
		setup(ts.s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	go func() { ts.served <- ts.s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		if err := ts.s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return ts
}

func (ts *connServer) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", ts.addr, waitLong)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds, failing the test after waitLong.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	limit := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(limit) {
			t.Fatalf("still waiting after %v: %s", waitLong, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// frame encodes req as a whole request frame, size first.
func frame(req kmsg.Request, corr int32) []byte {
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// roundTrip sends req on c and returns the answer's body (after the
// correlation id and, for flexible answers, the header tags).
func roundTrip(t *testing.T, c net.Conn, req kmsg.Request) []byte {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitLong))
	if _, err := c.Write(frame(req, 7)); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatalf("no answer to %s: %v", apiName(req.Key()), err)
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	if corr := int32(binary.BigEndian.Uint32(b)); corr != 7 {
		t.Fatalf("correlation id %d, sent 7", corr)
	}
	b = b[4:]
	if req.IsFlexible() && req.Key() != apiVersionsKey {
		b = b[1:] // no header tags
	}
	return b
}

func apiVersionsRequest() *kmsg.ApiVersionsRequest {
	r := kmsg.NewPtrApiVersionsRequest()
	r.SetVersion(3)
	r.ClientSoftwareName, r.ClientSoftwareVersion = "test", "1"
	return r
}

// checkServed fails unless the server answers an ApiVersions on a new
// connection.
func (ts *connServer) checkServed(t *testing.T) {
	t.Helper()
	c := ts.dial(t)
	defer c.Close()
	body := roundTrip(t, c, apiVersionsRequest())
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(3)
	if err := resp.ReadFrom(body); err != nil || resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
		t.Fatalf("ApiVersions answer %+v, %v", resp, err)
	}
}

// longPollFetch is a fetch of "t" from its end that waits up to maxWait
// for one byte.
func longPollFetch(maxWait int32) *kmsg.FetchRequest {
	r := kmsg.NewPtrFetchRequest()
	r.SetVersion(12)
	r.ReplicaID, r.MaxWaitMillis, r.MinBytes, r.MaxBytes, r.SessionEpoch = -1, maxWait, 1, 1<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topicT.Name
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.CurrentLeaderEpoch, rp.FetchOffset, rp.PartitionMaxBytes, rp.LogStartOffset = -1, 0, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	return r
}

// metric returns the value of the counter or gauge name whose labels
// include labels (name, value pairs), or 0 if it has none.
func (ts *connServer) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
