package server

import (
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/authz"
)

// Replica movement: AlterPartitionReassignments, ListPartitionReassignments
// and UnregisterBroker. The reassignment itself is the controller's
// (cluster/reassign.go); any broker takes these requests and proposes
// through the Raft leader.

// Reassigner is what the server changes of replica placement.
type Reassigner interface {
	// Reassign starts, replaces or (target nil) cancels a partition's
	// reassignment.
	Reassign(tp cluster.TP, target []int32) error
	// Reassignments returns those in progress of tps (nil: all).
	Reassignments(tps []cluster.TP) []cluster.Reassignment
	// UnregisterBroker removes a stopped broker holding no replicas.
	UnregisterBroker(id int32) error
}

// reassignerFor authorizes op on the cluster for api and returns the
// reassigner, or the error code (and message) to answer with.
func (s *Server) reassignerFor(c *conn, api string, op authz.Operation) (Reassigner, int16, *string) {
	if !s.authorize(c, api, op, authz.ResourceCluster, clusterResource) {
		return nil, kerr.ClusterAuthorizationFailed.Code, kmsg.StringPtr("Cluster authorization failed.")
	}
	ra, ok := s.meta.(Reassigner)
	if !ok {
		return nil, kerr.UnsupportedVersion.Code, nil
	}
	return ra, 0, nil
}

// reassignmentCode chooses the error code of a refused reassignment.
func reassignmentCode(err error) int16 {
	switch {
	case errors.Is(err, cluster.ErrNoReassignment):
		return kerr.NoReassignmentInProgress.Code
	case errors.Is(err, cluster.ErrBadAssignment), errors.Is(err, cluster.ErrUnknownBroker):
		return kerr.InvalidReplicaAssignment.Code
	}
	return errorCode(err)
}

func (s *Server) handleAlterPartitionReassignments(c *conn, r *kmsg.AlterPartitionAssignmentsRequest) *kmsg.AlterPartitionAssignmentsResponse {
	resp := kmsg.NewPtrAlterPartitionAssignmentsResponse()
	resp.AllowReplicationFactorChange = r.AllowReplicationFactorChange
	ra, code, msg := s.reassignerFor(c, "AlterPartitionReassignments", authz.OpAlter)
	if code != 0 {
		resp.ErrorCode, resp.ErrorMessage = code, msg
		return resp
	}
	fixedRF := r.Version >= 1 && !r.AllowReplicationFactorChange
	for _, rt := range r.Topics {
		st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			sp.Partition = rp.Partition
			if err := s.reassign(ra, rt.Topic, rp, fixedRF); err != nil {
				sp.ErrorCode, sp.ErrorMessage = reassignmentCode(err), kmsg.StringPtr(err.Error())
				c.warn("partition reassignment refused", "remote", c.remote, "principal", c.principal,
					"partition", fmt.Sprintf("%s-%d", rt.Topic, rp.Partition), "replicas", rp.Replicas, "err", err)
			} else if rp.Replicas == nil {
				s.log.Info("partition reassignment cancelled", "principal", c.principal, "topic", rt.Topic, "partition", rp.Partition)
			} else {
				s.log.Info("partition reassignment started", "principal", c.principal, "topic", rt.Topic,
					"partition", rp.Partition, "replicas", rp.Replicas)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// reassign checks and proposes one partition's reassignment.
func (s *Server) reassign(ra Reassigner, topic string, rp kmsg.AlterPartitionAssignmentsRequestTopicPartition, fixedRF bool) error {
	p, ok := s.meta.Partition(topic, rp.Partition)
	if !ok {
		return fmt.Errorf("%w: %s-%d", kerr.UnknownTopicOrPartition, topic, rp.Partition)
	}
	if rp.Replicas != nil {
		if len(rp.Replicas) == 0 {
			return fmt.Errorf("%w: an empty replica list", kerr.InvalidReplicaAssignment)
		}
		for i, id := range rp.Replicas {
			if id < 0 || slices.Contains(rp.Replicas[:i], id) {
				return fmt.Errorf("%w: replicas %v", kerr.InvalidReplicaAssignment, rp.Replicas)
			}
		}
		if fixedRF && len(rp.Replicas) != len(p.TargetReplicas()) {
			return fmt.Errorf("%w: %d replicas for a partition of %d, and the request does not allow a change",
				kerr.InvalidReplicationFactor, len(rp.Replicas), len(p.TargetReplicas()))
		}
	}
	return ra.Reassign(cluster.TP{Topic: topic, Partition: rp.Partition}, rp.Replicas)
}

func (s *Server) handleListPartitionReassignments(c *conn, r *kmsg.ListPartitionReassignmentsRequest) *kmsg.ListPartitionReassignmentsResponse {
	resp := kmsg.NewPtrListPartitionReassignmentsResponse()
	ra, code, msg := s.reassignerFor(c, "ListPartitionReassignments", authz.OpDescribe)
	if code != 0 {
		resp.ErrorCode, resp.ErrorMessage = code, msg
		return resp
	}
	var tps []cluster.TP
	if r.Topics != nil {
		tps = []cluster.TP{}
		for _, rt := range r.Topics {
			for _, p := range rt.Partitions {
				tps = append(tps, cluster.TP{Topic: rt.Topic, Partition: p})
			}
		}
	}
	var st *kmsg.ListPartitionReassignmentsResponseTopic
	for _, ra := range ra.Reassignments(tps) {
		if st == nil || st.Topic != ra.TP.Topic {
			resp.Topics = append(resp.Topics, kmsg.NewListPartitionReassignmentsResponseTopic())
			st = &resp.Topics[len(resp.Topics)-1]
			st.Topic = ra.TP.Topic
		}
		sp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		sp.Partition = ra.TP.Partition
		sp.Replicas, sp.AddingReplicas, sp.RemovingReplicas = ra.Replicas, nonNil(ra.Adding), nonNil(ra.Removing)
		st.Partitions = append(st.Partitions, sp)
	}
	return resp
}

func nonNil(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return s
}

func (s *Server) handleUnregisterBroker(c *conn, r *kmsg.UnregisterBrokerRequest) *kmsg.UnregisterBrokerResponse {
	resp := kmsg.NewPtrUnregisterBrokerResponse()
	ra, code, msg := s.reassignerFor(c, "UnregisterBroker", authz.OpAlter)
	if code != 0 {
		resp.ErrorCode, resp.ErrorMessage = code, msg
		return resp
	}
	err := ra.UnregisterBroker(r.BrokerID)
	switch {
	case err == nil:
		s.log.Info("broker unregistered", "principal", c.principal, "broker", r.BrokerID)
		return resp
	case errors.Is(err, cluster.ErrUnknownBroker):
		resp.ErrorCode = kerr.BrokerIDNotRegistered.Code
	case errors.Is(err, cluster.ErrBrokerInUse):
		resp.ErrorCode = kerr.InvalidRequest.Code
	default:
		resp.ErrorCode = errorCode(err)
	}
	resp.ErrorMessage = kmsg.StringPtr(err.Error())
	c.warn("broker unregistration refused", "remote", c.remote, "principal", c.principal, "broker", r.BrokerID, "err", err)
	return resp
}
