package server

import (
	"encoding/binary"
	"io"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/internal/quota"
)

// quotaMeta adds client quotas to aclMeta, kept in a real state machine
// whose hook hands every change to the server's quota manager, as the
// broker wires it.
type quotaMeta struct {
	*aclMeta
	qmu   sync.Mutex
	fsm   *cluster.FSM
	index uint64
}

func (m *quotaMeta) ClientQuotas() *quota.Config {
	var out *quota.Config
	m.fsm.Read(func(s *cluster.State) { out = quota.NewConfig(s.ClientQuotas) })
	return out
}

func (m *quotaMeta) AlterClientQuotas(c cluster.AlterClientQuotas) error {
	b, err := cluster.EncodeCommand(cluster.CmdAlterClientQuotas, c)
	if err != nil {
		return err
	}
	m.qmu.Lock()
	defer m.qmu.Unlock()
	m.index++
	if err, _ := m.fsm.Apply(&raft.Log{Index: m.index, Type: raft.LogCommand, Data: b}).(error); err != nil {
		return err
	}
	return nil
}

type quotaServer struct {
	*aclServer
	qm *quotaMeta
}

func newQuotaServer(t *testing.T, az bool, supers ...string) *quotaServer {
	t.Helper()
	as := newAclServer(t, az, supers...)
	qm := &quotaMeta{aclMeta: as.meta, fsm: cluster.NewFSM()}
	// The server reads the quota meta; its own manager follows the FSM.
	ts := newTestServerOver(t, as.cfg, qm, as.meta.fakeMeta)
	qm.fsm.OnClientQuotasChanged(ts.cfg.Quotas.SetConfig)
	as.testServer = ts
	return &quotaServer{aclServer: as, qm: qm}
}

func quotaEntry(parts []quota.Part, ops ...kmsg.AlterClientQuotasRequestEntryOp) kmsg.AlterClientQuotasRequestEntry {
	e := kmsg.NewAlterClientQuotasRequestEntry()
	for _, p := range parts {
		e.Entity = append(e.Entity, kmsg.AlterClientQuotasRequestEntryEntity{Type: p.Type, Name: p.Name})
	}
	e.Ops = ops
	return e
}

func quotaSet(key string, v float64) kmsg.AlterClientQuotasRequestEntryOp {
	return kmsg.AlterClientQuotasRequestEntryOp{Key: key, Value: v}
}

func remove(key string) kmsg.AlterClientQuotasRequestEntryOp {
	return kmsg.AlterClientQuotasRequestEntryOp{Key: key, Remove: true}
}

func user(n string) quota.Part {
	if n == "" {
		return quota.Part{Type: "user"}
	}
	return quota.Part{Type: "user", Name: &n}
}

func client(n string) quota.Part {
	if n == "" {
		return quota.Part{Type: "client-id"}
	}
	return quota.Part{Type: "client-id", Name: &n}
}

func (ts *quotaServer) alter(t *testing.T, v int16, principal string, validateOnly bool, entries ...kmsg.AlterClientQuotasRequestEntry) []int16 {
	t.Helper()
	req := kmsg.NewPtrAlterClientQuotasRequest()
	req.SetVersion(v)
	req.Entries, req.ValidateOnly = entries, validateOnly
	resp := ts.callAs(t, principal, req).(*kmsg.AlterClientQuotasResponse)
	var codes []int16
	for i, e := range resp.Entries {
		if len(e.Entity) != len(entries[i].Entity) {
			t.Errorf("entry %d answered for entity %+v", i, e.Entity)
		}
		codes = append(codes, e.ErrorCode)
	}
	return codes
}

