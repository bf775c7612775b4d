package server

import (
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/brokerconfig"
	"github.com/runnel-io/runnel/internal/testbatch"
)

func (m *fakeMeta) SetConfigs(name string, configs map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[name]
	if !ok {
		return fmt.Errorf("%w: %s", cluster.ErrUnknownTopic, name)
	}
	t.Configs = maps.Clone(configs)
	m.topics[name] = t
	return nil
}

// brokerConfigs are the fake metadata's dynamic broker configs.
var fakeBrokerConfigs sync.Map // *fakeMeta -> map[int32]map[string]string

func (m *fakeMeta) BrokerConfigs(broker int32) map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	all, _ := fakeBrokerConfigs.Load(m)
	if all == nil {
		return nil
	}
	return maps.Clone(all.(map[int32]map[string]string)[broker])
}

func (m *fakeMeta) SetConfigsIf(name string, prev, configs map[string]string) error {
	if t, ok := m.Topic(name); ok && !maps.Equal(t.Configs, prev) {
		return fmt.Errorf("%w: %s", cluster.ErrConfigsChanged, name)
	}
	return m.SetConfigs(name, configs)
}

func (m *fakeMeta) SetBrokerConfigsIf(broker int32, prev, configs map[string]string) error {
	if !maps.Equal(m.BrokerConfigs(broker), prev) {
		return fmt.Errorf("%w: broker %d", cluster.ErrConfigsChanged, broker)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	all, _ := fakeBrokerConfigs.LoadOrStore(m, map[int32]map[string]string{})
	if len(configs) == 0 {
		delete(all.(map[int32]map[string]string), broker)
	} else {
		all.(map[int32]map[string]string)[broker] = maps.Clone(configs)
	}
	return nil
}

type incOp struct {
	typ   kmsg.ConfigResourceType
	name  string
	op    kmsg.IncrementalAlterConfigOp
	key   string
	value *string
}

func (ts *testServer) incrementalAlter(t testing.TB, validateOnly bool, ops ...incOp) []kmsg.IncrementalAlterConfigsResponseResource {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.SetVersion(1)
	req.ValidateOnly = validateOnly
	for _, o := range ops {
		if n := len(req.Resources); n == 0 || req.Resources[n-1].ResourceType != o.typ || req.Resources[n-1].ResourceName != o.name {
			rr := kmsg.NewIncrementalAlterConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = o.typ, o.name
			req.Resources = append(req.Resources, rr)
		}
		rr := &req.Resources[len(req.Resources)-1]
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op, c.Value = o.key, o.op, o.value
		rr.Configs = append(rr.Configs, c)
	}
	return ts.call(t, req).(*kmsg.IncrementalAlterConfigsResponse).Resources
}

const (
	topicRes = kmsg.ConfigResourceTypeTopic
	set      = kmsg.IncrementalAlterConfigOpSet
	del      = kmsg.IncrementalAlterConfigOpDelete
	appendOp = kmsg.IncrementalAlterConfigOpAppend
	subtract = kmsg.IncrementalAlterConfigOpSubtract
)

// TestIncrementalAlterConfigsTopic: each operation on a topic's configs,
// and the refusals Kafka gives, one resource at a time; a refused change
// leaves the configs as they were.
func TestIncrementalAlterConfigsTopic(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createTopic(t, "t", 1)
	v := kmsg.StringPtr
	cases := []struct {
		what     string
		ops      []incOp
		validate bool
		code     int16
		want     map[string]string
	}{
		{"set", []incOp{{topicRes, "t", set, "retention.ms", v("1000")}, {topicRes, "t", set, "segment.bytes", v("4096")}}, false, 0,
			map[string]string{"retention.ms": "1000", "segment.bytes": "4096"}},
		{"delete", []incOp{{topicRes, "t", del, "segment.bytes", nil}}, false, 0, map[string]string{"retention.ms": "1000"}},
		{"delete a config not set", []incOp{{topicRes, "t", del, "segment.ms", nil}}, false, 0, map[string]string{"retention.ms": "1000"}},
		{"append to the default", []incOp{{topicRes, "t", appendOp, "cleanup.policy", v("compact")}}, false, 0,
			map[string]string{"retention.ms": "1000", "cleanup.policy": "delete,compact"}},
		{"append what is there", []incOp{{topicRes, "t", appendOp, "cleanup.policy", v("delete")}}, false, 0,
			map[string]string{"retention.ms": "1000", "cleanup.policy": "delete,compact"}},
		{"subtract", []incOp{{topicRes, "t", subtract, "cleanup.policy", v("delete")}}, false, 0,
			map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}},
		{"subtract to nothing", []incOp{{topicRes, "t", subtract, "cleanup.policy", v("compact")}}, false, kerr.InvalidConfig.Code,
			map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}},
		{"validate only", []incOp{{topicRes, "t", set, "retention.ms", v("5")}}, true, 0,
			map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}},
		{"validate only, bad value", []incOp{{topicRes, "t", set, "retention.ms", v("soon")}}, true, kerr.InvalidConfig.Code,
			map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}},
		{"bad value", []incOp{{topicRes, "t", set, "retention.ms", v("5")}, {topicRes, "t", set, "segment.bytes", v("1")}}, false,
			kerr.InvalidConfig.Code, map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}},
		{"unknown config", []incOp{{topicRes, "t", set, "retention.minutes", v("5")}}, false, kerr.InvalidConfig.Code,
			map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}},
		{"append to a number", []incOp{{topicRes, "t", appendOp, "retention.ms", v("5")}}, false, kerr.InvalidConfig.Code,
			map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}},
		{"set null", []incOp{{topicRes, "t", set, "retention.ms", nil}}, false, kerr.InvalidRequest.Code,
			map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}},
		{"config twice", []incOp{{topicRes, "t", set, "retention.ms", v("5")}, {topicRes, "t", del, "retention.ms", nil}}, false,
			kerr.InvalidRequest.Code, map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}},
		{"min.insync.replicas above the replication factor", []incOp{{topicRes, "t", set, "min.insync.replicas", v("2")}}, false,
			kerr.InvalidConfig.Code, map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}},
		{"unknown topic", []incOp{{topicRes, "nope", set, "retention.ms", v("5")}}, false, kerr.UnknownTopicOrPartition.Code,
			map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}},
		{"unknown resource type", []incOp{{kmsg.ConfigResourceTypeBrokerLogger, "1", set, "root", v("DEBUG")}}, false,
			kerr.InvalidRequest.Code, map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}},
	}
	for _, c := range cases {
		got := ts.incrementalAlter(t, c.validate, c.ops...)
		if len(got) != 1 || got[0].ErrorCode != c.code {
			t.Errorf("%s: answer %+v, want error %d", c.what, got, c.code)
		}
		if topic, _ := ts.meta.Topic("t"); !maps.Equal(topic.Configs, c.want) {
			t.Errorf("%s: configs %v, want %v", c.what, topic.Configs, c.want)
		}
	}
	// A resource named twice is refused both times, and changes nothing.
	got := ts.incrementalAlter(t, false, incOp{topicRes, "t", set, "retention.ms", v("7")},
		incOp{topicRes, "other", set, "retention.ms", v("7")}, incOp{topicRes, "t", set, "segment.ms", v("7")})
	if len(got) != 3 || got[0].ErrorCode != kerr.InvalidRequest.Code || got[2].ErrorCode != kerr.InvalidRequest.Code ||
		got[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("a resource named twice: %+v", got)
	}
}

