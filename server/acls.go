package server

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/authz"
)

// AclBindings converts the cluster state's ACL bindings for the
// authorizer.
func AclBindings(in []cluster.AclBinding) []authz.Binding {
	out := make([]authz.Binding, len(in))
	for i, b := range in {
		out[i] = authz.Binding{ResourceType: authz.ResourceType(b.ResourceType), ResourceName: b.ResourceName,
			PatternType: authz.PatternType(b.PatternType), Principal: b.Principal, Host: b.Host,
			Operation: authz.Operation(b.Operation), Permission: authz.Permission(b.Permission)}
	}
	return out
}

func clusterBinding(b authz.Binding) cluster.AclBinding {
	return cluster.AclBinding{ResourceType: int8(b.ResourceType), ResourceName: b.ResourceName, PatternType: int8(b.PatternType),
		Principal: b.Principal, Host: b.Host, Operation: int8(b.Operation), Permission: int8(b.Permission)}
}

// errSecurityDisabled is what the ACL APIs answer without an authorizer,
// as Kafka does.
var errSecurityDisabled = fmt.Errorf("%w: No Authorizer is configured on the broker", kerr.SecurityDisabled)

// handleCreateAcls validates each creation as Kafka does and commits the
// valid ones in one command through the Raft leader. It needs ALTER on the
// cluster.
func (s *Server) handleCreateAcls(c *conn, r *kmsg.CreateACLsRequest) *kmsg.CreateACLsResponse {
	resp := kmsg.NewPtrCreateACLsResponse()
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(r.Creations))
	errs := make([]error, len(r.Creations))
	var cmd cluster.AlterAcls
	var valid []int
	global := s.aclAPIError(c, "CreateAcls", authz.OpAlter)
	for i, cr := range r.Creations {
		b := authz.Binding{ResourceType: authz.ResourceType(cr.ResourceType), ResourceName: cr.ResourceName,
			PatternType: authz.PatternType(cr.ResourcePatternType), Principal: cr.Principal, Host: cr.Host,
			Operation: authz.Operation(cr.Operation), Permission: authz.Permission(cr.PermissionType)}
		if r.Version == 0 {
			b.PatternType = authz.PatternLiteral
		}
		switch err := b.Validate(); {
		case global != nil:
			errs[i] = global
		case err != nil:
			errs[i] = fmt.Errorf("%w: %v", kerr.InvalidRequest, err)
			c.warn("ACL creation refused", "remote", c.remote, "principal", c.principal, "err", err)
		default:
			cmd.Creations = append(cmd.Creations, clusterBinding(b))
			valid = append(valid, i)
		}
	}
	if len(cmd.Creations) > 0 {
		if err := s.meta.AlterAcls(cmd); err != nil {
			for _, i := range valid {
				errs[i] = err
			}
		} else {
			s.log.Info("ACLs created", "principal", c.principal, "count", len(cmd.Creations))
		}
	}
	for i := range resp.Results {
		res := kmsg.NewCreateACLsResponseResult()
		res.ErrorCode, res.ErrorMessage = errorCode(errs[i]), errMessage(errs[i])
		s.m.errorCode("CreateAcls", res.ErrorCode)
		resp.Results[i] = res
	}
	return resp
}

// aclAPIError is the error every entry of an ACL request gets: none, no
// authorizer, or a sender without op on the cluster.
func (s *Server) aclAPIError(c *conn, api string, op authz.Operation) error {
	switch {
	case s.cfg.Authorizer == nil:
		return errSecurityDisabled
	case !s.authorize(c, api, op, authz.ResourceCluster, clusterResource):
		return kerr.ClusterAuthorizationFailed
	}
	return nil
}

func aclFilter(version int16, rt kmsg.ACLResourceType, name *string, pt kmsg.ACLResourcePatternType, principal, host *string,
	op kmsg.ACLOperation, perm kmsg.ACLPermissionType) (authz.Filter, error) {
	f := authz.Filter{ResourceType: authz.ResourceType(rt), ResourceName: name, PatternType: authz.PatternType(pt),
		Principal: principal, Host: host, Operation: authz.Operation(op), Permission: authz.Permission(perm)}
	if version == 0 {
		f.PatternType = authz.PatternLiteral
	}
	if err := f.Validate(); err != nil {
		return f, fmt.Errorf("%w: %v", kerr.InvalidRequest, err)
	}
	return f, nil
}

