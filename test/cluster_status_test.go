package test

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// clusterStatusJSON is the shape `runnel cluster status --format json`
// promises scripts.
type clusterStatusJSON struct {
	ClusterID    string `json:"cluster_id"`
	ControllerID int32  `json:"controller_id"`
	Brokers      []struct {
		ID       int32  `json:"id"`
		Address  string `json:"address"`
		Liveness string `json:"liveness"`
		Error    string `json:"error"`
		Raft     *struct {
			State        string `json:"state"`
			LeaderID     int32  `json:"leader_id"`
			Term         int32  `json:"term"`
			LastIndex    int64  `json:"last_index"`
			CommitIndex  int64  `json:"commit_index"`
			AppliedIndex int64  `json:"applied_index"`
		} `json:"raft"`
	} `json:"brokers"`
}

func cliClusterStatus(t *testing.T, b *broker) clusterStatusJSON {
	t.Helper()
	r := mustCLI(t, b, "", "cluster", "status", "--format", "json")
	var st clusterStatusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("cluster status --format json: %v\n%s", err, r.stdout)
	}
	return st
}

// TestClusterStatusCLI: against one broker, `runnel cluster status` shows
// it as the controller, alive and the Raft leader of a quorum of one, in
// the table and in JSON; the Raft figures move when the metadata does.
func TestClusterStatusCLI(t *testing.T) {
	b := startBroker(t, "")

	r := mustCLI(t, b, "", "cluster", "status")
	cliMatchAll(t, "cluster status", r.stdout,
		`(?m)^Cluster ID: runnel$`,
		`(?m)^Controller: 1$`,
		`(?m)^ID +ADDRESS +LIVENESS +RAFT-STATE +TERM +LAST-INDEX +COMMIT +APPLIED$`)
	row := regexp.MustCompile(`(?m)^1 +` + regexp.QuoteMeta(b.addr) + ` +alive +Leader +(\d+) +(\d+) +(\d+) +(\d+)$`).FindStringSubmatch(r.stdout)
	if row == nil {
		t.Fatalf("no row for broker 1 in:\n%s", r.stdout)
	}
	var n [4]int64
	for i := range n {
		n[i], _ = strconv.ParseInt(row[i+1], 10, 64)
	}
	term, last, commit, applied := n[0], n[1], n[2], n[3]
	// The broker registered itself through the Raft log before serving.
	if term < 1 || applied < 1 || applied > commit || commit > last {
		t.Fatalf("term %d, last %d, commit %d, applied %d:\n%s", term, last, commit, applied, r.stdout)
	}
	if r.stderr != "" {
		t.Fatalf("stderr: %s", r.stderr)
	}

	st := cliClusterStatus(t, b)
	if st.ClusterID != "runnel" || st.ControllerID != 1 || len(st.Brokers) != 1 {
		t.Fatalf("status %+v", st)
	}
	br := st.Brokers[0]
	if br.ID != 1 || br.Address != b.addr || br.Liveness != "alive" || br.Error != "" || br.Raft == nil {
		t.Fatalf("broker %+v", br)
	}
	if rf := br.Raft; rf.State != "Leader" || rf.LeaderID != 1 || int64(rf.Term) != term || rf.CommitIndex < commit ||
		rf.AppliedIndex > rf.CommitIndex || rf.CommitIndex > rf.LastIndex {
		t.Fatalf("raft %+v after the table showed term %d, commit %d", *rf, term, commit)
	}

	// A topic is a command in the Raft log: once created, the indexes
	// have moved past it.
	before := br.Raft.CommitIndex
	mustCLI(t, b, "", "topic", "create", "status-moves")
	if after := cliClusterStatus(t, b).Brokers[0].Raft; after.CommitIndex <= before || after.AppliedIndex <= before {
		t.Fatalf("commit %d, applied %d after creating a topic; %d before", after.CommitIndex, after.AppliedIndex, before)
	}
}

// TestClusterStatusDescribeQuorum: DescribeQuorum from a plain Kafka client
// describes the metadata partition, and refuses any other, as Kafka does.
func TestClusterStatusDescribeQuorum(t *testing.T) {
	b := startBroker(t, "")
	cl := b.client()
	ctx := ctxTimeout(t, 30*time.Second)
	ask := func(topic string, partition int32) kmsg.DescribeQuorumResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrDescribeQuorumRequest()
		req.Topics = []kmsg.DescribeQuorumRequestTopic{{Topic: topic,
			Partitions: []kmsg.DescribeQuorumRequestTopicPartition{{Partition: partition}}}}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("%s-%d: %+v", topic, partition, resp)
		}
		return resp.Topics[0].Partitions[0]
	}
	p := ask("__cluster_metadata", 0)
	if p.ErrorCode != 0 || p.LeaderID != 1 || p.LeaderEpoch < 1 || p.HighWatermark < 1 ||
		len(p.CurrentVoters) != 1 || p.CurrentVoters[0].ReplicaID != 1 || p.CurrentVoters[0].LogEndOffset < p.HighWatermark {
		t.Fatalf("metadata partition: %+v", p)
	}
	for _, c := range []struct {
		topic     string
		partition int32
	}{{"__cluster_metadata", 1}, {"orders", 0}} {
		if p := ask(c.topic, c.partition); p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("%s-%d: error %d, want UNKNOWN_TOPIC_OR_PARTITION", c.topic, c.partition, p.ErrorCode)
		}
	}
}

func TestClusterStatusCLIErrors(t *testing.T) {
	b := startBroker(t, "")
	cases := []struct {
		name   string
		broker *broker
		args   []string
		code   int
		stderr string
	}{
		{"bad-format", b, []string{"cluster", "status", "--format", "yaml"}, 1, "--format: want table or json"},
		{"extra-arg", b, []string{"cluster", "status", "now"}, 1, `unexpected arguments ["now"]`},
		{"no-command", nil, []string{"cluster"}, 1, "cluster: missing command"},
		{"unknown-command", nil, []string{"cluster", "health"}, 1, `cluster: unknown command "health"`},
		{"unreachable", nil, []string{"cluster", "status", "--brokers", freePort(t)}, 1, "cannot reach brokers"},
		{"help", nil, []string{"cluster", "status", "--help"}, 0, "Usage: runnel cluster status [flags]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, c.broker, "", c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.stderr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", r.code, r.stderr, c.code, c.stderr)
			}
		})
	}
}
