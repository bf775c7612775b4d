package group

import (
	"sort"
	"time"
)

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Less orders partitions by topic, then partition.
func (tp TopicPartition) Less(o TopicPartition) bool {
	return tp.Topic < o.Topic || tp.Topic == o.Topic && tp.Partition < o.Partition
}

// SortTopicPartitions sorts tps by topic, then partition.
func SortTopicPartitions(tps []TopicPartition) {
	sort.Slice(tps, func(i, j int) bool { return tps[i].Less(tps[j]) })
}

// Offset is a committed offset.
type Offset struct {
	Topic       string
	Partition   int32
	Offset      int64
	LeaderEpoch int32 // -1 if the committer did not say
	Metadata    string
	CommitTime  time.Time
}

// OffsetStore keeps committed offsets durably. The single-broker
// implementation is a local database; the cluster replicates them.
type OffsetStore interface {
	// Commit records offsets of group. It is called with the
	// coordinator's lock held, in the order the commits are accepted, and
	// must apply them in that order without waiting for the disk; the
	// returned function waits until they are durable.
	Commit(group string, offsets []Offset) (wait func() error)
	// Delete removes some offsets of group, durably.
	Delete(group string, partitions []TopicPartition) error
	// DeleteGroup removes every offset of group, durably.
	DeleteGroup(group string) error
	// Load returns every committed offset, by group.
	Load() (map[string][]Offset, error)
}

// CommitRequest is an OffsetCommit. A commit outside group membership
// (an admin tool, or a consumer that assigns partitions itself) has
// generation -1 and no member id.
type CommitRequest struct {
	Group      string
	Generation int32
	MemberID   string
	InstanceID string
	Offsets    []Offset
}

// Commit handles an OffsetCommit. It returns one error per offset (nil for
// committed ones) and a function that waits until the committed ones are
// durable. An error that concerns the whole request is returned for every
// offset.
func (c *Coordinator) Commit(req CommitRequest) ([]error, func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	errs := make([]error, len(req.Offsets))
	if err := c.commitAllowedLocked(req); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs, func() error { return nil }
	}
	g := c.mu.groups[req.Group]
	if g == nil {
		g = c.newGroupLocked(req.Group, c.clock.Now())
	}
	now := c.clock.Now()
	accepted := make([]Offset, 0, len(req.Offsets))
	for i, o := range req.Offsets {
		switch {
		case len(o.Metadata) > c.cfg.MaxOffsetMetadata:
			errs[i] = ErrMetadataTooLarge
		case !c.cfg.PartitionExists(o.Topic, o.Partition):
			errs[i] = ErrUnknownPartition
		default:
			o.CommitTime = now
			accepted = append(accepted, o)
		}
	}
	if len(accepted) == 0 {
		c.maybeForgetLocked(g)
		return errs, func() error { return nil }
	}
	wait := c.store.Commit(req.Group, accepted)
	for _, o := range accepted {
		g.offsets[TopicPartition{o.Topic, o.Partition}] = o
	}
	return errs, wait
}

// commitAllowedLocked applies Kafka's checks of who may commit.
func (c *Coordinator) commitAllowedLocked(req CommitRequest) error {
	if err := c.checkClosedLocked(); err != nil {
		return err
	}
	if req.Group == "" {
		return ErrInvalidGroupID
	}
	g := c.mu.groups[req.Group]
	if g == nil {
		if req.Generation >= 0 {
			return ErrIllegalGeneration
		}
		return nil
	}
	if req.Generation < 0 && req.MemberID == "" && g.state == Empty {
		return nil
	}
	if g.state == CompletingRebalance {
		return ErrRebalanceInProgress
	}
	m, err := g.memberOf(req.MemberID, req.InstanceID)
	if err != nil {
		return err
	}
	if req.Generation != g.generation {
		return ErrIllegalGeneration
	}
	c.heartbeatLocked(g, m)
	return nil
}

