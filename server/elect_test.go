package server

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/authz"
)

// electMeta answers elections from a table of outcomes by partition, as
// cluster.Meta would (partitions not in the table: not needed), and
// remembers what it was asked.
type electMeta struct {
	*fakeMeta
	outcome  map[cluster.TP]error
	asked    []cluster.TP
	askedAll bool
	typ      cluster.ElectionType
	calls    int
}

func (m *electMeta) ElectLeaders(_ context.Context, typ cluster.ElectionType, tps []cluster.TP) ([]cluster.Election, error) {
	m.calls++
	m.typ, m.asked, m.askedAll = typ, tps, tps == nil
	if typ != cluster.ElectPreferred && typ != cluster.ElectUnclean {
		return nil, fmt.Errorf("%w: %d", cluster.ErrElectionType, typ)
	}
	if tps == nil {
		for tp := range m.outcome {
			tps = append(tps, tp)
		}
		slices.SortFunc(tps, func(a, b cluster.TP) int { return int(a.Partition - b.Partition) })
	}
	var out []cluster.Election
	for _, tp := range tps {
		err, ok := m.outcome[tp]
		if !ok {
			err = fmt.Errorf("%w: %s", cluster.ErrElectionNotNeeded, tp)
			if m.askedAll {
				continue
			}
		}
		e := cluster.Election{TP: tp, Leader: -1, Err: err}
		if err == nil {
			e.Leader = 2
		}
		out = append(out, e)
	}
	return out, nil
}

func newElectServer(t *testing.T, az *authz.Authorizer) (*testServer, *electMeta) {
	t.Helper()
	meta := &electMeta{fakeMeta: newFakeMeta(3), outcome: map[cluster.TP]error{
		{Topic: "orders", Partition: 0}: nil,
		{Topic: "orders", Partition: 1}: fmt.Errorf("%w: orders-1", cluster.ErrPreferredLeaderNotAvailable),
		{Topic: "orders", Partition: 2}: fmt.Errorf("%w: orders-2", cluster.ErrEligibleLeadersNotAvailable),
		{Topic: "orders", Partition: 9}: fmt.Errorf("%w: orders-9", cluster.ErrUnknownPartition),
		{Topic: "gone", Partition: 0}:   fmt.Errorf("%w: gone", cluster.ErrUnknownTopic),
		{Topic: "orders", Partition: 3}: fmt.Errorf("cluster: leader epoch moved twice: %w", cluster.ErrStaleLeaderEpoch),
	}}
	cfg := Config{Metrics: NewMetrics(prometheus.NewRegistry()), Authorizer: az}
	return newTestServerOver(t, cfg, meta, meta.fakeMeta), meta
}

func electRequest(v int16, typ int8, topics map[string][]int32, order ...string) *kmsg.ElectLeadersRequest {
	r := kmsg.NewPtrElectLeadersRequest()
	r.SetVersion(v)
	r.ElectionType = typ
	if topics != nil {
		r.Topics = []kmsg.ElectLeadersRequestTopic{}
	}
	for _, name := range order {
		rt := kmsg.NewElectLeadersRequestTopic()
		rt.Topic, rt.Partitions = name, topics[name]
		r.Topics = append(r.Topics, rt)
	}
	return r
}

// codesOf returns each partition's error code of an ElectLeaders answer,
// as "topic-partition" → code.
func codesOf(resp *kmsg.ElectLeadersResponse) map[string]int16 {
	out := map[string]int16{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[fmt.Sprintf("%s-%d", t.Topic, p.Partition)] = p.ErrorCode
			if (p.ErrorCode == 0) != (p.ErrorMessage == nil) {
				out[fmt.Sprintf("%s-%d message", t.Topic, p.Partition)] = -1
			}
		}
	}
	return out
}

// TestElectLeadersCodes: each outcome of an election answered with
// Kafka's code, at every version.
func TestElectLeadersCodes(t *testing.T) {
	ts, meta := newElectServer(t, nil)
	want := map[string]int16{
		"orders-0": 0,
		"orders-1": kerr.PreferredLeaderNotAvailable.Code,
		"orders-2": kerr.EligibleLeadersNotAvailable.Code,
		"orders-3": kerr.NotController.Code,
		"orders-4": kerr.ElectionNotNeeded.Code,
		"orders-9": kerr.UnknownTopicOrPartition.Code,
		"gone-0":   kerr.UnknownTopicOrPartition.Code,
	}
	for v := int16(0); v <= 2; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			req := electRequest(v, 1, map[string][]int32{"orders": {0, 1, 2, 3, 4, 9, 0}, "gone": {0}}, "orders", "gone")
			resp := ts.call(t, req).(*kmsg.ElectLeadersResponse)
			if got := codesOf(resp); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("codes %v, want %v", got, want)
			}
			if resp.ErrorCode != 0 || len(resp.Topics) != 2 || resp.Topics[0].Topic != "orders" {
				t.Fatalf("answer %+v", resp)
			}
			// v0 has no election type: preferred. The repeated
			// partition is asked for once.
			wantType := cluster.ElectUnclean
			if v == 0 {
				wantType = cluster.ElectPreferred
			}
			if meta.typ != wantType || len(meta.asked) != 7 {
				t.Fatalf("asked for a %d election of %v", meta.typ, meta.asked)
			}
		})
	}
}

