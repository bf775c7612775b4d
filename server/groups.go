package server

import (
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/internal/authz"
)

// authorizedOperationsOmitted is Kafka's "not requested" value.
const authorizedOperationsOmitted = -2147483648

func (s *Server) handleFindCoordinator(c *conn, r *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := kmsg.NewPtrFindCoordinatorResponse()
	find := func(key string) (nodeID int32, host string, port int32, code int16, msg *string) {
		switch {
		case r.CoordinatorType == 0 && !s.authorize(c, "FindCoordinator", authz.OpDescribe, authz.ResourceGroup, key):
			return -1, "", -1, kerr.GroupAuthorizationFailed.Code, nil
		case r.CoordinatorType == 1 && !s.authorize(c, "FindCoordinator", authz.OpDescribe, authz.ResourceTransactionalID, key):
			return -1, "", -1, kerr.TransactionalIDAuthorizationFailed.Code, nil
		}
		if _, none := s.txns.(noTransactions); r.CoordinatorType == 1 && none {
			// Without a transaction coordinator: UNSUPPORTED_VERSION is
			// how Kafka answers for a feature the cluster does not
			// enable, and it is not retriable, so a transactional client
			// fails at once.
			s.log.Info("FindCoordinator for a transactional id refused: transactions are not supported", "transactional_id", key)
			return -1, "", -1, kerr.UnsupportedVersion.Code, kmsg.StringPtr(errTransactionsNotSupported)
		}
		switch r.CoordinatorType {
		case 0, 1:
			// A group's coordinator is the leader of its partition of
			// __consumer_offsets, a transactional id's of its partition
			// of __transaction_state.
			locate := s.groups.Locate
			if r.CoordinatorType == 1 {
				locate = s.txns.Locate
			}
			id, err := locate(key)
			if err != nil {
				return -1, "", -1, errorCode(err), kmsg.StringPtr(err.Error())
			}
			// A coordinator without the client's listener is one the
			// client cannot reach: none, as Kafka answers.
			for _, b := range s.meta.Brokers() {
				var host string
				var port int32
				if addr, ok := b.ListenerAddr(c.listener); ok && b.ID == id && splitHostPort(addr, &host, &port) == nil {
					return id, host, port, 0, nil
				}
			}
			return -1, "", -1, kerr.CoordinatorNotAvailable.Code, kmsg.StringPtr("the coordinator has no address on this listener yet")
		}
		return -1, "", -1, kerr.InvalidRequest.Code, kmsg.StringPtr("unknown coordinator key type")
	}
	if r.Version >= 4 {
		for _, key := range r.CoordinatorKeys {
			c := kmsg.NewFindCoordinatorResponseCoordinator()
			c.Key = key
			c.NodeID, c.Host, c.Port, c.ErrorCode, c.ErrorMessage = find(key)
			s.m.errorCode("FindCoordinator", c.ErrorCode)
			resp.Coordinators = append(resp.Coordinators, c)
		}
		return resp
	}
	resp.NodeID, resp.Host, resp.Port, resp.ErrorCode, resp.ErrorMessage = find(r.CoordinatorKey)
	s.m.errorCode("FindCoordinator", resp.ErrorCode)
	return resp
}

