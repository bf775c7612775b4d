package server

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/authz"
	"github.com/runnel-io/runnel/internal/testbatch"
)

// aclMeta adds ACLs to fakeMeta, handing every change to the authorizer
// as the cluster state's hook does.
type aclMeta struct {
	*fakeMeta
	amu  sync.Mutex
	acls map[cluster.AclBinding]bool
	az   *authz.Authorizer
}

func (m *aclMeta) Acls() []cluster.AclBinding {
	m.amu.Lock()
	defer m.amu.Unlock()
	var out []cluster.AclBinding
	for b := range m.acls {
		out = append(out, b)
	}
	return out
}

func (m *aclMeta) AlterAcls(c cluster.AlterAcls) error {
	m.amu.Lock()
	for _, b := range c.Deletions {
		delete(m.acls, b)
	}
	for _, b := range c.Creations {
		m.acls[b] = true
	}
	m.amu.Unlock()
	if m.az != nil {
		m.az.Update(AclBindings(m.Acls()))
	}
	return nil
}

type aclServer struct {
	*testServer
	meta *aclMeta
}

// newAclServer is newTestServer with ACLs in its metadata, and an
// authorizer with the super users given unless az is false.
func newAclServer(t testing.TB, az bool, supers ...string) *aclServer {
	t.Helper()
	meta := &aclMeta{fakeMeta: newFakeMeta(1), acls: map[cluster.AclBinding]bool{}}
	cfg := Config{Metrics: NewMetrics(prometheus.NewRegistry())}
	if az {
		meta.az = authz.New(authz.Config{SuperUsers: supers})
		cfg.Authorizer = meta.az
	}
	return &aclServer{testServer: newTestServerOver(t, cfg, meta, meta.fakeMeta), meta: meta}
}

// callAs is testServer.call from a client with the principal.
func (ts *aclServer) callAs(t *testing.T, principal string, req kmsg.Request) kmsg.Response {
	t.Helper()
	return ts.callFrom(t, "10.0.0.7", principal, req)
}

func creation(rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, principal string, op kmsg.ACLOperation,
	perm kmsg.ACLPermissionType) kmsg.CreateACLsRequestCreation {
	c := kmsg.NewCreateACLsRequestCreation()
	c.ResourceType, c.ResourceName, c.ResourcePatternType = rt, name, pt
	c.Principal, c.Host, c.Operation, c.PermissionType = principal, "*", op, perm
	return c
}

const admin = "User:admin"

func (ts *aclServer) createAcls(t *testing.T, v int16, cs ...kmsg.CreateACLsRequestCreation) []int16 {
	t.Helper()
	req := kmsg.NewPtrCreateACLsRequest()
	req.SetVersion(v)
	req.Creations = cs
	var codes []int16
	for _, r := range ts.callAs(t, admin, req).(*kmsg.CreateACLsResponse).Results {
		codes = append(codes, r.ErrorCode)
	}
	return codes
}

// TestAclAPIsWithoutAuthorizer: SECURITY_DISABLED, as Kafka answers.
func TestAclAPIsWithoutAuthorizer(t *testing.T) {
	ts := newAclServer(t, false)
	for v := int16(0); v <= 3; v++ {
		if got := ts.createAcls(t, v, creation(2, "t", 3, "User:a", 3, 3)); got[0] != kerr.SecurityDisabled.Code {
			t.Errorf("CreateAcls v%d: %v", v, got)
		}
		d := kmsg.NewPtrDescribeACLsRequest()
		d.SetVersion(v)
		d.ResourceType, d.ResourcePatternType, d.Operation, d.PermissionType = 1, 1, 1, 1
		if got := ts.callAs(t, admin, d).(*kmsg.DescribeACLsResponse); got.ErrorCode != kerr.SecurityDisabled.Code {
			t.Errorf("DescribeAcls v%d: %d", v, got.ErrorCode)
		}
		del := kmsg.NewPtrDeleteACLsRequest()
		del.SetVersion(v)
		del.Filters = []kmsg.DeleteACLsRequestFilter{{ResourceType: 1, ResourcePatternType: 1, Operation: 1, PermissionType: 1}}
		if got := ts.callAs(t, admin, del).(*kmsg.DeleteACLsResponse); got.Results[0].ErrorCode != kerr.SecurityDisabled.Code {
			t.Errorf("DeleteAcls v%d: %d", v, got.Results[0].ErrorCode)
		}
	}
}

