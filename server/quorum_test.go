package server

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
)

// quorumMeta is a Cluster that knows only the Raft status; the other
// methods are not called by DescribeQuorum (and would panic).
type quorumMeta struct {
	Cluster
	status cluster.RaftStatus
}

func (m quorumMeta) RaftStatus() cluster.RaftStatus { return m.status }

// describeQuorum sends req at version through the decoder dispatch uses and
// the handler, and returns the answer as a client decodes it.
func describeQuorum(t *testing.T, status cluster.RaftStatus, req *kmsg.DescribeQuorumRequest, version int16) *kmsg.DescribeQuorumResponse {
	t.Helper()
	req.SetVersion(version)
	decoded, err := decodeRequest(req.Key(), version, req.AppendTo(nil))
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{meta: quorumMeta{status: status}}
	resp := s.handleDescribeQuorum(decoded.(*kmsg.DescribeQuorumRequest))
	resp.SetVersion(version)
	got := kmsg.NewPtrDescribeQuorumResponse()
	got.SetVersion(version)
	if err := got.ReadFrom(resp.AppendTo(nil)); err != nil {
		t.Fatalf("v%d answer does not decode: %v", version, err)
	}
	return got
}

func quorumRequest(topic string, partitions ...int32) *kmsg.DescribeQuorumRequest {
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = topic
	for _, p := range partitions {
		rp := kmsg.NewDescribeQuorumRequestTopicPartition()
		rp.Partition = p
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

func TestDescribeQuorum(t *testing.T) {
	voters := []cluster.Voter{{ID: 1, Addr: "10.0.0.1:9093"}, {ID: 2, Addr: "10.0.0.2:9093"}, {ID: 3, Addr: "10.0.0.3:9093"}}
	contact := time.UnixMilli(1_700_000_000_123)
	cases := []struct {
		name   string
		status cluster.RaftStatus
		// own entry's timestamps; 0 means "about now"
		lastFetch, lastCaughtUp int64
	}{
		{"leader", cluster.RaftStatus{ID: 2, State: "Leader", Term: 7, LastIndex: 42, CommitIndex: 41, AppliedIndex: 40,
			LastContact: contact, Leader: 2, Voters: voters}, 0, 0},
		{"follower", cluster.RaftStatus{ID: 3, State: "Follower", Term: 7, LastIndex: 41, CommitIndex: 39, AppliedIndex: 39,
			LastContact: contact, Leader: 2, Voters: voters}, contact.UnixMilli(), -1},
		{"candidate never in contact", cluster.RaftStatus{ID: 1, State: "Candidate", Term: 8, LastIndex: 5, CommitIndex: 5, AppliedIndex: 5,
			Leader: -1, Voters: voters}, -1, -1},
	}
	for _, c := range cases {
		for v := int16(0); v <= 2; v++ {
			t.Run(fmt.Sprintf("%s/v%d", c.name, v), func(t *testing.T) {
				before := time.Now().UnixMilli()
				resp := describeQuorum(t, c.status, quorumRequest("__cluster_metadata", 0), v)
				if resp.ErrorCode != 0 || len(resp.Topics) != 1 || resp.Topics[0].Topic != "__cluster_metadata" || len(resp.Topics[0].Partitions) != 1 {
					t.Fatalf("answer %+v", resp)
				}
				p := resp.Topics[0].Partitions[0]
				if p.ErrorCode != 0 || p.Partition != 0 || p.LeaderID != c.status.Leader ||
					p.LeaderEpoch != int32(c.status.Term) || p.HighWatermark != int64(c.status.CommitIndex) {
					t.Fatalf("partition %+v for status %+v", p, c.status)
				}
				if len(p.CurrentVoters) != len(voters) || len(p.Observers) != 0 {
					t.Fatalf("voters %+v, observers %+v", p.CurrentVoters, p.Observers)
				}
				for i, rs := range p.CurrentVoters {
					if rs.ReplicaID != voters[i].ID {
						t.Fatalf("voter %d is %d, want %d", i, rs.ReplicaID, voters[i].ID)
					}
					x, ok := ReadRaftExtras(&rs.UnknownTags)
					if rs.ReplicaID != c.status.ID {
						if rs.LogEndOffset != -1 || rs.LastFetchTimestamp != -1 || rs.LastCaughtUpTimestamp != -1 || ok {
							t.Errorf("another voter's entry claims knowledge: %+v", rs)
						}
						continue
					}
					if rs.LogEndOffset != int64(c.status.LastIndex) {
						t.Errorf("own log end %d, want %d", rs.LogEndOffset, c.status.LastIndex)
					}
					if !ok || x.State != c.status.State || x.AppliedIndex != int64(c.status.AppliedIndex) {
						t.Errorf("own extras %+v %v, want %s and %d", x, ok, c.status.State, c.status.AppliedIndex)
					}
					if v == 0 {
						continue // no timestamps in v0
					}
					for _, ts := range []struct {
						name      string
						got, want int64
					}{{"LastFetchTimestamp", rs.LastFetchTimestamp, c.lastFetch}, {"LastCaughtUpTimestamp", rs.LastCaughtUpTimestamp, c.lastCaughtUp}} {
						if ts.want == 0 && (ts.got < before || ts.got > time.Now().UnixMilli()) || ts.want != 0 && ts.got != ts.want {
							t.Errorf("%s %d, want %d (0: now)", ts.name, ts.got, ts.want)
						}
					}
				}
				if v < 2 {
					return
				}
				if len(resp.Nodes) != len(voters) {
					t.Fatalf("nodes %+v", resp.Nodes)
				}
				for i, n := range resp.Nodes {
					if n.NodeID != voters[i].ID || len(n.Listeners) != 1 || n.Listeners[0].Name != "RAFT" ||
						net.JoinHostPort(n.Listeners[0].Host, strconv.Itoa(int(n.Listeners[0].Port))) != voters[i].Addr {
						t.Errorf("node %+v", n)
					}
				}
			})
		}
	}
}

// TestDescribeQuorumLoneVoter: a single broker's Raft has no address; its
// node is listed without listeners.
func TestDescribeQuorumLoneVoter(t *testing.T) {
	status := cluster.RaftStatus{ID: 1, State: "Leader", Term: 2, LastIndex: 3, CommitIndex: 3, AppliedIndex: 3,
		Leader: 1, Voters: []cluster.Voter{{ID: 1, Addr: "local"}}}
	resp := describeQuorum(t, status, quorumRequest("__cluster_metadata", 0), 2)
	if len(resp.Nodes) != 1 || resp.Nodes[0].NodeID != 1 || len(resp.Nodes[0].Listeners) != 0 {
		t.Fatalf("nodes %+v", resp.Nodes)
	}
}

// TestDescribeQuorumUnknownPartition: as Kafka, anything but exactly
// __cluster_metadata-0 has every partition asked for answered with
// UNKNOWN_TOPIC_OR_PARTITION.
func TestDescribeQuorumUnknownPartition(t *testing.T) {
	twoTopics := quorumRequest("__cluster_metadata", 0)
	twoTopics.Topics = append(twoTopics.Topics, quorumRequest("orders", 0, 1).Topics...)
	cases := []struct {
		name  string
		req   *kmsg.DescribeQuorumRequest
		parts int
	}{
		{"other topic", quorumRequest("orders", 0), 1},
		{"other partition", quorumRequest("__cluster_metadata", 1), 1},
		{"twice the partition", quorumRequest("__cluster_metadata", 0, 0), 2},
		{"no partition", quorumRequest("__cluster_metadata"), 0},
		{"two topics", twoTopics, 3},
		{"nothing", kmsg.NewPtrDescribeQuorumRequest(), 0},
	}
	status := cluster.RaftStatus{ID: 1, State: "Leader", Term: 1, Leader: 1, Voters: []cluster.Voter{{ID: 1, Addr: "local"}}}
	for _, c := range cases {
		for v := int16(0); v <= 2; v++ {
			resp := describeQuorum(t, status, c.req, v)
			n := 0
			for i, st := range resp.Topics {
				if st.Topic != c.req.Topics[i].Topic {
					t.Errorf("%s v%d: topic %q, want %q", c.name, v, st.Topic, c.req.Topics[i].Topic)
				}
				for j, sp := range st.Partitions {
					n++
					if sp.Partition != c.req.Topics[i].Partitions[j].Partition || sp.ErrorCode != kerr.UnknownTopicOrPartition.Code ||
						len(sp.CurrentVoters) != 0 || (v >= 2) != (sp.ErrorMessage != nil) {
						t.Errorf("%s v%d: %+v", c.name, v, sp)
					}
				}
			}
			if resp.ErrorCode != 0 || len(resp.Topics) != len(c.req.Topics) || n != c.parts || len(resp.Nodes) != 0 {
				t.Errorf("%s v%d: %+v", c.name, v, resp)
			}
		}
	}
}

func TestReadRaftExtrasRefusesMalformed(t *testing.T) {
	for _, c := range []struct {
		name         string
		state, index []byte
	}{
		{"missing state", nil, []byte{0, 0, 0, 0, 0, 0, 0, 1}},
		{"missing index", []byte{7, 'L', 'e', 'a', 'd', 'e', 'r'}, nil},
		{"state longer than its tag", []byte{9, 'L', 'e', 'a', 'd', 'e', 'r'}, []byte{0, 0, 0, 0, 0, 0, 0, 1}},
		{"null state", []byte{0}, []byte{0, 0, 0, 0, 0, 0, 0, 1}},
		{"short index", []byte{1}, []byte{0, 1}},
		{"negative index", []byte{1}, []byte{0x80, 0, 0, 0, 0, 0, 0, 0}},
	} {
		var tags kmsg.Tags
		if c.state != nil {
			tags.Set(QuorumTagRaftState, c.state)
		}
		if c.index != nil {
			tags.Set(QuorumTagAppliedIndex, c.index)
		}
		if x, ok := ReadRaftExtras(&tags); ok {
			t.Errorf("%s: read %+v", c.name, x)
		}
	}
}
