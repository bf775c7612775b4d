package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// clusterCLI runs the runnel binary against every broker of c.
func (c *testCluster) clusterCLI(args ...string) cliResult {
	c.t.Helper()
	var addrs []string
	for _, n := range c.running() {
		addrs = append(addrs, n.addr)
	}
	return runCLI(c.t, nil, "", append(args, "--brokers", strings.Join(addrs, ","))...)
}

// mustClusterCLI is clusterCLI that fails the test on a non-zero exit.
func (c *testCluster) mustClusterCLI(args ...string) cliResult {
	c.t.Helper()
	r := c.clusterCLI(args...)
	if r.code != 0 {
		c.t.Fatalf("runnel %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// planJSON is Kafka's reassignment file.
type planJSON struct {
	Version    int `json:"version"`
	Partitions []struct {
		Topic     string  `json:"topic"`
		Partition int32   `json:"partition"`
		Replicas  []int32 `json:"replicas"`
	} `json:"partitions"`
}

// describeConfigs asks the broker at addr, over a connection of its own,
// for a resource's configs.
func describeConfigs(addr string, typ kmsg.ConfigResourceType, name string) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.SetVersion(4)
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = typ, name
	req.Resources = append(req.Resources, rr)
	resp, err := clusterRequest(addr, req, 5*time.Second)
	if err != nil {
		return nil, err
	}
	rs := resp.(*kmsg.DescribeConfigsResponse).Resources
	if len(rs) == 0 {
		return nil, fmt.Errorf("describe configs of %s: no answer", name)
	}
	if rs[0].ErrorCode != 0 {
		return nil, fmt.Errorf("describe configs of %s: error code %d", name, rs[0].ErrorCode)
	}
	return rs[0].Configs, nil
}

// topicConfig returns a topic config's value, as the broker at addr has
// it, if it is set on the topic.
func topicConfig(addr, topic, name string) (string, bool, error) {
	configs, err := describeConfigs(addr, kmsg.ConfigResourceTypeTopic, topic)
	for _, c := range configs {
		if c.Name == name && c.Source == kmsg.ConfigSourceDynamicTopicConfig && c.Value != nil {
			return *c.Value, true, nil
		}
	}
	return "", false, err
}

// brokerRateSet reports whether broker n has a replication rate of its
// own.
func brokerRateSet(n *clusterNode) (bool, error) {
	configs, err := describeConfigs(n.addr, kmsg.ConfigResourceTypeBroker, fmt.Sprint(n.id))
	for _, c := range configs {
		if strings.HasSuffix(c.Name, ".replication.throttled.rate") && c.Source == kmsg.ConfigSourceDynamicBrokerConfig {
			return true, nil
		}
	}
	return false, err
}

// waitThrottlesCleared waits until no broker has a replication rate of
// its own and topic no throttled-replicas list, as every running broker
// answers (each applies the change from the Raft log on its own).
func (c *testCluster) waitThrottlesCleared(topic string) {
	c.t.Helper()
	c.eventually(30*time.Second, "throttles removed", func() error {
		for _, n := range c.running() {
			for _, name := range []string{"leader.replication.throttled.replicas", "follower.replication.throttled.replicas"} {
				if v, ok, err := topicConfig(n.addr, topic, name); err != nil || ok {
					return fmt.Errorf("broker %d: %s is %q (%v)", n.id, name, v, err)
				}
			}
			if set, err := brokerRateSet(n); err != nil || set {
				return fmt.Errorf("broker %d keeps a replication rate (%v)", n.id, err)
			}
		}
		return nil
	})
}

// TestReassignCLIGenerateExecuteVerify: six partitions of two replicas,
// all on brokers 1 and 2, are spread over the three brokers with runnel
// cluster reassign --generate, --execute --throttle and --verify --wait,
// while an acks=all producer writes to every partition. The plan is
// balanced, every replica lands where it says, the throttles are set
// while it runs and gone after, and every acknowledged record is read
// back once, in order.
func TestReassignCLIGenerateExecuteVerify(t *testing.T) {
	c := startCluster(t)
	const topic, partitions = "spread", 6
	var assign [][]int32
	for i := range partitions {
		assign = append(assign, []int32{int32(1 + i%2), int32(2 - i%2)})
	}
	c.createTopic(topic, partitions, 2, nil)
	// First onto brokers 1 and 2 alone, by a plan written by hand.
	dir := t.TempDir()
	var items []string
	for i, rs := range assign {
		items = append(items, fmt.Sprintf(`{"topic":%q,"partition":%d,"replicas":[%d,%d]}`, topic, i, rs[0], rs[1]))
	}
	first := filepath.Join(dir, "first.json")
	if err := os.WriteFile(first, []byte(`{"version":1,"partitions":[`+strings.Join(items, ",")+`]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustClusterCLI("cluster", "reassign", "--execute", "--plan", first)
	c.mustClusterCLI("cluster", "reassign", "--verify", "--plan", first, "--wait", "--interval", "100ms", "--timeout", "60s")
	for p, v := range c.waitISR(topic, partitions, 2) {
		if !slices.Equal(v.replicas, assign[p]) {
			t.Fatalf("%s-%d: %v after the first plan, want replicas %v", topic, p, v, assign[p])
		}
	}
	sp := startSequenceProducer(t, c.sequenceClient(topic), partitions, 2*time.Millisecond, 5)
	c.eventually(30*time.Second, "records acknowledged", func() error {
		if n := sp.acks.count(-1); n < 600 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})

	planFile := filepath.Join(dir, "plan.json")
	r := c.mustClusterCLI("cluster", "reassign", "--generate", "--topics", topic, "--broker-ids", "1,2,3", "--output", planFile)
	lines := strings.Split(r.stdout, "\n")
	if len(lines) < 5 || lines[0] != "Current partition replica assignment" || lines[3] != "Proposed partition reassignment configuration" {
		t.Fatalf("generate printed:\n%s", r.stdout)
	}
	var current, proposed planJSON
	if err := json.Unmarshal([]byte(lines[1]), &current); err != nil {
		t.Fatalf("current assignment %q: %v", lines[1], err)
	}
	if err := json.Unmarshal([]byte(lines[4]), &proposed); err != nil {
		t.Fatalf("proposed plan %q: %v", lines[4], err)
	}
	saved, _ := os.ReadFile(planFile)
	if strings.TrimSpace(string(saved)) != lines[4] {
		t.Fatalf("--output wrote %q, stdout has %q", saved, lines[4])
	}
	if current.Version != 1 || len(current.Partitions) != partitions || proposed.Version != 1 || len(proposed.Partitions) != partitions {
		t.Fatalf("current %+v, proposed %+v", current, proposed)
	}
	replicas, leaders := map[int32]int{}, map[int32]int{}
	copies := 0
	for i, p := range proposed.Partitions {
		if p.Topic != topic || p.Partition != int32(i) || len(p.Replicas) != 2 {
			t.Fatalf("proposed partition %+v", p)
		}
		leaders[p.Replicas[0]]++
		for _, b := range p.Replicas {
			replicas[b]++
			if !slices.Contains(assign[i], b) {
				copies++
			}
		}
	}
	for b := int32(1); b <= 3; b++ {
		if replicas[b] != 4 || leaders[b] != 2 {
			t.Fatalf("proposed plan gives broker %d %d replicas and %d leaders, want 4 and 2: %s", b, replicas[b], leaders[b], lines[4])
		}
	}
	if copies != 4 {
		t.Fatalf("the plan copies %d replicas, want 4 (broker 3's): %s", copies, lines[4])
	}

	r = c.mustClusterCLI("cluster", "reassign", "--execute", "--plan", planFile, "--throttle", "20000000")
	cliMatchAll(t, "execute", r.stdout,
		`(?m)^Replication throttled to 20000000 bytes/s on brokers 1,2,3 `,
		`(?m)^Throttled replicas set on topics spread\.$`,
		`(?m)^spread-\d: reassignment to \d,\d started$`)
	// The throttles are in place until verify sees the plan done (the
	// follower list names the replicas added, all on broker 3).
	c.eventually(30*time.Second, "follower.replication.throttled.replicas naming broker 3", func() error {
		if v, ok, err := topicConfig(c.node(1).addr, topic, "follower.replication.throttled.replicas"); err != nil || !ok || !strings.Contains(v, ":3") {
			return fmt.Errorf("%q, %v, %v", v, ok, err)
		}
		return nil
	})

	r = c.mustClusterCLI("cluster", "reassign", "--verify", "--plan", planFile, "--wait", "--interval", "100ms", "--timeout", "90s")
	cliMatchAll(t, "verify --wait", r.stdout,
		`(?m)^spread-0: complete$`, `(?m)^spread-5: complete$`,
		`(?m)^All 6 partitions are complete\.$`,
		`(?m)^Throttles removed: .*topic spread\.$`)
	views := c.waitISR(topic, partitions, 2)
	for i, p := range proposed.Partitions {
		if got := views[int32(i)].replicas; !slices.Equal(got, p.Replicas) {
			t.Errorf("%s-%d: replicas %v, the plan's %v", topic, i, got, p.Replicas)
		}
	}
	c.waitThrottlesCleared(topic)
	if r := c.mustClusterCLI("cluster", "reassign", "--list"); r.stdout != "No partition reassignment is in progress.\n" {
		t.Errorf("list: %q", r.stdout)
	}
	// Verify again: complete, and nothing left to remove.
	if r := c.mustClusterCLI("cluster", "reassign", "--verify", "--plan", planFile); strings.Contains(r.stdout, "Throttles removed") {
		t.Errorf("second verify removed throttles again:\n%s", r.stdout)
	}

	c.finishAndCheck(sp, topic, partitions)
	c.stopAndCompareMoved(topic, views)
}

// stopAndCompareMoved stops the brokers and checks that each partition's
// replicas (as views give them) hold the same bytes.
func (c *testCluster) stopAndCompareMoved(topic string, views map[int32]partitionView) {
	c.t.Helper()
	c.eventually(30*time.Second, "equal log ends of the moved replicas", func() error {
		ends := map[int32]map[string]int64{}
		for _, n := range c.running() {
			m, err := n.logEndOffsets()
			if err != nil {
				return err
			}
			ends[n.id] = m
		}
		for p, v := range views {
			name := fmt.Sprintf("%s-%d", topic, p)
			var seen []int64
			for _, r := range v.replicas {
				seen = append(seen, ends[r][name])
			}
			if slices.Min(seen) != slices.Max(seen) {
				return fmt.Errorf("%s: replicas %v at log ends %v", name, v.replicas, seen)
			}
		}
		return nil
	})
	c.stopAll()
	for p, v := range views {
		ref := replicaLog(c.t, c.node(v.replicas[0]).dataDir, topic, p)
		for _, r := range v.replicas[1:] {
			if got := replicaLog(c.t, c.node(r).dataDir, topic, p); string(got) != string(ref) {
				c.t.Errorf("%s-%d: broker %d holds %d bytes, broker %d %d", topic, p, v.replicas[0], len(ref), r, len(got))
			}
		}
	}
}

// TestDecommissionCLI drains broker 3 of a topic of two replicas with
// runnel cluster decommission --wait under an acks=all producer, then
// stops it and unregisters it: the metadata and DescribeCluster list two
// brokers, the Raft quorum has two voters, and every acknowledged record
// is there. Unregistering is refused while broker 3 runs, and after it is
// gone.
func TestDecommissionCLI(t *testing.T) {
	c := startCluster(t, fastFailover...)
	const topic, partitions = "drain", 6
	c.createTopic(topic, partitions, 2, nil)
	sp := startSequenceProducer(t, c.sequenceClient(topic), partitions, 2*time.Millisecond, 5)
	c.eventually(30*time.Second, "records acknowledged", func() error {
		if n := sp.acks.count(-1); n < 600 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	on3 := 0
	for _, v := range c.waitISR(topic, partitions, 2) {
		if slices.Contains(v.replicas, 3) {
			on3++
		}
	}
	if on3 == 0 {
		t.Fatal("no replica on broker 3 to drain")
	}

	// Refused: there are not enough other brokers for three replicas.
	c.createTopic("wide", 1, 3, nil)
	r := c.clusterCLI("cluster", "decommission", "--broker", "3")
	if r.code != 1 || !strings.Contains(r.stderr, "too few") {
		t.Fatalf("decommission with a partition of 3 replicas: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := c.admin().DeleteTopic(ctxTimeout(t, 10*time.Second), "wide"); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "topic wide deleted", func() error {
		views, err := c.partitionViews("wide")
		if err != nil {
			return err
		}
		for id, v := range views {
			if len(v) > 0 {
				return fmt.Errorf("broker %d still knows topic wide", id)
			}
		}
		return nil
	})

	r = c.mustClusterCLI("cluster", "decommission", "--broker", "3", "--throttle", "20000000", "--wait", "--interval", "100ms", "--timeout", "90s")
	cliMatchAll(t, "decommission", r.stdout,
		fmt.Sprintf(`(?m)^Moving %d replicas off broker 3 onto brokers 1,2\.$`, on3),
		`(?m)^All \d+ partitions are complete\.$`,
		`(?m)^Throttles removed: `,
		`(?m)^Broker 3 holds no replicas now\. Stop it, then run: runnel cluster unregister 3$`)
	views := c.waitISR(topic, partitions, 2)
	for p, v := range views {
		if slices.Contains(v.replicas, 3) {
			t.Fatalf("%s-%d still on broker 3: %v", topic, p, v)
		}
	}
	// Again: nothing to move.
	if r := c.mustClusterCLI("cluster", "decommission", "--broker", "3"); !strings.Contains(r.stdout, "Broker 3 holds no replicas.") {
		t.Errorf("second decommission: %s", r.stdout)
	}

	r = c.clusterCLI("cluster", "unregister", "3")
	if r.code != 1 || !strings.Contains(r.stderr, "INVALID_REQUEST") || !strings.Contains(r.stderr, "alive") {
		t.Fatalf("unregister of a running broker: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	c.finishAndCheck(sp, topic, partitions)
	c.node(3).stop()
	c.eventually(60*time.Second, "broker 3 unregistered", func() error {
		r := c.clusterCLI("cluster", "unregister", "3")
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		if r.stdout != "Broker 3 unregistered; the controller takes it out of the Raft quorum.\n" {
			t.Fatalf("unregister said %q", r.stdout)
		}
		return nil
	})
	r = c.clusterCLI("cluster", "unregister", "3")
	if r.code != 1 || !strings.Contains(r.stderr, "BROKER_ID_NOT_REGISTERED") {
		t.Fatalf("second unregister: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	dresp, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctxTimeout(t, 10*time.Second), c.client())
	if err != nil {
		t.Fatal(err)
	}
	var described []int32
	for _, b := range dresp.Brokers {
		described = append(described, b.NodeID)
	}
	slices.Sort(described)
	if !slices.Equal(described, []int32{1, 2}) {
		t.Errorf("DescribeCluster lists brokers %v, want 1 and 2", described)
	}
	c.eventually(30*time.Second, "two brokers in every broker's metadata", func() error {
		views, err := c.views()
		if err != nil {
			return err
		}
		for id, m := range views {
			if len(m.Brokers) != 2 {
				return fmt.Errorf("broker %d lists %d brokers", id, len(m.Brokers))
			}
		}
		return nil
	})
	// The quorum: a voter that is not a registered broker would show as
	// a row of its own ("unregistered") until the controller removes it.
	c.eventually(30*time.Second, "a quorum of two voters", func() error {
		r := c.mustClusterCLI("cluster", "status", "--format", "json")
		var st clusterStatusJSON
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			return err
		}
		var ids []string
		for _, b := range st.Brokers {
			ids = append(ids, fmt.Sprintf("%d:%s", b.ID, b.Liveness))
		}
		if len(st.Brokers) != 2 || st.Brokers[0].Liveness != "alive" || st.Brokers[1].Liveness != "alive" {
			return fmt.Errorf("brokers %v", ids)
		}
		return nil
	})
	qreq := kmsg.NewPtrDescribeQuorumRequest()
	qt := kmsg.NewDescribeQuorumRequestTopic()
	qt.Topic = "__cluster_metadata"
	qt.Partitions = append(qt.Partitions, kmsg.NewDescribeQuorumRequestTopicPartition())
	qreq.Topics = append(qreq.Topics, qt)
	qresp, err := qreq.RequestWith(ctxTimeout(t, 10*time.Second), c.client())
	if err != nil || len(qresp.Topics) != 1 || len(qresp.Topics[0].Partitions) != 1 {
		t.Fatalf("describe quorum: %v %+v", err, qresp)
	}
	if voters := qresp.Topics[0].Partitions[0].CurrentVoters; len(voters) != 2 {
		t.Errorf("DescribeQuorum lists %d voters, want 2: %+v", len(voters), voters)
	}
	got := c.readPartitions(topic, partitions)
	total := 0
	for _, rs := range got {
		total += len(rs)
	}
	if total < sp.acks.count(-1) {
		t.Fatalf("read %d records after the broker left, %d were acknowledged", total, sp.acks.count(-1))
	}
}

// TestReassignCLICancel: a reassignment held still by a throttle of 0
// bytes/s is listed and verified as in progress (exit 0), cannot be
// started again without --additional, and --cancel puts the partitions
// back and removes the throttles, after which verify reports the plan
// failed (exit 1). Bad plans and broker ids are refused before anything
// is sent.
func TestReassignCLICancel(t *testing.T) {
	c := startCluster(t)
	const topic, partitions = "stuck", 2
	c.createTopic(topic, partitions, 1, nil)
	cl := c.sequenceClient(topic)
	sp := startSequenceProducer(t, cl, partitions, time.Millisecond, 10)
	c.eventually(30*time.Second, "records acknowledged", func() error {
		if n := sp.acks.count(-1); n < 100 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	c.finishAndCheck(sp, topic, partitions)
	views := c.waitISR(topic, partitions, 1)

	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	var items []string
	from, to := map[int32]int32{}, map[int32]int32{}
	for p := range int32(partitions) {
		from[p] = views[p].replicas[0]
		to[p] = from[p]%3 + 1
		items = append(items, fmt.Sprintf(`{"topic":%q,"partition":%d,"replicas":[%d]}`, topic, p, to[p]))
	}
	if err := os.WriteFile(planFile, []byte(`{"version":1,"partitions":[`+strings.Join(items, ",")+`]}`), 0o644); err != nil {
		t.Fatal(err)
	}

	r := c.mustClusterCLI("cluster", "reassign", "--execute", "--plan", planFile, "--throttle", "0")
	cliMatchAll(t, "execute", r.stdout, `(?m)^stuck-0: reassignment to \d started$`, `(?m)^stuck-1: reassignment to \d started$`)
	r = c.mustClusterCLI("cluster", "reassign", "--list")
	cliMatchAll(t, "list", r.stdout, `(?m)^TOPIC +PARTITION +REPLICAS +ADDING +REMOVING$`,
		fmt.Sprintf(`(?m)^stuck +0 +%d,%d +%d +%d$`, to[0], from[0], to[0], from[0]),
		fmt.Sprintf(`(?m)^stuck +1 +%d,%d +%d +%d$`, to[1], from[1], to[1], from[1]))
	r = c.mustClusterCLI("cluster", "reassign", "--verify", "--plan", planFile)
	cliMatchAll(t, "verify", r.stdout,
		fmt.Sprintf(`(?m)^stuck-0: in progress \(adding %d; removing %d\)$`, to[0], from[0]),
		`(?m)^2 of 2 partitions are still moving; the throttles stay until all are done\.$`)
	c.eventually(30*time.Second, "leader.replication.throttled.replicas naming the current replicas", func() error {
		if v, ok, err := topicConfig(c.node(1).addr, topic, "leader.replication.throttled.replicas"); err != nil || !ok ||
			v != fmt.Sprintf("0:%d,1:%d", from[0], from[1]) {
			return fmt.Errorf("%q, %v, %v", v, ok, err)
		}
		return nil
	})
	r = c.clusterCLI("cluster", "reassign", "--execute", "--plan", planFile)
	if r.code != 1 || !strings.Contains(r.stderr, "being reassigned already") {
		t.Errorf("second execute: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = c.mustClusterCLI("cluster", "reassign", "--cancel", "--plan", planFile)
	cliMatchAll(t, "cancel", r.stdout,
		fmt.Sprintf(`(?m)^stuck-0: reassignment cancelled; back on %d$`, from[0]),
		fmt.Sprintf(`(?m)^stuck-1: reassignment cancelled; back on %d$`, from[1]),
		`(?m)^Throttles removed: broker \d.*, topic stuck\.$`)
	if r := c.mustClusterCLI("cluster", "reassign", "--list"); r.stdout != "No partition reassignment is in progress.\n" {
		t.Errorf("list after cancel: %q", r.stdout)
	}
	r = c.clusterCLI("cluster", "reassign", "--verify", "--plan", planFile)
	if r.code != 1 || !strings.Contains(r.stdout, fmt.Sprintf("stuck-0: failed: replicas %d differ from the plan's %d", from[0], to[0])) {
		t.Errorf("verify after cancel: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	c.waitThrottlesCleared(topic)
	for p, v := range c.waitISR(topic, partitions, 1) {
		if !slices.Equal(v.replicas, []int32{from[p]}) {
			t.Errorf("%s-%d after cancel: %v", topic, p, v)
		}
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--generate", "--topics", topic, "--broker-ids", "1,9"}, "broker 9 is not registered"},
		{[]string{"--generate", "--topics", "nosuch", "--broker-ids", "1,2"}, `unknown topic "nosuch"`},
		{[]string{"--generate", "--topics", topic, "--broker-ids", "1", "--replication-factor", "2"}, "only 1 brokers"},
		{[]string{"--verify"}, "--plan FILE is needed"},
		{[]string{"--list", "--verify"}, "give one of"},
	} {
		r := c.clusterCLI(append([]string{"cluster", "reassign"}, bad.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("reassign %v: exit %d, stderr %q; want 1 and %q", bad.args, r.code, r.stderr, bad.want)
		}
	}
	badPlan := filepath.Join(dir, "bad.json")
	os.WriteFile(badPlan, []byte(`{"version":1,"partitions":[{"topic":"stuck","partition":0,"replicas":[1,1]}]}`), 0o644)
	if r := c.clusterCLI("cluster", "reassign", "--execute", "--plan", badPlan); r.code != 1 || !strings.Contains(r.stderr, "distinct") {
		t.Errorf("execute of a bad plan: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := c.clusterCLI("cluster", "unregister", "99"); r.code != 1 || !strings.Contains(r.stderr, "BROKER_ID_NOT_REGISTERED") {
		t.Errorf("unregister 99: exit %d, stderr %q", r.code, r.stderr)
	}
}