func (s *Server) handleJoinGroup(c *conn, h requestHeader, r *kmsg.JoinGroupRequest) *reply {
	req := group.JoinRequest{
		Group: r.Group, MemberID: r.MemberID, ClientID: h.ClientID, ClientHost: c.host,
		ProtocolType: r.ProtocolType, SessionTimeout: time.Duration(r.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout:       time.Duration(r.RebalanceTimeoutMillis) * time.Millisecond,
		RequireKnownMemberID:   r.Version >= 4,
		SupportsSkipAssignment: r.Version >= 9,
	}
	if r.Version < 1 {
		req.RebalanceTimeout = 0
	}
	if r.InstanceID != nil {
		req.InstanceID = *r.InstanceID
	}
	for _, p := range r.Protocols {
		req.Protocols = append(req.Protocols, group.Protocol{Name: p.Name, Metadata: p.Metadata})
	}
	gc, err := s.groups.Coordinator(r.Group)
	if err != nil {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.SetVersion(h.Version)
		resp.ErrorCode, resp.Generation, resp.MemberID = errorCode(err), -1, r.MemberID
		return &reply{hdr: h, finish: func() any { return resp }}
	}
	wait := gc.Join(req)
	return &reply{hdr: h, finish: func() any {
		res, ok := await(c, wait)
		if !ok {
			return nil // the connection ended; the member stays until its session times out
		}
		if refusedInput(res.Err) {
			s.log.Warn("JoinGroup refused", "remote", c.remote, "client_id", h.ClientID, "group", r.Group,
				"session_timeout_ms", r.SessionTimeoutMillis, "err", res.Err)
		}
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.SetVersion(h.Version)
		resp.ErrorCode = errorCode(res.Err)
		resp.MemberID = res.MemberID
		if res.Err != nil {
			resp.Generation = -1
			return resp
		}
		resp.Generation = res.Generation
		resp.ProtocolType = kmsg.StringPtr(res.ProtocolType)
		resp.Protocol = kmsg.StringPtr(res.Protocol)
		resp.LeaderID = res.Leader
		resp.SkipAssignment = res.SkipAssignment
		for _, m := range res.Members {
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID, rm.ProtocolMetadata = m.MemberID, m.Metadata
			if m.InstanceID != "" {
				rm.InstanceID = kmsg.StringPtr(m.InstanceID)
			}
			resp.Members = append(resp.Members, rm)
		}
		return resp
	}}
}

func (s *Server) handleSyncGroup(c *conn, h requestHeader, r *kmsg.SyncGroupRequest) *reply {
	req := group.SyncRequest{Group: r.Group, MemberID: r.MemberID, Generation: r.Generation,
		Assignments: make(map[string][]byte, len(r.GroupAssignment))}
	if r.InstanceID != nil {
		req.InstanceID = *r.InstanceID
	}
	if r.ProtocolType != nil {
		req.ProtocolType = *r.ProtocolType
	}
	if r.Protocol != nil {
		req.Protocol = *r.Protocol
	}
	for _, a := range r.GroupAssignment {
		req.Assignments[a.MemberID] = a.MemberAssignment
	}
	gc, err := s.groups.Coordinator(r.Group)
	if err != nil {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.SetVersion(h.Version)
		resp.ErrorCode, resp.MemberAssignment = errorCode(err), []byte{}
		return &reply{hdr: h, finish: func() any { return resp }}
	}
	wait := gc.Sync(req)
	return &reply{hdr: h, finish: func() any {
		res, ok := await(c, wait)
		if !ok {
			return nil // the connection ended
		}
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.SetVersion(h.Version)
		resp.ErrorCode = errorCode(res.Err)
		if res.Err == nil {
			resp.ProtocolType = kmsg.StringPtr(res.ProtocolType)
			resp.Protocol = kmsg.StringPtr(res.Protocol)
			resp.MemberAssignment = res.Assignment
		}
		if resp.MemberAssignment == nil {
			resp.MemberAssignment = []byte{}
		}
		return resp
	}}
}

func (s *Server) handleHeartbeat(r *kmsg.HeartbeatRequest) kmsg.Response {
	resp := kmsg.NewPtrHeartbeatResponse()
	instance := ""
	if r.InstanceID != nil {
		instance = *r.InstanceID
	}
	gc, err := s.groups.Coordinator(r.Group)
	if err == nil {
		err = gc.Heartbeat(r.Group, r.MemberID, instance, r.Generation)
	}
	resp.ErrorCode = errorCode(err)
	return resp
}

func (s *Server) handleLeaveGroup(r *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := kmsg.NewPtrLeaveGroupResponse()
	gc, err := s.groups.Coordinator(r.Group)
	if err != nil {
		resp.ErrorCode = errorCode(err)
		return resp
	}
	if r.Version < 3 {
		errs := gc.Leave(r.Group, []group.Leaving{{MemberID: r.MemberID}})
		resp.ErrorCode = errorCode(errs[0])
		return resp
	}
	leaving := make([]group.Leaving, len(r.Members))
	for i, m := range r.Members {
		leaving[i].MemberID = m.MemberID
		if m.InstanceID != nil {
			leaving[i].InstanceID = *m.InstanceID
		}
	}
	errs := gc.Leave(r.Group, leaving)
	for i, m := range r.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, errorCode(errs[i])
		resp.Members = append(resp.Members, rm)
	}
	return resp
}

// refusedInput reports whether err refuses what a client sent, as opposed to
// the group-protocol answers (unknown member, rebalance in progress, ...)
// that members get in normal operation. Those are logged.
func refusedInput(err error) bool {
	return errors.Is(err, group.ErrMemberMetadataTooLarge) || errors.Is(err, group.ErrInvalidSessionTimeout) ||
		errors.Is(err, group.ErrInvalidGroupID) || errors.Is(err, group.ErrMetadataTooLarge) ||
		errors.Is(err, group.ErrUnknownPartition) || errors.Is(err, group.ErrInconsistentProtocol)
}

