package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const aclUsage = `Usage: runnel acl COMMAND [flags]

Manage ACLs (CreateAcls, DescribeAcls, DeleteAcls) on any Kafka-compatible
broker with an authorizer, with the flags of kafka-acls.sh.

Commands:
  create  add ACLs: each principal and host, each operation, on each resource
  list    list ACLs, all or those of the resources named
  delete  remove the ACLs the flags select (what is not named matches anything)

Run runnel acl COMMAND --help for the flags of each.
`

// ACL runs runnel acl: create, list and delete ACLs.
func ACL(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, aclUsage)
		return errors.New("acl: missing command (create, list or delete)")
	}
	switch args[0] {
	case "create", "list", "delete":
		return aclRun(args[0], args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, aclUsage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, aclUsage)
	return fmt.Errorf("acl: unknown command %q", args[0])
}

// listValue is a repeatable flag; a value may also list several,
// comma-separated.
type listValue []string

func (l *listValue) String() string { return strings.Join(*l, ",") }
func (l *listValue) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

type aclFlags struct {
	allow, deny, allowHosts, denyHosts, ops, topics, groups, txns listValue
	principal                                                     listValue
	cluster                                                       *bool
	pattern                                                       *string
}

// aclResource is a resource named on the command line.
type aclResource struct {
	typ  kmsg.ACLResourceType
	name string
}

func (f *aclFlags) resources() []aclResource {
	var out []aclResource
	for _, t := range f.topics {
		out = append(out, aclResource{kmsg.ACLResourceTypeTopic, t})
	}
	for _, g := range f.groups {
		out = append(out, aclResource{kmsg.ACLResourceTypeGroup, g})
	}
	for _, x := range f.txns {
		out = append(out, aclResource{kmsg.ACLResourceTypeTransactionalId, x})
	}
	if *f.cluster {
		out = append(out, aclResource{kmsg.ACLResourceTypeCluster, "kafka-cluster"})
	}
	return out
}

func aclRun(cmd string, args []string, stdout, stderr io.Writer) error {
	about := map[string]string{
		"create": "Create ACLs: every --allow-principal and --deny-principal, from each of its hosts\n(default *), gets each --operation on each resource named.",
		"list":   "List ACLs: every one, or those of the resources named (with --resource-pattern-type\nmatch: the ACLs that apply to them, wildcard and prefixes included).",
		"delete": "Delete the ACLs the flags select: a principal, operation or resource not named\nmatches any.",
	}[cmd]
	fs := NewFlagSet("runnel acl "+cmd, "runnel acl "+cmd+" [flags]", about, stderr)
	conn := ConnFlags(fs)
	var f aclFlags
	f.cluster = fs.Bool("cluster", false, "the cluster resource (kafka-cluster)")
	fs.Var(&f.topics, "topic", "a topic `NAME` (repeatable; * for every topic)")
	fs.Var(&f.groups, "group", "a consumer group `NAME` (repeatable; * for every group)")
	fs.Var(&f.txns, "transactional-id", "a transactional `ID` (repeatable; * for every one)")
	defPattern := "literal"
	if cmd != "create" {
		defPattern = "any"
	}
	f.pattern = fs.String("resource-pattern-type", defPattern, "how resource names match: literal or prefixed (list and delete also any and match)")
	if cmd == "list" {
		fs.Var(&f.principal, "principal", "only the ACLs of this `PRINCIPAL` (User:name)")
	} else {
		fs.Var(&f.allow, "allow-principal", "`PRINCIPAL` (User:name, User:* for all) the ACLs allow (repeatable)")
		fs.Var(&f.deny, "deny-principal", "`PRINCIPAL` the ACLs deny (repeatable); deny wins over allow")
		fs.Var(&f.allowHosts, "allow-host", "`HOST` (IP address) of the allowed principals (repeatable; default *)")
		fs.Var(&f.denyHosts, "deny-host", "`HOST` of the denied principals (repeatable; default *)")
		fs.Var(&f.ops, "operation", "`OPERATION`: All, Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite (repeatable)")
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos); err != nil {
		return err
	}
	pattern, err := kmsg.ParseACLResourcePatternType(*f.pattern)
	if err != nil || pattern == kmsg.ACLResourcePatternTypeUnknown {
		return fmt.Errorf("--resource-pattern-type %q: want literal, prefixed, any or match", *f.pattern)
	}
	var ops []kmsg.ACLOperation
	for _, o := range f.ops {
		op, err := kmsg.ParseACLOperation(o)
		if err != nil || op <= kmsg.ACLOperationAny {
			return fmt.Errorf("--operation %q: unknown operation", o)
		}
		ops = append(ops, op)
	}
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	switch cmd {
	case "create":
		creations, err := f.creations(pattern, ops)
		if err != nil {
			return err
		}
		req := kmsg.NewPtrCreateACLsRequest()
		req.Creations = creations
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		var errs []error
		for i, r := range resp.Results {
			if i >= len(creations) {
				break
			}
			c := creations[i]
			if err := codeErr(r.ErrorCode, r.ErrorMessage); err != nil {
				errs = append(errs, fmt.Errorf("%s %s on %s %s: %w", c.PermissionType, c.Operation, c.ResourceType, c.ResourceName, err))
				continue
			}
			fmt.Fprintf(stdout, "created %s %s %s from %s on %s %s %s\n", c.PermissionType, c.Principal, c.Operation, c.Host,
				c.ResourceType, c.ResourcePatternType, c.ResourceName)
		}
		return errors.Join(errs...)
	case "list":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RESOURCE\tNAME\tPATTERN\tPRINCIPAL\tHOST\tOPERATION\tPERMISSION")
		filters := f.filters(pattern, nil)
		for _, flt := range filters {
			req := kmsg.NewPtrDescribeACLsRequest()
			req.ResourceType, req.ResourceName, req.ResourcePatternType = flt.ResourceType, flt.ResourceName, flt.ResourcePatternType
			req.Principal, req.Host, req.Operation, req.PermissionType = flt.Principal, flt.Host, flt.Operation, flt.PermissionType
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				return err
			}
			if err := codeErr(resp.ErrorCode, resp.ErrorMessage); err != nil {
				return err
			}
			for _, r := range resp.Resources {
				for _, a := range r.ACLs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ResourceType, r.ResourceName, r.ResourcePatternType,
						a.Principal, a.Host, a.Operation, a.PermissionType)
				}
			}
		}
		return tw.Flush()
	}
	// delete
	req := kmsg.NewPtrDeleteACLsRequest()
	req.Filters = f.filters(pattern, ops)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range resp.Results {
		if err := codeErr(r.ErrorCode, r.ErrorMessage); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, m := range r.MatchingACLs {
			fmt.Fprintf(stdout, "deleted %s %s %s from %s on %s %s %s\n", m.PermissionType, m.Principal, m.Operation, m.Host,
				m.ResourceType, m.ResourcePatternType, m.ResourceName)
		}
	}
	return errors.Join(errs...)
}

