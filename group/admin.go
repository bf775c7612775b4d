package group

import "github.com/twmb/franz-go/pkg/kmsg"

// Listing is one group in ListGroups.
type Listing struct {
	Group        string
	ProtocolType string
	State        State
}

// ListGroups returns every group, by id.
func (c *Coordinator) ListGroups() []Listing {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Listing, 0, len(c.mu.groups))
	for _, g := range c.sortedGroupsLocked() {
		out = append(out, Listing{Group: g.id, ProtocolType: g.protocolType, State: g.state})
	}
	return out
}

// MemberDescription is one member in DescribeGroups.
type MemberDescription struct {
	MemberID   string
	InstanceID string
	ClientID   string
	ClientHost string
	Metadata   []byte // for the group's protocol
	Assignment []byte
}

// Description is DescribeGroups' view of a group.
type Description struct {
	Group        string
	State        State
	ProtocolType string
	Protocol     string
	Generation   int32
	Members      []MemberDescription
}

// Describe returns a group's description; ok is false for an unknown group.
func (c *Coordinator) Describe(groupID string) (Description, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.mu.groups[groupID]
	if g == nil {
		return Description{Group: groupID, State: Dead}, false
	}
	d := Description{Group: g.id, State: g.state, ProtocolType: g.protocolType, Protocol: g.protocol, Generation: g.generation}
	for _, id := range g.joinOrder {
		m := g.members[id]
		md := MemberDescription{MemberID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost}
		if g.state == Stable || g.state == CompletingRebalance {
			md.Metadata = m.metadataFor(g.protocol)
		}
		if g.state == Stable {
			md.Assignment = m.assignment
		}
		d.Members = append(d.Members, md)
	}
	return d, true
}

// DeleteGroups deletes groups without members and their offsets: one error
// per group, ErrGroupNotFound or ErrNonEmptyGroup. It returns once the
// deletions are durable, waiting without the lock.
func (c *Coordinator) DeleteGroups(ids []string) []error {
	errs, waits := c.deleteGroups(ids)
	for i, w := range waits {
		if w == nil {
			continue
		}
		if err := w(); err != nil {
			errs[i] = err
		}
	}
	return errs
}

func (c *Coordinator) deleteGroups(ids []string) ([]error, []func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	errs := make([]error, len(ids))
	waits := make([]func() error, len(ids))
	for i, id := range ids {
		if err := c.checkClosedLocked(); err != nil {
			errs[i] = err
			continue
		}
		g := c.mu.groups[id]
		switch {
		case g == nil:
			errs[i] = ErrGroupNotFound
		case g.state != Empty || len(g.members) > 0:
			errs[i] = ErrNonEmptyGroup
		default:
			tps := make([]TopicPartition, 0, len(g.offsets))
			for tp := range g.offsets {
				tps = append(tps, tp)
			}
			SortTopicPartitions(tps)
			w, err := c.store.DeleteGroup(id, tps)
			if err != nil {
				errs[i] = err
				continue
			}
			waits[i] = w
			for _, t := range g.pending {
				t.Stop()
			}
			g.stopTimers()
			delete(c.mu.groups, id)
			c.log.Info("group deleted", "group", id)
		}
	}
	return errs, waits
}

// subscribedTopics returns the topics the members of a consumer group are
// subscribed to, read from their protocol metadata. A member whose metadata
// does not parse makes the answer "every topic" (the key "").
func (g *group) subscribedTopics() map[string]bool {
	out := map[string]bool{}
	for _, m := range g.members {
		md := m.metadataFor(g.protocol)
		if md == nil && len(m.protocols) > 0 {
			md = m.protocols[0].Metadata
		}
		var meta kmsg.ConsumerMemberMetadata
		if err := meta.ReadFrom(md); err != nil {
			out[""] = true
			continue
		}
		for _, t := range meta.Topics {
			out[t] = true
		}
	}
	return out
}
