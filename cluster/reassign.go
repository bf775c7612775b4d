package cluster

import (
	"context"
	"fmt"
	"slices"
	"strconv"
)

// Partition reassignment, as Kafka's (KIP-455). A reassignment of a
// partition to target replicas T from its original replicas O goes:
//
//  1. ReassignPartition: the replicas become T followed by O−T; T−O are
//     adding, O−T removing. The brokers of T−O open the partition as
//     followers and catch up from the leader (under the replication
//     throttle, where one is set); the leader adds them to the ISR once
//     they have.
//  2. CompleteReassignment, which the controller proposes once every
//     replica of T is in the ISR: the replicas become T, the removing
//     ones leave the ISR, and where the leader was one of them the first
//     in-sync replica of T leads, at a new leader epoch. The brokers left
//     out delete their copies.
//
// Until step 2, a new ReassignPartition replaces the target (computed
// over O again) and a cancel restores O.

// reassign applies a ReassignPartition.
func (s *State) reassign(c *ReassignPartition) error {
	p, err := s.partition(c.TP)
	if err != nil {
		return err
	}
	orig := p.OriginalReplicas()
	if c.Cancel {
		if !p.Reassigning() {
			return fmt.Errorf("%w: %s", ErrNoReassignment, c.TP)
		}
		return s.setReplicas(c.TP, p, orig, nil, nil)
	}
	if err := s.checkAssignment([][]int32{c.Target}); err != nil {
		return err
	}
	var adding, removing []int32
	for _, r := range c.Target {
		if !slices.Contains(orig, r) {
			adding = append(adding, r)
		}
	}
	for _, r := range orig {
		if !slices.Contains(c.Target, r) {
			removing = append(removing, r)
		}
	}
	if len(adding) == 0 && len(removing) == 0 {
		// A reorder (or the original replicas again): nothing to copy.
		if !p.Reassigning() && slices.Equal(p.Replicas, c.Target) {
			return nil
		}
		return s.setReplicas(c.TP, p, c.Target, nil, nil)
	}
	return s.setReplicas(c.TP, p, append(slices.Clone(c.Target), removing...), adding, removing)
}

// completeReassignment applies a CompleteReassignment.
func (s *State) completeReassignment(c *CompleteReassignment) error {
	p, err := s.partition(c.TP)
	if err != nil {
		return err
	}
	if !p.Reassigning() {
		return fmt.Errorf("%w: %s", ErrNoReassignment, c.TP)
	}
	if p.PartitionEpoch != c.PartitionEpoch {
		return fmt.Errorf("%w: %s at partition epoch %d, command for %d", ErrStaleLeaderEpoch, c.TP, p.PartitionEpoch, c.PartitionEpoch)
	}
	target := p.TargetReplicas()
	for _, r := range target {
		if !slices.Contains(p.ISR, r) {
			return fmt.Errorf("%w: replica %d of %s has not caught up", ErrBadAssignment, r, c.TP)
		}
	}
	return s.setReplicas(c.TP, p, target, nil, nil)
}

// setReplicas gives a partition its replicas and reassignment state: the
// ISR keeps only replicas, and a leader that is no longer one hands over
// to the first in-sync, unfenced replica (none: the partition waits for
// one, as after a failure). Refused where no in-sync replica would be
// left.
func (s *State) setReplicas(tp TP, p *PartitionInfo, replicas, adding, removing []int32) error {
	isr := slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return !slices.Contains(replicas, r) })
	if len(isr) == 0 {
		return fmt.Errorf("%w: no replica of %v of %s is in sync (ISR %v)", ErrBadAssignment, replicas, tp, p.ISR)
	}
	if p.Leader != -1 && !slices.Contains(replicas, p.Leader) {
		p.Leader = s.pickLeader(replicas, isr)
		p.LeaderEpoch++
	}
	p.Replicas, p.ISR = slices.Clone(replicas), isr
	p.AddingReplicas, p.RemovingReplicas = slices.Clone(adding), slices.Clone(removing)
	p.PartitionEpoch++
	return nil
}

