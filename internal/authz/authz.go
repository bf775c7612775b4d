// Package authz is the broker's authorizer: Kafka's ACL model and its
// matching rules, over an index of the ACL bindings that is replaced whole
// whenever they change.
//
// A binding names a resource (a type, a name and a pattern: the literal
// name, the literal "*" for every resource of the type, or a prefix), a
// principal ("User:name", or "User:*" for all), a host (an IP address, or
// "*"), an operation and a permission. A request is allowed when the
// principal is a super user, or when some binding of its resource allows
// the operation (or one that implies it) to the principal from its host
// and none denies it; deny wins. A resource with no binding at all is
// denied, unless the authorizer allows everyone where no ACL is found.
// Operations imply as Kafka's: READ, WRITE, DELETE and ALTER allow
// DESCRIBE; ALTER_CONFIGS allows DESCRIBE_CONFIGS; ALL allows (and denies)
// every operation. Implication works for allowing only: denying READ does
// not deny DESCRIBE.
//
// Checks take no lock: they read the current index through an atomic
// pointer. The index holds, per resource type, the literal bindings by
// name, those of the literal "*", and the prefixed ones by prefix with the
// set of prefix lengths, so a check looks at the bindings of its resource
// only, whatever the number of bindings.
package authz

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
)

// ResourceType is the kind of resource a binding is on, numbered as Kafka
// numbers them.
type ResourceType int8

// Resource types; Any is for filters only.
const (
	ResourceUnknown         ResourceType = 0
	ResourceAny             ResourceType = 1
	ResourceTopic           ResourceType = 2
	ResourceGroup           ResourceType = 3
	ResourceCluster         ResourceType = 4
	ResourceTransactionalID ResourceType = 5
)

// PatternType says how a binding's resource name matches, numbered as
// Kafka numbers them.
type PatternType int8

// Pattern types; Any and Match are for filters only.
const (
	PatternUnknown  PatternType = 0
	PatternAny      PatternType = 1
	PatternMatch    PatternType = 2
	PatternLiteral  PatternType = 3
	PatternPrefixed PatternType = 4
)

// Operation is what a binding allows or denies, numbered as Kafka numbers
// them.
type Operation int8

// Operations; Any is for filters only.
const (
	OpUnknown         Operation = 0
	OpAny             Operation = 1
	OpAll             Operation = 2
	OpRead            Operation = 3
	OpWrite           Operation = 4
	OpCreate          Operation = 5
	OpDelete          Operation = 6
	OpAlter           Operation = 7
	OpDescribe        Operation = 8
	OpClusterAction   Operation = 9
	OpDescribeConfigs Operation = 10
	OpAlterConfigs    Operation = 11
	OpIdempotentWrite Operation = 12
)

// Permission is a binding's verdict, numbered as Kafka numbers them.
type Permission int8

// Permissions; Any is for filters only.
const (
	PermissionUnknown Permission = 0
	PermissionAny     Permission = 1
	Deny              Permission = 2
	Allow             Permission = 3
)

// Names Kafka gives: the wildcard resource name and host, the wildcard
// principal, and the one cluster resource's name.
const (
	Wildcard          = "*"
	WildcardPrincipal = "User:*"
	ClusterName       = "kafka-cluster"
)

var (
	resourceNames  = map[ResourceType]string{ResourceAny: "ANY", ResourceTopic: "TOPIC", ResourceGroup: "GROUP", ResourceCluster: "CLUSTER", ResourceTransactionalID: "TRANSACTIONAL_ID"}
	patternNames   = map[PatternType]string{PatternAny: "ANY", PatternMatch: "MATCH", PatternLiteral: "LITERAL", PatternPrefixed: "PREFIXED"}
	operationNames = map[Operation]string{OpAny: "ANY", OpAll: "ALL", OpRead: "READ", OpWrite: "WRITE", OpCreate: "CREATE",
		OpDelete: "DELETE", OpAlter: "ALTER", OpDescribe: "DESCRIBE", OpClusterAction: "CLUSTER_ACTION",
		OpDescribeConfigs: "DESCRIBE_CONFIGS", OpAlterConfigs: "ALTER_CONFIGS", OpIdempotentWrite: "IDEMPOTENT_WRITE"}
	permissionNames = map[Permission]string{PermissionAny: "ANY", Deny: "DENY", Allow: "ALLOW"}
)

func (t ResourceType) String() string { return name(resourceNames, t) }
func (p PatternType) String() string  { return name(patternNames, p) }
func (o Operation) String() string    { return name(operationNames, o) }
func (p Permission) String() string   { return name(permissionNames, p) }

