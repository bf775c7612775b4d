package server

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/authz"
)

// identity is who sent a request: its principal and the IP address it
// connected from. Handlers that run in the writer take it from the
// handler's side, where the principal is set.
type identity struct {
	principal string
	host      string
}

func (c *conn) identity() identity { return identity{principal: c.principal, host: c.addr} }

// Names of the resources Kafka checks that have no name of their own.
const clusterResource = authz.ClusterName

// authorize reports whether the sender may perform op on the resource;
// always true without an authorizer. A denial is logged (limited per
// client address) and counted.
func (s *Server) authorize(c *conn, api string, op authz.Operation, rt authz.ResourceType, name string) bool {
	return s.authorizeAs(c.identity(), api, op, rt, name)
}

func (s *Server) authorizeAs(id identity, api string, op authz.Operation, rt authz.ResourceType, name string) bool {
	az := s.cfg.Authorizer
	if az == nil || az.Authorize(id.principal, id.host, op, rt, name) {
		return true
	}
	s.denied(id, api, op, rt, name)
	return false
}

// mayDescribe is authorize for a check whose denial is no refusal (a
// topic left out of a listing): it is neither logged nor counted.
func (s *Server) mayDescribe(c *conn, rt authz.ResourceType, name string) bool {
	az := s.cfg.Authorizer
	return az == nil || az.Authorize(c.principal, c.addr, authz.OpDescribe, rt, name)
}

func (s *Server) denied(id identity, api string, op authz.Operation, rt authz.ResourceType, name string) {
	s.m.authorizationDenied(api, rt.String(), op.String())
	if s.clientLog.allow(id.host) {
		s.log.Warn("request denied by the authorizer", "api", api, "principal", id.principal, "host", id.host,
			"operation", op.String(), "resource_type", rt.String(), "resource", name)
	}
}

// authorizedOperations is the bit field of what the sender may do to a
// resource, for the authorized-operations fields Kafka clients ask for:
// every operation of the resource type without an authorizer.
func (s *Server) authorizedOperations(c *conn, rt authz.ResourceType, name string) int32 {
	if s.cfg.Authorizer == nil {
		return authz.AllOperations(rt)
	}
	return s.cfg.Authorizer.AuthorizedOperations(c.principal, c.addr, rt, name)
}

