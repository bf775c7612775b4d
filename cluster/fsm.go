package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/internal/quota"
)

// The replicated state machine. Every change to cluster metadata is a
// command in the Raft log (format.go). Every broker applies the same
// commands in the same order, so every broker's State is the same at the
// same log index.
//
// Every command applies at most once. A command that a proposer may send
// again (a forward whose reply was lost, a leader that lost its leadership
// after appending it) is either a compare-and-set on the state it was made
// from (ChangeLeader and ChangeISR at an epoch, CreatePartitions to a
// total, DeleteTopic of an id), idempotent (SegmentRolled, SegmentsDeleted),
// or carries a proposal id that the state machine remembers with its
// result for the last proposalWindow proposals: a proposal seen again
// returns the first result and changes nothing.

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
	// CmdAlterScramCredentials is 15.
	CmdAlterScramCredentials CommandType = 15
	// CmdAlterAcls is 20.
	CmdAlterAcls CommandType = 20
	// CmdAlterClientQuotas is 21.
	CmdAlterClientQuotas CommandType = 21
	// CmdSetBrokerConfigs is 22.
	CmdSetBrokerConfigs CommandType = 22
	// CmdReassignPartition is 23.
	CmdReassignPartition CommandType = 23
	// CmdCompleteReassignment is 24.
	CmdCompleteReassignment CommandType = 24
	// CmdUnregisterBroker is 25.
	CmdUnregisterBroker CommandType = 25
)

// DefaultBrokerConfigs is the broker id under which the cluster-wide
// dynamic broker configs (Kafka's default resource, the empty name) are
// kept; a broker's own are under its id.
const DefaultBrokerConfigs int32 = -1

// proposalWindow is how many deduplicated proposals the state machine
// remembers. A proposal is sent again within its proposer's timeout
// (proposeTimeout, at most 30 s): far fewer metadata changes than this.
const proposalWindow = 8192

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
	// ErrConfigsChanged: a SetConfigs or SetBrokerConfigs with Prev was
	// computed from configs that have changed since.
	ErrConfigsChanged = errors.New("cluster: the configs changed since the change was computed")
	// ErrPartitionsChanged: a CreatePartitions was computed from a
	// partition count that has changed since (still below its total).
	ErrPartitionsChanged = fmt.Errorf("%w: the topic's partition count changed", ErrPartitions)
	// ErrNoReassignment: a cancel or completion of a reassignment where
	// the partition has none in progress (NO_REASSIGNMENT_IN_PROGRESS).
	ErrNoReassignment = errors.New("cluster: no reassignment in progress")
	// ErrBrokerInUse: an UnregisterBroker of a broker that still holds
	// replicas.
	ErrBrokerInUse = errors.New("cluster: the broker still holds replicas")
)

// BrokerInfo is a broker as the cluster knows it.
type BrokerInfo struct {
	ID       int32
	Addr     string // Kafka host:port of its inter-broker listener
	RaftAddr string // host:port of its Raft transport
	Fenced   bool   // stopped heartbeating; leads nothing
	Epoch    int64  // bumped on every registration
	// Listeners are the advertised addresses of its listeners, by name;
	// empty for a broker registered before there were several (see
	// ListenerAddr).
	Listeners []BrokerListener
}

// DefaultListener is the name of the one listener of a broker registered
// without listener names.
const DefaultListener = "PLAINTEXT"

// ListenerAddr returns the advertised address of the broker's listener of
// that name, and false if it has none. A broker registered without
// listener names has one, DefaultListener, at Addr.
func (b BrokerInfo) ListenerAddr(name string) (string, bool) {
	if len(b.Listeners) == 0 {
		return b.Addr, name == DefaultListener
	}
	for _, l := range b.Listeners {
		if l.Name == name {
			return l.Addr, true
		}
	}
	return "", false
}