// TestAlterConfigsReplacesTopicConfigs: the legacy API sets the whole
// set: a config it does not name goes back to its default.
func TestAlterConfigsReplacesTopicConfigs(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createTopicWith(t, "t", map[string]string{"retention.ms": "1000", "segment.ms": "60000"})
	alter := func(validateOnly bool, kv ...string) int16 {
		req := kmsg.NewPtrAlterConfigsRequest()
		req.SetVersion(2)
		req.ValidateOnly = validateOnly
		rr := kmsg.NewAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = topicRes, "t"
		for i := 0; i < len(kv); i += 2 {
			c := kmsg.NewAlterConfigsRequestResourceConfig()
			c.Name, c.Value = kv[i], kmsg.StringPtr(kv[i+1])
			rr.Configs = append(rr.Configs, c)
		}
		req.Resources = append(req.Resources, rr)
		return ts.call(t, req).(*kmsg.AlterConfigsResponse).Resources[0].ErrorCode
	}
	if c := alter(false, "retention.ms", "2000", "max.message.bytes", "5000"); c != 0 {
		t.Fatalf("error %d", c)
	}
	want := map[string]string{"retention.ms": "2000", "max.message.bytes": "5000"}
	if topic, _ := ts.meta.Topic("t"); !maps.Equal(topic.Configs, want) {
		t.Errorf("configs %v, want %v", topic.Configs, want)
	}
	if c := alter(false, "retention.ms", "x"); c != kerr.InvalidConfig.Code {
		t.Errorf("a bad value: error %d, want INVALID_CONFIG", c)
	}
	if c := alter(true); c != 0 {
		t.Errorf("validate only: error %d", c)
	}
	if topic, _ := ts.meta.Topic("t"); !maps.Equal(topic.Configs, want) {
		t.Errorf("after refused and validate-only changes: configs %v, want %v", topic.Configs, want)
	}
	// DescribeConfigs says which are set and which are defaults.
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = topicRes, "t", []string{"retention.ms", "segment.ms"}
	req.Resources = append(req.Resources, rr)
	got := map[string]string{}
	for _, c := range ts.call(t, req).(*kmsg.DescribeConfigsResponse).Resources[0].Configs {
		got[c.Name] = fmt.Sprintf("%s/%v", *c.Value, c.IsDefault)
	}
	if w := map[string]string{"retention.ms": "2000/false", "segment.ms": "604800000/true"}; !maps.Equal(got, w) {
		t.Errorf("described %v, want %v", got, w)
	}
}

