package partition

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/runnel-io/runnel/segment"
)

// Replication state of one partition replica. The replica is either the
// partition's leader at some leader epoch, appending producers' batches and
// keeping the ISR and high watermark, or a follower appending the batches
// it fetches from the leader. Who leads, the epoch and the ISR come from the
// cluster metadata (package replica sets them here).

// Errors of replication, each a Kafka error code.
var (
	// ErrNotLeader: this replica does not lead the partition
	// (NOT_LEADER_OR_FOLLOWER).
	ErrNotLeader = errors.New("partition: this broker is not the partition's leader")
	// ErrFencedEpoch: the request names an older leader epoch
	// (FENCED_LEADER_EPOCH).
	ErrFencedEpoch = errors.New("partition: leader epoch in the request is older than the partition's")
	// ErrUnknownEpoch: the request names a newer leader epoch than this
	// replica knows (UNKNOWN_LEADER_EPOCH).
	ErrUnknownEpoch = errors.New("partition: leader epoch in the request is newer than this replica knows")
	// ErrNotEnoughReplicas: the ISR is smaller than min.insync.replicas
	// (NOT_ENOUGH_REPLICAS); nothing was appended.
	ErrNotEnoughReplicas = errors.New("partition: fewer in-sync replicas than min.insync.replicas")
	// ErrNotEnoughReplicasAfterAppend: the batch was appended but the ISR
	// shrank below min.insync.replicas before it was replicated
	// (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
	ErrNotEnoughReplicasAfterAppend = errors.New("partition: the ISR shrank below min.insync.replicas after the append")
	// ErrNotReplica: a follower's fetch names a broker that is not one of
	// the partition's replicas (NOT_LEADER_OR_FOLLOWER, always with
	// ErrNotLeader).
	ErrNotReplica = errors.New("partition: the fetching broker is not a replica")
	// ErrLeaderNotAvailable: no replica leads the partition now
	// (LEADER_NOT_AVAILABLE).
	ErrLeaderNotAvailable = errors.New("partition: no leader for the partition")
	// ErrReplicaGap: a fetched batch does not start at the log end.
	ErrReplicaGap = errors.New("partition: replicated batch does not start at the log end")
)

// Role is a replica's part in its partition.
type Role struct {
	Leader   bool
	LeaderID int32 // the leading broker, -1 if none
	Epoch    int32 // leader epoch
	// ISR and PartitionEpoch, for a leader: the in-sync replicas (itself
	// included) and the metadata version they come from.
	ISR            []int32
	PartitionEpoch int32
	Replicas       []int32
	// Adding are the replicas a reassignment is adding (catching up),
	// whose replication is throttled; Removing those it will remove.
	Adding, Removing []int32
}

// follower is what a leader knows of one follower.
type follower struct {
	leo          int64 // the offset it fetched from last: it holds all below
	lastFetch    time.Time
	lastFetchLEO int64 // the leader's log end at that fetch
	caughtUp     time.Time
	sentHW       int64 // the high watermark the last response sent it, -1 for none
}

// Role returns the replica's current role.
func (p *Partition) Role() Role {
	p.rep.Lock()
	defer p.rep.Unlock()
	r := p.rep.role
	r.ISR, r.Replicas = slices.Clone(r.ISR), slices.Clone(r.Replicas)
	r.Adding, r.Removing = slices.Clone(r.Adding), slices.Clone(r.Removing)
	return r
}

