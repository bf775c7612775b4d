package partition

import (
	"fmt"
	"slices"
)

// Consumer reads from followers (KIP-392).
//
// A follower serves a consumer's fetch from its own log, bounded by its own
// high watermark: the leader's, as the leader last sent it, never past
// what this replica holds (SetFollowerHW). Every offset below it is
// committed, so a consumer reading a follower never sees a record the
// leader has not committed, and a read_committed consumer reads below the
// follower's last stable offset, which the follower keeps from the
// transactional batches and markers it replicates exactly as the leader
// does.
//
// The leader names the follower a consumer should read from
// (PreferredReadReplica) among the in-sync followers that hold the fetch
// offset (ReadableFollowers); it sends each follower its high watermark
// as soon as it moves past the one the follower last got (HWBehind,
// SentHW), so a follower's high watermark lags the leader's by about one
// fetch round trip.

// ErrNotInSync: this follower is not in the partition's ISR, so it does
// not serve consumers (NOT_LEADER_OR_FOLLOWER: the consumer goes back to
// the leader).
var ErrNotInSync = fmt.Errorf("%w: this follower is not in sync", ErrNotLeader)

// CheckReadable returns whether this replica leads the partition, and nil
// if it may serve a consumer's fetch at leader epoch (-1: any): as the
// leader (CheckLeader), or as an in-sync follower of a partition that has
// a leader, at the epoch it knows.
func (p *Partition) CheckReadable(epoch int32) (leader bool, err error) {
	if err := p.log.Offline(); err != nil {
		return false, err
	}
	p.rep.Lock()
	r := p.rep.role
	inSync := slices.Contains(r.ISR, p.self)
	p.rep.Unlock()
	switch {
	case r.Leader:
		return true, p.CheckLeader(epoch)
	case r.LeaderID < 0:
		return false, fmt.Errorf("%w: %s", ErrLeaderNotAvailable, Name(p.Topic, p.Index))
	case !inSync:
		return false, fmt.Errorf("%w: %s is led by broker %d", ErrNotInSync, Name(p.Topic, p.Index), r.LeaderID)
	case epoch >= 0 && epoch < r.Epoch:
		return false, fmt.Errorf("%w: %d, current %d", ErrFencedEpoch, epoch, r.Epoch)
	case epoch > r.Epoch:
		return false, fmt.Errorf("%w: %d, current %d", ErrUnknownEpoch, epoch, r.Epoch)
	}
	return false, nil
}

// FollowerState is what a leader knows of one follower's log.
type FollowerState struct {
	ID int32
	// LogEnd is the offset it last fetched from: it holds every offset
	// below.
	LogEnd int64
}

// ReadableFollowers appends to dst the in-sync followers of a partition
// this replica leads that hold every offset below offset, so can serve a
// consumer reading from it. It appends none on a replica that does not
// lead.
func (p *Partition) ReadableFollowers(dst []FollowerState, offset int64) []FollowerState {
	p.rep.Lock()
	defer p.rep.Unlock()
	r := p.rep.role
	if !r.Leader {
		return dst
	}
	for _, id := range r.ISR {
		if f := p.rep.followers[id]; id != p.self && f != nil && f.leo >= 0 && f.leo >= offset {
			dst = append(dst, FollowerState{ID: id, LogEnd: f.leo})
		}
	}
	return dst
}

// HWBehind reports whether this leader's high watermark has moved past the
// one it last sent follower id, so the follower's parked fetch should be
// answered now to carry it.
func (p *Partition) HWBehind(id int32) bool {
	hw := p.hw.Load()
	p.rep.Lock()
	defer p.rep.Unlock()
	f := p.rep.followers[id]
	return p.rep.role.Leader && f != nil && f.sentHW < hw
}

// SentHW records the high watermark a fetch response sent follower id.
func (p *Partition) SentHW(id int32, hw int64) {
	p.rep.Lock()
	if f := p.rep.followers[id]; f != nil && p.rep.role.Leader {
		f.sentHW = hw
	}
	p.rep.Unlock()
}