// TestTopicConfigChangeIsLive: a changed topic config reaches the open
// partition without a restart: retention removes what the new retention.ms
// allows, the log rolls at the new segment.bytes, produce and acks=all
// follow the new max.message.bytes and min.insync.replicas.
func TestTopicConfigChangeIsLive(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createTopicWith(t, "t", map[string]string{"retention.ms": "-1", "segment.bytes": "200"})
	p, err := ts.parts.Get("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	ts.produce(t, "t", 0, 4, 3, 10) // a batch a segment, timestamps in 1970
	if n, err := p.Log().ApplyRetention(); err != nil || n != 0 {
		t.Fatalf("retention.ms -1 removed %d segments (%v)", n, err)
	}
	v := kmsg.StringPtr
	if got := ts.incrementalAlter(t, false, incOp{topicRes, "t", set, "retention.ms", v("60000")},
		incOp{topicRes, "t", set, "segment.bytes", v("100000")}, incOp{topicRes, "t", set, "max.message.bytes", v("150")}); got[0].ErrorCode != 0 {
		t.Fatalf("alter: %+v", got)
	}
	if n, err := p.Log().ApplyRetention(); err != nil || n != 3 {
		t.Errorf("after retention.ms 60000: retention removed %d segments (%v), want the 3 sealed ones", n, err)
	}
	before := len(p.Log().Segments())
	ts.produce(t, "t", 0, 1, 3, 10)
	b := testbatch.Make(testbatch.Spec{Timestamp: 1, ProducerID: -1, Values: testbatch.Values(3, 100, 1)})
	if _, err := p.Append(b, 1); errorCode(err) != kerr.MessageTooLarge.Code {
		t.Errorf("a %d-byte batch above max.message.bytes 150: %v", len(b), err)
	}
	// The active segment was mapped at 200 bytes, so it rolls once more;
	// the one after holds 100000.
	ts.produce(t, "t", 0, 4, 3, 10)
	if n := len(p.Log().Segments()); n > before+2 {
		t.Errorf("%d segments after 5 more batches with segment.bytes 100000, from %d", n, before)
	}
	if c := p.Config(); c.MaxMessageBytes != 150 || c.RetentionMs != 60000 || c.SegmentBytes != 100000 {
		t.Errorf("partition config %+v", c)
	}
}

func (ts *testServer) describeConfigs(t testing.TB, typ kmsg.ConfigResourceType, name string, names ...string) kmsg.DescribeConfigsResponseResource {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.SetVersion(4)
	req.IncludeSynonyms, req.IncludeDocumentation = true, true
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = typ, name, names
	req.Resources = append(req.Resources, rr)
	return ts.call(t, req).(*kmsg.DescribeConfigsResponse).Resources[0]
}

// showConfig renders a described config: value/source, then its synonyms.
func showConfig(c kmsg.DescribeConfigsResponseResourceConfig) string {
	v := func(p *string) string {
		if p == nil {
			return "null"
		}
		return *p
	}
	out := fmt.Sprintf("%s/%d", v(c.Value), c.Source)
	for _, y := range c.ConfigSynonyms {
		out += fmt.Sprintf(" %s=%s/%d", y.Name, v(y.Value), y.Source)
	}
	return out
}

func configsByName(r kmsg.DescribeConfigsResponseResource) map[string]kmsg.DescribeConfigsResponseResourceConfig {
	out := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, c := range r.Configs {
		out[c.Name] = c
	}
	return out
}

// TestBrokerConfigs: a broker's configs are described with their sources
// and synonyms (per-broker dynamic over cluster-wide dynamic over the
// flag over the default), secrets without their value; the empty name
// describes the cluster-wide dynamic ones only, another broker's id is
// refused; dynamic configs change, read-only ones are refused with
// INVALID_REQUEST and bad values with INVALID_CONFIG; topics describe a
// dynamic broker default under their own config's name.
func TestBrokerConfigs(t *testing.T) {
	static := map[string]brokerconfig.Static{
		"node.id":          {Value: "1", Default: "1"},
		"num.partitions":   {Value: "3", Default: "1", Set: true},
		"sasl.scram.users": {Value: "admin:SCRAM-SHA-512:secret", Set: true},
		"log.level":        {Value: "info", Default: "info"},
	}
	ts := newTestServer(t, Config{NodeID: 1, BrokerConfigs: static})
	ts.createTopic(t, "t", 1)
	v := kmsg.StringPtr
	brokerRes := kmsg.ConfigResourceTypeBroker
	got := configsByName(ts.describeConfigs(t, brokerRes, "1"))
	for name, want := range map[string]string{
		"num.partitions":   "3/4 num.partitions=3/4 num.partitions=1/5",
		"node.id":          "1/5 node.id=1/5",
		"log.retention.ms": "604800000/5 log.retention.ms=604800000/5",
		"sasl.scram.users": "null/4 sasl.scram.users=null/4 sasl.scram.users=null/5",
	} {
		if s := showConfig(got[name]); s != want {
			t.Errorf("%s: %s, want %s", name, s, want)
		}
	}
	if c := got["sasl.scram.users"]; !c.IsSensitive || c.ConfigType != kmsg.ConfigTypePassword {
		t.Errorf("sasl.scram.users: sensitive %v, type %v", c.IsSensitive, c.ConfigType)
	}
	if c := got["num.partitions"]; !c.ReadOnly || c.Documentation == nil || c.ConfigType != kmsg.ConfigTypeInt {
		t.Errorf("num.partitions: read-only %v, doc %v, type %v", c.ReadOnly, c.Documentation, c.ConfigType)
	}
	if len(got) != len(brokerconfig.Defs) {
		t.Errorf("%d broker configs described, want %d", len(got), len(brokerconfig.Defs))
	}

	for _, c := range []struct {
		what     string
		name     string
		op       incOp
		validate bool
		code     int16
	}{
		{"cluster-wide", "", incOp{brokerRes, "", set, "log.retention.ms", v("1000")}, false, 0},
		{"this broker", "1", incOp{brokerRes, "1", set, "log.retention.ms", v("2000")}, false, 0},
		{"validate only", "1", incOp{brokerRes, "1", set, "log.level", v("debug")}, true, 0},
		{"another broker", "2", incOp{brokerRes, "2", set, "log.level", v("debug")}, false, 0},
		{"read-only", "1", incOp{brokerRes, "1", set, "num.partitions", v("5")}, false, kerr.InvalidRequest.Code},
		{"bad value", "1", incOp{brokerRes, "1", set, "log.retention.ms", v("soon")}, false, kerr.InvalidConfig.Code},
		{"bad level", "1", incOp{brokerRes, "1", set, "log.level", v("loud")}, false, kerr.InvalidConfig.Code},
		{"unknown", "1", incOp{brokerRes, "1", set, "log.retention.fortnights", v("1")}, false, kerr.InvalidConfig.Code},
		{"not a node id", "x", incOp{brokerRes, "x", set, "log.level", v("debug")}, false, kerr.InvalidRequest.Code},
		{"append a policy", "", incOp{brokerRes, "", appendOp, "log.cleanup.policy", v("compact")}, false, 0},
	} {
		if r := ts.incrementalAlter(t, c.validate, c.op); r[0].ErrorCode != c.code {
			t.Errorf("%s: error %d, want %d (%v)", c.what, r[0].ErrorCode, c.code, r[0].ErrorMessage)
		}
	}
	if d := ts.meta.BrokerConfigs(cluster.DefaultBrokerConfigs); !maps.Equal(d, map[string]string{"log.retention.ms": "1000", "log.cleanup.policy": "delete,compact"}) {
		t.Errorf("cluster-wide dynamic configs %v", d)
	}
	if d := ts.meta.BrokerConfigs(1); !maps.Equal(d, map[string]string{"log.retention.ms": "2000"}) {
		t.Errorf("broker 1's dynamic configs %v", d)
	}
	got = configsByName(ts.describeConfigs(t, brokerRes, "1", "log.retention.ms", "log.level"))
	if s, w := showConfig(got["log.retention.ms"]), "2000/2 log.retention.ms=2000/2 log.retention.ms=1000/3 log.retention.ms=604800000/5"; s != w {
		t.Errorf("log.retention.ms: %s, want %s", s, w)
	}
	if s, w := showConfig(got["log.level"]), "info/5 log.level=info/5"; s != w || len(got) != 2 {
		t.Errorf("log.level: %s, want %s (of %d)", s, w, len(got))
	}
	defaults := ts.describeConfigs(t, brokerRes, "")
	if len(defaults.Configs) != 2 || showConfig(configsByName(defaults)["log.retention.ms"]) != "1000/3 log.retention.ms=1000/3" {
		t.Errorf("cluster-wide: %+v", defaults.Configs)
	}
	if r := ts.describeConfigs(t, brokerRes, "2"); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("another broker's configs: error %d", r.ErrorCode)
	}
	// CreateTopics answers with the same values and sources.
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "u", 1, 1
	req.Topics = append(req.Topics, rt)
	for _, c := range ts.call(t, req).(*kmsg.CreateTopicsResponse).Topics[0].Configs {
		if c.Name == "retention.ms" && (*c.Value != "2000" || c.Source != 2) {
			t.Errorf("CreateTopics: retention.ms %s from %d, want 2000 from DYNAMIC_BROKER_CONFIG", *c.Value, c.Source)
		}
	}
	topic := configsByName(ts.describeConfigs(t, topicRes, "t", "retention.ms", "cleanup.policy", "segment.ms"))
	for name, want := range map[string]string{
		"retention.ms":   "2000/2 log.retention.ms=2000/2 log.retention.ms=1000/3 retention.ms=604800000/5",
		"cleanup.policy": "delete,compact/3 log.cleanup.policy=delete,compact/3 cleanup.policy=delete/5",
		"segment.ms":     "604800000/5 segment.ms=604800000/5",
	} {
		if s := showConfig(topic[name]); s != want {
			t.Errorf("topic %s: %s, want %s", name, s, want)
		}
	}
}

