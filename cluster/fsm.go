package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/runnel-io/runnel/group"
)

// The replicated state machine. Every change to cluster metadata is a
// command in the Raft log: one type byte, then the command as JSON. Every
// broker applies the same commands in the same order, so every broker's
// State is the same at the same log index.

// CommandType names a command in the Raft log. The values are stored in
// the log and must never change.
type CommandType uint8

// Commands.
const (
	CmdRegisterBroker     CommandType = 1
	CmdSetBrokerFenced    CommandType = 2
	CmdCreateTopic        CommandType = 3
	CmdDeleteTopic        CommandType = 4
	CmdCreatePartitions   CommandType = 5
	CmdSetConfigs         CommandType = 6
	CmdChangeLeader       CommandType = 7
	CmdChangeISR          CommandType = 8
	CmdSegmentRolled      CommandType = 9
	CmdSegmentsDeleted    CommandType = 10
	CmdCommitOffsets      CommandType = 11
	CmdDeleteOffsets      CommandType = 12
	CmdDeleteGroup        CommandType = 13
	CmdAllocateProducerID CommandType = 14
)

// Errors a command can be refused with.
var (
	ErrUnknownBroker     = errors.New("cluster: unknown broker")
	ErrUnknownPartition  = errors.New("cluster: unknown partition")
	ErrStaleLeaderEpoch  = errors.New("cluster: leader epoch is not the partition's current one")
	ErrBadAssignment     = errors.New("cluster: invalid replica assignment")
	ErrUnknownCommand    = errors.New("cluster: unknown command type")
	ErrMalformedCommand  = errors.New("cluster: malformed command")
	ErrNotReplica        = errors.New("cluster: broker is not a replica of the partition")
	ErrSegmentOutOfOrder = errors.New("cluster: segment base offset not after the last one")
)

// BrokerInfo is a broker as the cluster knows it.
type BrokerInfo struct {
	ID       int32  `json:"id"`
	Addr     string `json:"addr"`      // Kafka host:port clients connect to
	RaftAddr string `json:"raft_addr"` // host:port of its Raft transport
	Fenced   bool   `json:"fenced"`    // stopped heartbeating; leads nothing
	Epoch    int64  `json:"epoch"`     // bumped on every registration
}

// PartitionInfo is one partition's replication state.
type PartitionInfo struct {
	Replicas    []int32 `json:"replicas"`
	Leader      int32   `json:"leader"` // -1: none
	LeaderEpoch int32   `json:"leader_epoch"`
	ISR         []int32 `json:"isr"`
	// PartitionEpoch is bumped by every change of leader or ISR, so an
	// ISR change computed from an older view is refused.
	PartitionEpoch int32 `json:"partition_epoch"`
	// Segments are the base offsets of the partition's segments, oldest
	// first, so every replica rolls at the same offsets.
	Segments []int64 `json:"segments,omitempty"`
	LogStart int64   `json:"log_start"`
}

// TP names a partition in commands and the state.
type TP struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

func (tp TP) String() string { return fmt.Sprintf("%s-%d", tp.Topic, tp.Partition) }

// State is the replicated cluster metadata.
type State struct {
	Brokers        map[int32]*BrokerInfo                  `json:"brokers"`
	Topics         map[string]Topic                       `json:"topics"`
	Partitions     map[string][]*PartitionInfo            `json:"partitions"` // by topic, indexed by partition
	Offsets        map[string]map[TP]committedOffsetState `json:"-"`
	NextProducerID int64                                  `json:"next_producer_id"`
}

type committedOffsetState struct {
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Metadata    string `json:"metadata"`
	CommitMs    int64  `json:"commit_ms"`
}

func newState() *State {
	return &State{Brokers: map[int32]*BrokerInfo{}, Topics: map[string]Topic{}, Partitions: map[string][]*PartitionInfo{},
		Offsets: map[string]map[TP]committedOffsetState{}}
}

