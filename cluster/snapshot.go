package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/hashicorp/raft"

	"github.com/runnel-io/runnel/internal/quota"
)

// Snapshot captures the state for Raft's snapshot store, as snapshotV1.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.state.snapshot(f.index))
	if err != nil {
		return nil, err
	}
	return fsmSnapshot(b), nil
}

func (s *State) snapshot(index uint64) snapshotV1 {
	snap := snapshotV1{Version: snapshotFormat, Index: index, NextProducerID: s.NextProducerID,
		Brokers: []snapBroker{}, Topics: []snapTopic{}, Groups: []snapGroup{}, Proposals: s.proposals.entries()}
	for _, b := range s.Brokers {
		snap.Brokers = append(snap.Brokers, snapBroker{ID: b.ID, Addr: b.Addr, RaftAddr: b.RaftAddr, Fenced: b.Fenced, Epoch: b.Epoch,
			Listeners: slices.Clone(b.Listeners)})
	}
	sort.Slice(snap.Brokers, func(i, j int) bool { return snap.Brokers[i].ID < snap.Brokers[j].ID })
	for _, name := range s.topicNames() {
		t := s.Topics[name]
		st := snapTopic{Name: name, ID: uuid(t.ID), ReplicationFactor: t.ReplicationFactor, Configs: t.Configs,
			Partitions: make([]snapPartition, 0, len(s.Partitions[name]))}
		for _, p := range s.Partitions[name] {
			st.Partitions = append(st.Partitions, snapPartition{Replicas: p.Replicas, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				ISR: p.ISR, PartitionEpoch: p.PartitionEpoch, Segments: p.Segments, LogStart: p.LogStart,
				Adding: p.AddingReplicas, Removing: p.RemovingReplicas})
		}
		snap.Topics = append(snap.Topics, st)
	}
	for g, offs := range s.Offsets {
		sg := snapGroup{Group: g, Offsets: make([]OffsetCommit, 0, len(offs))}
		for tp, o := range offs {
			sg.Offsets = append(sg.Offsets, OffsetCommit{Topic: tp.Topic, Partition: tp.Partition, Offset: o.Offset,
				LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata, CommitMs: o.CommitMs})
		}
		sort.Slice(sg.Offsets, func(i, j int) bool {
			a, b := sg.Offsets[i], sg.Offsets[j]
			return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
		})
		snap.Groups = append(snap.Groups, sg)
	}
	sort.Slice(snap.Groups, func(i, j int) bool { return snap.Groups[i].Group < snap.Groups[j].Group })
	for _, c := range s.Scram {
		snap.ScramCredentials = append(snap.ScramCredentials, c)
	}
	sort.Slice(snap.ScramCredentials, func(i, j int) bool {
		a, b := snap.ScramCredentials[i], snap.ScramCredentials[j]
		return a.User < b.User || a.User == b.User && a.Mechanism < b.Mechanism
	})
	snap.ScramSecret = s.ScramSecret
	if len(s.Acls) > 0 {
		snap.Acls = s.aclList()
	}
	if len(s.ClientQuotas) > 0 {
		snap.ClientQuotas = s.clientQuotaList()
	}
	for id, c := range s.BrokerConfigs {
		snap.BrokerConfigs = append(snap.BrokerConfigs, SetBrokerConfigs{Broker: id, Configs: c})
	}
	sort.Slice(snap.BrokerConfigs, func(i, j int) bool { return snap.BrokerConfigs[i].Broker < snap.BrokerConfigs[j].Broker })
	for id := range s.Unregistered {
		snap.UnregisteredBrokers = append(snap.UnregisteredBrokers, id)
	}
	slices.Sort(snap.UnregisteredBrokers)
	return snap
}

