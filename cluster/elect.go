package cluster

// Leader elections an operator asks for (Kafka's ElectLeaders, KIP-183 and
// KIP-460). Each is computed from this broker's state and proposed as a
// ChangeLeader at the leader epoch it was computed from, through the Raft
// leader: an election that lost a race with the controller (a broker
// fenced, another election) is refused by the state machine, computed
// again from the state that won, and proposed once more.

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// ElectionType is the kind of election asked for, as Kafka numbers them.
type ElectionType int8

const (
	// ElectPreferred moves leadership to the partition's preferred
	// replica, the first of its replicas, if that broker is live and in
	// sync.
	ElectPreferred ElectionType = 0
	// ElectUnclean elects a leader for a partition that has none: a live
	// in-sync replica if there is one, else any live replica, which is
	// then the whole ISR (records only the old ISR had are lost).
	ElectUnclean ElectionType = 1
)

func (t ElectionType) String() string {
	switch t {
	case ElectPreferred:
		return "preferred"
	case ElectUnclean:
		return "unclean"
	}
	return fmt.Sprintf("ElectionType(%d)", int8(t))
}

// Errors of an election, one per partition.
var (
	// ErrElectionNotNeeded: the preferred replica leads already, or (an
	// unclean election) the partition has a live leader.
	ErrElectionNotNeeded = errors.New("cluster: leader election not needed")
	// ErrPreferredLeaderNotAvailable: the preferred replica is fenced or
	// not in the ISR.
	ErrPreferredLeaderNotAvailable = errors.New("cluster: preferred leader not available")
	// ErrEligibleLeadersNotAvailable: no replica of the partition is live.
	ErrEligibleLeadersNotAvailable = errors.New("cluster: no eligible leader available")
	// ErrElectionType: an election type other than preferred or unclean.
	ErrElectionType = errors.New("cluster: unknown election type")
)

// Election is the outcome of the election of one partition: its new
// leader, or why there is none.
type Election struct {
	TP     TP
	Leader int32 // the leader elected; -1 with Err
	Err    error
}

// ElectLeaders holds an election of the kind asked for in each partition
// of tps, or, with tps nil, in every partition of every topic, leaving
// out those where none was needed, as Kafka does. Elections are proposed
// one partition at a time; the state here shows each new leader when the
// call returns. The error is for the request as a whole (an unknown
// type); each partition's own is in its Election.
func (m *Meta) ElectLeaders(ctx context.Context, typ ElectionType, tps []TP) ([]Election, error) {
	if typ != ElectPreferred && typ != ElectUnclean {
		return nil, fmt.Errorf("%w: %d", ErrElectionType, typ)
	}
	all := tps == nil
	if all {
		m.node.fsm.Read(func(s *State) {
			for _, name := range s.topicNames() {
				for i := range s.Partitions[name] {
					tps = append(tps, TP{name, int32(i)})
				}
			}
		})
	}
	out := make([]Election, 0, len(tps))
	for _, tp := range tps {
		e := m.elect(ctx, typ, tp)
		if all && errors.Is(e.Err, ErrElectionNotNeeded) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// elect holds one partition's election, computed again once if the state
// changed under it.
func (m *Meta) elect(ctx context.Context, typ ElectionType, tp TP) Election {
	for attempt := 0; ; attempt++ {
		var c ChangeLeader
		var err error
		m.node.fsm.Read(func(s *State) { c, err = s.election(typ, tp) })
		if err == nil {
			if m.beforePropose != nil {
				m.beforePropose(CmdChangeLeader)
			}
			_, err = m.node.Propose(ctx, CmdChangeLeader, c)
		}
		if errors.Is(err, ErrStaleLeaderEpoch) && attempt == 0 {
			continue // applied here by now: computed again from it
		}
		if err != nil {
			return Election{TP: tp, Leader: -1, Err: err}
		}
		return Election{TP: tp, Leader: c.Leader}
	}
}

// election computes the ChangeLeader of an election of one partition from
// the state, or the reason there is none. It never picks a fenced broker.
func (s *State) election(typ ElectionType, tp TP) (ChangeLeader, error) {
	if _, ok := s.Topics[tp.Topic]; !ok {
		return ChangeLeader{}, fmt.Errorf("%w: %s", ErrUnknownTopic, tp.Topic)
	}
	p, err := s.partition(tp)
	if err != nil {
		return ChangeLeader{}, err
	}
	live := func(id int32) bool { b := s.Brokers[id]; return b != nil && !b.Fenced }
	c := ChangeLeader{TP: tp, PrevEpoch: p.LeaderEpoch}
	switch typ {
	case ElectPreferred:
		if len(p.Replicas) == 0 {
			return ChangeLeader{}, fmt.Errorf("%w: %s has no replicas", ErrPreferredLeaderNotAvailable, tp)
		}
		want := p.Replicas[0]
		if p.Leader == want {
			return ChangeLeader{}, fmt.Errorf("%w: %s is led by its preferred replica %d", ErrElectionNotNeeded, tp, want)
		}
		if !live(want) {
			return ChangeLeader{}, fmt.Errorf("%w: %s: preferred replica %d is fenced", ErrPreferredLeaderNotAvailable, tp, want)
		}
		if !slices.Contains(p.ISR, want) {
			return ChangeLeader{}, fmt.Errorf("%w: %s: preferred replica %d is not in the ISR %v", ErrPreferredLeaderNotAvailable, tp, want, p.ISR)
		}
		c.Leader, c.ISR = want, slices.Clone(p.ISR)
	case ElectUnclean:
		if p.Leader != -1 && live(p.Leader) {
			return ChangeLeader{}, fmt.Errorf("%w: %s is led by %d", ErrElectionNotNeeded, tp, p.Leader)
		}
		if l := s.pickLeader(p.Replicas, p.ISR); l != -1 {
			// A live in-sync replica: a clean election after all.
			c.Leader, c.ISR = l, slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return !live(r) })
			break
		}
		l := s.pickLeader(p.Replicas, p.Replicas)
		if l == -1 {
			return ChangeLeader{}, fmt.Errorf("%w: no replica of %s (%v) is live", ErrEligibleLeadersNotAvailable, tp, p.Replicas)
		}
		c.Leader, c.ISR = l, []int32{l}
	default:
		return ChangeLeader{}, fmt.Errorf("%w: %d", ErrElectionType, typ)
	}
	return c, nil
}