// TestAlterConfigsAuthorized: under the authorizer, changing a topic's
// configs needs ALTER_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED
// otherwise) and a broker's ALTER_CONFIGS on the cluster
// (CLUSTER_AUTHORIZATION_FAILED), through either API.
func TestAlterConfigsAuthorized(t *testing.T) {
	ts := newAclServer(t, true, admin)
	if _, err := ts.meta.CreateTopic(cluster.Topic{Name: "t", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	const app = "User:app"
	if c := ts.createAcls(t, 3, creation(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeLiteral, app,
		kmsg.ACLOperationAlterConfigs, kmsg.ACLPermissionTypeAllow)); c[0] != 0 {
		t.Fatalf("create acl: %v", c)
	}
	inc := func(principal string, typ kmsg.ConfigResourceType, name, key, value string) int16 {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = typ, name
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = key, kmsg.StringPtr(value)
		rr.Configs = append(rr.Configs, c)
		req.Resources = append(req.Resources, rr)
		return ts.callAs(t, principal, req).(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode
	}
	legacy := func(principal string, typ kmsg.ConfigResourceType, name, key, value string) int16 {
		req := kmsg.NewPtrAlterConfigsRequest()
		rr := kmsg.NewAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = typ, name
		c := kmsg.NewAlterConfigsRequestResourceConfig()
		c.Name, c.Value = key, kmsg.StringPtr(value)
		rr.Configs = append(rr.Configs, c)
		req.Resources = append(req.Resources, rr)
		return ts.callAs(t, principal, req).(*kmsg.AlterConfigsResponse).Resources[0].ErrorCode
	}
	for _, c := range []struct {
		what      string
		principal string
		typ       kmsg.ConfigResourceType
		key       string
		want      int16
	}{
		{"app on its topic", app, topicRes, "retention.ms", 0},
		{"another user on the topic", "User:other", topicRes, "retention.ms", kerr.TopicAuthorizationFailed.Code},
		{"app on the brokers", app, kmsg.ConfigResourceTypeBroker, "log.retention.ms", kerr.ClusterAuthorizationFailed.Code},
		{"a super user on the brokers", admin, kmsg.ConfigResourceTypeBroker, "log.retention.ms", 0},
	} {
		name := "t"
		if c.typ == kmsg.ConfigResourceTypeBroker {
			name = ""
		}
		for api, f := range map[string]func(string, kmsg.ConfigResourceType, string, string, string) int16{"incremental": inc, "legacy": legacy} {
			if got := f(c.principal, c.typ, name, c.key, "1000"); got != c.want {
				t.Errorf("%s, %s: error %d, want %d", c.what, api, got, c.want)
			}
		}
	}
}

// racingMeta commits another change of the topic's configs just before
// the first SetConfigsIf, as a second broker's would land first.
type racingMeta struct {
	*fakeMeta
	raced bool
}

func (m *racingMeta) SetConfigsIf(name string, prev, configs map[string]string) error {
	if !m.raced {
		m.raced = true
		t, _ := m.Topic(name)
		other := maps.Clone(t.Configs)
		if other == nil {
			other = map[string]string{}
		}
		other["segment.ms"] = "60000"
		m.SetConfigs(name, other)
	}
	return m.fakeMeta.SetConfigsIf(name, prev, configs)
}

// TestIncrementalAlterConfigsRace: a change computed from configs that
// another change replaced first is computed again, so both hold.
func TestIncrementalAlterConfigsRace(t *testing.T) {
	fm := newFakeMeta(1)
	meta := &racingMeta{fakeMeta: fm}
	ts := newTestServerOver(t, Config{}, meta, fm)
	ts.createTopic(t, "t", 1)
	if got := ts.incrementalAlter(t, false, incOp{topicRes, "t", set, "retention.ms", kmsg.StringPtr("1000")}); got[0].ErrorCode != 0 {
		t.Fatalf("alter: %+v", got)
	}
	want := map[string]string{"retention.ms": "1000", "segment.ms": "60000"}
	if topic, _ := fm.Topic("t"); !maps.Equal(topic.Configs, want) {
		t.Errorf("configs %v, want %v: one change undid the other", topic.Configs, want)
	}
}
