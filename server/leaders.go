package server

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/partition"
)

// leaderPartition returns a partition this broker leads at epoch (-1: any
// epoch), or the error that sends the client to the leader:
// NOT_LEADER_OR_FOLLOWER where another broker leads, LEADER_NOT_AVAILABLE
// where none does, FENCED_ or UNKNOWN_LEADER_EPOCH for an epoch that is
// not the current one.
func (s *Server) leaderPartition(topic string, index, epoch int32) (*partition.Partition, error) {
	p, err := s.parts.Get(topic, index)
	if err == nil {
		return p, p.CheckLeader(epoch)
	}
	// Not hosted here: the metadata says why.
	info, ok := s.meta.Partition(topic, index)
	switch {
	case !ok:
		return nil, err
	case info.Leader == s.cfg.NodeID:
		// The metadata made this broker the leader a moment ago and its
		// replica is not open yet: open it now rather than send the
		// client away to refresh its metadata.
		if rerr := s.replicas.Reconcile(); rerr != nil {
			s.log.Warn("opening replicas", "err", rerr)
		}
		if p, err = s.parts.Get(topic, index); err != nil {
			return nil, err
		}
		return p, p.CheckLeader(epoch)
	case info.Leader < 0:
		return nil, fmt.Errorf("%w: %s-%d", partition.ErrLeaderNotAvailable, topic, index)
	}
	return nil, fmt.Errorf("%w: %s-%d is led by broker %d", partition.ErrNotLeader, topic, index, info.Leader)
}

// liveBrokers returns the brokers that are not fenced, for Metadata and
// DescribeCluster.
func (s *Server) liveBrokers() []cluster.BrokerInfo {
	var out []cluster.BrokerInfo
	for _, b := range s.meta.Brokers() {
		if !b.Fenced {
			out = append(out, b)
		}
	}
	return out
}

// controller returns the controller's id for clients: the Raft leader, or
// this broker while there is none (clients send controller requests
// there, and any broker forwards them to the quorum).
func (s *Server) controller() int32 {
	if id := s.meta.Controller(); id >= 0 {
		return id
	}
	return s.cfg.NodeID
}

// fencedBrokers returns which registered brokers are fenced.
func (s *Server) fencedBrokers() map[int32]bool {
	fenced := map[int32]bool{}
	for _, b := range s.meta.Brokers() {
		fenced[b.ID] = b.Fenced
	}
	return fenced
}

// brokersWithout returns which registered brokers have no listener of that
// name.
func (s *Server) brokersWithout(listener string) map[int32]bool {
	without := map[int32]bool{}
	for _, b := range s.meta.Brokers() {
		if _, ok := b.ListenerAddr(listener); !ok {
			without[b.ID] = true
		}
	}
	return without
}

// partitionMetadata fills one partition's Metadata entry; fenced is
// fencedBrokers().
func (s *Server) partitionMetadata(topic string, index int32, fenced map[int32]bool) kmsg.MetadataResponseTopicPartition {
	sp := kmsg.NewMetadataResponseTopicPartition()
	sp.Partition = index
	info, ok := s.meta.Partition(topic, index)
	if !ok {
		sp.ErrorCode = errorCode(fmt.Errorf("%w: %s-%d", partition.ErrUnknownPartition, topic, index))
		return sp
	}
	sp.Leader, sp.LeaderEpoch = info.Leader, info.LeaderEpoch
	sp.Replicas, sp.ISR = info.Replicas, info.ISR
	if sp.ISR == nil {
		sp.ISR = []int32{}
	}
	sp.OfflineReplicas = []int32{}
	for _, r := range info.Replicas {
		if fenced[r] {
			sp.OfflineReplicas = append(sp.OfflineReplicas, r)
		}
	}
	if info.Leader < 0 {
		sp.ErrorCode = errorCode(partition.ErrLeaderNotAvailable)
	}
	return sp
}

// splitHostPort parses a broker's advertised host:port.
func splitHostPort(addr string, host *string, port *int32) error {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return fmt.Errorf("server: port of %q: %w", addr, err)
	}
	*host, *port = h, int32(n)
	return nil
}
