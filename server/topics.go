package server

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/coordinator/groups"
	"github.com/runnel-io/runnel/coordinator/txns"
	"github.com/runnel-io/runnel/internal/authz"
	"github.com/runnel-io/runnel/partition"
)

// internalTopics are the topics the broker's coordinators own. Clients may
// read them, not produce to, create or delete them.
var internalTopics = map[string]bool{groups.Topic: true, txns.Topic: true}

// errInternalTopic refuses a client's write to an internal topic.
func errInternalTopic(name string) error {
	return fmt.Errorf("%w: %s is an internal topic, written by the broker's coordinators only", kerr.InvalidTopicException, name)
}

// validTopicName applies Kafka's rules: 1 to 249 characters from
// [a-zA-Z0-9._-], and not "." or "..".
func validTopicName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 249 {
		return fmt.Errorf("%w: topic name %q", kerr.InvalidTopicException, name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: topic name %q has illegal character %q (legal: a-z A-Z 0-9 . _ -)", kerr.InvalidTopicException, name, r)
		}
	}
	return nil
}

// createTopic validates and creates a topic, then opens its partitions.
func (s *Server) createTopic(name string, partitions int32, replication int16, configs map[string]string, validateOnly bool) (cluster.Topic, error) {
	if err := validTopicName(name); err != nil {
		return cluster.Topic{}, err
	}
	if partitions == -1 {
		partitions = s.cfg.DefaultPartitions
	}
	if err := s.checkPartitionCount(partitions); err != nil {
		return cluster.Topic{}, err
	}
	if replication == -1 {
		replication = s.cfg.DefaultReplicationFactor
	}
	if replication <= 0 {
		return cluster.Topic{}, fmt.Errorf("%w: replication factor %d", kerr.InvalidReplicationFactor, replication)
	}
	if err := partition.ValidateConfigs(configs); err != nil {
		return cluster.Topic{}, err
	}
	if cfg, _ := partition.ResolveConfig(configs); int(cfg.MinInsyncRepl) > int(replication) {
		return cluster.Topic{}, fmt.Errorf("%w: min.insync.replicas=%d is above the replication factor %d",
			kerr.InvalidConfig, cfg.MinInsyncRepl, replication)
	}
	t := cluster.Topic{Name: name, Partitions: partitions, Configs: configs, ReplicationFactor: replication}
	if live := len(s.liveBrokers()); int(replication) > live {
		return t, fmt.Errorf("%w: replication factor %d, %d live brokers", cluster.ErrNotEnoughBrokers, replication, live)
	}
	if validateOnly {
		if _, ok := s.meta.Topic(name); ok {
			return t, fmt.Errorf("%w: %s", cluster.ErrTopicExists, name)
		}
		return t, s.checkReplicaCapacity(int64(partitions) * int64(replication))
	}
	adding := int64(0)
	if _, ok := s.meta.Topic(name); !ok {
		// An existing topic is answered TOPIC_ALREADY_EXISTS by the
		// metadata store, whatever its size.
		adding = int64(partitions) * int64(replication)
	}
	if err := s.reserveReplicas(adding); err != nil {
		return t, err
	}
	t, err := s.meta.CreateTopic(t)
	s.releaseReplicas(adding)
	if err != nil {
		return t, err
	}
	if err := s.replicas.Reconcile(); err != nil {
		s.log.Error("opening the replicas of a new topic", "topic", name, "err", err)
	}
	s.log.Info("created topic", "topic", name, "partitions", partitions, "replication_factor", replication, "configs", configs)
	return t, nil
}

// checkPartitionCount refuses a topic partition count below 1 or above
// MaxPartitionsPerTopic with INVALID_PARTITIONS, before anything is
// allocated for it.
func (s *Server) checkPartitionCount(n int32) error {
	if n <= 0 {
		return fmt.Errorf("%w: %d partitions", kerr.InvalidPartitions, n)
	}
	if n > s.cfg.MaxPartitionsPerTopic {
		return fmt.Errorf("%w: %d partitions, above the limit of %d per topic", kerr.InvalidPartitions, n, s.cfg.MaxPartitionsPerTopic)
	}
	return nil
}