// Command payloads.
type (
	RegisterBroker struct {
		ID       int32  `json:"id"`
		Addr     string `json:"addr"`
		RaftAddr string `json:"raft_addr"`
	}
	SetBrokerFenced struct {
		ID     int32 `json:"id"`
		Fenced bool  `json:"fenced"`
	}
	CreateTopic struct {
		Topic      Topic     `json:"topic"`
		Assignment [][]int32 `json:"assignment"` // replicas of each partition, preferred leader first
	}
	DeleteTopic struct {
		Name string `json:"name"`
	}
	CreatePartitions struct {
		Name       string    `json:"name"`
		Assignment [][]int32 `json:"assignment"` // of the new partitions only
	}
	SetConfigs struct {
		Name    string            `json:"name"`
		Configs map[string]string `json:"configs"`
	}
	// ChangeLeader is the controller's election: a new leader (or -1) and
	// ISR, with the leader epoch bumped. It applies only if the partition
	// is still at PrevEpoch.
	ChangeLeader struct {
		TP        TP      `json:"tp"`
		PrevEpoch int32   `json:"prev_epoch"`
		Leader    int32   `json:"leader"`
		ISR       []int32 `json:"isr"`
	}
	// ChangeISR is the leader shrinking or growing the ISR of a partition
	// it leads at LeaderEpoch, computed from the state at PartitionEpoch.
	ChangeISR struct {
		TP             TP      `json:"tp"`
		Leader         int32   `json:"leader"`
		LeaderEpoch    int32   `json:"leader_epoch"`
		PartitionEpoch int32   `json:"partition_epoch"`
		ISR            []int32 `json:"isr"`
	}
	SegmentRolled struct {
		TP   TP    `json:"tp"`
		Base int64 `json:"base"`
	}
	// SegmentsDeleted moves the log start: segments wholly below it go.
	SegmentsDeleted struct {
		TP       TP    `json:"tp"`
		LogStart int64 `json:"log_start"`
	}
	CommitOffsets struct {
		Group   string         `json:"group"`
		Offsets []group.Offset `json:"offsets"`
	}
	DeleteOffsets struct {
		Group      string                 `json:"group"`
		Partitions []group.TopicPartition `json:"partitions"`
	}
	DeleteGroup struct {
		Group string `json:"group"`
	}
	AllocateProducerIDs struct {
		N int64 `json:"n"`
	}
)

// EncodeCommand returns the bytes of a command for the Raft log.
func EncodeCommand(t CommandType, payload any) ([]byte, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	return append([]byte{byte(t)}, b...), nil
}

// FSM is the state machine Raft applies commands to. Its methods are safe
// for concurrent use; Raft calls Apply from one goroutine.
type FSM struct {
	mu      sync.RWMutex
	state   *State
	index   uint64        // last applied log index
	applied chan struct{} // closed and replaced whenever index moves
	// topology is closed and replaced whenever brokers, topics or
	// partitions change (not for offset commits).
	topology chan struct{}
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an empty state machine.
func NewFSM() *FSM {
	return &FSM{state: newState(), applied: make(chan struct{}), topology: make(chan struct{})}
}

// TopologyChanged returns a channel closed at the next change of brokers,
// topics or partitions.
func (f *FSM) TopologyChanged() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.topology
}

func (f *FSM) topologyChangedLocked() {
	close(f.topology)
	f.topology = make(chan struct{})
}

// WaitApplied returns once the command at index has been applied here.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.mu.RLock()
		done, ch := f.index >= index, f.applied
		f.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting to apply index %d: %w", index, ctx.Err())
		}
	}
}

// advanceLocked records that index was applied and wakes waiters.
func (f *FSM) advanceLocked(index uint64) {
	f.index = index
	close(f.applied)
	f.applied = make(chan struct{})
}

// Read calls fn with the state under the read lock; fn must not keep
// references into it.
func (f *FSM) Read(fn func(s *State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state)
}

// AppliedIndex returns the index of the last command applied.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.index
}