// handleOffsetCommit validates and applies the commit in request order; the
// answer waits until it is durable.
func (s *Server) handleOffsetCommit(c *conn, h requestHeader, r *kmsg.OffsetCommitRequest) *reply {
	req := group.CommitRequest{Group: r.Group, Generation: r.Generation, MemberID: r.MemberID}
	if r.Version < 1 {
		req.Generation = -1
	}
	if r.InstanceID != nil {
		req.InstanceID = *r.InstanceID
	}
	// As Kafka: READ on the group, else every partition answers
	// GROUP_AUTHORIZATION_FAILED, and READ on each topic; the partitions
	// of a topic not allowed are not committed.
	groupAllowed := s.authorize(c, "OffsetCommit", authz.OpRead, authz.ResourceGroup, r.Group)
	denied := map[string]bool{}
	for _, t := range r.Topics {
		if !groupAllowed || !s.authorize(c, "OffsetCommit", authz.OpRead, authz.ResourceTopic, t.Topic) {
			denied[t.Topic] = true
			continue
		}
		for _, p := range t.Partitions {
			o := group.Offset{Topic: t.Topic, Partition: p.Partition, Offset: p.Offset, LeaderEpoch: -1}
			if r.Version >= 6 {
				o.LeaderEpoch = p.LeaderEpoch
			}
			if p.Metadata != nil {
				o.Metadata = *p.Metadata
			}
			req.Offsets = append(req.Offsets, o)
		}
	}
	errs, wait := []error(nil), func() error { return nil }
	if groupAllowed {
		if gc, err := s.groups.Coordinator(r.Group); err != nil {
			errs = make([]error, len(req.Offsets))
			for i := range errs {
				errs[i] = err
			}
		} else {
			errs, wait = gc.Commit(req)
		}
	}
	for i, err := range errs {
		if refusedInput(err) {
			s.log.Warn("offset commit refused", "remote", c.remote, "client_id", h.ClientID, "group", r.Group,
				"topic", req.Offsets[i].Topic, "partition", req.Offsets[i].Partition, "err", err)
		}
	}
	return &reply{hdr: h, finish: func() any {
		durable := wait()
		resp := kmsg.NewPtrOffsetCommitResponse()
		resp.SetVersion(h.Version)
		i := 0
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				if denied[t.Topic] {
					rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
					if !groupAllowed {
						rp.ErrorCode = kerr.GroupAuthorizationFailed.Code
					}
					rt.Partitions = append(rt.Partitions, rp)
					continue
				}
				err := errs[i]
				if err == nil && durable != nil {
					err = durable
				}
				rp.ErrorCode = errorCode(err)
				rt.Partitions = append(rt.Partitions, rp)
				i++
			}
			resp.Topics = append(resp.Topics, rt)
		}
		if durable != nil {
			s.log.Error("offset commit not durable", "group", r.Group, "err", durable)
		}
		return resp
	}}
}