// PartitionInfo is one partition's replication state.
type PartitionInfo struct {
	Replicas    []int32
	Leader      int32 // -1: none
	LeaderEpoch int32
	ISR         []int32
	// PartitionEpoch is bumped by every change of leader or ISR, so an
	// ISR change computed from an older view is refused.
	PartitionEpoch int32
	// Segments are the base offsets of the partition's segments, oldest
	// first, so every replica rolls at the same offsets.
	Segments []int64
	LogStart int64
	// AddingReplicas and RemovingReplicas are the reassignment in
	// progress (Kafka's names): Replicas holds both the target (first)
	// and the removing replicas until it completes.
	AddingReplicas   []int32
	RemovingReplicas []int32
}

// Reassigning reports whether the partition has a reassignment in
// progress.
func (p *PartitionInfo) Reassigning() bool {
	return len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0
}

// TargetReplicas returns the replicas the partition will have once its
// reassignment completes (its replicas, when it has none).
func (p *PartitionInfo) TargetReplicas() []int32 {
	return slices.DeleteFunc(slices.Clone(p.Replicas), func(r int32) bool { return slices.Contains(p.RemovingReplicas, r) })
}

// OriginalReplicas returns the replicas the partition had before its
// reassignment (its replicas, when it has none).
func (p *PartitionInfo) OriginalReplicas() []int32 {
	return slices.DeleteFunc(slices.Clone(p.Replicas), func(r int32) bool { return slices.Contains(p.AddingReplicas, r) })
}

// TP names a partition in commands and the state.
type TP struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

func (tp TP) String() string { return fmt.Sprintf("%s-%d", tp.Topic, tp.Partition) }

// State is the replicated cluster metadata. It is not itself a persisted
// format: snapshots store it as snapshotV1.
type State struct {
	Brokers        map[int32]*BrokerInfo
	Topics         map[string]Topic
	Partitions     map[string][]*PartitionInfo // by topic, indexed by partition
	Offsets        map[string]map[TP]committedOffsetState
	NextProducerID int64
	// Scram holds the SCRAM credentials by user and mechanism;
	// ScramSecret keys the made-up salts of unknown users (nil until a
	// broker with a SASL listener has set it).
	Scram       map[ScramUser]ScramCredential
	ScramSecret []byte
	// Acls holds the ACL bindings of the authorizer.
	Acls map[AclBinding]struct{}
	// ClientQuotas holds the client quotas: values by key, by entity.
	ClientQuotas map[quota.Entity]map[string]float64
	// BrokerConfigs holds the dynamic broker configs by broker id, the
	// cluster-wide defaults under DefaultBrokerConfigs; a broker without
	// any has no entry.
	BrokerConfigs map[int32]map[string]string
	// Unregistered holds the ids of brokers removed with
	// UnregisterBroker, until they register again: the controller takes
	// them out of the Raft quorum.
	Unregistered map[int32]struct{}

	byID      map[TopicID]string // topic names by id
	proposals proposalLog
}

type committedOffsetState struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	CommitMs    int64
}

func newState() *State {
	return &State{Brokers: map[int32]*BrokerInfo{}, Topics: map[string]Topic{}, Partitions: map[string][]*PartitionInfo{},
		Offsets: map[string]map[TP]committedOffsetState{}, Scram: map[ScramUser]ScramCredential{}, Acls: map[AclBinding]struct{}{},
		ClientQuotas: map[quota.Entity]map[string]float64{}, BrokerConfigs: map[int32]map[string]string{},
		Unregistered: map[int32]struct{}{}, byID: map[TopicID]string{}}
}

// TopicByID returns the topic with the id.
func (s *State) TopicByID(id TopicID) (Topic, bool) {
	name, ok := s.byID[id]
	if !ok {
		return Topic{}, false
	}
	t, ok := s.Topics[name]
	return t, ok
}

// proposalLog remembers the results of the last proposalWindow
// deduplicated proposals, oldest first.
type proposalLog struct {
	byID  map[ProposalID]int // index into ring
	ring  []proposalEntry
	first int // the oldest entry's index in ring, once it is full
}

func (p *proposalLog) lookup(id ProposalID) (proposalEntry, bool) {
	i, ok := p.byID[id]
	if !ok {
		return proposalEntry{}, false
	}
	return p.ring[i], true
}