// TestElectLeadersAllPartitions: a null list asks for every partition,
// and the answer leaves out those that needed no election; an empty list
// asks for none.
func TestElectLeadersAllPartitions(t *testing.T) {
	ts, meta := newElectServer(t, nil)
	resp := ts.call(t, electRequest(2, 0, nil)).(*kmsg.ElectLeadersResponse)
	if !meta.askedAll {
		t.Fatalf("a null list asked for %v", meta.asked)
	}
	got := codesOf(resp)
	if len(got) != 6 || got["orders-0"] != 0 || got["orders-1"] != kerr.PreferredLeaderNotAvailable.Code {
		t.Fatalf("codes %v", got)
	}
	resp = ts.call(t, electRequest(2, 0, map[string][]int32{})).(*kmsg.ElectLeadersResponse)
	if meta.askedAll || len(meta.asked) != 0 || len(resp.Topics) != 0 {
		t.Fatalf("an empty list: asked %v, answered %+v", meta.asked, resp.Topics)
	}
}

// TestElectLeadersBadType: an election type Kafka does not define is an
// invalid request, for the whole request and each partition.
func TestElectLeadersBadType(t *testing.T) {
	ts, _ := newElectServer(t, nil)
	resp := ts.call(t, electRequest(1, 5, map[string][]int32{"orders": {0}}, "orders")).(*kmsg.ElectLeadersResponse)
	if resp.ErrorCode != kerr.InvalidRequest.Code || codesOf(resp)["orders-0"] != kerr.InvalidRequest.Code {
		t.Fatalf("answer %+v", resp)
	}
}

// TestElectLeadersAuthorization: ALTER on the cluster; denied, every
// partition asked for carries CLUSTER_AUTHORIZATION_FAILED (the only
// place a v0 client can read it), nothing is elected.
func TestElectLeadersAuthorization(t *testing.T) {
	az := authz.New(authz.Config{SuperUsers: []string{admin}})
	ts, meta := newElectServer(t, az)
	for v := int16(0); v <= 2; v++ {
		req := electRequest(v, 0, map[string][]int32{"orders": {0, 1}}, "orders")
		resp := ts.callFrom(t, "10.0.0.7", "User:bob", req).(*kmsg.ElectLeadersResponse)
		got := codesOf(resp)
		if len(got) != 2 || got["orders-0"] != kerr.ClusterAuthorizationFailed.Code || got["orders-1"] != kerr.ClusterAuthorizationFailed.Code {
			t.Fatalf("v%d denied: codes %v", v, got)
		}
		if v >= 1 && resp.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
			t.Fatalf("v%d denied: top-level error %d", v, resp.ErrorCode)
		}
	}
	if meta.calls != 0 {
		t.Fatalf("a denied request reached the metadata %d times", meta.calls)
	}
	resp := ts.callFrom(t, "10.0.0.7", admin, electRequest(2, 0, map[string][]int32{"orders": {0}}, "orders")).(*kmsg.ElectLeadersResponse)
	if resp.ErrorCode != 0 || codesOf(resp)["orders-0"] != 0 {
		t.Fatalf("super user: %+v", resp)
	}
	// ALTER on the cluster by ACL.
	az.Update(AclBindings([]cluster.AclBinding{{ResourceType: int8(authz.ResourceCluster), ResourceName: clusterResource,
		PatternType: int8(authz.PatternLiteral), Principal: "User:ops", Host: "*", Operation: int8(authz.OpAlter),
		Permission: int8(authz.Allow)}}))
	resp = ts.callFrom(t, "10.0.0.7", "User:ops", electRequest(2, 0, map[string][]int32{"orders": {0}}, "orders")).(*kmsg.ElectLeadersResponse)
	if resp.ErrorCode != 0 || codesOf(resp)["orders-0"] != 0 {
		t.Fatalf("ALTER on the cluster: %+v", resp)
	}
}
