package group

import (
	"errors"
	"sort"
	"time"
)

// Offsets committed in transactions (TxnOffsetCommit).
//
// A transactional commit is written as a transactional batch of its
// producer and stays pending, invisible to FetchOffsets, until the
// producer's transaction ends on the coordinator's partition: a commit
// marker makes each of its offsets the group's committed one, unless the
// offset committed for that partition now was written after it (a later
// OffsetCommit wins, as in Kafka); an abort marker drops them. Each
// committed offset remembers its place in the store's order for that
// rule: loaded ones the place the store gives, later ones a counter past
// every loaded place.
//
// Removing a partition's offsets (OffsetDelete, a deleted topic,
// retention) writes a tombstone that removes its pending transactional
// offsets too, and deleting a group removes all of them; a load applies
// the same rules to the records it replays.

// ErrTxnNotSupported: the coordinator's store cannot write transactional
// commits (COORDINATOR_NOT_AVAILABLE).
var ErrTxnNotSupported = errors.New("group: the offset store does not take transactional commits")

// TxnStore is an OffsetStore that also writes transactional commits.
type TxnStore interface {
	OffsetStore
	// CommitTxn records offsets of group in a transaction of the
	// producer at epoch. Like every write it is called under the
	// coordinator's lock and must not wait.
	CommitTxn(group string, producerID int64, epoch int16, offsets []Offset) (wait func() error, err error)
	// LoadTxn returns, once, after Load, where each loaded offset stands
	// in the store's order and the transactional offsets still pending.
	LoadTxn() TxnLoad
}

// TxnLoad is what a TxnStore's load leaves of transactions.
type TxnLoad struct {
	// Order is the place of each loaded committed offset, by group and
	// partition: greater is later.
	Order map[string]map[TopicPartition]int64
	// Pending are the transactional offsets whose transaction has not
	// ended, in store order.
	Pending []PendingOffset
}

// PendingOffset is an offset committed in a transaction that has not
// ended.
type PendingOffset struct {
	Group      string
	ProducerID int64
	Offset     Offset
	Order      int64 // its place in the store's order
}

// txnOffset is a pending transactional offset in memory.
type txnOffset struct {
	o     Offset
	order int64
}

// TxnCommitRequest is a TxnOffsetCommit. Generation -1, an empty member id
// and instance id skip the membership checks (clients before KIP-447 send
// none).
type TxnCommitRequest struct {
	Group         string
	ProducerID    int64
	ProducerEpoch int16
	Generation    int32
	MemberID      string
	InstanceID    string
	Offsets       []Offset
}

// CommitTxn handles a TxnOffsetCommit: it returns one error per offset
// and a function that waits until the accepted ones are durable. They
// become visible when the producer's transaction commits (CompleteTxn).
func (c *Coordinator) CommitTxn(req TxnCommitRequest) ([]error, func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	errs := make([]error, len(req.Offsets))
	fail := func(err error) ([]error, func() error) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs, noWait
	}
	if err := c.txnCommitAllowedLocked(req); err != nil {
		return fail(err)
	}
	ts, ok := c.store.(TxnStore)
	if !ok {
		return fail(ErrTxnNotSupported)
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
		return errs, noWait
	}
	wait, err := ts.CommitTxn(req.Group, req.ProducerID, req.ProducerEpoch, accepted)
	if err != nil {
		return fail(err)
	}
	g := c.mu.groups[req.Group]
	if g == nil {
		g = c.newGroupLocked(req.Group, now)
	}
	for _, o := range accepted {
		c.addTxnOffsetLocked(g, req.ProducerID, o, c.nextOrderLocked())
	}
	return errs, wait
}

// txnCommitAllowedLocked applies Kafka's checks of a TxnOffsetCommit: a
// group that does not exist is created; a member id, generation or
// instance id given must match the group's.
func (c *Coordinator) txnCommitAllowedLocked(req TxnCommitRequest) error {
	if err := c.checkClosedLocked(); err != nil {
		return err
	}
	if req.Group == "" {
		return ErrInvalidGroupID
	}
	g := c.mu.groups[req.Group]
	if g == nil {
		// Kafka creates the group: no members, generation 0.
		g = &group{}
	}
	if req.InstanceID != "" {
		if id, ok := g.static[req.InstanceID]; ok && id != req.MemberID {
			return ErrFencedInstanceID
		}
	}
	if req.MemberID != "" {
		m := g.members[req.MemberID]
		if m == nil {
			return ErrUnknownMember
		}
		if req.InstanceID != "" && m.instanceID != req.InstanceID {
			return ErrFencedInstanceID
		}
	}
	if req.Generation >= 0 && req.Generation != g.generation {
		return ErrIllegalGeneration
	}
	return nil
}