// describe returns the error code and the entities described, each as
// "type=name,..." with its values, sorted.
func (ts *quotaServer) describe(t *testing.T, v int16, principal string, strict bool, comps ...kmsg.DescribeClientQuotasRequestComponent) (int16, []string) {
	t.Helper()
	req := kmsg.NewPtrDescribeClientQuotasRequest()
	req.SetVersion(v)
	req.Components, req.Strict = comps, strict
	resp := ts.callAs(t, principal, req).(*kmsg.DescribeClientQuotasResponse)
	var out []string
	for _, e := range resp.Entries {
		var parts, vals []string
		for _, p := range e.Entity {
			n := "<default>"
			if p.Name != nil {
				n = *p.Name
			}
			parts = append(parts, p.Type+"="+n)
		}
		for _, kv := range e.Values {
			vals = append(vals, kv.Key+":"+strconv.FormatFloat(kv.Value, 'f', -1, 64))
		}
		out = append(out, strings.Join(parts, ",")+" "+strings.Join(vals, ","))
	}
	sort.Strings(out)
	return resp.ErrorCode, out
}

func comp(typ string, match int8, name *string) kmsg.DescribeClientQuotasRequestComponent {
	return kmsg.DescribeClientQuotasRequestComponent{EntityType: typ, MatchType: kmsg.QuotasMatchType(match), Match: name}
}

const invalid = 42 // INVALID_REQUEST