// SetRole applies the partition's state from the cluster metadata. A new
// leader epoch starts a new entry in the epoch history (for a leader) and
// ends waits for acknowledgements made under the old one.
func (p *Partition) SetRole(r Role) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rep.Lock()
	old := p.rep.role
	newEpoch := r.Epoch != old.Epoch || r.Leader != old.Leader || r.LeaderID != old.LeaderID
	if r.PartitionEpoch < old.PartitionEpoch && !newEpoch {
		p.rep.Unlock()
		return nil // an older view than one already applied
	}
	changed := newEpoch || r.PartitionEpoch != old.PartitionEpoch || !slices.Equal(r.ISR, old.ISR)
	p.rep.role = r
	p.rep.role.ISR, p.rep.role.Replicas = slices.Clone(r.ISR), slices.Clone(r.Replicas)
	p.rep.role.Adding, p.rep.role.Removing = slices.Clone(r.Adding), slices.Clone(r.Removing)
	if newEpoch && r.Leader {
		p.rep.epochStart = p.log.LogEndOffset()
		now := time.Now()
		p.rep.followers = map[int32]*follower{}
		for _, id := range r.Replicas {
			if id != p.self {
				// In-sync followers get a whole lag window to fetch.
				p.rep.followers[id] = &follower{leo: -1, caughtUp: now, lastFetch: now, sentHW: -1}
			}
		}
		p.rep.pending = nil
	} else if r.Leader {
		// A follower taken out of the ISR (by this leader or the
		// controller) must fetch again before it can rejoin.
		for _, id := range old.ISR {
			if f := p.rep.followers[id]; f != nil && !slices.Contains(r.ISR, id) {
				f.leo = -1
			}
		}
		// A reassignment adds and removes replicas within an epoch: an
		// added one must fetch (and catch up) before it joins the ISR.
		now := time.Now()
		if p.rep.followers == nil {
			p.rep.followers = map[int32]*follower{}
		}
		for _, id := range r.Replicas {
			if id != p.self && p.rep.followers[id] == nil {
				p.rep.followers[id] = &follower{leo: -1, caughtUp: now, lastFetch: now, sentHW: -1}
			}
		}
		for id := range p.rep.followers {
			if !slices.Contains(r.Replicas, id) {
				delete(p.rep.followers, id)
			}
		}
	}
	p.rep.Unlock()
	if newEpoch && r.Leader {
		p.epochs.assign(r.Epoch, p.log.LogEndOffset()) // saved with the epoch's first batch
	}
	p.updateHW()
	if changed {
		p.wakeAll() // acks waiting must look at the new role and ISR
	}
	return nil
}

// updateHW moves a leader's high watermark to the lowest log end among the
// in-sync replicas (and any being added): every offset below it is on all
// of them, so any of them can lead without losing it.
func (p *Partition) updateHW() {
	p.rep.Lock()
	r := p.rep.role
	if !r.Leader {
		p.rep.Unlock()
		return
	}
	hw := p.localEnd.Load()
	for _, set := range [][]int32{r.ISR, p.rep.pending} {
		for _, id := range set {
			if id == p.self {
				continue
			}
			f := p.rep.followers[id]
			if f == nil || f.leo < 0 {
				hw = min(hw, p.hw.Load()) // not heard from yet: hold
				continue
			}
			hw = min(hw, f.leo)
		}
	}
	p.rep.Unlock()
	p.advanceHW(hw)
}

// localDurable is the segment log's report of its durable end.
func (p *Partition) localDurable(end int64) {
	for {
		cur := p.localEnd.Load()
		if end <= cur || p.localEnd.CompareAndSwap(cur, end) {
			break
		}
	}
	p.updateHW()
}

// CheckLeader returns nil if this replica leads the partition at epoch
// (-1: any epoch), and the Kafka error for the client otherwise. An offline
// log (a failed sync) answers its ErrOffline error first.
func (p *Partition) CheckLeader(epoch int32) error {
	if err := p.log.Offline(); err != nil {
		return err // KAFKA_STORAGE_ERROR, whatever the role
	}
	p.rep.Lock()
	r := p.rep.role
	p.rep.Unlock()
	switch {
	case !r.Leader && r.LeaderID < 0:
		return fmt.Errorf("%w: %s", ErrLeaderNotAvailable, Name(p.Topic, p.Index))
	case !r.Leader:
		return fmt.Errorf("%w: %s is led by broker %d", ErrNotLeader, Name(p.Topic, p.Index), r.LeaderID)
	case epoch >= 0 && epoch < r.Epoch:
		return fmt.Errorf("%w: %d, current %d", ErrFencedEpoch, epoch, r.Epoch)
	case epoch > r.Epoch:
		return fmt.Errorf("%w: %d, current %d", ErrUnknownEpoch, epoch, r.Epoch)
	}
	return nil
}