func (p *proposalLog) add(e proposalEntry) {
	if p.byID == nil {
		p.byID = map[ProposalID]int{}
	}
	if len(p.ring) < proposalWindow {
		p.byID[e.ID] = len(p.ring)
		p.ring = append(p.ring, e)
		return
	}
	delete(p.byID, p.ring[p.first].ID)
	p.ring[p.first] = e
	p.byID[e.ID] = p.first
	p.first = (p.first + 1) % len(p.ring)
}

// entries returns the remembered proposals, oldest first.
func (p *proposalLog) entries() []proposalEntry {
	out := make([]proposalEntry, 0, len(p.ring))
	out = append(out, p.ring[p.first:]...)
	return append(out, p.ring[:p.first]...)
}

// FSM is the state machine Raft applies commands to. Its methods are safe
// for concurrent use; Raft calls Apply from one goroutine.
type FSM struct {
	mu      sync.RWMutex
	state   *State
	index   uint64        // last applied log index
	applied chan struct{} // closed and replaced whenever index moves
	// topology is closed and replaced whenever what replicas follow
	// changes: brokers, topics and their configs, partitions' replicas,
	// leaders, epochs and ISRs. Segment boundaries, offsets and producer
	// ids do not close it.
	topology chan struct{}
	// onBoundaries is told of every partition whose segment boundaries
	// or log start changed.
	onBoundaries func(TP)
	// onAcls is given every ACL binding after each change of them.
	onAcls func([]AclBinding)
	// onQuotas is given the client quotas after each change of them.
	onQuotas func(*quota.Config)
	// onBrokerConfigs is given the dynamic broker configs after each
	// change of them.
	onBrokerConfigs func(map[int32]map[string]string)
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an empty state machine.
func NewFSM() *FSM {
	return &FSM{state: newState(), applied: make(chan struct{}), topology: make(chan struct{})}
}

// TopologyChanged returns a channel closed at the next change of brokers,
// topics or partitions' replicas, leaders and ISRs; not segment
// boundaries (see OnLogBoundaries).
func (f *FSM) TopologyChanged() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.topology
}

// OnLogBoundaries sets fn to be called with each partition whose segment
// boundaries or log start a command changes. fn runs under the state
// machine's lock: it must not block or call the FSM.
func (f *FSM) OnLogBoundaries(fn func(TP)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onBoundaries = fn
}

// OnAclsChanged sets fn to be given every ACL binding now and after
// each change of them (a command, a restored snapshot), so that a reader
// keeps a copy of its own that is never behind this broker's applied
// state. fn runs under the state machine's lock: it must not block or
// call the FSM; the slice is its own.
func (f *FSM) OnAclsChanged(fn func([]AclBinding)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onAcls = fn
	f.aclsChangedLocked()
}