// TestAclAPIs: creations are validated one by one, filters select as
// Kafka's do, deletions answer what they matched, and only a principal
// with ALTER (DESCRIBE to list) on the cluster may use them.
func TestAclAPIs(t *testing.T) {
	ts := newAclServer(t, true, admin)
	got := ts.createAcls(t, 3,
		creation(2, "orders", 3, "User:app", 3, 3),
		creation(2, "billing-", 4, "User:app", 4, 3),
		creation(4, "other-cluster", 3, "User:app", 9, 3), // the cluster's name is kafka-cluster
		creation(1, "x", 3, "User:app", 3, 3),             // ANY is for filters
		creation(2, "x", 2, "User:app", 3, 3),             // MATCH too
		creation(2, "x", 3, "app", 3, 3),                  // no principal type
		creation(3, "g", 3, "User:app", 3, 3),
	)
	want := []int16{0, 0, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, kerr.InvalidRequest.Code, 0}
	if len(got) != len(want) {
		t.Fatalf("results %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("creation %d: code %d, want %d", i, got[i], want[i])
		}
	}
	// v0 creations are literal.
	if got := ts.createAcls(t, 0, creation(2, "audit", 4, "User:app", 8, 3)); got[0] != 0 {
		t.Fatalf("v0 create: %v", got)
	}
	describe := func(principal string, v int16, f func(*kmsg.DescribeACLsRequest)) *kmsg.DescribeACLsResponse {
		d := kmsg.NewPtrDescribeACLsRequest()
		d.SetVersion(v)
		d.ResourceType, d.ResourcePatternType, d.Operation, d.PermissionType = 1, 1, 1, 1
		if f != nil {
			f(d)
		}
		return ts.callAs(t, principal, d).(*kmsg.DescribeACLsResponse)
	}
	count := func(r *kmsg.DescribeACLsResponse) int {
		n := 0
		for _, res := range r.Resources {
			n += len(res.ACLs)
		}
		return n
	}
	if r := describe(admin, 3, nil); r.ErrorCode != 0 || count(r) != 4 {
		t.Fatalf("describe everything: code %d, %d ACLs: %+v", r.ErrorCode, count(r), r.Resources)
	}
	if r := describe(admin, 1, func(d *kmsg.DescribeACLsRequest) {
		d.ResourceType, d.ResourcePatternType, d.ResourceName = 2, 2, kmsg.StringPtr("billing-eu")
	}); count(r) != 1 || r.Resources[0].ResourceName != "billing-" || r.Resources[0].ResourcePatternType != 4 {
		t.Errorf("MATCH billing-eu: %+v", r.Resources)
	}
	if r := describe(admin, 3, func(d *kmsg.DescribeACLsRequest) { d.Operation = 0 }); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("UNKNOWN operation filter: code %d", r.ErrorCode)
	}
	if r := describe("User:app", 3, nil); r.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("describe without DESCRIBE on the cluster: code %d", r.ErrorCode)
	}
	if got := func() []int16 {
		req := kmsg.NewPtrCreateACLsRequest()
		req.SetVersion(3)
		req.Creations = []kmsg.CreateACLsRequestCreation{creation(2, "t", 3, "User:app", 3, 3)}
		var codes []int16
		for _, r := range ts.callAs(t, "User:app", req).(*kmsg.CreateACLsResponse).Results {
			codes = append(codes, r.ErrorCode)
		}
		return codes
	}(); got[0] != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("create without ALTER on the cluster: %v", got)
	}

	del := kmsg.NewPtrDeleteACLsRequest()
	del.SetVersion(2)
	del.Filters = []kmsg.DeleteACLsRequestFilter{
		{ResourceType: 2, ResourcePatternType: 1, Principal: kmsg.StringPtr("User:app"), Operation: 1, PermissionType: 1},
		{ResourceType: 3, ResourcePatternType: 3, ResourceName: kmsg.StringPtr("g"), Operation: 1, PermissionType: 1},
		{ResourceType: 2, ResourcePatternType: 0, Operation: 1, PermissionType: 1},
	}
	dr := ts.callAs(t, admin, del).(*kmsg.DeleteACLsResponse)
	if n0, n1, c2 := len(dr.Results[0].MatchingACLs), len(dr.Results[1].MatchingACLs), dr.Results[2].ErrorCode; n0 != 3 || n1 != 1 ||
		c2 != kerr.InvalidRequest.Code {
		t.Errorf("delete: %d and %d matches, bad filter code %d", n0, n1, c2)
	}
	if r := describe(admin, 3, nil); count(r) != 0 {
		t.Errorf("%d ACLs left after deleting all: %+v", count(r), r.Resources)
	}
}