// Apply applies one Raft log entry. It returns the command's result: an
// error if the command was refused (the state is then unchanged), or a
// value for commands that produce one (AllocateProducerIDs: the first id).
func (f *FSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceLocked(l.Index)
	if l.Type != raft.LogCommand {
		return nil
	}
	if len(l.Data) == 0 {
		return fmt.Errorf("%w: empty", ErrMalformedCommand)
	}
	ct := CommandType(l.Data[0])
	switch ct {
	case CmdCommitOffsets, CmdDeleteOffsets, CmdDeleteGroup, CmdAllocateProducerID:
	default:
		defer f.topologyChangedLocked()
	}
	return f.state.apply(ct, l.Data[1:])
}

func decode[T any](b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("%w: %v", ErrMalformedCommand, err)
	}
	return v, nil
}

func (s *State) apply(t CommandType, b []byte) any {
	switch t {
	case CmdRegisterBroker:
		c, err := decode[RegisterBroker](b)
		if err != nil {
			return err
		}
		br := s.Brokers[c.ID]
		if br == nil {
			br = &BrokerInfo{ID: c.ID}
			s.Brokers[c.ID] = br
		} else {
			// A broker registering again has restarted: what it led and
			// what it held as an in-sync follower may be behind what it
			// acknowledged before (a lost page cache), so it leaves every
			// ISR and catches up as a follower, as after a failure. Where
			// it was the last in-sync replica it leads again, at a new
			// epoch.
			br.Fenced = true
			s.brokerDown(c.ID)
		}
		br.Addr, br.RaftAddr, br.Fenced = c.Addr, c.RaftAddr, false
		br.Epoch++
		s.brokerUp(c.ID)
		return br.Epoch
	case CmdSetBrokerFenced:
		c, err := decode[SetBrokerFenced](b)
		if err != nil {
			return err
		}
		br := s.Brokers[c.ID]
		if br == nil {
			return fmt.Errorf("%w: %d", ErrUnknownBroker, c.ID)
		}
		if br.Fenced == c.Fenced {
			return nil
		}
		br.Fenced = c.Fenced
		if c.Fenced {
			s.brokerDown(c.ID)
		} else {
			s.brokerUp(c.ID)
		}
		return nil
	case CmdCreateTopic:
		c, err := decode[CreateTopic](b)
		if err != nil {
			return err
		}
		return s.createTopic(c)
	case CmdDeleteTopic:
		c, err := decode[DeleteTopic](b)
		if err != nil {
			return err
		}
		if _, ok := s.Topics[c.Name]; !ok {
			return fmt.Errorf("%w: %s", ErrUnknownTopic, c.Name)
		}
		delete(s.Topics, c.Name)
		delete(s.Partitions, c.Name)
		for _, offs := range s.Offsets {
			for tp := range offs {
				if tp.Topic == c.Name {
					delete(offs, tp)
				}
			}
		}
		return nil
	case CmdCreatePartitions:
		c, err := decode[CreatePartitions](b)
		if err != nil {
			return err
		}
		t, ok := s.Topics[c.Name]
		if !ok {
			return fmt.Errorf("%w: %s", ErrUnknownTopic, c.Name)
		}
		if len(c.Assignment) == 0 {
			return fmt.Errorf("%w: no new partitions for %s", ErrPartitions, c.Name)
		}
		if err := s.checkAssignment(c.Assignment); err != nil {
			return err
		}
		for _, replicas := range c.Assignment {
			s.Partitions[c.Name] = append(s.Partitions[c.Name], newPartition(replicas))
		}
		t.Partitions += int32(len(c.Assignment))
		s.Topics[c.Name] = t
		return nil
	case CmdSetConfigs:
		c, err := decode[SetConfigs](b)
		if err != nil {
			return err
		}
		t, ok := s.Topics[c.Name]
		if !ok {
			return fmt.Errorf("%w: %s", ErrUnknownTopic, c.Name)
		}
		t.Configs = c.Configs
		s.Topics[c.Name] = t
		return nil
	case CmdChangeLeader:
		c, err := decode[ChangeLeader](b)
		if err != nil {
			return err
		}
		p, err := s.partition(c.TP)
		if err != nil {
			return err
		}
		if p.LeaderEpoch != c.PrevEpoch {
			return fmt.Errorf("%w: %s at epoch %d, command for %d", ErrStaleLeaderEpoch, c.TP, p.LeaderEpoch, c.PrevEpoch)
		}
		if c.Leader != -1 && !slices.Contains(p.Replicas, c.Leader) {
			return fmt.Errorf("%w: broker %d, %s", ErrNotReplica, c.Leader, c.TP)
		}
		for _, r := range c.ISR {
			if !slices.Contains(p.Replicas, r) {
				return fmt.Errorf("%w: broker %d in the ISR of %s", ErrNotReplica, r, c.TP)
			}
		}
		p.Leader, p.ISR = c.Leader, slices.Clone(c.ISR)
		p.LeaderEpoch++
		p.PartitionEpoch++
		return p.LeaderEpoch
	case CmdChangeISR:
		c, err := decode[ChangeISR](b)
		if err != nil {
			return err
		}
		p, err := s.partition(c.TP)
		if err != nil {
			return err
		}
		if p.LeaderEpoch != c.LeaderEpoch || p.Leader != c.Leader {
			return fmt.Errorf("%w: %s led by %d at epoch %d, command from %d at %d", ErrStaleLeaderEpoch, c.TP,
				p.Leader, p.LeaderEpoch, c.Leader, c.LeaderEpoch)
		}
		if p.PartitionEpoch != c.PartitionEpoch {
			return fmt.Errorf("%w: %s at partition epoch %d, command for %d", ErrStaleLeaderEpoch, c.TP,
				p.PartitionEpoch, c.PartitionEpoch)
		}
		if !slices.Contains(c.ISR, c.Leader) {
			return fmt.Errorf("%w: the ISR of %s must hold its leader", ErrBadAssignment, c.TP)
		}
		for _, r := range c.ISR {
			if !slices.Contains(p.Replicas, r) {
				return fmt.Errorf("%w: broker %d in the ISR of %s", ErrNotReplica, r, c.TP)
			}
		}
		p.ISR = slices.Clone(c.ISR)
		p.PartitionEpoch++
		return nil
	case CmdSegmentRolled:
		c, err := decode[SegmentRolled](b)
		if err != nil {
			return err
		}
		p, err := s.partition(c.TP)
		if err != nil {
			return err
		}
		if n := len(p.Segments); n > 0 && c.Base <= p.Segments[n-1] {
			return fmt.Errorf("%w: %s base %d after %d", ErrSegmentOutOfOrder, c.TP, c.Base, p.Segments[n-1])
		}
		p.Segments = append(p.Segments, c.Base)
		return nil
	case CmdSegmentsDeleted:
		c, err := decode[SegmentsDeleted](b)
		if err != nil {
			return err
		}
		p, err := s.partition(c.TP)
		if err != nil {
			return err
		}
		if c.LogStart <= p.LogStart {
			return nil
		}
		p.LogStart = c.LogStart
		// Keep the segment holding the log start and those after it.
		keep := 0
		for i, base := range p.Segments {
			if base <= c.LogStart {
				keep = i
			}
		}
		p.Segments = slices.Clone(p.Segments[keep:])
		return nil
	case CmdCommitOffsets:
		c, err := decode[CommitOffsets](b)
		if err != nil {
			return err
		}
		offs := s.Offsets[c.Group]
		if offs == nil {
			offs = map[TP]committedOffsetState{}
			s.Offsets[c.Group] = offs
		}
		for _, o := range c.Offsets {
			offs[TP{o.Topic, o.Partition}] = committedOffsetState{Offset: o.Offset, LeaderEpoch: o.LeaderEpoch,
				Metadata: o.Metadata, CommitMs: o.CommitTime.UnixMilli()}
		}
		return nil
	case CmdDeleteOffsets:
		c, err := decode[DeleteOffsets](b)
		if err != nil {
			return err
		}
		for _, tp := range c.Partitions {
			delete(s.Offsets[c.Group], TP{tp.Topic, tp.Partition})
		}
		if len(s.Offsets[c.Group]) == 0 {
			delete(s.Offsets, c.Group)
		}
		return nil
	case CmdDeleteGroup:
		c, err := decode[DeleteGroup](b)
		if err != nil {
			return err
		}
		delete(s.Offsets, c.Group)
		return nil
	case CmdAllocateProducerID:
		c, err := decode[AllocateProducerIDs](b)
		if err != nil {
			return err
		}
		if c.N <= 0 {
			return fmt.Errorf("%w: allocate %d producer ids", ErrMalformedCommand, c.N)
		}
		first := s.NextProducerID
		s.NextProducerID += c.N
		return first
	}
	return fmt.Errorf("%w: %d", ErrUnknownCommand, t)
}

