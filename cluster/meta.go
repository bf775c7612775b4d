package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/internal/quota"
)

// Meta is the Store of a broker in a Raft quorum: reads come from this
// node's state machine, changes are proposed through the leader and are
// visible here when the call returns.
type Meta struct {
	node    *Node
	timeout time.Duration
	// beforePropose, if set, runs before each proposal (tests).
	beforePropose func(CommandType)
}

var _ Store = (*Meta)(nil)

// NewMeta returns the Store over node.
func NewMeta(node *Node) *Meta { return &Meta{node: node, timeout: 30 * time.Second} }

func (m *Meta) propose(ct CommandType, payload any) (int64, error) {
	if m.beforePropose != nil {
		m.beforePropose(ct)
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	return m.node.Propose(ctx, ct, payload)
}

// Topics returns every topic, sorted by name.
func (m *Meta) Topics() []Topic {
	var out []Topic
	m.node.fsm.Read(func(s *State) {
		for _, t := range s.Topics {
			out = append(out, t)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topic returns one topic.
func (m *Meta) Topic(name string) (t Topic, ok bool) {
	m.node.fsm.Read(func(s *State) { t, ok = s.Topics[name] })
	return t, ok
}

// TopicByID returns the topic with the id.
func (m *Meta) TopicByID(id TopicID) (t Topic, ok bool) {
	m.node.fsm.Read(func(s *State) { t, ok = s.TopicByID(id) })
	return t, ok
}

// Partition returns one partition's replication state.
func (m *Meta) Partition(topic string, partition int32) (p PartitionInfo, ok bool) {
	m.node.fsm.Read(func(s *State) {
		if ps := s.Partitions[topic]; partition >= 0 && int(partition) < len(ps) {
			p, ok = *ps[partition], true
			p.Replicas, p.ISR, p.Segments = append([]int32(nil), p.Replicas...), append([]int32(nil), p.ISR...), nil
		}
	})
	return p, ok
}

// Brokers returns every registered broker, by id.
func (m *Meta) Brokers() []BrokerInfo {
	var out []BrokerInfo
	m.node.fsm.Read(func(s *State) {
		for _, b := range s.Brokers {
			out = append(out, *b)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// CreateTopic adds a topic with its replicas spread over the brokers that
// are not fenced (see Assign); its ID is assigned if zero.
func (m *Meta) CreateTopic(t Topic) (Topic, error) {
	if t.Partitions <= 0 {
		return Topic{}, fmt.Errorf("%w: %d", ErrPartitions, t.Partitions)
	}
	if t.ID == (TopicID{}) {
		t.ID = NewTopicID()
	}
	assignment, err := m.assign(t.Name, 0, int(t.Partitions), t.ReplicationFactor)
	if err != nil {
		return Topic{}, err
	}
	c := CreateTopic{Name: t.Name, ID: uuid(t.ID), ReplicationFactor: t.ReplicationFactor, Configs: t.Configs, Assignment: assignment}
	if _, err := m.propose(CmdCreateTopic, c); err != nil {
		return Topic{}, err
	}
	return t, nil
}

// ErrNotEnoughBrokers: the replication factor asked for is above the
// number of brokers that can hold replicas.
var ErrNotEnoughBrokers = errors.New("cluster: not enough live brokers for the replication factor")

// maxAssign bounds the partitions one assignment may be asked for, far
// above any broker's limit: a count from a request is refused here before
// it allocates, whatever the caller checked.
const maxAssign = 1 << 20

func (m *Meta) assign(topic string, first, n int, rf int16) ([][]int32, error) {
	if n < 0 || n > maxAssign || first < 0 || first > maxAssign-n {
		return nil, fmt.Errorf("%w: partitions %d to %d, at most %d", ErrPartitions, first, first+n-1, maxAssign)
	}
	if rf <= 0 {
		rf = 1
	}
	var live []int32
	racks := map[int32]string{}
	withRack := false
	m.node.fsm.Read(func(s *State) {
		for id, b := range s.Brokers {
			if !b.Fenced {
				live = append(live, id)
				racks[id] = b.Rack
				withRack = withRack || b.Rack != ""
			}
		}
	})
	sort.Slice(live, func(i, j int) bool { return live[i] < live[j] })
	if int(rf) > len(live) {
		return nil, fmt.Errorf("%w: replication factor %d, %d live brokers", ErrNotEnoughBrokers, rf, len(live))
	}
	if withRack {
		return AssignRackAware(live, racks, topic, first, n, int(rf)), nil
	}
	return Assign(live, topic, first, n, int(rf)), nil
}

// Assign spreads n partitions (numbered from first) of topic over brokers:
// partition p's replicas are rf consecutive brokers starting at a
// topic-dependent offset plus p, so leaders (the first replica) rotate
// over the brokers and topics do not all start on the same one.
func Assign(brokers []int32, topic string, first, n, rf int) [][]int32 {
	start := 0
	for _, c := range []byte(topic) {
		start = (start*31 + int(c)) % len(brokers)
	}
	out := make([][]int32, n)
	for i := range out {
		p := first + i
		replicas := make([]int32, rf)
		for r := range replicas {
			replicas[r] = brokers[(start+p+r)%len(brokers)]
		}
		out[i] = replicas
	}
	return out
}

// DeleteTopic removes a topic, its partitions and its committed offsets:
// the topic of that name this broker knows, not one created again since
// (or, if this broker has not seen it yet, whichever has the name).
func (m *Meta) DeleteTopic(name string) error {
	c := DeleteTopic{Name: name}
	if t, ok := m.Topic(name); ok {
		c.ID = uuid(t.ID)
	}
	_, err := m.propose(CmdDeleteTopic, c)
	return err
}

// SetPartitions raises a topic's partition count to n; the new partitions
// get as many replicas as the first one has. As in Kafka, asking for the
// count the topic has is refused (ErrPartitions), so of two requests for
// the same total one succeeds.
func (m *Meta) SetPartitions(name string, n int32) error {
	for attempt := 0; ; attempt++ {
		t, ok := m.Topic(name)
		if !ok {
			return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
		}
		if n == t.Partitions {
			return fmt.Errorf("%w: topic %s already has %d partitions", ErrPartitions, name, n)
		}
		if n < t.Partitions {
			return fmt.Errorf("%w: topic %s has %d partitions, more than the %d asked for", ErrPartitions, name, t.Partitions, n)
		}
		rf := int16(1)
		if p, ok := m.Partition(name, 0); ok {
			rf = int16(len(p.Replicas))
		}
		assignment, err := m.assign(name, int(t.Partitions), int(n-t.Partitions), rf)
		if err != nil {
			return err
		}
		_, err = m.propose(CmdCreatePartitions, CreatePartitions{Name: name, Total: n, Assignment: assignment})
		// Another request added partitions after this one read the count,
		// and the command has been applied here: read it again.
		if errors.Is(err, ErrPartitionsChanged) && attempt < 3 {
			continue
		}
		return err
	}
}

// SetConfigs replaces a topic's explicit configs.
func (m *Meta) SetConfigs(name string, configs map[string]string) error {
	_, err := m.propose(CmdSetConfigs, SetConfigs{Name: name, Configs: configs})
	return err
}

// SetConfigsIf replaces a topic's explicit configs if they are still
// prev; ErrConfigsChanged if not. Once it returns, this broker has applied
// the metadata up to the change, so a refused caller reads fresh configs.
func (m *Meta) SetConfigsIf(name string, prev, configs map[string]string) error {
	if prev == nil {
		prev = map[string]string{}
	}
	_, err := m.propose(CmdSetConfigs, SetConfigs{Name: name, Configs: configs, Prev: &prev})
	return err
}

// AllocateProducerIDs reserves n producer ids and returns the first.
func (m *Meta) AllocateProducerIDs(n int64) (int64, error) {
	return m.propose(CmdAllocateProducerID, AllocateProducerIDs{N: n})
}

// ScramCredential returns a user's SCRAM credential for a mechanism (1
// SCRAM-SHA-256, 2 SCRAM-SHA-512).
func (m *Meta) ScramCredential(user string, mechanism int8) (c ScramCredential, ok bool) {
	m.node.fsm.Read(func(s *State) { c, ok = s.Scram[ScramUser{user, mechanism}] })
	return c, ok
}

// ScramCredentials returns every SCRAM credential, by user and mechanism.
func (m *Meta) ScramCredentials() []ScramCredential {
	var out []ScramCredential
	m.node.fsm.Read(func(s *State) {
		for _, c := range s.Scram {
			out = append(out, c)
		}
	})
	sort.Slice(out, func(i, j int) bool {
		return out[i].User < out[j].User || out[i].User == out[j].User && out[i].Mechanism < out[j].Mechanism
	})
	return out
}

// ScramSecret returns the cluster's SCRAM secret, or nil if none is set.
func (m *Meta) ScramSecret() []byte {
	var out []byte
	m.node.fsm.Read(func(s *State) { out = s.ScramSecret })
	return out
}

// AlterScramCredentials commits a change of SCRAM credentials.
func (m *Meta) AlterScramCredentials(c AlterScramCredentials) error {
	_, err := m.propose(CmdAlterScramCredentials, c)
	return err
}

// Acls returns every ACL binding, in their snapshot order.
func (m *Meta) Acls() []AclBinding {
	var out []AclBinding
	m.node.fsm.Read(func(s *State) { out = s.aclList() })
	return out
}

// AlterAcls commits a deletion and creation of ACL bindings.
func (m *Meta) AlterAcls(c AlterAcls) error {
	_, err := m.propose(CmdAlterAcls, c)
	return err
}

// ClientQuotas returns the client quotas.
func (m *Meta) ClientQuotas() *quota.Config {
	var out *quota.Config
	m.node.fsm.Read(func(s *State) { out = quota.NewConfig(s.ClientQuotas) })
	return out
}

// AlterClientQuotas commits a change of client quotas.
func (m *Meta) AlterClientQuotas(c AlterClientQuotas) error {
	_, err := m.propose(CmdAlterClientQuotas, c)
	return err
}

// BrokerConfigs returns the dynamic configs of a broker, or with
// DefaultBrokerConfigs the cluster-wide defaults; nil if none are set.
func (m *Meta) BrokerConfigs(broker int32) map[string]string {
	var out map[string]string
	m.node.fsm.Read(func(s *State) { out = maps.Clone(s.BrokerConfigs[broker]) })
	return out
}

// SetBrokerConfigs commits the dynamic configs of a broker, or with
// DefaultBrokerConfigs the cluster-wide defaults, replacing those it had.
func (m *Meta) SetBrokerConfigs(broker int32, configs map[string]string) error {
	_, err := m.propose(CmdSetBrokerConfigs, SetBrokerConfigs{Broker: broker, Configs: configs})
	return err
}

// SetBrokerConfigsIf is SetBrokerConfigs if the broker's dynamic configs
// are still prev, as SetConfigsIf.
func (m *Meta) SetBrokerConfigsIf(broker int32, prev, configs map[string]string) error {
	if prev == nil {
		prev = map[string]string{}
	}
	_, err := m.propose(CmdSetBrokerConfigs, SetBrokerConfigs{Broker: broker, Configs: configs, Prev: &prev})
	return err
}

// LegacyOffsets returns the committed offsets an older runnel kept in the
// Raft state, by group: each group's stay there until its coordinator has
// written them into __consumer_offsets and dropped them
// (DropLegacyOffsets).
func (m *Meta) LegacyOffsets() map[string][]group.Offset {
	var out map[string][]group.Offset
	m.node.fsm.Read(func(s *State) { out = s.GroupOffsets() })
	return out
}

// DropLegacyOffsets removes a group's committed offsets from the Raft
// state, once they are in __consumer_offsets.
func (m *Meta) DropLegacyOffsets(g string) error {
	_, err := m.propose(CmdDeleteGroup, DeleteGroup{Group: g})
	return err
}

// Controller returns the controller's broker id: the Raft leader, or -1.
func (m *Meta) Controller() int32 { return m.node.Leader() }

// RaftStatus returns this broker's view of the Raft quorum.
func (m *Meta) RaftStatus() RaftStatus { return m.node.Status() }