func (s *Server) handleOffsetFetch(c *conn, r *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := kmsg.NewPtrOffsetFetchResponse()
	if r.Version >= 8 {
		// A group asked for in full (all its committed offsets) is
		// answered once however often it is named, so the answer does not
		// multiply its offsets; entries naming topics are answered as
		// they are, each the size of what it names.
		whole := map[string]bool{}
		for _, g := range r.Groups {
			if g.Topics == nil {
				if whole[g.Group] {
					continue
				}
				whole[g.Group] = true
			}
			topics := make([]kmsg.OffsetFetchRequestTopic, len(g.Topics))
			for i, t := range g.Topics {
				topics[i] = kmsg.OffsetFetchRequestTopic{Topic: t.Topic, Partitions: t.Partitions}
			}
			if g.Topics == nil {
				topics = nil
			}
			rts, err := s.fetchGroupOffsets(c, g.Group, topics, r.RequireStable)
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, errorCode(err)
			for _, t := range rts {
				gt := kmsg.NewOffsetFetchResponseGroupTopic()
				gt.Topic = t.Topic
				for _, p := range t.Partitions {
					gp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					gp.Partition, gp.Offset, gp.LeaderEpoch, gp.Metadata, gp.ErrorCode =
						p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
					gt.Partitions = append(gt.Partitions, gp)
				}
				rg.Topics = append(rg.Topics, gt)
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}
	topics := r.Topics
	if r.Version < 2 && topics == nil {
		topics = []kmsg.OffsetFetchRequestTopic{}
	}
	rts, err := s.fetchGroupOffsets(c, r.Group, topics, r.Version >= 7 && r.RequireStable)
	resp.Topics = rts
	if r.Version >= 2 {
		resp.ErrorCode = errorCode(err)
	}
	return resp
}

// fetchGroupOffsets answers the partitions asked for, or every partition
// with a commit when topics is nil. A partition without a commit answers
// offset -1. As Kafka, it needs DESCRIBE on the group, and on each topic:
// a topic named that may not be described answers
// TOPIC_AUTHORIZATION_FAILED, and one not named is left out. With
// requireStable (v7+), a partition with offsets pending in a transaction
// answers UNSTABLE_OFFSET_COMMIT, offset -1, as Kafka's does, so the
// consumer asks again once the transaction has ended.
func (s *Server) fetchGroupOffsets(c *conn, groupID string, topics []kmsg.OffsetFetchRequestTopic, requireStable bool) ([]kmsg.OffsetFetchResponseTopic, error) {
	if !s.authorize(c, "OffsetFetch", authz.OpDescribe, authz.ResourceGroup, groupID) {
		return nil, kerr.GroupAuthorizationFailed
	}
	var ask []group.TopicPartition
	if topics != nil {
		ask = []group.TopicPartition{}
		for _, t := range topics {
			for _, p := range t.Partitions {
				ask = append(ask, group.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
	}
	gc, err := s.groups.Coordinator(groupID)
	if err != nil {
		return nil, err
	}
	got, err := gc.FetchOffsets(groupID, ask)
	if err != nil {
		return nil, err
	}
	var unstable map[group.TopicPartition]bool
	if requireStable {
		unstable = gc.PendingTxn(groupID, ask)
	}
	named := ask != nil
	if ask == nil {
		for tp := range got {
			ask = append(ask, tp)
		}
		group.SortTopicPartitions(ask)
	}
	var out []kmsg.OffsetFetchResponseTopic
	allowed := map[string]bool{}
	for _, tp := range ask {
		ok, checked := allowed[tp.Topic]
		if !checked {
			if named {
				ok = s.authorize(c, "OffsetFetch", authz.OpDescribe, authz.ResourceTopic, tp.Topic)
			} else {
				ok = s.mayDescribe(c, authz.ResourceTopic, tp.Topic)
			}
			allowed[tp.Topic] = ok
		}
		if !ok && !named {
			continue
		}
		if len(out) == 0 || out[len(out)-1].Topic != tp.Topic {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = tp.Topic
			out = append(out, rt)
		}
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = tp.Partition, -1, -1
		rp.Metadata = kmsg.StringPtr("")
		if !ok {
			rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
		} else if unstable[tp] {
			rp.ErrorCode = kerr.UnstableOffsetCommit.Code
		} else if o, ok := got[tp]; ok {
			rp.Offset, rp.LeaderEpoch, rp.Metadata = o.Offset, o.LeaderEpoch, kmsg.StringPtr(o.Metadata)
		}
		out[len(out)-1].Partitions = append(out[len(out)-1].Partitions, rp)
	}
	return out, nil
}

// handleListGroups lists every group to a client with DESCRIBE on the
// cluster, and otherwise the groups it may describe, as Kafka does.
// classicGroupType is the type ListGroups v5 gives the groups of the
// classic protocol, the only one runnel's coordinators speak.
const classicGroupType = "classic"

func (s *Server) handleListGroups(c *conn, r *kmsg.ListGroupsRequest) kmsg.Response {
	resp := kmsg.NewPtrListGroupsResponse()
	var want map[group.State]bool
	if len(r.StatesFilter) > 0 {
		want = map[group.State]bool{}
		for _, name := range r.StatesFilter {
			if st, ok := group.ParseState(name); ok {
				want[st] = true
			}
		}
	}
	// v5 (KIP-848) filters by group type: every group here is a classic
	// one, so a filter without "classic" (any case, as Kafka reads it)
	// lists none, and an unknown type matches nothing.
	classic := len(r.TypesFilter) == 0
	for _, t := range r.TypesFilter {
		classic = classic || strings.EqualFold(t, classicGroupType)
	}
	if !classic {
		return resp
	}
	// Each broker lists the groups it coordinates, as Kafka's do: admin
	// clients ask every broker.
	var all []group.Listing
	for _, gc := range s.groups.Coordinators() {
		all = append(all, gc.ListGroups()...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Group < all[j].Group })
	everyGroup := s.mayDescribe(c, authz.ResourceCluster, clusterResource)
	for _, l := range all {
		if want != nil && !want[l.State] || !everyGroup && !s.mayDescribe(c, authz.ResourceGroup, l.Group) {
			continue
		}
		rg := kmsg.NewListGroupsResponseGroup()
		rg.Group, rg.ProtocolType, rg.GroupState, rg.GroupType = l.Group, l.ProtocolType, l.State.String(), classicGroupType
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func (s *Server) handleDescribeGroups(c *conn, r *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeGroupsResponse()
	// A group is described once however often it is named: its members'
	// metadata may be large, and the answer must not multiply it.
	seen := map[string]bool{}
	for _, id := range r.Groups {
		if seen[id] {
			continue
		}
		seen[id] = true
		if !s.authorize(c, "DescribeGroups", authz.OpDescribe, authz.ResourceGroup, id) {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group, rg.ErrorCode = id, kerr.GroupAuthorizationFailed.Code
			rg.AuthorizedOperations = authorizedOperationsOmitted
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		rg := kmsg.NewDescribeGroupsResponseGroup()
		gc, err := s.groups.Coordinator(id)
		if err != nil {
			rg.Group, rg.ErrorCode, rg.AuthorizedOperations = id, errorCode(err), authorizedOperationsOmitted
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		d, _ := gc.Describe(id)
		rg.Group, rg.State, rg.ProtocolType, rg.Protocol = d.Group, d.State.String(), d.ProtocolType, d.Protocol
		rg.AuthorizedOperations = authorizedOperationsOmitted
		if r.IncludeAuthorizedOperations {
			rg.AuthorizedOperations = s.authorizedOperations(c, authz.ResourceGroup, id)
		}
		for _, m := range d.Members {
			rm := kmsg.NewDescribeGroupsResponseGroupMember()
			rm.MemberID, rm.ClientID, rm.ClientHost = m.MemberID, m.ClientID, m.ClientHost
			rm.ProtocolMetadata, rm.MemberAssignment = orEmpty(m.Metadata), orEmpty(m.Assignment)
			if m.InstanceID != "" {
				rm.InstanceID = kmsg.StringPtr(m.InstanceID)
			}
			rg.Members = append(rg.Members, rm)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// handleDeleteGroups deletes the groups the client may DELETE; the others
// answer GROUP_AUTHORIZATION_FAILED.
func (s *Server) handleDeleteGroups(c *conn, r *kmsg.DeleteGroupsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteGroupsResponse()
	// Each allowed group is deleted by its coordinator; a request may name
	// groups of several.
	errs := make([]error, len(r.Groups))
	denied := make([]bool, len(r.Groups))
	byCoord := map[*group.Coordinator][]int{}
	for i, id := range r.Groups {
		if !s.authorize(c, "DeleteGroups", authz.OpDelete, authz.ResourceGroup, id) {
			denied[i] = true
			continue
		}
		gc, err := s.groups.Coordinator(id)
		if err != nil {
			errs[i] = err
			continue
		}
		byCoord[gc] = append(byCoord[gc], i)
	}
	for gc, idx := range byCoord {
		ids := make([]string, len(idx))
		for k, i := range idx {
			ids[k] = r.Groups[i]
		}
		for k, err := range gc.DeleteGroups(ids) {
			errs[idx[k]] = err
		}
	}
	for i, id := range r.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group, rg.ErrorCode = id, errorCode(errs[i])
		if denied[i] {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

// handleOffsetDelete needs DELETE on the group (refuseRequest) and READ on
// each topic, as Kafka; a topic not allowed keeps its offsets.
func (s *Server) handleOffsetDelete(c *conn, r *kmsg.OffsetDeleteRequest) kmsg.Response {
	resp := kmsg.NewPtrOffsetDeleteResponse()
	var parts []group.TopicPartition
	denied := map[string]bool{}
	for _, t := range r.Topics {
		if !s.authorize(c, "OffsetDelete", authz.OpRead, authz.ResourceTopic, t.Topic) {
			denied[t.Topic] = true
			continue
		}
		for _, p := range t.Partitions {
			parts = append(parts, group.TopicPartition{Topic: t.Topic, Partition: p.Partition})
		}
	}
	gc, err := s.groups.Coordinator(r.Group)
	var errs []error
	if err == nil {
		errs, err = gc.DeleteOffsets(r.Group, parts)
	}
	if err != nil {
		resp.ErrorCode = errorCode(err)
		return resp
	}
	i := 0
	for _, t := range r.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			if denied[t.Topic] {
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			} else {
				rp.ErrorCode = errorCode(errs[i])
				i++
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