// handleDescribeAcls lists the bindings a filter matches, by resource. It
// needs DESCRIBE on the cluster.
func (s *Server) handleDescribeAcls(c *conn, r *kmsg.DescribeACLsRequest) *kmsg.DescribeACLsResponse {
	resp := kmsg.NewPtrDescribeACLsResponse()
	f, err := aclFilter(r.Version, r.ResourceType, r.ResourceName, r.ResourcePatternType, r.Principal, r.Host, r.Operation, r.PermissionType)
	if e := s.aclAPIError(c, "DescribeAcls", authz.OpDescribe); e != nil {
		err = e
	}
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errorCode(err), errMessage(err)
		s.m.errorCode("DescribeAcls", resp.ErrorCode)
		if resp.ErrorCode == kerr.InvalidRequest.Code {
			c.warn("DescribeAcls refused", "remote", c.remote, "principal", c.principal, "err", err)
		}
		return resp
	}
	type resource struct {
		rt   authz.ResourceType
		name string
		pt   authz.PatternType
	}
	at := map[resource]int{}
	for _, b := range s.cfg.Authorizer.Bindings() {
		if !f.Matches(b) {
			continue
		}
		k := resource{b.ResourceType, b.ResourceName, b.PatternType}
		i, ok := at[k]
		if !ok {
			i = len(resp.Resources)
			at[k] = i
			rr := kmsg.NewDescribeACLsResponseResource()
			rr.ResourceType, rr.ResourceName = kmsg.ACLResourceType(b.ResourceType), b.ResourceName
			rr.ResourcePatternType = kmsg.ACLResourcePatternType(b.PatternType)
			resp.Resources = append(resp.Resources, rr)
		}
		a := kmsg.NewDescribeACLsResponseResourceACL()
		a.Principal, a.Host = b.Principal, b.Host
		a.Operation, a.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, a)
	}
	return resp
}

// handleDeleteAcls matches each filter against the bindings this broker
// holds and commits the deletion of every match in one command through
// the Raft leader. It needs ALTER on the cluster.
func (s *Server) handleDeleteAcls(c *conn, r *kmsg.DeleteACLsRequest) *kmsg.DeleteACLsResponse {
	resp := kmsg.NewPtrDeleteACLsResponse()
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(r.Filters))
	global := s.aclAPIError(c, "DeleteAcls", authz.OpAlter)
	var current []authz.Binding
	if global == nil {
		current = AclBindings(s.meta.Acls())
	}
	var cmd cluster.AlterAcls
	seen := map[authz.Binding]bool{}
	errs := make([]error, len(r.Filters))
	for i, rf := range r.Filters {
		res := kmsg.NewDeleteACLsResponseResult()
		f, err := aclFilter(r.Version, rf.ResourceType, rf.ResourceName, rf.ResourcePatternType, rf.Principal, rf.Host, rf.Operation, rf.PermissionType)
		if global != nil {
			err = global
		} else if err != nil {
			c.warn("ACL deletion filter refused", "remote", c.remote, "principal", c.principal, "err", err)
		}
		errs[i] = err
		if err == nil {
			for _, b := range current {
				if !f.Matches(b) {
					continue
				}
				m := kmsg.NewDeleteACLsResponseResultMatchingACL()
				m.ResourceType, m.ResourceName = kmsg.ACLResourceType(b.ResourceType), b.ResourceName
				m.ResourcePatternType = kmsg.ACLResourcePatternType(b.PatternType)
				m.Principal, m.Host = b.Principal, b.Host
				m.Operation, m.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
				res.MatchingACLs = append(res.MatchingACLs, m)
				if !seen[b] {
					seen[b] = true
					cmd.Deletions = append(cmd.Deletions, clusterBinding(b))
				}
			}
		}
		resp.Results[i] = res
	}
	if len(cmd.Deletions) > 0 {
		if err := s.meta.AlterAcls(cmd); err != nil {
			for i := range errs {
				if errs[i] == nil && len(resp.Results[i].MatchingACLs) > 0 {
					errs[i] = err
					resp.Results[i].MatchingACLs = nil
				}
			}
		} else {
			s.log.Info("ACLs deleted", "principal", c.principal, "count", len(cmd.Deletions))
		}
	}
	for i := range resp.Results {
		resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = errorCode(errs[i]), errMessage(errs[i])
		s.m.errorCode("DeleteAcls", resp.Results[i].ErrorCode)
	}
	return resp
}