// TestAuthorizeRequests: the checks the handlers make, as a client sees
// them.
func TestAuthorizeRequests(t *testing.T) {
	ts := newAclServer(t, true, admin)
	for _, name := range []string{"orders", "secret"} {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
		req.Topics = append(req.Topics, rt)
		if c := ts.callAs(t, admin, req).(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode; c != 0 {
			t.Fatalf("create %s: %d", name, c)
		}
	}
	const app = "User:app"
	if got := ts.createAcls(t, 3, creation(2, "orders", 3, app, 4, 3), creation(3, "g", 3, app, 3, 3)); got[0]+got[1] != 0 {
		t.Fatal(got)
	}

	// Metadata lists only what app may describe (WRITE implies DESCRIBE).
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	md.IncludeTopicAuthorizedOperations = true
	mr := ts.callAs(t, app, md).(*kmsg.MetadataResponse)
	if len(mr.Topics) != 1 || *mr.Topics[0].Topic != "orders" {
		t.Fatalf("metadata of every topic lists %+v", mr.Topics)
	}
	if got, want := mr.Topics[0].AuthorizedOperations, int32(1<<authz.OpWrite|1<<authz.OpDescribe); got != want {
		t.Errorf("authorized operations %b, want %b", got, want)
	}
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("secret")}}
	if c := ts.callAs(t, app, md).(*kmsg.MetadataResponse).Topics[0].ErrorCode; c != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("metadata of a topic app may not describe: %d", c)
	}

	// ListOffsets on a describable topic, not on the other.
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.SetVersion(7)
	for _, name := range []string{"orders", "secret"} {
		lt := kmsg.NewListOffsetsRequestTopic()
		lt.Topic = name
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Timestamp = -1
		lt.Partitions = append(lt.Partitions, lp)
		lo.Topics = append(lo.Topics, lt)
	}
	lr := ts.callAs(t, app, lo).(*kmsg.ListOffsetsResponse)
	if a, b := lr.Topics[0].Partitions[0].ErrorCode, lr.Topics[1].Partitions[0].ErrorCode; a != 0 || b != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("list offsets: %d and %d", a, b)
	}

	// Groups: READ on g, not on h.
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group = "h"
	if c := ts.callAs(t, app, hb).(*kmsg.HeartbeatResponse).ErrorCode; c != kerr.GroupAuthorizationFailed.Code {
		t.Errorf("heartbeat to a group app may not read: %d", c)
	}
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.SetVersion(5)
	dg.Groups, dg.IncludeAuthorizedOperations = []string{"g", "h"}, true
	gr := ts.callAs(t, app, dg).(*kmsg.DescribeGroupsResponse)
	if gr.Groups[0].ErrorCode != 0 || gr.Groups[0].AuthorizedOperations != 1<<authz.OpRead|1<<authz.OpDescribe ||
		gr.Groups[1].ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Errorf("describe groups: %+v", gr.Groups)
	}
	// OffsetCommit: READ on the group and on each topic (app may write
	// orders but not read it).
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.SetVersion(8)
	oc.Generation = -1
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "orders", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Offset: 1}}}}
	for _, c := range []struct {
		group string
		want  int16
	}{{"g", kerr.TopicAuthorizationFailed.Code}, {"h", kerr.GroupAuthorizationFailed.Code}} {
		oc.Group = c.group
		if got := ts.callAs(t, app, oc).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; got != c.want {
			t.Errorf("offset commit to group %s: %d, want %d", c.group, got, c.want)
		}
	}
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"g"}
	if c := ts.callAs(t, app, del).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode; c != kerr.GroupAuthorizationFailed.Code {
		t.Errorf("delete group without DELETE: %d", c)
	}
	// Admin APIs on the cluster.
	dc := kmsg.NewPtrDescribeClusterRequest()
	if c := ts.callAs(t, app, dc).(*kmsg.DescribeClusterResponse).ErrorCode; c != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("describe cluster: %d", c)
	}
	if c := ts.callAs(t, admin, dc).(*kmsg.DescribeClusterResponse).ErrorCode; c != 0 {
		t.Errorf("describe cluster as a super user: %d", c)
	}
	// Transaction markers are other brokers' to write (CLUSTER_ACTION).
	wm := kmsg.NewPtrWriteTxnMarkersRequest()
	wm.SetVersion(1)
	wmm := kmsg.NewWriteTxnMarkersRequestMarker()
	wmm.ProducerID, wmm.ProducerEpoch = 7, 0
	wmm.Topics = []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: "orders", Partitions: []int32{0}}}
	wm.Markers = append(wm.Markers, wmm)
	if got := ts.callAs(t, app, wm).(*kmsg.WriteTxnMarkersResponse); len(got.Markers) != 1 ||
		got.Markers[0].Topics[0].Partitions[0].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("WriteTxnMarkers without CLUSTER_ACTION: %+v", got.Markers)
	}
	dt := kmsg.NewPtrDeleteTopicsRequest()
	dt.SetVersion(5)
	dt.TopicNames = []string{"orders"}
	if c := ts.callAs(t, app, dt).(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode; c != kerr.TopicAuthorizationFailed.Code {
		t.Errorf("delete topic: %d", c)
	}
	ip := kmsg.NewPtrInitProducerIDRequest()
	if c := ts.callAs(t, app, ip).(*kmsg.InitProducerIDResponse).ErrorCode; c != 0 {
		t.Errorf("InitProducerId with WRITE on a topic: %d", c)
	}
	if c := ts.callAs(t, "User:nobody", ip).(*kmsg.InitProducerIDResponse).ErrorCode; c != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("InitProducerId without: %d", c)
	}
	us := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	if c := ts.callAs(t, app, us).(*kmsg.DescribeUserSCRAMCredentialsResponse).ErrorCode; c != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("describe SCRAM credentials: %d", c)
	}
}