// MinInsyncReplicas returns the topic's min.insync.replicas.
func (p *Partition) MinInsyncReplicas() int { return int(p.Config().MinInsyncRepl) }

// WaitReplicated waits until every in-sync replica holds the offsets below
// next (the high watermark passed them), for acks=all. It fails if the
// replica stops leading at epoch, or the ISR falls below
// min.insync.replicas.
func (p *Partition) WaitReplicated(ctx context.Context, next int64, epoch int32) error {
	if err := p.log.WaitDurable(ctx, next); err != nil {
		return err
	}
	wake := make(chan struct{}, 1)
	p.AddWaiter(wake)
	defer p.RemoveWaiter(wake)
	for {
		p.rep.Lock()
		r := p.rep.role
		p.rep.Unlock()
		if !r.Leader || r.Epoch != epoch {
			return fmt.Errorf("%w: leadership of %s moved before the batch was replicated", ErrNotLeader, Name(p.Topic, p.Index))
		}
		// Checked before the high watermark: a shrink of the ISR can move
		// the high watermark past a batch only the leader holds.
		if len(r.ISR) < p.MinInsyncReplicas() {
			return fmt.Errorf("%w: ISR %v, min.insync.replicas %d", ErrNotEnoughReplicasAfterAppend, r.ISR, p.MinInsyncReplicas())
		}
		if p.hw.Load() >= next {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// InSync reports whether broker id is in the replica's ISR.
func (p *Partition) InSync(id int32) bool {
	p.rep.Lock()
	defer p.rep.Unlock()
	return slices.Contains(p.rep.role.ISR, id)
}

// FollowerFetched records that follower id fetched from offset at leader
// epoch, so holds everything below it. It returns the error to answer the
// fetch with, if any.
func (p *Partition) FollowerFetched(id int32, offset int64, epoch int32) error {
	if err := p.CheckLeader(epoch); err != nil {
		return err
	}
	now := time.Now()
	leo := p.log.LogEndOffset()
	if offset > leo {
		return fmt.Errorf("%w: follower %d fetches from %d, log end %d", segment.ErrOffsetOutOfRange, id, offset, leo)
	}
	p.rep.Lock()
	f := p.rep.followers[id]
	if f == nil {
		p.rep.Unlock()
		return fmt.Errorf("%w: %w: broker %d, %s", ErrNotLeader, ErrNotReplica, id, Name(p.Topic, p.Index))
	}
	switch {
	case offset >= leo:
		f.caughtUp = now
	case offset >= f.lastFetchLEO && f.lastFetch.After(f.caughtUp):
		f.caughtUp = f.lastFetch
	}
	f.leo, f.lastFetch, f.lastFetchLEO = offset, now, leo
	p.rep.Unlock()
	p.updateHW()
	return nil
}

// ISRChange returns the ISR this leader should propose, if it differs from
// the current one: followers that have not caught up within maxLag leave;
// followers that hold the high watermark and have fetched in this epoch
// join. ok is false when nothing should change or a change is in flight.
func (p *Partition) ISRChange(maxLag time.Duration) (isr []int32, r Role, ok bool) {
	p.rep.Lock()
	defer p.rep.Unlock()
	r = p.rep.role
	if !r.Leader || p.rep.pending != nil {
		return nil, r, false
	}
	now := time.Now()
	hw := p.hw.Load()
	changed := false
	for _, id := range r.Replicas {
		in := slices.Contains(r.ISR, id)
		f := p.rep.followers[id]
		switch {
		case id == p.self:
			isr = append(isr, id)
		case f == nil:
			if in {
				isr = append(isr, id)
			}
		case in && now.Sub(f.caughtUp) > maxLag:
			changed = true
		case in:
			isr = append(isr, id)
		case f.leo >= 0 && f.leo >= hw && f.leo >= p.rep.epochStart:
			isr = append(isr, id)
			changed = true
		}
	}
	if !changed {
		return nil, r, false
	}
	r.ISR, r.Replicas = slices.Clone(r.ISR), slices.Clone(r.Replicas)
	return isr, r, true
}

// BeginISRChange notes an ISR change being proposed: until it ends, the
// high watermark counts the replicas of both, so a replica being added
// is waited for as soon as it might be elected.
func (p *Partition) BeginISRChange(isr []int32) {
	p.rep.Lock()
	p.rep.pending = slices.Clone(isr)
	p.rep.Unlock()
}

// EndISRChange ends a proposed ISR change; applied says whether the
// metadata took it, at the partition epoch after r's.
func (p *Partition) EndISRChange(r Role, isr []int32, applied bool) {
	p.rep.Lock()
	if applied && p.rep.role.Leader && p.rep.role.Epoch == r.Epoch && p.rep.role.PartitionEpoch <= r.PartitionEpoch {
		for _, id := range p.rep.role.ISR {
			if f := p.rep.followers[id]; f != nil && !slices.Contains(isr, id) {
				f.leo = -1 // must fetch again before it can rejoin
			}
		}
		p.rep.role.ISR = slices.Clone(isr)
		p.rep.role.PartitionEpoch = r.PartitionEpoch + 1
	}
	p.rep.pending = nil
	p.rep.Unlock()
	p.updateHW()
	p.wakeAll()
}

// ReadReplica returns the batches from offset for a follower: up to the log
// end, not only the high watermark.
func (p *Partition) ReadReplica(offset int64, maxBytes int) (segment.Region, error) {
	return p.log.Read(offset, maxBytes, p.log.LogEndOffset())
}

// LatestEpoch returns the newest leader epoch in the log's history (-1 for
// none).
func (p *Partition) LatestEpoch() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epochs.latest()
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the newest epoch at or
// below epoch in this log's history and the offset where it ended.
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epochs.endOffsetFor(epoch, p.log.LogEndOffset())
}

// AppendReplica appends batches fetched from the leader, as they are: their
// offsets and leader epochs are the leader's. A trailing partial batch (a
// fetch may cut the last one) is ignored. It returns the new log end.
func (p *Partition) AppendReplica(batches []byte) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(batches) >= segment.HeaderSize {
		h, err := segment.ParseHeader(batches)
		if err != nil {
			return p.log.LogEndOffset(), err
		}
		if h.Size() > len(batches) {
			break
		}
		b := batches[:h.Size()]
		batches = batches[h.Size():]
		leo := p.log.LogEndOffset()
		if h.LastOffset() < leo {
			continue // already held
		}
		// A compacted leader's log has gaps where its cleaner removed
		// records: the next batch may start past this replica's end.
		if h.BaseOffset < leo || (h.BaseOffset > leo && !p.gaps.Load()) {
			return leo, fmt.Errorf("%w: batch at %d, log end %d", ErrReplicaGap, h.BaseOffset, leo)
		}
		// The last roll point up to the batch: the leader started a
		// segment there (at the batch itself, or at a cleaned-away
		// offset of a gap before it), so does this replica.
		if i := sort.Search(len(p.rollPoints), func(i int) bool { return p.rollPoints[i] > h.BaseOffset }) - 1; i >= 0 {
			if r := p.rollPoints[i]; r >= leo {
				if segs := p.log.Segments(); segs[len(segs)-1].Base() < r {
					if err := p.log.RollAt(r); err != nil {
						return leo, err
					}
				}
			}
		}
		p.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset)
		if err := p.epochs.flush(); err != nil {
			return leo, fmt.Errorf("partition: %s: recording leader epoch %d: %w", Name(p.Topic, p.Index), h.PartitionLeaderEpoch, err)
		}
		began, err := p.beginTxnLocked(&h, h.BaseOffset)
		if err != nil {
			began = false // the leader's log is what it is
		}
		if _, err := p.log.AppendReplica(b); err != nil {
			if began {
				p.undoTxnLocked(h.ProducerID)
			}
			return leo, err
		}
		if h.ProducerID >= 0 && h.IsControl() {
			if err := p.applyMarkerLocked(&h, b); err != nil && !errors.Is(err, ErrControlRecord) {
				return p.log.LogEndOffset(), err
			}
		}
		if h.ProducerID >= 0 && !h.IsControl() {
			st := p.mu.producers[h.ProducerID]
			if st == nil || h.ProducerEpoch >= st.Epoch {
				p.mu.producers[h.ProducerID] = st.record(h.ProducerEpoch, batchMeta{
					FirstSeq: h.BaseSequence, LastSeq: addSeq(h.BaseSequence, h.LastOffsetDelta),
					BaseOffset: h.BaseOffset, LastOffset: h.LastOffset()})
			}
		}
	}
	leo := p.log.LogEndOffset()
	if p.visibleAt != segment.FsyncAlways {
		p.localDurable(leo)
	}
	return leo, nil
}