// refuseRequest checks the APIs Kafka authorizes as a whole (the group
// protocol's requests on their group, the cluster-wide ones on the
// cluster) and returns the answer to a request that is denied, or nil.
// APIs authorized per topic, group or partition check in their handlers.
func (s *Server) refuseRequest(c *conn, req kmsg.Request) kmsg.Response {
	if s.cfg.Authorizer == nil {
		return nil
	}
	groupRead := func(api, g string) bool { return s.authorize(c, api, authz.OpRead, authz.ResourceGroup, g) }
	clusterOp := func(api string, op authz.Operation) bool {
		return s.authorize(c, api, op, authz.ResourceCluster, clusterResource)
	}
	const groupDenied, clusterDenied = 30, 31 // GROUP_, CLUSTER_AUTHORIZATION_FAILED
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		if !groupRead("JoinGroup", r.Group) {
			resp := kmsg.NewPtrJoinGroupResponse()
			resp.ErrorCode, resp.Generation, resp.MemberID = groupDenied, -1, r.MemberID
			return resp
		}
	case *kmsg.SyncGroupRequest:
		if !groupRead("SyncGroup", r.Group) {
			resp := kmsg.NewPtrSyncGroupResponse()
			resp.ErrorCode, resp.MemberAssignment = groupDenied, []byte{}
			return resp
		}
	case *kmsg.HeartbeatRequest:
		if !groupRead("Heartbeat", r.Group) {
			resp := kmsg.NewPtrHeartbeatResponse()
			resp.ErrorCode = groupDenied
			return resp
		}
	case *kmsg.LeaveGroupRequest:
		if !groupRead("LeaveGroup", r.Group) {
			resp := kmsg.NewPtrLeaveGroupResponse()
			resp.ErrorCode = groupDenied
			return resp
		}
	case *kmsg.OffsetDeleteRequest:
		if !s.authorize(c, "OffsetDelete", authz.OpDelete, authz.ResourceGroup, r.Group) {
			resp := kmsg.NewPtrOffsetDeleteResponse()
			resp.ErrorCode = groupDenied
			return resp
		}
	case *kmsg.DescribeClusterRequest:
		if !clusterOp("DescribeCluster", authz.OpDescribe) {
			resp := kmsg.NewPtrDescribeClusterResponse()
			resp.ErrorCode, resp.ClusterID = clusterDenied, s.cfg.ClusterID
			resp.ErrorMessage = kmsg.StringPtr("Cluster authorization failed.")
			return resp
		}
	case *kmsg.DescribeQuorumRequest:
		if !clusterOp("DescribeQuorum", authz.OpDescribe) {
			resp := kmsg.NewPtrDescribeQuorumResponse()
			resp.ErrorCode = clusterDenied
			return resp
		}
	case *kmsg.DescribeUserSCRAMCredentialsRequest:
		if !clusterOp("DescribeUserScramCredentials", authz.OpDescribe) {
			resp := kmsg.NewPtrDescribeUserSCRAMCredentialsResponse()
			resp.ErrorCode = clusterDenied
			return resp
		}
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		if !clusterOp("AlterUserScramCredentials", authz.OpAlter) {
			resp := kmsg.NewPtrAlterUserSCRAMCredentialsResponse()
			users := map[string]bool{}
			add := func(u string) {
				if !users[u] {
					users[u] = true
					res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
					res.User, res.ErrorCode = u, clusterDenied
					resp.Results = append(resp.Results, res)
				}
			}
			for _, d := range r.Deletions {
				add(d.Name)
			}
			for _, u := range r.Upsertions {
				add(u.Name)
			}
			return resp
		}
	case *kmsg.WriteTxnMarkersRequest:
		// Markers are the transaction coordinators' to write: other
		// brokers (the broker's own principal is a super user), as Kafka
		// has it.
		if !clusterOp("WriteTxnMarkers", authz.OpClusterAction) {
			resp := kmsg.NewPtrWriteTxnMarkersResponse()
			for _, m := range r.Markers {
				rm := kmsg.NewWriteTxnMarkersResponseMarker()
				rm.ProducerID = m.ProducerID
				for _, t := range m.Topics {
					rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
					rt.Topic = t.Topic
					for _, p := range t.Partitions {
						rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
						rp.Partition, rp.ErrorCode = p, clusterDenied
						rt.Partitions = append(rt.Partitions, rp)
					}
					rm.Topics = append(rm.Topics, rt)
				}
				resp.Markers = append(resp.Markers, rm)
			}
			return resp
		}
	case *kmsg.InitProducerIDRequest:
		resp := kmsg.NewPtrInitProducerIDResponse()
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		if r.TransactionalID != nil {
			if !s.authorize(c, "InitProducerId", authz.OpWrite, authz.ResourceTransactionalID, *r.TransactionalID) {
				resp.ErrorCode = 53 // TRANSACTIONAL_ID_AUTHORIZATION_FAILED
				return resp
			}
			return nil
		}
		// An idempotent producer: IDEMPOTENT_WRITE on the cluster, or
		// WRITE on some topic, as Kafka allows.
		az := s.cfg.Authorizer
		if !az.Authorize(c.principal, c.addr, authz.OpIdempotentWrite, authz.ResourceCluster, clusterResource) &&
			!az.AuthorizeAny(c.principal, c.addr, authz.OpWrite, authz.ResourceTopic) {
			s.denied(c.identity(), "InitProducerId", authz.OpIdempotentWrite, authz.ResourceCluster, clusterResource)
			resp.ErrorCode = clusterDenied
			return resp
		}
	}
	return nil
}

// mayCreateTopics reports whether the sender may create any topic (CREATE
// on the cluster); a denial here is not logged, as the topic's own ACLs
// may still allow it.
func (s *Server) mayCreateTopics(c *conn) bool {
	az := s.cfg.Authorizer
	return az == nil || az.Authorize(c.principal, c.addr, authz.OpCreate, authz.ResourceCluster, clusterResource)
}

// mayAutoCreate reports whether a Metadata request may create the topic:
// it exists already, or the sender has CREATE on the cluster or on it.
func (s *Server) mayAutoCreate(c *conn, topic string) bool {
	if s.cfg.Authorizer == nil || s.mayCreateTopics(c) {
		return true
	}
	if _, ok := s.meta.Topic(topic); ok {
		return true
	}
	return s.authorize(c, "Metadata", authz.OpCreate, authz.ResourceTopic, topic)
}