// TestClientQuotaAPIs: AlterClientQuotas validates each entry as Kafka
// does, applies the valid ones (none with validate_only); and
// DescribeClientQuotas matches entities exactly, by default and any,
// strictly or not.
func TestClientQuotaAPIs(t *testing.T) {
	for _, v := range []int16{0, 1} {
		ts := newQuotaServer(t, false)
		got := ts.alter(t, v, Anonymous, false,
			quotaEntry([]quota.Part{user("alice"), client("app")}, quotaSet("producer_byte_rate", 1024), quotaSet("consumer_byte_rate", 2048)),
			quotaEntry([]quota.Part{user("")}, quotaSet("request_percentage", 50)),
			quotaEntry([]quota.Part{client("")}, quotaSet("producer_byte_rate", 100)),
			quotaEntry([]quota.Part{user("bob")}, quotaSet("controller_mutation_rate", 10)),
			quotaEntry([]quota.Part{user("bob")}, quotaSet("producer_byte_rate", 1.5)),
			quotaEntry([]quota.Part{user("bob")}, quotaSet("producer_byte_rate", 0)),
			quotaEntry([]quota.Part{user("bob")}, quotaSet("bogus", 1)),
			quotaEntry([]quota.Part{user("bob")}, quotaSet("producer_byte_rate", 1), remove("producer_byte_rate")),
			quotaEntry(nil, quotaSet("producer_byte_rate", 1)),
			quotaEntry([]quota.Part{{Type: "ip", Name: kmsg.StringPtr("10.0.0.1")}}, quotaSet("producer_byte_rate", 1)),
			quotaEntry([]quota.Part{user("a"), user("b")}, quotaSet("producer_byte_rate", 1)),
		)
		want := []int16{0, 0, 0, invalid, invalid, invalid, invalid, invalid, invalid, invalid, invalid}
		if !equal16(got, want) {
			t.Fatalf("v%d alter codes %v, want %v", v, got, want)
		}
		if got := ts.alter(t, v, Anonymous, true, quotaEntry([]quota.Part{user("carol")}, quotaSet("producer_byte_rate", 10)),
			quotaEntry([]quota.Part{user("carol")}, quotaSet("nope", 10))); !equal16(got, []int16{0, invalid}) {
			t.Fatalf("validate only: %v", got)
		}
		alice, app := kmsg.StringPtr("alice"), kmsg.StringPtr("app")
		for _, tc := range []struct {
			name   string
			strict bool
			comps  []kmsg.DescribeClientQuotasRequestComponent
			want   []string
		}{
			{"all", false, nil, []string{"client-id=<default> producer_byte_rate:100", "user=<default> request_percentage:50",
				"user=alice,client-id=app consumer_byte_rate:2048,producer_byte_rate:1024"}},
			{"strict none", true, nil, nil},
			{"user alice", false, []kmsg.DescribeClientQuotasRequestComponent{comp("user", 0, alice)},
				[]string{"user=alice,client-id=app consumer_byte_rate:2048,producer_byte_rate:1024"}},
			{"user alice strict", true, []kmsg.DescribeClientQuotasRequestComponent{comp("user", 0, alice)}, nil},
			{"user default strict", true, []kmsg.DescribeClientQuotasRequestComponent{comp("user", 1, nil)},
				[]string{"user=<default> request_percentage:50"}},
			{"user any", false, []kmsg.DescribeClientQuotasRequestComponent{comp("user", 2, nil)},
				[]string{"user=<default> request_percentage:50", "user=alice,client-id=app consumer_byte_rate:2048,producer_byte_rate:1024"}},
			{"client any", false, []kmsg.DescribeClientQuotasRequestComponent{comp("client-id", 2, nil)},
				[]string{"client-id=<default> producer_byte_rate:100", "user=alice,client-id=app consumer_byte_rate:2048,producer_byte_rate:1024"}},
			{"user and client exact strict", true, []kmsg.DescribeClientQuotasRequestComponent{comp("user", 0, alice), comp("client-id", 0, app)},
				[]string{"user=alice,client-id=app consumer_byte_rate:2048,producer_byte_rate:1024"}},
			{"client default", false, []kmsg.DescribeClientQuotasRequestComponent{comp("client-id", 1, nil)},
				[]string{"client-id=<default> producer_byte_rate:100"}},
			{"ip", false, []kmsg.DescribeClientQuotasRequestComponent{comp("ip", 2, nil)}, nil},
		} {
			code, got := ts.describe(t, v, Anonymous, tc.strict, tc.comps...)
			if code != 0 || strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("v%d %s: %d %q, want %q", v, tc.name, code, got, tc.want)
			}
		}
		for name, comps := range map[string][]kmsg.DescribeClientQuotasRequestComponent{
			"twice":         {comp("user", 2, nil), comp("user", 1, nil)},
			"exact no name": {comp("user", 0, nil)},
			"match type":    {comp("user", 3, nil)},
			"entity type":   {comp("group", 2, nil)},
			"ip with user":  {comp("ip", 2, nil), comp("user", 2, nil)},
		} {
			if code, _ := ts.describe(t, v, Anonymous, false, comps...); code != invalid {
				t.Errorf("v%d %s: code %d, want INVALID_REQUEST", v, name, code)
			}
		}
		// A removal leaves the other key; removing the last removes the
		// entity.
		if got := ts.alter(t, v, Anonymous, false, quotaEntry([]quota.Part{user("alice"), client("app")}, remove("consumer_byte_rate")),
			quotaEntry([]quota.Part{client("")}, remove("producer_byte_rate"))); !equal16(got, []int16{0, 0}) {
			t.Fatalf("remove: %v", got)
		}
		if _, got := ts.describe(t, v, Anonymous, false); strings.Join(got, "|") !=
			"user=<default> request_percentage:50|user=alice,client-id=app producer_byte_rate:1024" {
			t.Errorf("v%d after removal: %q", v, got)
		}
		// The server's manager follows: alice/app has a producer quota.
		if b, ok := ts.cfg.Quotas.Bound(quota.ProducerByteRate, "alice", "app"); !ok || b != 1024 {
			t.Errorf("manager bound %v %v", b, ok)
		}
	}
}

// TestClientQuotaAuthorization: DESCRIBE_CONFIGS and ALTER_CONFIGS on the
// cluster, CLUSTER_AUTHORIZATION_FAILED otherwise, as Kafka checks.
func TestClientQuotaAuthorization(t *testing.T) {
	ts := newQuotaServer(t, true, admin)
	entry := quotaEntry([]quota.Part{client("app")}, quotaSet("producer_byte_rate", 1000))
	denied := kerr.ClusterAuthorizationFailed.Code
	if got := ts.alter(t, 1, "User:bob", false, entry, entry); !equal16(got, []int16{denied, denied}) {
		t.Fatalf("bob alters: %v", got)
	}
	if code, _ := ts.describe(t, 1, "User:bob", false); code != denied {
		t.Fatalf("bob describes: %d", code)
	}
	if got := ts.alter(t, 1, admin, false, entry); !equal16(got, []int16{0}) {
		t.Fatalf("admin alters: %v", got)
	}
	ts.createAcls(t, 1, creation(kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLResourcePatternTypeLiteral, "User:bob",
		kmsg.ACLOperationDescribeConfigs, kmsg.ACLPermissionTypeAllow))
	if code, got := ts.describe(t, 1, "User:bob", false); code != 0 || len(got) != 1 {
		t.Fatalf("bob with DESCRIBE_CONFIGS: %d %v", code, got)
	}
	if got := ts.alter(t, 1, "User:bob", false, entry); !equal16(got, []int16{denied}) {
		t.Fatalf("bob with DESCRIBE_CONFIGS alters: %v", got)
	}
}