// checkReplicaCapacity refuses, with POLICY_VIOLATION, adding replicas
// that would take the partition replicas of all topics above
// MaxPartitionsPerBroker times the number of registered brokers. Every
// replica is a partition a broker opens, with its files and mappings, at
// every start, so the count is bounded before the topic exists rather than
// found out when the broker runs out of file descriptors. The check reads
// the metadata as this broker has applied it: creates sent at the same
// moment through two brokers may each pass it.
func (s *Server) checkReplicaCapacity(adding int64) error {
	s.topics.Lock()
	defer s.topics.Unlock()
	return s.checkReplicaCapacityLocked(adding)
}

// reserveReplicas checks that adding more replicas stays within the
// capacity, counting those of proposals in flight, and reserves them until
// releaseReplicas.
func (s *Server) reserveReplicas(adding int64) error {
	s.topics.Lock()
	defer s.topics.Unlock()
	if err := s.checkReplicaCapacityLocked(adding); err != nil {
		return err
	}
	s.topics.reserved += adding
	return nil
}

// releaseReplicas gives back a reservation once its proposal has ended;
// if it was applied, the metadata now counts the replicas.
func (s *Server) releaseReplicas(n int64) {
	s.topics.Lock()
	s.topics.reserved -= n
	s.topics.Unlock()
}

func (s *Server) checkReplicaCapacityLocked(adding int64) error {
	held := s.topics.reserved
	for _, t := range s.meta.Topics() {
		held += int64(t.Partitions) * int64(max(t.ReplicationFactor, 1))
	}
	brokers := int64(max(len(s.meta.Brokers()), 1))
	limit := int64(s.cfg.MaxPartitionsPerBroker) * brokers
	if held+adding > limit {
		return fmt.Errorf("%w: %d more partition replicas would make %d, above the limit of %d per broker (%d for %d brokers)",
			kerr.PolicyViolation, adding, held+adding, s.cfg.MaxPartitionsPerBroker, limit, brokers)
	}
	return nil
}

func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	m := err.Error()
	return &m
}

