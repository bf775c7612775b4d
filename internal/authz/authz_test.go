package authz

import (
	"fmt"
	"testing"
)

func allow(rt ResourceType, name string, pt PatternType, principal, host string, op Operation) Binding {
	return Binding{ResourceType: rt, ResourceName: name, PatternType: pt, Principal: principal, Host: host, Operation: op, Permission: Allow}
}

func deny(rt ResourceType, name string, pt PatternType, principal, host string, op Operation) Binding {
	b := allow(rt, name, pt, principal, host, op)
	b.Permission = Deny
	return b
}

// TestAuthorize walks Kafka's authorizer rules one at a time.
func TestAuthorize(t *testing.T) {
	const alice, bob, host = "User:alice", "User:bob", "10.0.0.1"
	type check struct {
		principal, host string
		op              Operation
		rt              ResourceType
		name            string
		want            bool
	}
	for _, tc := range []struct {
		name     string
		cfg      Config
		bindings []Binding
		checks   []check
	}{
		{"no ACL: denied", Config{}, nil, []check{
			{alice, host, OpRead, ResourceTopic, "orders", false},
		}},
		{"no ACL, allow everyone if none found", Config{AllowIfNoACL: true}, []Binding{
			allow(ResourceTopic, "other", PatternLiteral, bob, "*", OpRead),
		}, []check{
			{alice, host, OpRead, ResourceTopic, "orders", true},
			{alice, host, OpRead, ResourceTopic, "other", false}, // the resource has ACLs: they decide
		}},
		{"super user", Config{SuperUsers: []string{alice}}, []Binding{
			deny(ResourceTopic, "*", PatternLiteral, "User:*", "*", OpAll),
		}, []check{
			{alice, host, OpDelete, ResourceTopic, "orders", true},
			{bob, host, OpRead, ResourceTopic, "orders", false},
		}},
		{"literal", Config{}, []Binding{
			allow(ResourceTopic, "orders", PatternLiteral, alice, "*", OpRead),
		}, []check{
			{alice, host, OpRead, ResourceTopic, "orders", true},
			{alice, host, OpRead, ResourceTopic, "orders2", false},
			{alice, host, OpWrite, ResourceTopic, "orders", false},
			{bob, host, OpRead, ResourceTopic, "orders", false},
			{alice, host, OpRead, ResourceGroup, "orders", false}, // another resource type
		}},
		{"wildcard resource, principal and host", Config{}, []Binding{
			allow(ResourceTopic, "*", PatternLiteral, "User:*", "*", OpWrite),
		}, []check{
			{alice, host, OpWrite, ResourceTopic, "anything", true},
			{bob, "10.9.9.9", OpWrite, ResourceTopic, "x", true},
			{bob, host, OpRead, ResourceTopic, "x", false},
		}},
		{"host", Config{}, []Binding{
			allow(ResourceTopic, "orders", PatternLiteral, alice, host, OpRead),
		}, []check{
			{alice, host, OpRead, ResourceTopic, "orders", true},
			{alice, "10.0.0.2", OpRead, ResourceTopic, "orders", false},
		}},
		{"prefixed", Config{}, []Binding{
			allow(ResourceTopic, "billing-", PatternPrefixed, alice, "*", OpRead),
			allow(ResourceGroup, "b", PatternPrefixed, alice, "*", OpRead),
		}, []check{
			{alice, host, OpRead, ResourceTopic, "billing-eu", true},
			{alice, host, OpRead, ResourceTopic, "billing-", true},
			{alice, host, OpRead, ResourceTopic, "billing", false},
			{alice, host, OpRead, ResourceTopic, "xbilling-eu", false},
			{alice, host, OpRead, ResourceGroup, "b", true},
			{alice, host, OpRead, ResourceGroup, "batch", true},
		}},
		{"a prefix that is not a literal", Config{}, []Binding{
			allow(ResourceTopic, "orders", PatternLiteral, alice, "*", OpRead),
		}, []check{
			{alice, host, OpRead, ResourceTopic, "orders-eu", false},
		}},
		{"deny wins over allow", Config{}, []Binding{
			allow(ResourceTopic, "*", PatternLiteral, alice, "*", OpAll),
			deny(ResourceTopic, "secret-", PatternPrefixed, alice, "*", OpRead),
			deny(ResourceTopic, "audit", PatternLiteral, "User:*", host, OpWrite),
		}, []check{
			{alice, host, OpRead, ResourceTopic, "orders", true},
			{alice, host, OpRead, ResourceTopic, "secret-plans", false},
			{alice, host, OpWrite, ResourceTopic, "secret-plans", true},
			{alice, host, OpWrite, ResourceTopic, "audit", false},
			{alice, "10.0.0.2", OpWrite, ResourceTopic, "audit", true},
		}},
		{"deny ALL denies every operation", Config{}, []Binding{
			allow(ResourceTopic, "orders", PatternLiteral, alice, "*", OpRead),
			deny(ResourceTopic, "orders", PatternLiteral, alice, "*", OpAll),
		}, []check{
			{alice, host, OpRead, ResourceTopic, "orders", false},
			{alice, host, OpDescribe, ResourceTopic, "orders", false},
		}},
		{"implied operations", Config{}, []Binding{
			allow(ResourceTopic, "r", PatternLiteral, alice, "*", OpRead),
			allow(ResourceTopic, "w", PatternLiteral, alice, "*", OpWrite),
			allow(ResourceTopic, "d", PatternLiteral, alice, "*", OpDelete),
			allow(ResourceTopic, "a", PatternLiteral, alice, "*", OpAlter),
			allow(ResourceTopic, "c", PatternLiteral, alice, "*", OpCreate),
			allow(ResourceTopic, "ac", PatternLiteral, alice, "*", OpAlterConfigs),
			allow(ResourceTopic, "all", PatternLiteral, alice, "*", OpAll),
		}, []check{
			{alice, host, OpDescribe, ResourceTopic, "r", true},
			{alice, host, OpDescribe, ResourceTopic, "w", true},
			{alice, host, OpDescribe, ResourceTopic, "d", true},
			{alice, host, OpDescribe, ResourceTopic, "a", true},
			{alice, host, OpDescribe, ResourceTopic, "c", false},
			{alice, host, OpDescribeConfigs, ResourceTopic, "ac", true},
			{alice, host, OpDescribe, ResourceTopic, "ac", false},
			{alice, host, OpWrite, ResourceTopic, "r", false},
			{alice, host, OpClusterAction, ResourceTopic, "all", true},
		}},
		{"implication does not deny", Config{}, []Binding{
			allow(ResourceTopic, "orders", PatternLiteral, alice, "*", OpDescribe),
			deny(ResourceTopic, "orders", PatternLiteral, alice, "*", OpRead),
		}, []check{
			{alice, host, OpDescribe, ResourceTopic, "orders", true},
			{alice, host, OpRead, ResourceTopic, "orders", false},
		}},
		{"cluster", Config{}, []Binding{
			allow(ResourceCluster, ClusterName, PatternLiteral, alice, "*", OpClusterAction),
		}, []check{
			{alice, host, OpClusterAction, ResourceCluster, ClusterName, true},
			{alice, host, OpAlter, ResourceCluster, ClusterName, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(tc.cfg)
			a.Update(tc.bindings)
			for _, c := range tc.checks {
				if got := a.Authorize(c.principal, c.host, c.op, c.rt, c.name); got != c.want {
					t.Errorf("%s from %s: %s on %s %q: %v, want %v", c.principal, c.host, c.op, c.rt, c.name, got, c.want)
				}
			}
		})
	}
}

func TestAuthorizeAnyAndOperations(t *testing.T) {
	a := New(Config{})
	a.Update([]Binding{
		allow(ResourceTopic, "orders", PatternLiteral, "User:p", "*", OpWrite),
		allow(ResourceTopic, "*", PatternLiteral, "User:q", "*", OpWrite),
		deny(ResourceTopic, "*", PatternLiteral, "User:q", "*", OpWrite),
		allow(ResourceGroup, "g", PatternLiteral, "User:p", "*", OpRead),
	})
	if !a.AuthorizeAny("User:p", "h", OpWrite, ResourceTopic) {
		t.Error("p may write a topic")
	}
	if a.AuthorizeAny("User:q", "h", OpWrite, ResourceTopic) {
		t.Error("q is denied every topic")
	}
	if a.AuthorizeAny("User:r", "h", OpWrite, ResourceTopic) {
		t.Error("r has no ACL")
	}
	if got, want := a.AuthorizedOperations("User:p", "h", ResourceGroup, "g"), int32(1<<OpRead|1<<OpDescribe); got != want {
		t.Errorf("group operations %b, want %b", got, want)
	}
	if got, want := a.AuthorizedOperations("User:p", "h", ResourceTopic, "orders"), int32(1<<OpWrite|1<<OpDescribe); got != want {
		t.Errorf("topic operations %b, want %b", got, want)
	}
}

// TestFilter walks Kafka's filter rules.
func TestFilter(t *testing.T) {
	s := func(v string) *string { return &v }
	lit := allow(ResourceTopic, "orders", PatternLiteral, "User:a", "*", OpRead)
	wild := allow(ResourceTopic, "*", PatternLiteral, "User:a", "*", OpRead)
	pre := deny(ResourceTopic, "ord", PatternPrefixed, "User:b", "10.0.0.1", OpWrite)
	grp := allow(ResourceGroup, "orders", PatternLiteral, "User:a", "*", OpRead)
	any := Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}
	with := func(f func(*Filter)) Filter { g := any; f(&g); return g }
	for _, tc := range []struct {
		name   string
		filter Filter
		want   []Binding
	}{
		{"any", any, []Binding{lit, wild, pre, grp}},
		{"topic", with(func(f *Filter) { f.ResourceType = ResourceTopic }), []Binding{lit, wild, pre}},
		{"literal name", with(func(f *Filter) { f.PatternType, f.ResourceName = PatternLiteral, s("orders") }), []Binding{lit, grp}},
		{"any pattern, exact name", with(func(f *Filter) { f.ResourceName = s("ord") }), []Binding{pre}},
		{"match", with(func(f *Filter) { f.PatternType, f.ResourceName = PatternMatch, s("orders") }), []Binding{lit, wild, pre, grp}},
		{"match other", with(func(f *Filter) { f.PatternType, f.ResourceName = PatternMatch, s("x") }), []Binding{wild}},
		{"prefixed", with(func(f *Filter) { f.PatternType = PatternPrefixed }), []Binding{pre}},
		{"principal", with(func(f *Filter) { f.Principal = s("User:b") }), []Binding{pre}},
		{"host", with(func(f *Filter) { f.Host = s("*") }), []Binding{lit, wild, grp}},
		{"operation", with(func(f *Filter) { f.Operation = OpWrite }), []Binding{pre}},
		{"permission", with(func(f *Filter) { f.Permission = Allow }), []Binding{lit, wild, grp}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []Binding
			for _, b := range []Binding{lit, wild, pre, grp} {
				if tc.filter.Matches(b) {
					got = append(got, b)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("matched %v, want %v", got, tc.want)
			}
		})
	}
	for _, bad := range []Filter{
		with(func(f *Filter) { f.ResourceType = ResourceUnknown }),
		with(func(f *Filter) { f.PatternType = PatternUnknown }),
		with(func(f *Filter) { f.Operation = OpUnknown }),
		with(func(f *Filter) { f.Permission = PermissionUnknown }),
		with(func(f *Filter) { f.ResourceType = 9 }),
	} {
		if bad.Validate() == nil {
			t.Errorf("filter %+v is valid", bad)
		}
	}
	if any.Validate() != nil {
		t.Error("the any filter is invalid")
	}
}