// CompleteTxn applies the end of the producer's transaction on the
// coordinator's partition, a commit or an abort marker, to every group
// with offsets pending in it. It returns how many offsets became
// committed.
func (c *Coordinator) CompleteTxn(producerID int64, commit bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return 0
	}
	n := 0
	ids := c.mu.txnGroups[producerID]
	delete(c.mu.txnGroups, producerID)
	for id := range ids {
		g := c.mu.groups[id]
		if g == nil {
			continue
		}
		pend, ok := g.txnOffsets[producerID]
		if !ok {
			continue
		}
		delete(g.txnOffsets, producerID)
		if commit {
			for tp, p := range pend {
				if _, ok := g.offsets[tp]; ok && g.order[tp] > p.order {
					continue // a later commit of the partition stands
				}
				g.setOffset(tp, p.o, p.order)
				n++
			}
		}
		c.maybeForgetLocked(g)
	}
	return n
}

// PendingTxn reports which of the partitions have transactional offsets
// of the group pending (OffsetFetch with RequireStable answers
// UNSTABLE_OFFSET_COMMIT for them); all partitions when partitions is nil.
func (c *Coordinator) PendingTxn(groupID string, partitions []TopicPartition) map[TopicPartition]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[TopicPartition]bool{}
	g := c.mu.groups[groupID]
	if g == nil {
		return out
	}
	for _, pend := range g.txnOffsets {
		for tp := range pend {
			out[tp] = true
		}
	}
	if partitions != nil {
		asked := make(map[TopicPartition]bool, len(out))
		for _, tp := range partitions {
			if out[tp] {
				asked[tp] = true
			}
		}
		out = asked
	}
	return out
}

// PendingProducers returns the producer ids with transactional offsets
// pending in any group, in order.
func (c *Coordinator) PendingProducers() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[int64]bool{}
	for _, g := range c.mu.groups {
		for pid := range g.txnOffsets {
			seen[pid] = true
		}
	}
	out := make([]int64, 0, len(seen))
	for pid := range seen {
		out = append(out, pid)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// addTxnOffsetLocked makes o a pending offset of the producer in g.
func (c *Coordinator) addTxnOffsetLocked(g *group, producerID int64, o Offset, order int64) {
	if g.txnOffsets == nil {
		g.txnOffsets = map[int64]map[TopicPartition]txnOffset{}
	}
	pend := g.txnOffsets[producerID]
	if pend == nil {
		pend = map[TopicPartition]txnOffset{}
		g.txnOffsets[producerID] = pend
	}
	pend[TopicPartition{o.Topic, o.Partition}] = txnOffset{o: o, order: order}
	if c.mu.txnGroups == nil {
		c.mu.txnGroups = map[int64]map[string]bool{}
	}
	ids := c.mu.txnGroups[producerID]
	if ids == nil {
		ids = map[string]bool{}
		c.mu.txnGroups[producerID] = ids
	}
	ids[g.id] = true
}

// nextOrderLocked is the place of a write accepted now.
func (c *Coordinator) nextOrderLocked() int64 {
	c.mu.order++
	return c.mu.order
}

// setOffset makes o the committed offset of tp, placed at order.
func (g *group) setOffset(tp TopicPartition, o Offset, order int64) {
	g.offsets[tp] = o
	if g.order == nil {
		g.order = map[TopicPartition]int64{}
	}
	g.order[tp] = order
}

// removeOffset removes tp's committed offset and its pending
// transactional ones, as its tombstone does.
func (g *group) removeOffset(tp TopicPartition) {
	delete(g.offsets, tp)
	delete(g.order, tp)
	for pid, pend := range g.txnOffsets {
		delete(pend, tp)
		if len(pend) == 0 {
			delete(g.txnOffsets, pid)
		}
	}
}

// hasTxnOffset reports whether tp has a pending transactional offset.
func (g *group) hasTxnOffset(tp TopicPartition) bool {
	for _, pend := range g.txnOffsets {
		if _, ok := pend[tp]; ok {
			return true
		}
	}
	return false
}

// loadTxnLocked restores the places of the loaded offsets and the pending
// transactional ones, and starts the counter past them.
func (c *Coordinator) loadTxnLocked(now time.Time) {
	ts, ok := c.store.(TxnStore)
	if !ok {
		return
	}
	ld := ts.LoadTxn()
	top := c.mu.order
	for id, m := range ld.Order {
		g := c.mu.groups[id]
		for tp, order := range m {
			top = max(top, order)
			if g == nil {
				continue
			}
			if o, ok := g.offsets[tp]; ok {
				g.setOffset(tp, o, order)
			}
		}
	}
	for _, p := range ld.Pending {
		top = max(top, p.Order)
		g := c.mu.groups[p.Group]
		if g == nil {
			g = c.newGroupLocked(p.Group, now)
		}
		c.addTxnOffsetLocked(g, p.ProducerID, p.Offset, p.Order)
	}
	c.mu.order = top
}