// brokerDown moves leadership away from a broker that was fenced or
// restarted (already marked Fenced) and takes it out of every ISR. A new
// leader comes from the rest of the ISR, preferred replicas first. Where
// the broker was the last in-sync replica, it stays in the ISR and the
// partition has no leader until an in-sync replica returns, unless the
// topic allows unclean elections.
func (s *State) brokerDown(id int32) {
	for _, name := range s.topicNames() {
		for _, p := range s.Partitions[name] {
			if p.Leader != id && !slices.Contains(p.ISR, id) {
				continue
			}
			isr := slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r == id })
			if p.Leader != id {
				if len(isr) > 0 {
					p.ISR = isr
					p.PartitionEpoch++
				}
				continue
			}
			leader := s.pickLeader(p.Replicas, isr)
			if leader == -1 && s.uncleanAllowed(name) {
				if leader = s.pickLeader(p.Replicas, p.Replicas); leader != -1 {
					isr = []int32{leader}
				}
			}
			if len(isr) > 0 {
				p.ISR = isr
			}
			p.Leader = leader
			p.LeaderEpoch++
			p.PartitionEpoch++
		}
	}
}

// brokerUp elects a broker that returned (unfenced or registered) to lead
// the partitions that have no leader and hold it in their ISR, or, where
// the topic allows unclean elections, any it replicates.
func (s *State) brokerUp(id int32) {
	for _, name := range s.topicNames() {
		for _, p := range s.Partitions[name] {
			if p.Leader != -1 || !slices.Contains(p.Replicas, id) {
				continue
			}
			switch {
			case slices.Contains(p.ISR, id):
			case s.uncleanAllowed(name):
				p.ISR = []int32{id}
			default:
				continue
			}
			p.Leader = id
			p.LeaderEpoch++
			p.PartitionEpoch++
		}
	}
}