func name[K ~int8](names map[K]string, k K) string {
	if n, ok := names[k]; ok {
		return n
	}
	return fmt.Sprintf("UNKNOWN(%d)", k)
}

func parse[K ~int8](names map[K]string, what, s string) (K, error) {
	n := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "_"))
	for k, v := range names {
		if v == n || strings.ReplaceAll(v, "_", "") == n {
			return k, nil
		}
	}
	return 0, fmt.Errorf("authz: unknown %s %q", what, s)
}

// ParseOperation reads an operation's name, as kafka-acls.sh writes it
// (Read, IdempotentWrite, DESCRIBE_CONFIGS, describe-configs).
func ParseOperation(s string) (Operation, error) { return parse(operationNames, "operation", s) }

// ParsePatternType reads a pattern type's name (literal, prefixed, match,
// any).
func ParsePatternType(s string) (PatternType, error) { return parse(patternNames, "pattern type", s) }

// ParseResourceType reads a resource type's name (topic, group, cluster,
// transactional-id, any).
func ParseResourceType(s string) (ResourceType, error) {
	return parse(resourceNames, "resource type", s)
}

// Binding is one ACL.
type Binding struct {
	ResourceType ResourceType
	ResourceName string
	PatternType  PatternType
	Principal    string
	Host         string
	Operation    Operation
	Permission   Permission
}

func (b Binding) String() string {
	return fmt.Sprintf("(%s %s %q) %s %s from %s on %s", b.Permission, b.Operation, b.ResourceName, b.ResourceType,
		b.PatternType, b.Principal, b.Host)
}

// ErrInvalid: a binding that cannot be created, or a filter that cannot
// match (Kafka's INVALID_REQUEST).
var ErrInvalid = errors.New("authz: invalid ACL")

// Validate checks a binding to be created as Kafka does: a concrete
// resource type, pattern, operation and permission, a resource name (for
// the cluster, "kafka-cluster"), a "User:" principal and a host.
func (b Binding) Validate() error {
	switch {
	case b.ResourceType < ResourceTopic || b.ResourceType > ResourceTransactionalID:
		return fmt.Errorf("%w: resource type %s", ErrInvalid, b.ResourceType)
	case b.PatternType != PatternLiteral && b.PatternType != PatternPrefixed:
		return fmt.Errorf("%w: pattern type %s", ErrInvalid, b.PatternType)
	case b.Operation < OpAll || b.Operation > OpIdempotentWrite:
		return fmt.Errorf("%w: operation %s", ErrInvalid, b.Operation)
	case b.Permission != Allow && b.Permission != Deny:
		return fmt.Errorf("%w: permission %s", ErrInvalid, b.Permission)
	case b.ResourceName == "":
		return fmt.Errorf("%w: empty resource name", ErrInvalid)
	case b.ResourceType == ResourceCluster && b.ResourceName != ClusterName:
		return fmt.Errorf("%w: the only valid name for the CLUSTER resource is %s", ErrInvalid, ClusterName)
	case !strings.HasPrefix(b.Principal, "User:") || len(b.Principal) == len("User:"):
		return fmt.Errorf("%w: principal %q is not User:name", ErrInvalid, b.Principal)
	case b.Host == "":
		return fmt.Errorf("%w: empty host", ErrInvalid)
	}
	return nil
}

// Filter selects bindings, as DescribeAcls and DeleteAcls do: Any in an
// enumeration and a nil string match everything; PatternMatch matches the
// bindings that would apply to the named resource (its literal name, the
// wildcard, and the prefixes of the name).
type Filter struct {
	ResourceType ResourceType
	ResourceName *string
	PatternType  PatternType
	Principal    *string
	Host         *string
	Operation    Operation
	Permission   Permission
}

// Validate refuses a filter with an unknown element, as Kafka does.
func (f Filter) Validate() error {
	switch {
	case f.ResourceType < ResourceAny || f.ResourceType > ResourceTransactionalID:
		return fmt.Errorf("%w: filter resource type %s", ErrInvalid, f.ResourceType)
	case f.PatternType < PatternAny || f.PatternType > PatternPrefixed:
		return fmt.Errorf("%w: filter pattern type %s", ErrInvalid, f.PatternType)
	case f.Operation < OpAny || f.Operation > OpIdempotentWrite:
		return fmt.Errorf("%w: filter operation %s", ErrInvalid, f.Operation)
	case f.Permission < PermissionAny || f.Permission > Allow:
		return fmt.Errorf("%w: filter permission %s", ErrInvalid, f.Permission)
	}
	return nil
}