// FollowLeaderLog applies what the metadata records of the leader's log:
// the offsets where it rolled segments (this replica rolls there too) and
// its log start (this replica drops what lies below, as far as it holds).
func (p *Partition) FollowLeaderLog(rollPoints []int64, logStart int64) error {
	p.mu.Lock()
	p.rollPoints = rollPoints
	p.mu.Unlock()
	if p.Role().Leader {
		return nil
	}
	if to := min(logStart, p.log.LogEndOffset()); to > p.log.LogStartOffset() {
		return p.log.AdvanceLogStart(to)
	}
	return nil
}

// ResetTo empties a follower's log and starts it at the leader's log
// start, when the leader no longer holds what follows this replica's end.
func (p *Partition) ResetTo(offset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.log.ResetTo(offset); err != nil {
		return err
	}
	p.epochs.truncateFrom(0)
	if err := p.epochs.save(); err != nil {
		return err
	}
	p.hw.Store(offset)
	p.localEnd.Store(offset)
	return p.reloadProducers()
}

// SetFollowerHW moves a follower's high watermark to the leader's, bounded
// by what this replica holds.
func (p *Partition) SetFollowerHW(leaderHW int64) {
	p.leaderHW.Store(leaderHW)
	p.advanceHW(min(leaderHW, p.log.LogEndOffset()))
}