func equal16(a, b []int16) bool {
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

// quotaConnServer serves on loopback with a quota window of 2 samples of
// span (so a throttle is at most 2 spans) and the quotas given.
func quotaConnServer(t *testing.T, span time.Duration, quotas map[quota.Entity]map[string]float64) *connServer {
	qm := quota.NewManager(quota.Options{Samples: 2, SampleSpan: span})
	qm.SetConfig(quota.NewConfig(quotas))
	return newConnServer(t, Config{Quotas: qm}, nil, nil)
}

// readFrame reads one answer and returns its correlation id and the
// body after it.
func readFrame(t *testing.T, c net.Conn) (int32, []byte) {
	t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	return int32(binary.BigEndian.Uint32(b)), b[4:]
}

// TestThrottledProducerIsMuted: a produce over the client id's
// producer_byte_rate is answered at once with its throttle time (KIP-219,
// Produce v9), and the connection's next request is not answered before
// that time has passed; a produce of a version before KIP-219 (v5) is
// itself answered only after its throttle.
func TestThrottledProducerIsMuted(t *testing.T) {
	const span = 150 * time.Millisecond
	// N bytes at once are measured over the shortest window, one span:
	// a rate of N/0.15 s, whose throttle is N/bound - 0.15 s. A bound
	// of N/0.45 s makes it 300 ms.
	n := float64(len(produceT(100).Topics[0].Partitions[0].Records))
	ts := quotaConnServer(t, span, map[quota.Entity]map[string]float64{
		{ClientID: "test", HasClientID: true}: {quota.ProducerByteRate: math.Round(n / 0.45)}})
	c := ts.dial(t)
	c.SetDeadline(time.Now().Add(waitLong))
	start := time.Now()
	if _, err := c.Write(append(frame(produceT(100), 1), frame(apiVersionsRequest(), 2)...)); err != nil {
		t.Fatal(err)
	}
	corr, body := readFrame(t, c)
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(9)
	if err := resp.ReadFrom(body[1:]); err != nil || corr != 1 {
		t.Fatalf("produce answer %d: %v", corr, err)
	}
	if resp.ThrottleMillis < 299 || resp.ThrottleMillis > 301 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("throttle_time_ms %d (want 300), error %d", resp.ThrottleMillis, resp.Topics[0].Partitions[0].ErrorCode)
	}
	if corr, _ := readFrame(t, c); corr != 2 {
		t.Fatalf("second answer %d", corr)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("the request after a 300 ms throttle was answered after %v", waited)
	}

	// Before KIP-219 the response itself waits out the throttle.
	old := produceT(100)
	old.SetVersion(5)
	start = time.Now()
	if _, err := c.Write(frame(old, 3)); err != nil {
		t.Fatal(err)
	}
	if corr, _ := readFrame(t, c); corr != 3 {
		t.Fatalf("answer %d", corr)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("a Produce v5 throttled 300 ms was answered after %v", waited)
	}
}