// OnBrokerConfigsChanged sets fn to be given every broker's dynamic
// configs now and after each change of them (a command, a restored
// snapshot), by broker id with the cluster-wide defaults under
// DefaultBrokerConfigs. fn runs under the state machine's lock: it must not
// block or call the FSM; the maps are its own.
func (f *FSM) OnBrokerConfigsChanged(fn func(map[int32]map[string]string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onBrokerConfigs = fn
	f.brokerConfigsChangedLocked()
}

func (f *FSM) brokerConfigsChangedLocked() {
	if f.onBrokerConfigs != nil {
		f.onBrokerConfigs(f.state.brokerConfigsCopy())
	}
}

// brokerConfigsCopy returns a copy of every broker's dynamic configs.
func (s *State) brokerConfigsCopy() map[int32]map[string]string {
	out := make(map[int32]map[string]string, len(s.BrokerConfigs))
	for id, c := range s.BrokerConfigs {
		out[id] = maps.Clone(c)
	}
	return out
}

func (f *FSM) aclsChangedLocked() {
	if f.onAcls != nil {
		f.onAcls(f.state.aclList())
	}
}

// OnClientQuotasChanged sets fn to be given the client quotas now and
// after each change of them (a command, a restored snapshot), as
// OnAclsChanged does the ACLs. fn runs under the state machine's lock: it
// must not block or call the FSM.
func (f *FSM) OnClientQuotasChanged(fn func(*quota.Config)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onQuotas = fn
	f.quotasChangedLocked()
}

func (f *FSM) quotasChangedLocked() {
	if f.onQuotas != nil {
		f.onQuotas(quota.NewConfig(f.state.ClientQuotas))
	}
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
// error if the command was refused (the state is then unchanged), or an
// int64 for commands that produce one (RegisterBroker: the broker epoch;
// ChangeLeader: the leader epoch; AllocateProducerIDs: the first id). A
// proposal applied before returns its first result again.
func (f *FSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceLocked(l.Index)
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := decodeCommand(l.Data)
	dedup := c.id != ProposalID{}
	if dedup {
		if e, seen := f.state.proposals.lookup(c.id); seen {
			return e.result()
		}
	}
	var res any
	var ch change
	if err != nil {
		res = err
	} else {
		res, ch = f.state.apply(c.payload)
	}
	if dedup {
		f.state.proposals.add(newProposalEntry(c.id, res))
	}
	if ch.topology {
		f.topologyChangedLocked()
	}
	if ch.boundaries != nil && f.onBoundaries != nil {
		f.onBoundaries(*ch.boundaries)
	}
	if ch.acls {
		f.aclsChangedLocked()
	}
	if ch.quotas {
		f.quotasChangedLocked()
	}
	if ch.brokerConfigs {
		f.brokerConfigsChangedLocked()
	}
	return res
}

// change says what an applied command changed, for the watchers.
type change struct {
	topology      bool
	boundaries    *TP
	acls          bool
	quotas        bool
	brokerConfigs bool
}

var topologyChange = change{topology: true}

// apply applies one decoded command. A refused command (an error result)
// leaves the state as it was.
func (s *State) apply(payload any) (any, change) {
	switch c := payload.(type) {
	case *RegisterBroker:
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
		delete(s.Unregistered, c.ID)
		br.Addr, br.RaftAddr, br.Fenced = c.Addr, c.RaftAddr, false
		br.Listeners = slices.Clone(c.Listeners)
		br.Epoch++
		s.brokerUp(c.ID)
		return br.Epoch, topologyChange
	case *SetBrokerFenced:
		br := s.Brokers[c.ID]
		if br == nil {
			return fmt.Errorf("%w: %d", ErrUnknownBroker, c.ID), change{}
		}
		if br.Fenced == c.Fenced {
			return nil, change{}
		}
		br.Fenced = c.Fenced
		if c.Fenced {
			s.brokerDown(c.ID)
		} else {
			s.brokerUp(c.ID)
		}
		return nil, topologyChange
	case *CreateTopic:
		if err := s.createTopic(c); err != nil {
			return err, change{}
		}
		return nil, topologyChange
	case *DeleteTopic:
		t, ok := s.Topics[c.Name]
		if !ok {
			return fmt.Errorf("%w: %s", ErrUnknownTopic, c.Name), change{}
		}
		if c.ID != (uuid{}) && TopicID(c.ID) != t.ID {
			return fmt.Errorf("%w: %s has id %s, not %s", ErrUnknownTopic, c.Name, t.ID, TopicID(c.ID)), change{}
		}
		delete(s.Topics, c.Name)
		delete(s.Partitions, c.Name)
		delete(s.byID, t.ID)
		for _, offs := range s.Offsets {
			for tp := range offs {
				if tp.Topic == c.Name {
					delete(offs, tp)
				}
			}
		}
		return nil, topologyChange
	case *CreatePartitions:
		t, ok := s.Topics[c.Name]
		if !ok {
			return fmt.Errorf("%w: %s", ErrUnknownTopic, c.Name), change{}
		}
		switch {
		case c.Total == t.Partitions:
			return fmt.Errorf("%w: topic %s already has %d partitions", ErrPartitions, c.Name, t.Partitions), change{}
		case c.Total < t.Partitions:
			return fmt.Errorf("%w: topic %s has %d partitions, more than the %d asked for", ErrPartitions, c.Name,
				t.Partitions, c.Total), change{}
		case int64(t.Partitions)+int64(len(c.Assignment)) != int64(c.Total):
			return fmt.Errorf("%w: topic %s has %d partitions; %d new ones do not make %d", ErrPartitionsChanged, c.Name,
				t.Partitions, len(c.Assignment), c.Total), change{}
		}
		return s.addPartitions(c.Name, c.Assignment)
	case *v0CreatePartitions:
		if _, ok := s.Topics[c.Name]; !ok {
			return fmt.Errorf("%w: %s", ErrUnknownTopic, c.Name), change{}
		}
		return s.addPartitions(c.Name, c.Assignment)
	case *SetConfigs:
		t, ok := s.Topics[c.Name]
		if !ok {
			return fmt.Errorf("%w: %s", ErrUnknownTopic, c.Name), change{}
		}
		if c.Prev != nil && !maps.Equal(*c.Prev, t.Configs) {
			return fmt.Errorf("%w: topic %s", ErrConfigsChanged, c.Name), change{}
		}
		t.Configs = c.Configs
		s.Topics[c.Name] = t
		return nil, topologyChange
	case *ChangeLeader:
		p, err := s.partition(c.TP)
		if err != nil {
			return err, change{}
		}
		if p.LeaderEpoch != c.PrevEpoch {
			return fmt.Errorf("%w: %s at epoch %d, command for %d", ErrStaleLeaderEpoch, c.TP, p.LeaderEpoch, c.PrevEpoch), change{}
		}
		if c.Leader != -1 && !slices.Contains(p.Replicas, c.Leader) {
			return fmt.Errorf("%w: broker %d, %s", ErrNotReplica, c.Leader, c.TP), change{}
		}
		for _, r := range c.ISR {
			if !slices.Contains(p.Replicas, r) {
				return fmt.Errorf("%w: broker %d in the ISR of %s", ErrNotReplica, r, c.TP), change{}
			}
		}
		p.Leader, p.ISR = c.Leader, slices.Clone(c.ISR)
		p.LeaderEpoch++
		p.PartitionEpoch++
		return int64(p.LeaderEpoch), topologyChange
	case *ChangeISR:
		p, err := s.partition(c.TP)
		if err != nil {
			return err, change{}
		}
		if p.LeaderEpoch != c.LeaderEpoch || p.Leader != c.Leader {
			return fmt.Errorf("%w: %s led by %d at epoch %d, command from %d at %d", ErrStaleLeaderEpoch, c.TP,
				p.Leader, p.LeaderEpoch, c.Leader, c.LeaderEpoch), change{}
		}
		if p.PartitionEpoch != c.PartitionEpoch {
			return fmt.Errorf("%w: %s at partition epoch %d, command for %d", ErrStaleLeaderEpoch, c.TP,
				p.PartitionEpoch, c.PartitionEpoch), change{}
		}
		if !slices.Contains(c.ISR, c.Leader) {
			return fmt.Errorf("%w: the ISR of %s must hold its leader", ErrBadAssignment, c.TP), change{}
		}
		for _, r := range c.ISR {
			if !slices.Contains(p.Replicas, r) {
				return fmt.Errorf("%w: broker %d in the ISR of %s", ErrNotReplica, r, c.TP), change{}
			}
		}
		p.ISR = slices.Clone(c.ISR)
		p.PartitionEpoch++
		return nil, topologyChange
	case *SegmentRolled:
		p, err := s.partition(c.TP)
		if err != nil {
			return err, change{}
		}
		if _, found := slices.BinarySearch(p.Segments, c.Base); found {
			return nil, change{} // recorded already: a proposal sent again
		}
		if n := len(p.Segments); n > 0 && c.Base < p.Segments[n-1] {
			return fmt.Errorf("%w: %s base %d after %d", ErrSegmentOutOfOrder, c.TP, c.Base, p.Segments[n-1]), change{}
		}
		p.Segments = append(p.Segments, c.Base)
		return nil, change{boundaries: &c.TP}
	case *SegmentsDeleted:
		p, err := s.partition(c.TP)
		if err != nil {
			return err, change{}
		}
		if c.LogStart <= p.LogStart {
			return nil, change{}
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
		return nil, change{boundaries: &c.TP}
	case *CommitOffsets:
		offs := s.Offsets[c.Group]
		if offs == nil {
			offs = map[TP]committedOffsetState{}
			s.Offsets[c.Group] = offs
		}
		for _, o := range c.Offsets {
			offs[TP{o.Topic, o.Partition}] = committedOffsetState{Offset: o.Offset, LeaderEpoch: o.LeaderEpoch,
				Metadata: o.Metadata, CommitMs: o.CommitMs}
		}
		return nil, change{}
	case *DeleteOffsets:
		for _, tp := range c.Partitions {
			delete(s.Offsets[c.Group], tp)
		}
		if len(s.Offsets[c.Group]) == 0 {
			delete(s.Offsets, c.Group)
		}
		return nil, change{}
	case *DeleteGroup:
		delete(s.Offsets, c.Group)
		return nil, change{}
	case *AllocateProducerIDs:
		if c.N <= 0 {
			return fmt.Errorf("%w: allocate %d producer ids", ErrMalformedCommand, c.N), change{}
		}
		first := s.NextProducerID
		s.NextProducerID += c.N
		return first, change{}
	case *AlterScramCredentials:
		return s.alterScram(c), change{}
	case *AlterAcls:
		if err := s.alterAcls(c); err != nil {
			return err, change{}
		}
		return nil, change{acls: true}
	case *AlterClientQuotas:
		if err := s.alterClientQuotas(c); err != nil {
			return err, change{}
		}
		return nil, change{quotas: true}
	case *SetBrokerConfigs:
		if c.Broker < DefaultBrokerConfigs || c.Broker == 0 {
			return fmt.Errorf("%w: dynamic configs of broker %d", ErrMalformedCommand, c.Broker), change{}
		}
		if c.Prev != nil && !maps.Equal(*c.Prev, s.BrokerConfigs[c.Broker]) {
			return fmt.Errorf("%w: broker %d", ErrConfigsChanged, c.Broker), change{}
		}
		if len(c.Configs) == 0 {
			delete(s.BrokerConfigs, c.Broker)
		} else {
			s.BrokerConfigs[c.Broker] = maps.Clone(c.Configs)
		}
		// Topology: replicas resolve their topic configs over the
		// brokers' dynamic defaults again.
		return nil, change{topology: true, brokerConfigs: true}
	case *ReassignPartition:
		if err := s.reassign(c); err != nil {
			return err, change{}
		}
		return nil, topologyChange
	case *CompleteReassignment:
		if err := s.completeReassignment(c); err != nil {
			return err, change{}
		}
		return nil, topologyChange
	case *UnregisterBroker:
		if err := s.unregisterBroker(c); err != nil {
			return err, change{}
		}
		return nil, change{topology: true, brokerConfigs: true}
	}
	panic(fmt.Sprintf("cluster: no apply for decoded command %T", payload))
}

func (s *State) addPartitions(name string, assignment [][]int32) (any, change) {
	if len(assignment) == 0 {
		return fmt.Errorf("%w: no new partitions for %s", ErrPartitions, name), change{}
	}
	if err := s.checkAssignment(assignment); err != nil {
		return err, change{}
	}
	for _, replicas := range assignment {
		s.Partitions[name] = append(s.Partitions[name], newPartition(replicas))
	}
	t := s.Topics[name]
	t.Partitions += int32(len(assignment))
	s.Topics[name] = t
	return nil, topologyChange
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

func (s *State) createTopic(c *CreateTopic) error {
	if _, ok := s.Topics[c.Name]; ok {
		return fmt.Errorf("%w: %s", ErrTopicExists, c.Name)
	}
	if len(c.Assignment) == 0 {
		return fmt.Errorf("%w: topic %s with no partitions", ErrPartitions, c.Name)
	}
	id := TopicID(c.ID)
	if id == (TopicID{}) {
		return fmt.Errorf("%w: topic %s has no id", ErrMalformedCommand, c.Name)
	}
	if other, ok := s.byID[id]; ok {
		return fmt.Errorf("%w: topic %s has the id %s already", ErrTopicExists, other, id)
	}
	if err := s.checkAssignment(c.Assignment); err != nil {
		return err
	}
	s.Topics[c.Name] = Topic{Name: c.Name, ID: id, Partitions: int32(len(c.Assignment)), Configs: c.Configs,
		ReplicationFactor: c.ReplicationFactor}
	s.byID[id] = c.Name
	parts := make([]*PartitionInfo, len(c.Assignment))
	for i, replicas := range c.Assignment {
		parts[i] = newPartition(replicas)
	}
	s.Partitions[c.Name] = parts
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

// alterScram applies an AlterScramCredentials, all of it or (a malformed
// entry) none.
func (s *State) alterScram(c *AlterScramCredentials) error {
	valid := func(u string, m int8) bool { return u != "" && (m == 1 || m == 2) }
	for _, d := range c.Deletions {
		if !valid(d.User, d.Mechanism) {
			return fmt.Errorf("%w: SCRAM deletion %q mechanism %d", ErrMalformedCommand, d.User, d.Mechanism)
		}
	}
	for _, u := range c.Upsertions {
		if !valid(u.User, u.Mechanism) || len(u.Salt) == 0 || u.Iterations <= 0 || len(u.StoredKey) == 0 || len(u.ServerKey) == 0 {
			return fmt.Errorf("%w: SCRAM credential %q mechanism %d", ErrMalformedCommand, u.User, u.Mechanism)
		}
	}
	for _, d := range c.Deletions {
		delete(s.Scram, d)
	}
	for _, u := range c.Upsertions {
		k := ScramUser{u.User, u.Mechanism}
		if _, ok := s.Scram[k]; ok && u.IfAbsent {
			continue
		}
		u.IfAbsent = false
		s.Scram[k] = u
	}
	if len(s.ScramSecret) == 0 && len(c.Secret) > 0 {
		s.ScramSecret = slices.Clone(c.Secret)
	}
	return nil
}

// alterAcls applies an AlterAcls, all of it or (a malformed binding) none.
func (s *State) alterAcls(c *AlterAcls) error {
	for _, list := range [][]AclBinding{c.Deletions, c.Creations} {
		for _, b := range list {
			if err := b.validate(); err != nil {
				return err
			}
		}
	}
	for _, b := range c.Deletions {
		delete(s.Acls, b)
	}
	for _, b := range c.Creations {
		s.Acls[b] = struct{}{}
	}
	return nil
}

// aclList returns the ACL bindings in their snapshot order.
func (s *State) aclList() []AclBinding {
	out := make([]AclBinding, 0, len(s.Acls))
	for b := range s.Acls {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].less(out[j]) })
	return out
}

// alterClientQuotas applies an AlterClientQuotas, all of it or (a
// malformed entry) none: each entry's removals, then its values.
func (s *State) alterClientQuotas(c *AlterClientQuotas) error {
	entities := make([]quota.Entity, len(c.Entries))
	for i, a := range c.Entries {
		e, err := parseQuotaEntity(a.Entity)
		if err != nil {
			return err
		}
		for _, k := range a.Remove {
			if err := quota.ValidateKey(k); err != nil {
				return fmt.Errorf("%w: %v", ErrMalformedCommand, err)
			}
		}
		for k, v := range a.Set {
			if err := quota.ValidateValue(k, v); err != nil {
				return fmt.Errorf("%w: %v", ErrMalformedCommand, err)
			}
		}
		entities[i] = e
	}
	for i, a := range c.Entries {
		e := entities[i]
		vals := s.ClientQuotas[e]
		for _, k := range a.Remove {
			delete(vals, k)
		}
		if len(a.Set) > 0 && vals == nil {
			vals = map[string]float64{}
			s.ClientQuotas[e] = vals
		}
		for k, v := range a.Set {
			vals[k] = v
		}
		if len(vals) == 0 {
			delete(s.ClientQuotas, e)
		}
	}
	return nil
}

// clientQuotaList returns the client quotas in their snapshot order.
func (s *State) clientQuotaList() []ClientQuota {
	es := make([]quota.Entity, 0, len(s.ClientQuotas))
	for e := range s.ClientQuotas {
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].Less(es[j]) })
	out := make([]ClientQuota, len(es))
	for i, e := range es {
		out[i] = ClientQuota{Entity: quotaEntityParts(e), Values: maps.Clone(s.ClientQuotas[e])}
	}
	return out
}
