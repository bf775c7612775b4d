package server

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
)

// runnel's metadata log is KRaft's: partition 0 of __cluster_metadata.
const (
	metadataTopic     = "__cluster_metadata"
	metadataPartition = 0

	// QuorumTagRaftState and QuorumTagAppliedIndex number runnel's tagged
	// fields in a DescribeQuorum voter entry: far above any number Kafka
	// gives its own tagged fields, which start at 0.
	QuorumTagRaftState    = 10000
	QuorumTagAppliedIndex = 10001

	// raftListener names the Raft address of a voter in DescribeQuorum
	// v2's Nodes.
	raftListener = "RAFT"
)

// handleDescribeQuorum answers DescribeQuorum (KIP-595, KIP-853), which
// describes the Raft quorum of KRaft's metadata log, __cluster_metadata-0.
// runnel's metadata log is its hashicorp/raft log, described so:
//
//   - LeaderID is the Raft leader (the controller), LeaderEpoch the Raft
//     term, HighWatermark the commit index;
//   - CurrentVoters are the voters of the Raft configuration. A broker only
//     knows its own log precisely (hashicorp/raft does not expose how far
//     each follower got), so its own entry carries its last index as
//     LogEndOffset and the other voters' figures are -1, "unknown";
//   - Observers are the brokers that joined the quorum as non-voting
//     members (started with a --node-id not in --voters), described as
//     the voters are.
//
// Raft indexes start at 1, so the last index and the commit index are
// exclusive end offsets, as LogEndOffset and HighWatermark are in Kafka.
//
// Kafka answers only on the quorum leader (NOT_LEADER_OR_FOLLOWER
// elsewhere); every runnel broker answers with its own view, so a client
// can ask each broker about itself. The answering broker's own voter entry
// also carries two tagged fields of runnel's, which other clients skip as
// they skip any tag they do not know:
//
//	QuorumTagRaftState    compact string: Leader, Follower, Candidate or Shutdown
//	QuorumTagAppliedIndex int64: the highest index handed to the state machine
func (s *Server) handleDescribeQuorum(r *kmsg.DescribeQuorumRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeQuorumResponse()
	if !asksForMetadataLog(r) {
		// As Kafka: a request for anything but exactly the metadata
		// partition has every partition it names answered with
		// UNKNOWN_TOPIC_OR_PARTITION.
		msg := fmt.Sprintf("the only Raft quorum is %s-%d", metadataTopic, metadataPartition)
		for _, rt := range r.Topics {
			st := kmsg.NewDescribeQuorumResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewDescribeQuorumResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				sp.ErrorMessage = &msg
				s.m.errorCode("DescribeQuorum", sp.ErrorCode)
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}

	status := s.meta.RaftStatus()
	sp := kmsg.NewDescribeQuorumResponseTopicPartition()
	sp.Partition = metadataPartition
	sp.LeaderID = status.Leader
	sp.LeaderEpoch = int32(min(status.Term, math.MaxInt32))
	sp.HighWatermark = int64(min(status.CommitIndex, math.MaxInt64))
	for _, v := range status.Voters {
		sp.CurrentVoters = append(sp.CurrentVoters, voterState(v.ID, status))
		resp.Nodes = append(resp.Nodes, voterNode(v))
	}
	for _, v := range status.Observers {
		sp.Observers = append(sp.Observers, voterState(v.ID, status))
		resp.Nodes = append(resp.Nodes, voterNode(v))
	}
	st := kmsg.NewDescribeQuorumResponseTopic()
	st.Topic = metadataTopic
	st.Partitions = append(st.Partitions, sp)
	resp.Topics = append(resp.Topics, st)
	return resp
}

// asksForMetadataLog reports whether r asks about exactly the metadata
// partition, as Kafka requires.
func asksForMetadataLog(r *kmsg.DescribeQuorumRequest) bool {
	return len(r.Topics) == 1 && r.Topics[0].Topic == metadataTopic &&
		len(r.Topics[0].Partitions) == 1 && r.Topics[0].Partitions[0].Partition == metadataPartition
}

// voterState is voter id's entry in CurrentVoters: -1 for what this broker
// does not know, and everything it knows about itself.
func voterState(id int32, status cluster.RaftStatus) kmsg.DescribeQuorumResponseTopicPartitionReplicaState {
	rs := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
	rs.ReplicaID = id
	rs.LogEndOffset = -1
	if id != status.ID {
		return rs
	}
	rs.LogEndOffset = int64(min(status.LastIndex, math.MaxInt64))
	switch {
	case status.Leader == status.ID:
		// Kafka's leader reports the time of the answer for itself.
		now := time.Now().UnixMilli()
		rs.LastFetchTimestamp, rs.LastCaughtUpTimestamp = now, now
	case !status.LastContact.IsZero():
		// A follower's last word from the leader; when it last held the
		// leader's whole log it cannot tell, so LastCaughtUpTimestamp
		// stays -1.
		rs.LastFetchTimestamp = status.LastContact.UnixMilli()
	}
	rs.UnknownTags.Set(QuorumTagRaftState, append(binary.AppendUvarint(nil, uint64(len(status.State))+1), status.State...))
	rs.UnknownTags.Set(QuorumTagAppliedIndex, binary.BigEndian.AppendUint64(nil, min(status.AppliedIndex, math.MaxInt64)))
	return rs
}

// voterNode is a voter's entry in Nodes (v2+): its Raft address, when it
// has one (a lone broker's Raft runs in memory, without an address).
func voterNode(v cluster.Voter) kmsg.DescribeQuorumResponseNode {
	n := kmsg.NewDescribeQuorumResponseNode()
	n.NodeID = v.ID
	host, port, err := net.SplitHostPort(v.Addr)
	if err != nil {
		return n
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return n
	}
	l := kmsg.NewDescribeQuorumResponseNodeListener()
	l.Name, l.Host, l.Port = raftListener, host, uint16(p)
	n.Listeners = append(n.Listeners, l)
	return n
}

// RaftExtras are runnel's tagged fields in a broker's own DescribeQuorum
// voter entry.
type RaftExtras struct {
	State        string // Leader, Follower, Candidate or Shutdown
	AppliedIndex int64
}

// ReadRaftExtras reads runnel's tagged fields from a DescribeQuorum voter
// entry's tags. ok is false unless both are present and well formed: the
// entry is another voter's, or the broker is not runnel.
func ReadRaftExtras(tags *kmsg.Tags) (x RaftExtras, ok bool) {
	var haveState, haveApplied bool
	tags.Each(func(tag uint32, val []byte) {
		switch tag {
		case QuorumTagRaftState:
			n, size := binary.Uvarint(val)
			if size > 0 && n >= 1 && n-1 == uint64(len(val)-size) {
				x.State, haveState = string(val[size:]), true
			}
		case QuorumTagAppliedIndex:
			if len(val) == 8 {
				if v := binary.BigEndian.Uint64(val); v <= math.MaxInt64 {
					x.AppliedIndex, haveApplied = int64(v), true
				}
			}
		}
	})
	return x, haveState && haveApplied
}