func (m *aclMeta) AllocateProducerIDs(n int64) (int64, error) { return 1000, nil }

// BenchmarkProduceAuthorized is a produce of one small batch (acks=0,
// through dispatch, as a connection's handler runs it) with the
// authorizer off and on, among 10,000 ACLs; the difference is the
// authorization's cost per request. BenchmarkAuthorize (internal/authz)
// is the check alone.
func BenchmarkProduceAuthorized(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			ts := newAclServer(b, on, admin)
			ts.meta.fakeMeta.topics["orders"] = cluster.Topic{Name: "orders", ID: cluster.NewTopicID(), Partitions: 1}
			if err := ts.replicas.Reconcile(); err != nil {
				b.Fatal(err)
			}
			var acls []cluster.AclBinding
			for i := range 10000 {
				acls = append(acls, cluster.AclBinding{ResourceType: 2, ResourceName: fmt.Sprintf("topic-%d", i%1000), PatternType: 3,
					Principal: fmt.Sprintf("User:u%d", i/1000), Host: "*", Operation: 4, Permission: 3})
			}
			acls = append(acls, cluster.AclBinding{ResourceType: 2, ResourceName: "orders", PatternType: 3, Principal: "User:app",
				Host: "*", Operation: 4, Permission: 3})
			if err := ts.meta.AlterAcls(cluster.AlterAcls{Creations: acls}); err != nil {
				b.Fatal(err)
			}
			req := kmsg.NewPtrProduceRequest()
			req.SetVersion(9)
			req.Acks, req.TimeoutMillis = 0, 1000
			req.Topics = []kmsg.ProduceRequestTopic{{Topic: "orders", Partitions: []kmsg.ProduceRequestTopicPartition{{
				Records: testbatch.Make(testbatch.Spec{ProducerID: -1, Values: testbatch.Values(1, 100, 1)})}}}}
			body := req.AppendTo(nil)
			h := requestHeader{Key: 0, Version: 9, CorrelationID: 1, ClientID: "bench", Flexible: true}
			c := &conn{s: ts.Server, ctx: context.Background(), remote: "10.0.0.7:1", addr: "10.0.0.7", host: "/10.0.0.7",
				listener: cluster.DefaultListener, principal: "User:app"}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := ts.dispatch(c, h, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