// unregisterBroker applies an UnregisterBroker.
func (s *State) unregisterBroker(c *UnregisterBroker) error {
	b := s.Brokers[c.ID]
	if b == nil {
		return fmt.Errorf("%w: %d", ErrUnknownBroker, c.ID)
	}
	if !b.Fenced {
		return fmt.Errorf("%w: broker %d is alive (heartbeating); stop it first", ErrBrokerInUse, c.ID)
	}
	var held []TP
	for _, name := range s.topicNames() {
		for i, p := range s.Partitions[name] {
			if slices.Contains(p.Replicas, c.ID) {
				held = append(held, TP{name, int32(i)})
			}
		}
	}
	if len(held) > 0 {
		return fmt.Errorf("%w: broker %d holds %d replicas (first %s); move them first", ErrBrokerInUse, c.ID, len(held), held[0])
	}
	delete(s.Brokers, c.ID)
	delete(s.BrokerConfigs, c.ID)
	s.Unregistered[c.ID] = struct{}{}
	return nil
}

// Reassignment is one partition's reassignment in progress.
type Reassignment struct {
	TP       TP
	Replicas []int32 // all of them: the target first
	Adding   []int32
	Removing []int32
}

// Reassignments returns the reassignments in progress, of the partitions
// given (nil: all), in topic and partition order.
func (m *Meta) Reassignments(tps []TP) []Reassignment {
	var out []Reassignment
	add := func(tp TP, p *PartitionInfo) {
		if p.Reassigning() {
			out = append(out, Reassignment{TP: tp, Replicas: slices.Clone(p.Replicas),
				Adding: slices.Clone(p.AddingReplicas), Removing: slices.Clone(p.RemovingReplicas)})
		}
	}
	m.node.fsm.Read(func(s *State) {
		if tps == nil {
			for _, name := range s.topicNames() {
				for i, p := range s.Partitions[name] {
					add(TP{name, int32(i)}, p)
				}
			}
			return
		}
		for _, tp := range tps {
			if p, err := s.partition(tp); err == nil {
				add(tp, p)
			}
		}
	})
	return out
}

// Reassign starts or replaces the reassignment of a partition to target
// (preferred leader first), or cancels it (target nil). It returns once
// the change is applied here.
func (m *Meta) Reassign(tp TP, target []int32) error {
	c := ReassignPartition{TP: tp, Target: slices.Clone(target), Cancel: target == nil}
	_, err := m.propose(CmdReassignPartition, c)
	return err
}

// UnregisterBroker removes a stopped (fenced) broker that holds no
// replicas from the metadata and the Raft quorum.
func (m *Meta) UnregisterBroker(id int32) error {
	_, err := m.propose(CmdUnregisterBroker, UnregisterBroker{ID: id})
	return err
}

// completeReassignments is the controller's round over reassignments in
// progress: each whose target replicas have all joined the ISR
// completes.
func (n *Node) completeReassignments(ctx context.Context) {
	var done []CompleteReassignment
	n.fsm.Read(func(s *State) {
		for _, name := range s.topicNames() {
			for i, p := range s.Partitions[name] {
				if !p.Reassigning() {
					continue
				}
				caughtUp := true
				for _, r := range p.TargetReplicas() {
					caughtUp = caughtUp && slices.Contains(p.ISR, r)
				}
				if caughtUp {
					done = append(done, CompleteReassignment{TP: TP{name, int32(i)}, PartitionEpoch: p.PartitionEpoch})
				}
			}
		}
	})
	for _, c := range done {
		pctx, cancel := context.WithTimeout(ctx, proposeTimeout)
		_, err := n.Propose(pctx, CmdCompleteReassignment, c)
		cancel()
		if err != nil {
			n.log.Debug("completing a reassignment failed", "partition", c.TP, "err", err)
			continue
		}
		n.log.Info("reassignment complete", "partition", c.TP)
	}
}

// removeUnregisteredVoters is the controller's round over the Raft
// quorum: a voter whose broker was unregistered leaves it, so the
// quorum's majority counts only brokers that remain.
func (n *Node) removeUnregisteredVoters() {
	var gone []int32
	n.fsm.Read(func(s *State) {
		for id := range s.Unregistered {
			gone = append(gone, id)
		}
	})
	if len(gone) == 0 {
		return
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	for _, srv := range f.Configuration().Servers {
		id, err := strconv.Atoi(string(srv.ID))
		if err != nil || !slices.Contains(gone, int32(id)) || int32(id) == n.opts.ID {
			continue
		}
		if err := n.raft.RemoveServer(srv.ID, 0, proposeTimeout).Error(); err != nil {
			n.log.Warn("removing an unregistered broker from the Raft quorum failed", "broker", id, "err", err)
			continue
		}
		n.log.Info("unregistered broker removed from the Raft quorum", "broker", id)
	}
}