// FetchOffsets returns group's committed offsets for the partitions, or all
// of them if partitions is nil. A partition with no commit is absent.
func (c *Coordinator) FetchOffsets(groupID string, partitions []TopicPartition) (map[TopicPartition]Offset, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkClosedLocked(); err != nil {
		return nil, err
	}
	out := map[TopicPartition]Offset{}
	g := c.mu.groups[groupID]
	if g == nil {
		return out, nil
	}
	if partitions == nil {
		for tp, o := range g.offsets {
			out[tp] = o
		}
		return out, nil
	}
	for _, tp := range partitions {
		if o, ok := g.offsets[tp]; ok {
			out[tp] = o
		}
	}
	return out, nil
}

// DeleteOffsets handles an OffsetDelete: it removes the group's offsets of
// the partitions, except those of topics a member is subscribed to
// (ErrSubscribedToTopic for each). A group with members of another protocol
// type than "consumer" cannot have offsets deleted (ErrNonEmptyGroup).
func (c *Coordinator) DeleteOffsets(groupID string, partitions []TopicPartition) ([]error, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkClosedLocked(); err != nil {
		return nil, err
	}
	g := c.mu.groups[groupID]
	if g == nil {
		return nil, ErrGroupNotFound
	}
	errs := make([]error, len(partitions))
	var subscribed map[string]bool
	if g.state != Empty {
		if g.protocolType != "consumer" {
			return nil, ErrNonEmptyGroup
		}
		subscribed = g.subscribedTopics()
	}
	var gone []TopicPartition
	for i, tp := range partitions {
		if subscribed != nil && (subscribed[tp.Topic] || subscribed[""]) {
			errs[i] = ErrSubscribedToTopic
			continue
		}
		if _, ok := g.offsets[tp]; ok {
			gone = append(gone, tp)
		}
	}
	if len(gone) > 0 {
		if err := c.store.Delete(groupID, gone); err != nil {
			return nil, err
		}
		for _, tp := range gone {
			delete(g.offsets, tp)
		}
	}
	c.maybeForgetLocked(g)
	return errs, nil
}

// DeleteTopic removes every group's offsets of a deleted topic.
func (c *Coordinator) DeleteTopic(topic string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.sortedGroupsLocked() {
		var gone []TopicPartition
		for tp := range g.offsets {
			if tp.Topic == topic {
				gone = append(gone, tp)
			}
		}
		if len(gone) == 0 {
			continue
		}
		if err := c.store.Delete(g.id, gone); err != nil {
			return err
		}
		for _, tp := range gone {
			delete(g.offsets, tp)
		}
		c.maybeForgetLocked(g)
	}
	return nil
}

func (c *Coordinator) retentionTick() {
	c.ExpireOffsets()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mu.closed {
		c.mu.retentionTimer = c.clock.AfterFunc(c.cfg.RetentionCheckInterval, c.retentionTick)
	}
}

// ExpireOffsets removes the offsets of groups without members that are
// older than the retention: older both since their commit and since the
// group became empty. It returns how many it removed.
func (c *Coordinator) ExpireOffsets() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return 0
	}
	now := c.clock.Now()
	removed := 0
	for _, g := range c.sortedGroupsLocked() {
		if g.state != Empty || len(g.offsets) == 0 {
			continue
		}
		var gone []TopicPartition
		for tp, o := range g.offsets {
			since := o.CommitTime
			if g.emptySince.After(since) {
				since = g.emptySince
			}
			if now.Sub(since) >= c.cfg.OffsetsRetention {
				gone = append(gone, tp)
			}
		}
		if len(gone) == 0 {
			continue
		}
		SortTopicPartitions(gone)
		if err := c.store.Delete(g.id, gone); err != nil {
			c.log.Error("expiring committed offsets failed", "group", g.id, "err", err)
			continue
		}
		for _, tp := range gone {
			delete(g.offsets, tp)
		}
		removed += len(gone)
		c.log.Info("committed offsets expired", "group", g.id, "partitions", len(gone), "retention", c.cfg.OffsetsRetention)
		c.maybeForgetLocked(g)
	}
	return removed
}
