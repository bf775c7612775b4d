package cli

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/server"
)

// TestClusterOwnView: a broker's answer is read for what it says of
// itself; another voter's entry and a broker without runnel's tagged
// fields leave the rest unknown.
func TestClusterOwnView(t *testing.T) {
	p := kmsg.NewDescribeQuorumResponseTopicPartition()
	p.LeaderID, p.LeaderEpoch, p.HighWatermark = 2, 5, 40
	for _, id := range []int32{1, 2, 3} {
		rs := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
		rs.ReplicaID, rs.LogEndOffset = id, -1
		if id == 3 {
			rs.LogEndOffset = 41
			rs.UnknownTags.Set(server.QuorumTagRaftState, append([]byte{byte(len("Follower") + 1)}, "Follower"...))
			rs.UnknownTags.Set(server.QuorumTagAppliedIndex, binary.BigEndian.AppendUint64(nil, 39))
		}
		p.CurrentVoters = append(p.CurrentVoters, rs)
	}
	got := ownView(p, 3)
	want := &raftView{State: "Follower", LeaderID: 2, Term: 5, LastIndex: 41, CommitIndex: 40, AppliedIndex: 39, voters: []int32{1, 2, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("own view %+v, want %+v", got, want)
	}
	got = ownView(p, 1)
	want = &raftView{LeaderID: 2, Term: 5, LastIndex: -1, CommitIndex: 40, AppliedIndex: -1, voters: []int32{1, 2, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("view without extras %+v, want %+v", got, want)
	}
}

func TestClusterStatusTable(t *testing.T) {
	st := &clusterStatus{ClusterID: "c1", ControllerID: 2, Brokers: []brokerStatus{
		{ID: 1, Address: "h1:9092", Liveness: "fenced", Error: "unreachable: refused"},
		{ID: 2, Address: "h2:9092", Liveness: "alive", Raft: &raftView{State: "Leader", LeaderID: 2, Term: 5, LastIndex: 41, CommitIndex: 41, AppliedIndex: 40}},
		{ID: 3, Address: "h3:9092", Liveness: "alive", Raft: &raftView{LeaderID: 2, Term: 5, LastIndex: -1, CommitIndex: 41, AppliedIndex: -1}},
		{ID: 4, Liveness: "unregistered", Error: "no address"},
		{ID: 5, Address: "h5:9092", Liveness: "alive", Error: "describe quorum: NOT_LEADER_OR_FOLLOWER", answered: true},
	}}
	var b bytes.Buffer
	if err := st.print(&b); err != nil {
		t.Fatal(err)
	}
	want := `Cluster ID: c1
Controller: 2

ID  ADDRESS  LIVENESS      RAFT-STATE   TERM  LAST-INDEX  COMMIT  APPLIED
1   h1:9092  fenced        unreachable  -     -           -       -
2   h2:9092  alive         Leader       5     41          41      40
3   h3:9092  alive         -            5     -           41      -
4   -        unregistered  unreachable  -     -           -       -
5   h5:9092  alive         error        -     -           -       -
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestClusterStatusRacks: with brokers in racks, the table has a RACK
// column ("-" for a broker without one) and the JSON a rack field.
func TestClusterStatusRacks(t *testing.T) {
	st := &clusterStatus{ClusterID: "c1", ControllerID: 1, Brokers: []brokerStatus{
		{ID: 1, Address: "h1:9092", Rack: "eu-west-1a", Liveness: "alive", Raft: &raftView{State: "Leader", LeaderID: 1, Term: 2, LastIndex: 9, CommitIndex: 9, AppliedIndex: 9}},
		{ID: 2, Address: "h2:9092", Liveness: "fenced", Error: "unreachable: refused"},
	}}
	var b bytes.Buffer
	if err := st.print(&b); err != nil {
		t.Fatal(err)
	}
	want := `Cluster ID: c1
Controller: 1

ID  ADDRESS  RACK        LIVENESS  RAFT-STATE   TERM  LAST-INDEX  COMMIT  APPLIED
1   h1:9092  eu-west-1a  alive     Leader       2     9           9       9
2   h2:9092  -           fenced    unreachable  -     -           -       -
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	js, err := json.Marshal(st.Brokers)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(js, []byte(`"rack":"eu-west-1a"`)) || bytes.Count(js, []byte(`"rack"`)) != 1 {
		t.Fatalf("JSON %s: want one rack, broker 1's", js)
	}
}