// pickLeader returns the first of replicas (preference order) that is in
// candidates and not fenced, or -1.
func (s *State) pickLeader(replicas, candidates []int32) int32 {
	for _, r := range replicas {
		if b := s.Brokers[r]; b != nil && !b.Fenced && slices.Contains(candidates, r) {
			return r
		}
	}
	return -1
}

// UncleanElectionConfig is the topic config that lets a replica outside
// the ISR lead when no in-sync replica is left.
const UncleanElectionConfig = "unclean.leader.election.enable"

func (s *State) uncleanAllowed(topic string) bool {
	return s.Topics[topic].Configs[UncleanElectionConfig] == "true"
}

// topicNames returns the topics in name order, so elections walk the
// state in the same order on every broker.
func (s *State) topicNames() []string {
	names := make([]string, 0, len(s.Topics))
	for n := range s.Partitions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func newPartition(replicas []int32) *PartitionInfo {
	return &PartitionInfo{Replicas: slices.Clone(replicas), Leader: replicas[0], ISR: slices.Clone(replicas)}
}

func (s *State) checkAssignment(a [][]int32) error {
	for i, replicas := range a {
		if len(replicas) == 0 {
			return fmt.Errorf("%w: partition %d has no replicas", ErrBadAssignment, i)
		}
		seen := map[int32]bool{}
		for _, r := range replicas {
			if s.Brokers[r] == nil {
				return fmt.Errorf("%w: %d", ErrUnknownBroker, r)
			}
			if seen[r] {
				return fmt.Errorf("%w: broker %d twice in partition %d", ErrBadAssignment, r, i)
			}
			seen[r] = true
		}
	}
	return nil
}

func (s *State) createTopic(c CreateTopic) error {
	t := c.Topic
	if _, ok := s.Topics[t.Name]; ok {
		return fmt.Errorf("%w: %s", ErrTopicExists, t.Name)
	}
	if int(t.Partitions) != len(c.Assignment) || t.Partitions <= 0 {
		return fmt.Errorf("%w: %d partitions, %d assigned", ErrPartitions, t.Partitions, len(c.Assignment))
	}
	if t.ID == (TopicID{}) {
		return fmt.Errorf("%w: topic %s has no id", ErrMalformedCommand, t.Name)
	}
	if err := s.checkAssignment(c.Assignment); err != nil {
		return err
	}
	s.Topics[t.Name] = t
	parts := make([]*PartitionInfo, len(c.Assignment))
	for i, replicas := range c.Assignment {
		parts[i] = newPartition(replicas)
	}
	s.Partitions[t.Name] = parts
	return nil
}

func (s *State) partition(tp TP) (*PartitionInfo, error) {
	parts := s.Partitions[tp.Topic]
	if tp.Partition < 0 || int(tp.Partition) >= len(parts) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPartition, tp)
	}
	return parts[tp.Partition], nil
}