func (s *Server) handleCreateTopics(c *conn, r *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := kmsg.NewPtrCreateTopicsResponse()
	clusterCreate := s.mayCreateTopics(c)
	for _, rt := range r.Topics {
		cfg := map[string]string{}
		for _, c := range rt.Configs {
			if c.Value != nil {
				cfg[c.Name] = *c.Value
			}
		}
		var t cluster.Topic
		var err error
		switch {
		case !clusterCreate && !s.authorize(c, "CreateTopics", authz.OpCreate, authz.ResourceTopic, rt.Topic):
			err = kerr.TopicAuthorizationFailed
		case len(rt.ReplicaAssignment) > 0:
			err = fmt.Errorf("%w: manual replica assignment is not supported", kerr.InvalidRequest)
		case internalTopics[rt.Topic]:
			err = errInternalTopic(rt.Topic)
		default:
			t, err = s.createTopic(rt.Topic, rt.NumPartitions, rt.ReplicationFactor, cfg, r.ValidateOnly)
		}
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.ErrorCode = errorCode(err)
		st.ErrorMessage = errMessage(err)
		s.m.errorCode("CreateTopics", st.ErrorCode)
		if err == nil {
			st.TopicID = t.ID
			st.NumPartitions = t.Partitions
			st.ReplicationFactor = max(t.ReplicationFactor, 1)
			own, defaults := s.meta.BrokerConfigs(s.cfg.NodeID), s.meta.BrokerConfigs(cluster.DefaultBrokerConfigs)
			for _, d := range partition.ConfigDefs {
				syn := topicConfigLayers(t, d, own, defaults)
				c := kmsg.NewCreateTopicsResponseTopicConfig()
				c.Name, c.Value, c.Source = d.Name, syn[0].Value, int8(syn[0].Source)
				st.Configs = append(st.Configs, c)
			}
		} else {
			s.log.Info("create topic refused", "topic", rt.Topic, "err", err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (s *Server) deleteTopic(name string) error {
	if err := s.meta.DeleteTopic(name); err != nil {
		return err
	}
	s.log.Info("deleting topic", "topic", name)
	// Every broker's group coordinators drop the topic's committed offsets
	// when they see it gone from the metadata (coordinator/groups).
	return s.replicas.Reconcile()
}

func (s *Server) handleDeleteTopics(c *conn, r *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteTopicsResponse()
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	for _, n := range r.TopicNames {
		targets = append(targets, target{name: &n})
	}
	for _, t := range r.Topics {
		targets = append(targets, target{name: t.Topic, id: t.TopicID})
	}
	for _, t := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		var err error
		name := ""
		if t.name != nil {
			name = *t.name
		} else if topic, ok := s.meta.TopicByID(t.id); ok {
			name = topic.Name
		} else {
			err = fmt.Errorf("%w: topic id %x", kerr.UnknownTopicID, t.id)
		}
		if err == nil && !s.authorize(c, "DeleteTopics", authz.OpDelete, authz.ResourceTopic, name) {
			err = kerr.TopicAuthorizationFailed
		}
		if err == nil && internalTopics[name] {
			err = errInternalTopic(name)
		}
		if err == nil {
			if topic, ok := s.meta.Topic(name); ok {
				st.TopicID = topic.ID
			}
			err = s.deleteTopic(name)
		}
		if name != "" {
			st.Topic = &name
		}
		st.ErrorCode = errorCode(err)
		st.ErrorMessage = errMessage(err)
		s.m.errorCode("DeleteTopics", st.ErrorCode)
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (s *Server) handleCreatePartitions(c *conn, r *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := kmsg.NewPtrCreatePartitionsResponse()
	for _, rt := range r.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		err := func() error {
			if !s.authorize(c, "CreatePartitions", authz.OpAlter, authz.ResourceTopic, rt.Topic) {
				return kerr.TopicAuthorizationFailed
			}
			if len(rt.Assignment) > 0 {
				return fmt.Errorf("%w: manual replica assignment is not supported", kerr.InvalidRequest)
			}
			if err := s.checkPartitionCount(rt.Count); err != nil {
				return err
			}
			grow := func() (cluster.Topic, error) {
				t, ok := s.meta.Topic(rt.Topic)
				if !ok {
					return t, fmt.Errorf("%w: %s", cluster.ErrUnknownTopic, rt.Topic)
				}
				if rt.Count <= t.Partitions {
					return t, fmt.Errorf("%w: topic has %d partitions, asked for %d", kerr.InvalidPartitions, t.Partitions, rt.Count)
				}
				return t, nil
			}
			t, err := grow()
			if err != nil {
				return err
			}
			adding := int64(rt.Count-t.Partitions) * int64(max(t.ReplicationFactor, 1))
			if r.ValidateOnly {
				return s.checkReplicaCapacity(adding)
			}
			if err := s.reserveReplicas(adding); err != nil {
				return err
			}
			err = s.meta.SetPartitions(rt.Topic, rt.Count)
			s.releaseReplicas(adding)
			if err != nil {
				return err
			}
			return s.replicas.Reconcile()
		}()
		st.ErrorCode = errorCode(err)
		st.ErrorMessage = errMessage(err)
		s.m.errorCode("CreatePartitions", st.ErrorCode)
		if err != nil {
			s.log.Info("create partitions refused", "topic", rt.Topic, "count", rt.Count, "err", err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// handleMetadata answers with the brokers' addresses on the listener the
// client connected to; a broker without that listener is left out, as
// Kafka does.
func (s *Server) handleMetadata(c *conn, r *kmsg.MetadataRequest) kmsg.Response {
	resp := kmsg.NewPtrMetadataResponse()
	for _, lb := range s.liveBrokers() {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID = lb.ID
		addr, ok := lb.ListenerAddr(c.listener)
		if !ok {
			continue
		}
		if err := splitHostPort(addr, &b.Host, &b.Port); err != nil {
			continue
		}
		b.Rack = rackOf(lb)
		resp.Brokers = append(resp.Brokers, b)
	}
	resp.ClusterID = &s.cfg.ClusterID
	resp.ControllerID = s.controller()

	// The topics asked for are a set, as in Kafka: a name (or id) listed
	// again adds nothing to the answer, so the answer is at most the
	// cluster's metadata plus an entry per distinct unknown name or id.
	var names []string
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	all := r.Topics == nil || (r.Version == 0 && len(r.Topics) == 0)
	if all {
		// Only the topics the client may describe, as Kafka lists them.
		for _, t := range s.meta.Topics() {
			if s.mayDescribe(c, authz.ResourceTopic, t.Name) {
				add(t.Name)
			}
		}
	}
	autoCreate := s.cfg.AutoCreateTopics && (r.Version < 4 || r.AllowAutoTopicCreation)
	unknownIDs := map[[16]byte]bool{}
	for _, rt := range r.Topics {
		if rt.Topic != nil {
			add(*rt.Topic)
			continue
		}
		if unknownIDs[rt.TopicID] {
			continue
		}
		t, ok := s.meta.TopicByID(rt.TopicID)
		if ok && !s.authorize(c, "Metadata", authz.OpDescribe, authz.ResourceTopic, t.Name) {
			// As Kafka: a topic id the client may not describe is
			// answered as one that does not exist.
			ok = false
		}
		if !ok {
			unknownIDs[rt.TopicID] = true
			st := kmsg.NewMetadataResponseTopic()
			st.ErrorCode = kerr.UnknownTopicID.Code
			st.TopicID = rt.TopicID
			resp.Topics = append(resp.Topics, st)
			continue
		}
		add(t.Name)
	}
	if n := len(r.Topics); n > len(names)+len(unknownIDs) {
		s.log.Debug("metadata request names topics more than once", "topics", n, "distinct", len(names)+len(unknownIDs))
	}
	for _, name := range names {
		var st kmsg.MetadataResponseTopic
		switch {
		case !all && !s.authorize(c, "Metadata", authz.OpDescribe, authz.ResourceTopic, name):
			st = kmsg.NewMetadataResponseTopic()
			st.Topic, st.ErrorCode = kmsg.StringPtr(name), kerr.TopicAuthorizationFailed.Code
		default:
			create := autoCreate && s.mayAutoCreate(c, name)
			st = s.topicMetadata(name, create, c.listener, r.Version)
			if autoCreate && !create && st.ErrorCode == kerr.UnknownTopicOrPartition.Code {
				st.ErrorCode = kerr.TopicAuthorizationFailed.Code
			}
			if r.Version >= 8 && r.IncludeTopicAuthorizedOperations && st.ErrorCode == 0 {
				st.AuthorizedOperations = s.authorizedOperations(c, authz.ResourceTopic, name)
			}
		}
		s.m.errorCode("Metadata", st.ErrorCode)
		resp.Topics = append(resp.Topics, st)
	}
	if r.Version >= 8 && r.Version <= 10 && r.IncludeClusterAuthorizedOperations {
		resp.AuthorizedOperations = s.authorizedOperations(c, authz.ResourceCluster, clusterResource)
	}
	return resp
}

// topicMetadata answers for one topic to a client on the listener and
// Metadata version given.
func (s *Server) topicMetadata(name string, autoCreate bool, listener string, version int16) kmsg.MetadataResponseTopic {
	st := kmsg.NewMetadataResponseTopic()
	st.Topic = &name
	t, ok := s.meta.Topic(name)
	if !ok {
		if err := validTopicName(name); err != nil {
			st.ErrorCode = kerr.InvalidTopicException.Code
			return st
		}
		if !autoCreate || internalTopics[name] {
			// An internal topic is created by its coordinators on first
			// need, with their settings, never by a metadata request.
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
			return st
		}
		var err error
		t, err = s.createTopic(name, -1, -1, nil, false)
		if errors.Is(err, cluster.ErrTopicExists) {
			t, _ = s.meta.Topic(name)
		} else if err != nil {
			st.ErrorCode = errorCode(err)
			return st
		}
	}
	st.TopicID = t.ID
	st.IsInternal = internalTopics[name]
	fenced, unreachable := s.fencedBrokers(), s.brokersWithout(listener)
	for i := int32(0); i < t.Partitions; i++ {
		sp := s.partitionMetadata(name, i, fenced)
		if sp.ErrorCode == 0 && unreachable[sp.Leader] {
			// The leader has no address on the client's listener, so the
			// client cannot reach it: as Kafka, no leader, and from v6
			// LISTENER_NOT_FOUND to say why.
			sp.Leader, sp.ErrorCode = -1, kerr.LeaderNotAvailable.Code
			if version >= 6 {
				sp.ErrorCode = kerr.ListenerNotFound.Code
			}
		}
		st.Partitions = append(st.Partitions, sp)
	}
	return st
}

func (s *Server) handleDescribeConfigs(c *conn, r *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeConfigsResponse()
	// A resource is answered once however often it is named, so the
	// answer (every config of a topic, with its documentation if asked)
	// does not multiply with the request.
	type resource struct {
		typ  kmsg.ConfigResourceType
		name string
	}
	seen := map[resource]bool{}
	for _, rr := range r.Resources {
		k := resource{rr.ResourceType, rr.ResourceName}
		if seen[k] {
			continue
		}
		seen[k] = true
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			if !s.authorize(c, "DescribeConfigs", authz.OpDescribeConfigs, authz.ResourceTopic, rr.ResourceName) {
				sr.ErrorCode = kerr.TopicAuthorizationFailed.Code
				break
			}
			t, ok := s.meta.Topic(rr.ResourceName)
			if !ok {
				sr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			s.describeTopicConfigs(r, t, rr.ConfigNames, &sr)
		case kmsg.ConfigResourceTypeBroker:
			if !s.authorize(c, "DescribeConfigs", authz.OpDescribeConfigs, authz.ResourceCluster, clusterResource) {
				sr.ErrorCode = kerr.ClusterAuthorizationFailed.Code
				break
			}
			if err := s.describeBrokerConfigs(r, rr, &sr); err != nil {
				sr.ErrorCode, sr.ErrorMessage = errorCode(err), errMessage(err)
			}
		case kmsg.ConfigResourceTypeBrokerLogger:
			s.describeBrokerLoggers(c, rr, &sr)
		default:
			sr.ErrorCode = kerr.InvalidRequest.Code
			msg := fmt.Sprintf("resource type %d is not supported", rr.ResourceType)
			sr.ErrorMessage = &msg
		}
		s.m.errorCode("DescribeConfigs", sr.ErrorCode)
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

func (s *Server) handleDescribeCluster(c *conn, r *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeClusterResponse()
	resp.ClusterID = s.cfg.ClusterID
	resp.ControllerID = s.controller()
	if r.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = s.authorizedOperations(c, authz.ResourceCluster, clusterResource)
	}
	for _, lb := range s.meta.Brokers() {
		if lb.Fenced && !r.IncludeFencedBrokers {
			continue
		}
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID, b.IsFenced = lb.ID, lb.Fenced
		addr, ok := lb.ListenerAddr(c.listener)
		if !ok {
			continue
		}
		if err := splitHostPort(addr, &b.Host, &b.Port); err != nil {
			continue
		}
		b.Rack = rackOf(lb)
		resp.Brokers = append(resp.Brokers, b)
	}
	return resp
}

// handleOffsetForLeaderEpoch needs, as Kafka, CLUSTER_ACTION on the
// cluster from a follower (v3+ names its replica id) and DESCRIBE on each
// topic from a consumer.
func (s *Server) handleOffsetForLeaderEpoch(c *conn, r *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
	replica := r.Version >= 3 && r.ReplicaID >= 0
	replicaAllowed := !replica || s.authorize(c, "OffsetForLeaderEpoch", authz.OpClusterAction, authz.ResourceCluster, clusterResource)
	for _, rt := range r.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		allowed := replicaAllowed && (replica || s.authorize(c, "OffsetForLeaderEpoch", authz.OpDescribe, authz.ResourceTopic, rt.Topic))
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			var p *partition.Partition
			err := error(kerr.TopicAuthorizationFailed)
			if allowed {
				p, err = s.leaderPartition(rt.Topic, rp.Partition, rp.CurrentLeaderEpoch)
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
				sp.LeaderEpoch, sp.EndOffset = -1, -1
				s.m.errorCode("OffsetForLeaderEpoch", sp.ErrorCode)
			} else {
				sp.LeaderEpoch, sp.EndOffset = p.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