// Matches reports whether the filter selects the binding.
func (f Filter) Matches(b Binding) bool {
	if f.ResourceType != ResourceAny && f.ResourceType != b.ResourceType {
		return false
	}
	switch {
	case f.PatternType == PatternAny || f.PatternType == b.PatternType:
		if f.ResourceName != nil && *f.ResourceName != b.ResourceName {
			return false
		}
	case f.PatternType == PatternMatch:
		if f.ResourceName != nil && !patternApplies(b, *f.ResourceName) {
			return false
		}
	default:
		return false
	}
	return (f.Principal == nil || *f.Principal == b.Principal) && (f.Host == nil || *f.Host == b.Host) &&
		(f.Operation == OpAny || f.Operation == b.Operation) && (f.Permission == PermissionAny || f.Permission == b.Permission)
}

// patternApplies reports whether a binding's pattern covers a resource
// name.
func patternApplies(b Binding, name string) bool {
	if b.PatternType == PatternPrefixed {
		return strings.HasPrefix(name, b.ResourceName)
	}
	return b.ResourceName == name || b.ResourceName == Wildcard
}

// Config configures an Authorizer.
type Config struct {
	// SuperUsers are principals allowed everything ("User:admin").
	SuperUsers []string
	// AllowIfNoACL allows every request on a resource no binding names
	// (Kafka's allow.everyone.if.no.acl.found); default false.
	AllowIfNoACL bool
}

// ParseSuperUsers reads Kafka's super.users list: principals separated by
// semicolons ("User:a;User:b").
func ParseSuperUsers(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ";") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !strings.Contains(p, ":") || strings.HasSuffix(p, ":") {
			return nil, fmt.Errorf("authz: super user %q is not Type:name", p)
		}
		out = append(out, p)
	}
	return out, nil
}

// Authorizer answers whether a principal may perform an operation on a
// resource. Its methods are safe for concurrent use; Authorize takes no
// lock.
type Authorizer struct {
	super        map[string]bool
	allowIfNoACL bool
	idx          atomic.Pointer[index]
}

// New returns an authorizer with no bindings.
func New(cfg Config) *Authorizer {
	a := &Authorizer{super: map[string]bool{}, allowIfNoACL: cfg.AllowIfNoACL}
	for _, p := range cfg.SuperUsers {
		a.super[p] = true
	}
	a.idx.Store(newIndex(nil))
	return a
}

// SuperUser reports whether the principal is a super user.
func (a *Authorizer) SuperUser(principal string) bool { return a.super[principal] }

// Update replaces the bindings. Checks that started before it see the old
// ones, later ones the new.
func (a *Authorizer) Update(bindings []Binding) { a.idx.Store(newIndex(bindings)) }

// Bindings returns every binding, in a fixed order.
func (a *Authorizer) Bindings() []Binding { return slices.Clone(a.idx.Load().all) }

// Authorize reports whether principal, connected from host (an IP
// address), may perform op on the resource of type rt named name.
func (a *Authorizer) Authorize(principal, host string, op Operation, rt ResourceType, name string) bool {
	if a.super[principal] {
		return true
	}
	ix := a.idx.Load()
	r := &ix.byType[rt&7]
	found := false
	// Deny first, over every binding of the resource.
	denied := false
	r.each(name, func(e *entry) bool {
		found = true
		if e.perm == Deny && e.matches(principal, host) && (e.op == op || e.op == OpAll) {
			denied = true
			return false
		}
		return true
	})
	if denied {
		return false
	}
	if !found {
		return a.allowIfNoACL
	}
	allowed := false
	r.each(name, func(e *entry) bool {
		if e.perm == Allow && e.matches(principal, host) && implies(e.op, op) {
			allowed = true
			return false
		}
		return true
	})
	return allowed
}

// AuthorizeAny reports whether principal may perform op on at least one
// resource of type rt, as Kafka's check by resource type (used where an
// idempotent producer holds WRITE on some topic instead of IDEMPOTENT_WRITE
// on the cluster): some binding allows it, on a literal name or a prefix
// that no binding for the principal denies outright.
func (a *Authorizer) AuthorizeAny(principal, host string, op Operation, rt ResourceType) bool {
	if a.super[principal] {
		return true
	}
	ix := a.idx.Load()
	r := &ix.byType[rt&7]
	if len(r.all) == 0 {
		return a.allowIfNoACL
	}
	for _, e := range r.all {
		if e.perm != Allow || !e.matches(principal, host) || !implies(e.op, op) {
			continue
		}
		if a.Authorize(principal, host, op, rt, e.name) {
			return true
		}
	}
	return false
}

