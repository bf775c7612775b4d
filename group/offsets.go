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

// OffsetStore keeps committed offsets durably: the partition of
// __consumer_offsets the coordinator serves (see LogStore), or a fake in
// tests.
//
// Every write is called with the coordinator's lock held, in the order the
// coordinator accepts them, and must queue the write in that order without
// waiting for the disk or the network. An error means nothing was written
// and the coordinator does not apply the change; otherwise the returned
// function waits until the write is durable (or reports why it is not).
type OffsetStore interface {
	// Commit records offsets of group.
	Commit(group string, offsets []Offset) (wait func() error, err error)
	// Delete removes some offsets of group.
	Delete(group string, partitions []TopicPartition) (wait func() error, err error)
	// DeleteGroup removes the group and its offsets of partitions.
	DeleteGroup(group string, partitions []TopicPartition) (wait func() error, err error)
	// Load returns every committed offset, by group. It is called once,
	// by New.
	Load() (map[string][]Offset, error)
}

// noWait is the wait of a write that had nothing to make durable.
func noWait() error { return nil }

// waitAll returns a wait for every one of waits, reporting the first
// error.
func waitAll(waits []func() error) func() error {
	return func() error {
		var first error
		for _, w := range waits {
			if err := w(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
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
		return errs, noWait
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
		return errs, noWait
	}
	wait, err := c.store.Commit(req.Group, accepted)
	if err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		c.maybeForgetLocked(g)
		return errs, noWait
	}
	for _, o := range accepted {
		g.setOffset(TopicPartition{o.Topic, o.Partition}, o, c.nextOrderLocked())
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
// type than "consumer" cannot have offsets deleted (ErrNonEmptyGroup). It
// returns once the deletion is durable, and does not hold the lock while it
// waits.
func (c *Coordinator) DeleteOffsets(groupID string, partitions []TopicPartition) ([]error, error) {
	errs, wait, err := c.deleteOffsets(groupID, partitions)
	if err != nil {
		return nil, err
	}
	if err := wait(); err != nil {
		return nil, err
	}
	return errs, nil
}

func (c *Coordinator) deleteOffsets(groupID string, partitions []TopicPartition) ([]error, func() error, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkClosedLocked(); err != nil {
		return nil, nil, err
	}
	g := c.mu.groups[groupID]
	if g == nil {
		return nil, nil, ErrGroupNotFound
	}
	errs := make([]error, len(partitions))
	var subscribed map[string]bool
	if g.state != Empty {
		if g.protocolType != "consumer" {
			return nil, nil, ErrNonEmptyGroup
		}
		subscribed = g.subscribedTopics()
	}
	var gone []TopicPartition
	for i, tp := range partitions {
		if subscribed != nil && (subscribed[tp.Topic] || subscribed[""]) {
			errs[i] = ErrSubscribedToTopic
			continue
		}
		if _, ok := g.offsets[tp]; ok || g.hasTxnOffset(tp) {
			gone = append(gone, tp)
		}
	}
	wait := noWait
	if len(gone) > 0 {
		w, err := c.store.Delete(groupID, gone)
		if err != nil {
			return nil, nil, err
		}
		wait = w
		for _, tp := range gone {
			g.removeOffset(tp)
		}
	}
	c.maybeForgetLocked(g)
	return errs, wait, nil
}

// DeleteTopic removes every group's offsets of a deleted topic. It returns
// once the deletions are durable, without the lock.
func (c *Coordinator) DeleteTopic(topic string) error {
	wait, err := c.deleteTopic(topic)
	if err != nil {
		return err
	}
	return wait()
}

func (c *Coordinator) deleteTopic(topic string) (func() error, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var waits []func() error
	for _, g := range c.sortedGroupsLocked() {
		found := map[TopicPartition]bool{}
		for tp := range g.offsets {
			if tp.Topic == topic {
				found[tp] = true
			}
		}
		for _, pend := range g.txnOffsets {
			for tp := range pend {
				if tp.Topic == topic {
					found[tp] = true
				}
			}
		}
		if len(found) == 0 {
			continue
		}
		gone := make([]TopicPartition, 0, len(found))
		for tp := range found {
			gone = append(gone, tp)
		}
		SortTopicPartitions(gone)
		w, err := c.store.Delete(g.id, gone)
		if err != nil {
			return waitAll(waits), err
		}
		waits = append(waits, w)
		for _, tp := range gone {
			g.removeOffset(tp)
		}
		c.maybeForgetLocked(g)
	}
	return waitAll(waits), nil
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
// group became empty. It returns how many it removed, once their removal
// is durable (waiting without the lock).
func (c *Coordinator) ExpireOffsets() int {
	removed, wait := c.expireOffsets()
	if err := wait(); err != nil {
		c.log.Error("expiring committed offsets: the deletion is not durable", "err", err)
	}
	return removed
}

func (c *Coordinator) expireOffsets() (int, func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return 0, noWait
	}
	var waits []func() error
	now := c.clock.Now()
	removed := 0
	for _, g := range c.sortedGroupsLocked() {
		if g.state != Empty {
			continue
		}
		if len(g.offsets) == 0 {
			// An empty group without offsets (loaded from its
			// metadata alone) goes, with its metadata.
			c.maybeForgetLocked(g)
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
		w, err := c.store.Delete(g.id, gone)
		if err != nil {
			c.log.Error("expiring committed offsets failed", "group", g.id, "err", err)
			continue
		}
		waits = append(waits, w)
		for _, tp := range gone {
			g.removeOffset(tp)
		}
		removed += len(gone)
		c.log.Info("committed offsets expired", "group", g.id, "partitions", len(gone), "retention", c.cfg.OffsetsRetention)
		c.maybeForgetLocked(g)
	}
	return removed, waitAll(waits)
}