// GroupOffsets returns the committed offsets of every group, for
// group.OffsetStore.Load.
func (s *State) GroupOffsets() map[string][]group.Offset {
	out := map[string][]group.Offset{}
	for g, offs := range s.Offsets {
		for tp, o := range offs {
			out[g] = append(out[g], group.Offset{Topic: tp.Topic, Partition: tp.Partition, Offset: o.Offset,
				LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata, CommitTime: time.UnixMilli(o.CommitMs)})
		}
		offs := out[g]
		sort.Slice(offs, func(i, j int) bool {
			return group.TopicPartition{Topic: offs[i].Topic, Partition: offs[i].Partition}.Less(
				group.TopicPartition{Topic: offs[j].Topic, Partition: offs[j].Partition})
		})
	}
	return out
}

// snapshotState is State as a snapshot stores it: offsets flattened, since
// JSON object keys must be strings.
type snapshotState struct {
	*State
	Index   uint64                    `json:"index"`
	Offsets map[string][]group.Offset `json:"offsets"`
}

// Snapshot captures the state for Raft's snapshot store.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(snapshotState{State: f.state, Index: f.index, Offsets: f.state.GroupOffsets()})
	if err != nil {
		return nil, err
	}
	return fsmSnapshot(b), nil
}

// Restore replaces the state with a snapshot's.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	snap := snapshotState{State: newState()}
	if err := json.NewDecoder(rc).Decode(&snap); err != nil {
		return fmt.Errorf("cluster: restore snapshot: %w", err)
	}
	st := snap.State
	if st.Brokers == nil {
		st.Brokers = map[int32]*BrokerInfo{}
	}
	if st.Topics == nil {
		st.Topics = map[string]Topic{}
	}
	if st.Partitions == nil {
		st.Partitions = map[string][]*PartitionInfo{}
	}
	st.Offsets = map[string]map[TP]committedOffsetState{}
	for g, offs := range snap.Offsets {
		m := map[TP]committedOffsetState{}
		for _, o := range offs {
			m[TP{o.Topic, o.Partition}] = committedOffsetState{Offset: o.Offset, LeaderEpoch: o.LeaderEpoch,
				Metadata: o.Metadata, CommitMs: o.CommitTime.UnixMilli()}
		}
		st.Offsets[g] = m
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = st
	f.advanceLocked(snap.Index)
	f.topologyChangedLocked()
	return nil
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