func TestBindingValidate(t *testing.T) {
	good := allow(ResourceTopic, "orders", PatternLiteral, "User:a", "*", OpRead)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(*Binding){
		func(b *Binding) { b.ResourceType = ResourceAny },
		func(b *Binding) { b.PatternType = PatternMatch },
		func(b *Binding) { b.PatternType = PatternAny },
		func(b *Binding) { b.Operation = OpAny },
		func(b *Binding) { b.Permission = PermissionAny },
		func(b *Binding) { b.ResourceName = "" },
		func(b *Binding) { b.ResourceType, b.ResourceName = ResourceCluster, "other" },
		func(b *Binding) { b.Principal = "alice" },
		func(b *Binding) { b.Host = "" },
	} {
		b := good
		f(&b)
		if b.Validate() == nil {
			t.Errorf("binding %v is valid", b)
		}
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]Operation{"Read": OpRead, "IdempotentWrite": OpIdempotentWrite, "describe-configs": OpDescribeConfigs,
		"CLUSTER_ACTION": OpClusterAction, "All": OpAll} {
		if got, err := ParseOperation(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	if _, err := ParseOperation("Fly"); err == nil {
		t.Error("Fly parsed")
	}
	if rt, err := ParseResourceType("transactional-id"); err != nil || rt != ResourceTransactionalID {
		t.Errorf("transactional-id: %v %v", rt, err)
	}
	got, err := ParseSuperUsers("User:a; User:b;")
	if err != nil || fmt.Sprint(got) != "[User:a User:b]" {
		t.Errorf("super users %v %v", got, err)
	}
	if _, err := ParseSuperUsers("alice"); err == nil {
		t.Error("a super user without a type parsed")
	}
}

// BenchmarkAuthorize is the check a produce makes for its topic, among
// 10,000 bindings over 1,000 topics, 100 prefixes and the wildcard.
func BenchmarkAuthorize(b *testing.B) {
	a := New(Config{})
	var bs []Binding
	for i := range 1000 {
		for j := range 9 {
			bs = append(bs, allow(ResourceTopic, fmt.Sprintf("topic-%d", i), PatternLiteral, fmt.Sprintf("User:u%d", j), "*", OpWrite))
		}
	}
	for i := range 100 {
		bs = append(bs, allow(ResourceTopic, fmt.Sprintf("team-%d-", i), PatternPrefixed, "User:u1", "*", OpRead))
	}
	bs = append(bs, deny(ResourceTopic, "*", PatternLiteral, "User:evil", "*", OpAll))
	a.Update(bs)
	for _, c := range []struct {
		name, principal, topic string
	}{
		{"literal", "User:u8", "topic-500"},
		{"prefixed", "User:u1", "team-42-orders"},
		{"denied", "User:u9", "topic-500"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				a.Authorize(c.principal, "10.0.0.1", OpWrite, ResourceTopic, c.topic)
			}
		})
	}
}