// creations are every principal's ACLs from each of its hosts, for each
// operation on each resource.
func (f *aclFlags) creations(pattern kmsg.ACLResourcePatternType, ops []kmsg.ACLOperation) ([]kmsg.CreateACLsRequestCreation, error) {
	res := f.resources()
	switch {
	case len(res) == 0:
		return nil, errors.New("name a resource: --topic, --group, --transactional-id or --cluster")
	case len(f.allow)+len(f.deny) == 0:
		return nil, errors.New("name a principal: --allow-principal or --deny-principal")
	case len(ops) == 0:
		return nil, errors.New("name an operation: --operation")
	case pattern != kmsg.ACLResourcePatternTypeLiteral && pattern != kmsg.ACLResourcePatternTypePrefixed:
		return nil, errors.New("--resource-pattern-type: ACLs are literal or prefixed")
	}
	var out []kmsg.CreateACLsRequestCreation
	add := func(principals, hosts []string, perm kmsg.ACLPermissionType) {
		if len(hosts) == 0 {
			hosts = []string{"*"}
		}
		for _, p := range principals {
			for _, h := range hosts {
				for _, op := range ops {
					for _, r := range res {
						c := kmsg.NewCreateACLsRequestCreation()
						c.ResourceType, c.ResourceName, c.ResourcePatternType = r.typ, r.name, pattern
						if r.typ == kmsg.ACLResourceTypeCluster {
							c.ResourcePatternType = kmsg.ACLResourcePatternTypeLiteral
						}
						c.Principal, c.Host, c.Operation, c.PermissionType = p, h, op, perm
						out = append(out, c)
					}
				}
			}
		}
	}
	add(f.allow, f.allowHosts, kmsg.ACLPermissionTypeAllow)
	add(f.deny, f.denyHosts, kmsg.ACLPermissionTypeDeny)
	return out, nil
}

// filters select the ACLs the flags name, for list and delete: one per
// resource, principal, host and operation named, any where none is.
func (f *aclFlags) filters(pattern kmsg.ACLResourcePatternType, ops []kmsg.ACLOperation) []kmsg.DeleteACLsRequestFilter {
	type who struct {
		principal, host *string
		perm            kmsg.ACLPermissionType
	}
	var whos []who
	addWho := func(principals, hosts []string, perm kmsg.ACLPermissionType) {
		for _, p := range principals {
			p := p
			if len(hosts) == 0 {
				whos = append(whos, who{&p, nil, perm})
			}
			for _, h := range hosts {
				h := h
				whos = append(whos, who{&p, &h, perm})
			}
		}
	}
	addWho(f.principal, nil, kmsg.ACLPermissionTypeAny)
	addWho(f.allow, f.allowHosts, kmsg.ACLPermissionTypeAllow)
	addWho(f.deny, f.denyHosts, kmsg.ACLPermissionTypeDeny)
	if len(whos) == 0 {
		whos = []who{{perm: kmsg.ACLPermissionTypeAny}}
	}
	if len(ops) == 0 {
		ops = []kmsg.ACLOperation{kmsg.ACLOperationAny}
	}
	res := f.resources()
	var names []*aclResource
	for i := range res {
		names = append(names, &res[i])
	}
	if len(names) == 0 {
		names = []*aclResource{nil}
	}
	var out []kmsg.DeleteACLsRequestFilter
	for _, r := range names {
		for _, w := range whos {
			for _, op := range ops {
				flt := kmsg.NewDeleteACLsRequestFilter()
				flt.ResourceType, flt.ResourcePatternType = kmsg.ACLResourceTypeAny, pattern
				if r != nil {
					name := r.name
					flt.ResourceType, flt.ResourceName = r.typ, &name
				}
				flt.Principal, flt.Host, flt.Operation, flt.PermissionType = w.principal, w.host, op, w.perm
				out = append(out, flt)
			}
		}
	}
	return out
}
