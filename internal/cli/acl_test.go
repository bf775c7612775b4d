package cli

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func aclTestFlags() *aclFlags { return &aclFlags{cluster: new(bool), pattern: new(string)} }

// TestACLCreations: every principal, from each of its hosts, gets each
// operation on each resource, as kafka-acls.sh makes them.
func TestACLCreations(t *testing.T) {
	f := aclTestFlags()
	f.allow, f.deny, f.denyHosts = listValue{"User:a", "User:b"}, listValue{"User:c"}, listValue{"10.0.0.1"}
	f.topics, *f.cluster = listValue{"t"}, true
	cs, err := f.creations(kmsg.ACLResourcePatternTypePrefixed, []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationWrite})
	if err != nil {
		t.Fatal(err)
	}
	// (2 allowed + 1 denied) × 2 operations × 2 resources.
	if len(cs) != 12 {
		t.Fatalf("%d creations: %+v", len(cs), cs)
	}
	for _, c := range cs {
		switch {
		case c.ResourceType == kmsg.ACLResourceTypeCluster && (c.ResourceName != "kafka-cluster" || c.ResourcePatternType != kmsg.ACLResourcePatternTypeLiteral):
			t.Errorf("cluster creation %+v", c)
		case c.ResourceType == kmsg.ACLResourceTypeTopic && c.ResourcePatternType != kmsg.ACLResourcePatternTypePrefixed:
			t.Errorf("topic creation %+v", c)
		case c.Principal == "User:c" && (c.Host != "10.0.0.1" || c.PermissionType != kmsg.ACLPermissionTypeDeny):
			t.Errorf("deny creation %+v", c)
		case c.Principal != "User:c" && (c.Host != "*" || c.PermissionType != kmsg.ACLPermissionTypeAllow):
			t.Errorf("allow creation %+v", c)
		}
	}
	for _, bad := range []func(*aclFlags){
		func(f *aclFlags) { f.topics = nil },
		func(f *aclFlags) { f.allow = nil },
	} {
		g := aclTestFlags()
		g.allow, g.topics = listValue{"User:a"}, listValue{"t"}
		bad(g)
		if _, err := g.creations(kmsg.ACLResourcePatternTypeLiteral, []kmsg.ACLOperation{kmsg.ACLOperationRead}); err == nil {
			t.Errorf("creations of %+v", g)
		}
	}
}

// TestACLFilters: what is not named matches anything.
func TestACLFilters(t *testing.T) {
	f := aclTestFlags()
	fs := f.filters(kmsg.ACLResourcePatternTypeAny, nil)
	if len(fs) != 1 || fs[0].ResourceType != kmsg.ACLResourceTypeAny || fs[0].ResourceName != nil || fs[0].Principal != nil ||
		fs[0].Host != nil || fs[0].Operation != kmsg.ACLOperationAny || fs[0].PermissionType != kmsg.ACLPermissionTypeAny {
		t.Fatalf("the empty filter %+v", fs)
	}
	f.allow, f.groups = listValue{"User:a"}, listValue{"g"}
	fs = f.filters(kmsg.ACLResourcePatternTypeLiteral, []kmsg.ACLOperation{kmsg.ACLOperationRead})
	if len(fs) != 1 || fs[0].ResourceType != kmsg.ACLResourceTypeGroup || *fs[0].ResourceName != "g" || *fs[0].Principal != "User:a" ||
		fs[0].Host != nil || fs[0].PermissionType != kmsg.ACLPermissionTypeAllow || fs[0].Operation != kmsg.ACLOperationRead {
		t.Fatalf("filter %+v", fs)
	}
	var l listValue
	l.Set("a, b")
	l.Set("c")
	if l.String() != "a,b,c" {
		t.Errorf("list %q", l.String())
	}
}
