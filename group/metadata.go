package group

import "time"

// GroupStore is an OffsetStore that also keeps each group's metadata:
// Kafka's GroupMetadata records, written when a generation's assignment
// is complete and when the group empties. Tools that read the log see
// the members and their assignments, and a coordinator that loads the
// groups elsewhere goes on from their generation numbers, so a member of
// an old generation is never taken for one of a new generation.
// Membership itself is not restored: members rejoin.
type GroupStore interface {
	OffsetStore
	// StoreGroup records the group's metadata. Like every write it is
	// called under the coordinator's lock and must not wait.
	StoreGroup(rec GroupRecord) (wait func() error, err error)
	// LoadGroups returns the metadata of every group, once, by New.
	LoadGroups() map[string]GroupRecord
}

// GroupRecord is a group's metadata as the log keeps it.
type GroupRecord struct {
	Group        string
	ProtocolType string
	Protocol     string // empty while the group has no members
	Leader       string
	Generation   int32
	StateTime    time.Time
	Members      []MemberRecord
}

// MemberRecord is one member in a GroupRecord.
type MemberRecord struct {
	MemberID         string
	InstanceID       string
	ClientID         string
	ClientHost       string
	RebalanceTimeout time.Duration
	SessionTimeout   time.Duration
	Subscription     []byte // the member's metadata for the group's protocol
	Assignment       []byte
}

// storeGroupLocked records g's metadata if the store keeps it. The write
// is not waited for: the record serves tools and later coordinators, and a
// lost one costs members nothing but a rejoin.
func (c *Coordinator) storeGroupLocked(g *group) {
	gs, ok := c.store.(GroupStore)
	if !ok {
		return
	}
	rec := GroupRecord{Group: g.id, ProtocolType: g.protocolType, Protocol: g.protocol, Leader: g.leader,
		Generation: g.generation, StateTime: c.clock.Now()}
	if g.state == Stable {
		for _, id := range g.joinOrder {
			m := g.members[id]
			rec.Members = append(rec.Members, MemberRecord{MemberID: m.id, InstanceID: m.instanceID, ClientID: m.clientID,
				ClientHost: m.clientHost, RebalanceTimeout: m.rebalanceTimeout, SessionTimeout: m.sessionTimeout,
				Subscription: m.metadataFor(g.protocol), Assignment: m.assignment})
		}
	}
	if _, err := gs.StoreGroup(rec); err != nil {
		c.log.Warn("recording a group's metadata failed", "group", g.id, "generation", g.generation, "err", err)
		return
	}
	g.stored = true
}

// loadGroupsLocked restores the generation and protocol type of the
// groups whose metadata the store keeps; their members rejoin.
func (c *Coordinator) loadGroupsLocked(now time.Time) {
	gs, ok := c.store.(GroupStore)
	if !ok {
		return
	}
	for id, rec := range gs.LoadGroups() {
		g := c.mu.groups[id]
		if g == nil {
			g = c.newGroupLocked(id, now)
		}
		g.generation, g.protocolType, g.stored = rec.Generation, rec.ProtocolType, true
		if len(rec.Members) == 0 && rec.StateTime.Before(g.emptySince) {
			g.emptySince = rec.StateTime
		}
	}
}