// Restore replaces the state with a snapshot's, of either version.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("cluster: restore snapshot: %w", err)
	}
	st, index, err := decodeSnapshot(b)
	if err != nil {
		return fmt.Errorf("cluster: restore snapshot: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = st
	f.advanceLocked(index)
	f.topologyChangedLocked()
	f.aclsChangedLocked()
	f.quotasChangedLocked()
	f.brokerConfigsChangedLocked()
	return nil
}

func decodeSnapshot(b []byte) (*State, uint64, error) {
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, 0, err
	}
	switch {
	case head.Version == nil:
		return decodeSnapshotV0(b)
	case *head.Version == snapshotFormat:
	default:
		return nil, 0, fmt.Errorf("unknown snapshot version %d", *head.Version)
	}
	var snap snapshotV1
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&snap); err != nil {
		return nil, 0, err
	}
	st := newState()
	for _, b := range snap.Brokers {
		st.Brokers[b.ID] = &BrokerInfo{ID: b.ID, Addr: b.Addr, RaftAddr: b.RaftAddr, Fenced: b.Fenced, Epoch: b.Epoch,
			Listeners: b.Listeners}
	}
	for _, t := range snap.Topics {
		st.Topics[t.Name] = Topic{Name: t.Name, ID: TopicID(t.ID), Partitions: int32(len(t.Partitions)), Configs: t.Configs,
			ReplicationFactor: t.ReplicationFactor}
		st.byID[TopicID(t.ID)] = t.Name
		parts := make([]*PartitionInfo, len(t.Partitions))
		for i, p := range t.Partitions {
			parts[i] = &PartitionInfo{Replicas: p.Replicas, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, ISR: p.ISR,
				PartitionEpoch: p.PartitionEpoch, Segments: p.Segments, LogStart: p.LogStart,
				AddingReplicas: p.Adding, RemovingReplicas: p.Removing}
		}
		st.Partitions[t.Name] = parts
	}
	for _, g := range snap.Groups {
		st.restoreOffsets(g.Group, g.Offsets)
	}
	st.NextProducerID = snap.NextProducerID
	for _, e := range snap.Proposals {
		st.proposals.add(e)
	}
	for _, c := range snap.ScramCredentials {
		st.Scram[ScramUser{c.User, c.Mechanism}] = c
	}
	st.ScramSecret = snap.ScramSecret
	for _, a := range snap.Acls {
		if err := a.validate(); err != nil {
			return nil, 0, err
		}
		st.Acls[a] = struct{}{}
	}
	for _, q := range snap.ClientQuotas {
		e, err := parseQuotaEntity(q.Entity)
		if err != nil {
			return nil, 0, err
		}
		for k, v := range q.Values {
			if err := quota.ValidateValue(k, v); err != nil {
				return nil, 0, fmt.Errorf("%w: %v", ErrMalformedCommand, err)
			}
		}
		if len(q.Values) > 0 {
			st.ClientQuotas[e] = q.Values
		}
	}
	for _, id := range snap.UnregisteredBrokers {
		st.Unregistered[id] = struct{}{}
	}
	for _, c := range snap.BrokerConfigs {
		if len(c.Configs) > 0 {
			st.BrokerConfigs[c.Broker] = c.Configs
		}
	}
	return st, snap.Index, nil
}

func (s *State) restoreOffsets(group string, offs []OffsetCommit) {
	m := map[TP]committedOffsetState{}
	for _, o := range offs {
		m[TP{o.Topic, o.Partition}] = committedOffsetState{Offset: o.Offset, LeaderEpoch: o.LeaderEpoch,
			Metadata: o.Metadata, CommitMs: o.CommitMs}
	}
	s.Offsets[group] = m
}

func decodeSnapshotV0(b []byte) (*State, uint64, error) {
	var snap v0Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return nil, 0, err
	}
	st := newState()
	for id, b := range snap.Brokers {
		st.Brokers[id] = &BrokerInfo{ID: b.ID, Addr: b.Addr, RaftAddr: b.RaftAddr, Fenced: b.Fenced, Epoch: b.Epoch}
	}
	for name, t := range snap.Topics {
		st.Topics[name] = Topic{Name: t.Name, ID: TopicID(t.ID), Partitions: t.Partitions, Configs: t.Configs,
			ReplicationFactor: t.ReplicationFactor}
		st.byID[TopicID(t.ID)] = name
	}
	for name, ps := range snap.Partitions {
		parts := make([]*PartitionInfo, len(ps))
		for i, p := range ps {
			parts[i] = &PartitionInfo{Replicas: p.Replicas, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, ISR: p.ISR,
				PartitionEpoch: p.PartitionEpoch, Segments: slices.Clone(p.Segments), LogStart: p.LogStart}
		}
		st.Partitions[name] = parts
	}
	for g, offs := range snap.Offsets {
		commits := make([]OffsetCommit, len(offs))
		for i, o := range offs {
			commits[i] = o.commit()
		}
		st.restoreOffsets(g, commits)
	}
	st.NextProducerID = snap.NextProducerID
	return st, snap.Index, nil
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("cluster: write snapshot: %w", err)
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}