// TruncateTo cuts the log back to offset, as a follower does where its log
// diverges from the leader's, and forgets what the cut removed: leader
// epochs, producer state (rebuilt from the log) and a high watermark past
// the new end.
func (p *Partition) TruncateTo(offset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if offset >= p.log.LogEndOffset() {
		return nil
	}
	if err := p.log.TruncateTo(offset); err != nil {
		return err
	}
	leo := p.log.LogEndOffset()
	if p.epochs.truncateFrom(leo) {
		if err := p.epochs.save(); err != nil {
			return err
		}
	}
	if p.hw.Load() > leo {
		p.hw.Store(leo)
	}
	if p.localEnd.Load() > leo {
		p.localEnd.Store(leo)
	}
	return p.reloadProducers()
}

// reloadProducers rebuilds the producer table from the whole log after a
// cut: a snapshot from an earlier close may describe batches the cut
// replaced, even where its offset is below the new end.
func (p *Partition) reloadProducers() error {
	if err := p.log.FS().Remove(filepath.Join(p.log.Dir(), producerSnapshotFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return p.loadProducers()
}

// wakeAll wakes every waiter, for a change they must look at (a new role).
func (p *Partition) wakeAll() {
	p.waitMu.Lock()
	for _, set := range []map[chan struct{}]struct{}{p.waiters, p.appendWaiters} {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	p.waitMu.Unlock()
}