// TestThrottledFetch: a consumer's fetch is capped at what its quota
// allows in one sample, its size counts against consumer_byte_rate, and
// the answer over it carries the throttle; a follower's fetch is never
// throttled.
func TestThrottledFetch(t *testing.T) {
	ts := newQuotaServer(t, false)
	ts.createTopic(t, "q", 1)
	ts.produce(t, "q", 0, 50, 10, 100) // about 50 KB
	if got := ts.alter(t, 1, Anonymous, false, quotaEntry([]quota.Part{client("test")}, quotaSet("consumer_byte_rate", 2000))); !equal16(got, []int16{0}) {
		t.Fatal(got)
	}
	fetch := func(replica int32) *kmsg.FetchResponse {
		r := kmsg.NewPtrFetchRequest()
		r.SetVersion(12)
		r.ReplicaID, r.MaxWaitMillis, r.MinBytes, r.MaxBytes, r.SessionEpoch = replica, 0, 1, 1<<20, -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "q"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.CurrentLeaderEpoch, rp.FetchOffset, rp.PartitionMaxBytes, rp.LogStartOffset = -1, 0, 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
		r.Topics = append(r.Topics, rt)
		return ts.callThrottled(t, r).(*kmsg.FetchResponse)
	}
	resp := fetch(-1)
	n := len(resp.Topics[0].Partitions[0].RecordBatches)
	// 11 samples of 1 s: a rate is measured over 10 s at least, so at
	// 2000 B/s a fetch is cut at 20,000 record bytes (of about 50,000),
	// and that much at once is throttled for its protocol bytes only.
	if n < 15_000 || n > 20_000 || resp.ThrottleMillis > 1000 {
		t.Fatalf("a consumer with a 2000 B/s quota fetched %d bytes at once, throttled %d ms", n, resp.ThrottleMillis)
	}
	// The next fetch is over the quota: its answer carries a throttle.
	if throttled := fetch(-1).ThrottleMillis; throttled < 5000 {
		t.Fatalf("a consumer at twice its quota throttled %d ms", throttled)
	}
	if r := fetch(1); r.ThrottleMillis != 0 || len(r.Topics[0].Partitions[0].RecordBatches) < 40_000 {
		t.Fatalf("a follower's fetch: throttle %d, %d bytes", r.ThrottleMillis, len(r.Topics[0].Partitions[0].RecordBatches))
	}
}

// callThrottled is call, with the writer's step that writes a throttle
// into the answer.
func (ts *testServer) callThrottled(t testing.TB, req kmsg.Request) kmsg.Response {
	t.Helper()
	v := req.GetVersion()
	h := requestHeader{Key: req.Key(), Version: v, CorrelationID: 7, ClientID: "test", Flexible: req.IsFlexible()}
	c := &conn{s: ts.Server, ctx: t.Context(), remote: "127.0.0.1:1", addr: "127.0.0.1", host: "/127.0.0.1",
		listener: cluster.DefaultListener, principal: Anonymous, stopCh: make(chan struct{})}
	close(c.stopCh) // the writer's wait for a pre-KIP-219 answer ends at once
	rep, err := ts.dispatch(c, h, req.AppendTo(nil))
	if err != nil {
		t.Fatal(err)
	}
	rep.user = c.quotaUser()
	out := rep.finish()
	c.throttleResponse(rep, out)
	got := req.ResponseKind()
	got.SetVersion(v)
	var body []byte
	switch o := out.(type) {
	case kmsg.Response:
		body = o.AppendTo(nil)
	default:
		frame := encodedFrame(t, o.(*consumer.Encoded))
		body = frame[9:] // size, correlation id, header tags
	}
	if err := got.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestRequestPercentageThrottles: the time spent on a client's requests
// counts against its request_percentage, whatever the API: over it, the
// next answer carries the throttle.
func TestRequestPercentageThrottles(t *testing.T) {
	ts := quotaConnServer(t, 150*time.Millisecond, map[quota.Entity]map[string]float64{
		{ClientID: "test", HasClientID: true}: {quota.RequestPercentage: 1e-9}})
	c := ts.dial(t)
	body := roundTrip(t, c, apiVersionsRequest())
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(3)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	// Any time at all is far over a billionth of a percent: the longest
	// request-time throttle, one span (150 ms), as Kafka bounds it.
	if resp.ThrottleMillis != 150 {
		t.Fatalf("throttle_time_ms %d, want 150", resp.ThrottleMillis)
	}
}