// operationsOf are the operations each resource type has, in the order
// Kafka reports them in authorized-operations bit fields.
var operationsOf = map[ResourceType][]Operation{
	ResourceTopic:           {OpRead, OpWrite, OpCreate, OpDescribe, OpDelete, OpAlter, OpDescribeConfigs, OpAlterConfigs},
	ResourceGroup:           {OpRead, OpDescribe, OpDelete},
	ResourceCluster:         {OpCreate, OpClusterAction, OpDescribeConfigs, OpAlterConfigs, OpIdempotentWrite, OpAlter, OpDescribe},
	ResourceTransactionalID: {OpDescribe, OpWrite},
}

// AuthorizedOperations returns the Kafka bit field of the operations the
// principal may perform on the resource (bit n for operation n).
func (a *Authorizer) AuthorizedOperations(principal, host string, rt ResourceType, name string) int32 {
	var bits int32
	for _, op := range operationsOf[rt] {
		if a.Authorize(principal, host, op, rt, name) {
			bits |= 1 << op
		}
	}
	return bits
}

// AllOperations is the bit field of every operation of a resource type,
// what a broker without an authorizer reports.
func AllOperations(rt ResourceType) int32 {
	var bits int32
	for _, op := range operationsOf[rt] {
		bits |= 1 << op
	}
	return bits
}

// implies reports whether allowing have allows want.
func implies(have, want Operation) bool {
	switch {
	case have == want || have == OpAll:
		return true
	case want == OpDescribe:
		return have == OpRead || have == OpWrite || have == OpDelete || have == OpAlter
	case want == OpDescribeConfigs:
		return have == OpAlterConfigs
	}
	return false
}

// entry is a binding as the index holds it.
type entry struct {
	name      string
	principal string
	host      string
	op        Operation
	perm      Permission
}

func (e *entry) matches(principal, host string) bool {
	return (e.principal == principal || e.principal == WildcardPrincipal) && (e.host == host || e.host == Wildcard)
}

// index is one immutable set of bindings, arranged for checks.
type index struct {
	all    []Binding
	byType [8]resourceIndex
}

// resourceIndex holds the bindings of one resource type.
type resourceIndex struct {
	literal  map[string][]entry
	wildcard []entry
	prefixed map[string][]entry
	lengths  []int // of the prefixes, ascending
	all      []entry
}

func newIndex(bindings []Binding) *index {
	ix := &index{all: slices.Clone(bindings)}
	sort.Slice(ix.all, func(i, j int) bool { return less(ix.all[i], ix.all[j]) })
	for _, b := range ix.all {
		if b.ResourceType < 0 || b.ResourceType > 7 {
			continue
		}
		r := &ix.byType[b.ResourceType]
		e := entry{name: b.ResourceName, principal: b.Principal, host: b.Host, op: b.Operation, perm: b.Permission}
		r.all = append(r.all, e)
		switch {
		case b.PatternType == PatternPrefixed:
			if r.prefixed == nil {
				r.prefixed = map[string][]entry{}
			}
			if _, ok := r.prefixed[b.ResourceName]; !ok {
				if i, found := slices.BinarySearch(r.lengths, len(b.ResourceName)); !found {
					r.lengths = slices.Insert(r.lengths, i, len(b.ResourceName))
				}
			}
			r.prefixed[b.ResourceName] = append(r.prefixed[b.ResourceName], e)
		case b.ResourceName == Wildcard:
			r.wildcard = append(r.wildcard, e)
		default:
			if r.literal == nil {
				r.literal = map[string][]entry{}
			}
			r.literal[b.ResourceName] = append(r.literal[b.ResourceName], e)
		}
	}
	return ix
}

// each calls fn with every binding that applies to the resource name
// until fn returns false.
func (r *resourceIndex) each(name string, fn func(*entry) bool) {
	visit := func(es []entry) bool {
		for i := range es {
			if !fn(&es[i]) {
				return false
			}
		}
		return true
	}
	if !visit(r.literal[name]) || !visit(r.wildcard) {
		return
	}
	for _, n := range r.lengths {
		if n > len(name) {
			return
		}
		if !visit(r.prefixed[name[:n]]) {
			return
		}
	}
}

func less(a, b Binding) bool {
	if a.ResourceType != b.ResourceType {
		return a.ResourceType < b.ResourceType
	}
	if a.ResourceName != b.ResourceName {
		return a.ResourceName < b.ResourceName
	}
	if a.PatternType != b.PatternType {
		return a.PatternType < b.PatternType
	}
	if a.Principal != b.Principal {
		return a.Principal < b.Principal
	}
	if a.Host != b.Host {
		return a.Host < b.Host
	}
	if a.Operation != b.Operation {
		return a.Operation < b.Operation
	}
	return a.Permission < b.Permission
}
