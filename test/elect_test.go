package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// electFlags start a cluster whose controller never moves leadership back
// on its own, so only ElectLeaders does.
var electFlags = append([]string{"--leader-rebalance-interval", "0s"}, fastFailover...)

// adminOpsPython runs test/testdata/admin_ops.py (kafka-python) and
// decodes what it prints into out.
func adminOpsPython(t *testing.T, c *testCluster, out any, args ...string) {
	t.Helper()
	py := offsetsPython(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append([]string{filepath.Join("testdata", "admin_ops.py"), args[0], strings.Join(c.addrs(), ",")}, args[1:]...)
	cmd := exec.CommandContext(ctx, py, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("%v printed %q: %v\nstderr:\n%s", args, stdout.String(), err, stderr.String())
	}
}

type pyLogDir struct {
	Dir        string              `json:"dir"`
	Error      int16               `json:"error"`
	Partitions map[string][2]int64 `json:"partitions"` // "topic-p": size, lag
}

type pyElection struct {
	Error   int16            `json:"error"`
	Results map[string][]any `json:"results"` // "topic-p": code, message
}

// code returns the error code of a partition's result, -1 if none.
func (e pyElection) code(tp string) int16 {
	if r, ok := e.Results[tp]; ok && len(r) > 0 {
		if f, ok := r[0].(float64); ok {
			return int16(f)
		}
	}
	return -1
}

// clusterCLI runs the runnel binary against every broker of c.
func clusterCLI(t *testing.T, c *testCluster, args ...string) cliResult {
	t.Helper()
	return runCLI(t, nil, "", append(args, "--brokers", strings.Join(c.addrs(), ","))...)
}

// logDirSizes returns each broker's size of each partition of topic, by
// DescribeAllLogDirs.
func logDirSizes(t *testing.T, adm *kadm.Client, topic string) map[int32]map[int32]int64 {
	t.Helper()
	all, err := adm.DescribeAllLogDirs(ctxTimeout(t, 30*time.Second), nil)
	if err != nil {
		t.Fatalf("DescribeAllLogDirs: %v", err)
	}
	out := map[int32]map[int32]int64{}
	for _, d := range all.Sorted() {
		if d.Err != nil || !filepath.IsAbs(d.Dir) || d.TotalBytes <= 0 || d.UsableBytes <= 0 {
			t.Fatalf("broker %d: dir %q total %d usable %d err %v", d.Broker, d.Dir, d.TotalBytes, d.UsableBytes, d.Err)
		}
		out[d.Broker] = map[int32]int64{}
		for _, p := range d.Topics.Sorted() {
			if p.Topic == topic {
				out[d.Broker][p.Partition] = p.Size
			}
		}
	}
	return out
}

// TestElectLeadersPreferredAfterFailover: the leader of a partition is
// killed and comes back in sync, but leads nothing (the controller's
// rebalance is off); a preferred election of every partition, with kadm,
// gives it back its leaderships and reports only the partitions elected;
// kafka-python and the CLI then find nothing to elect. DescribeLogDirs
// (kadm, kafka-python, the CLI) lists every replica on its broker with
// sizes that grow as records are produced.
func TestElectLeadersPreferredAfterFailover(t *testing.T) {
	const topic, partitions = "elect-preferred", 3
	c := startCluster(t, electFlags...)
	c.createTopic(topic, partitions, 3, map[string]string{"min.insync.replicas": "2"})
	adm := c.admin()
	views := c.waitISR(topic, partitions, 3)
	preferred := views[0].replicas[0]
	if views[0].leader != preferred {
		t.Fatalf("a new partition not led by its preferred replica: %v", views[0])
	}

	sizes := logDirSizes(t, adm, topic)
	for id := int32(1); id <= clusterSize; id++ {
		if len(sizes[id]) != partitions {
			t.Fatalf("broker %d's log directory holds %v of %s, want all %d partitions", id, sizes[id], topic, partitions)
		}
	}
	cl := c.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	for i := range 50 {
		r := &kgo.Record{Partition: 0, Value: bytes.Repeat([]byte{byte(i)}, 200)}
		if err := cl.ProduceSync(ctxTimeout(t, 30*time.Second), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	c.waitLogEndsEqual(topic, partitions)
	grown := logDirSizes(t, adm, topic)
	for id := int32(1); id <= clusterSize; id++ {
		if grown[id][0] < sizes[id][0]+50*200 || grown[id][1] != sizes[id][1] {
			t.Fatalf("broker %d: sizes %v after 50 records of 200 bytes to partition 0, %v before", id, grown[id], sizes[id])
		}
	}
	var py map[string][]pyLogDir
	adminOpsPython(t, c, &py, "logdirs")
	for id := int32(1); id <= clusterSize; id++ {
		dirs := py[strconv.Itoa(int(id))]
		if len(dirs) != 1 || dirs[0].Error != 0 || !strings.HasPrefix(dirs[0].Dir, c.node(id).dataDir) {
			t.Fatalf("kafka-python: broker %d's log directories %+v", id, dirs)
		}
		if got := dirs[0].Partitions[topic+"-0"]; got[0] < grown[id][0] || got[1] != 0 {
			t.Fatalf("kafka-python: broker %d has %s-0 at %v, kadm said size %d", id, topic, got, grown[id][0])
		}
	}

	// Failover: the preferred leader goes, comes back, catches up.
	c.node(preferred).kill()
	other := c.waitLeader(topic, 0, func(id int32) bool { return id != preferred })
	c.node(preferred).restart()
	views = c.waitISR(topic, partitions, 3)
	if views[0].leader != other {
		t.Fatalf("%s-0 moved to %v with the rebalance off", topic, views[0])
	}
	var moved []int32
	for p, v := range views {
		if v.leader != v.replicas[0] {
			moved = append(moved, p)
		}
	}

	results, err := adm.ElectLeaders(ctxTimeout(t, 30*time.Second), kadm.ElectPreferredReplica, nil)
	if err != nil {
		t.Fatal(err)
	}
	var elected []int32
	for tn, ps := range results {
		for p, r := range ps {
			if tn != topic || r.Err != nil {
				t.Fatalf("election of %s-%d: %v %s (only %s's moved partitions %v expected)", tn, p, r.Err, r.ErrMessage, topic, moved)
			}
			elected = append(elected, p)
		}
	}
	if len(elected) != len(moved) {
		t.Fatalf("elected %v, want the partitions led elsewhere %v", elected, moved)
	}
	for p := range int32(partitions) {
		want := views[p].replicas[0]
		c.waitLeader(topic, p, func(id int32) bool { return id == want })
	}
	// Asked by name, a partition on its preferred leader is ELECTION_NOT_NEEDED.
	results, err = adm.ElectLeaders(ctxTimeout(t, 30*time.Second), kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}}})
	if err != nil || !errors.Is(results[topic][0].Err, kerr.ElectionNotNeeded) {
		t.Fatalf("second election of %s-0: %+v, %v", topic, results, err)
	}
	var pe pyElection
	adminOpsPython(t, c, &pe, "elect", "0")
	if pe.Error != 0 || len(pe.Results) != 0 {
		t.Fatalf("kafka-python, every partition: %+v", pe)
	}
	adminOpsPython(t, c, &pe, "elect", "0", topic+":1", "nope:0")
	if pe.code(topic+"-1") != kerr.ElectionNotNeeded.Code || pe.code("nope-0") != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("kafka-python, named partitions: %+v", pe)
	}

	r := clusterCLI(t, c, "cluster", "elect-leaders")
	if r.code != 0 || !strings.Contains(r.stdout, "no partition needed an election") {
		t.Fatalf("cluster elect-leaders: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = clusterCLI(t, c, "cluster", "log-dirs", "--topic", topic)
	if r.code != 0 {
		t.Fatalf("cluster log-dirs: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for id := int32(1); id <= clusterSize; id++ {
		dir := regexp.QuoteMeta(filepath.Join(c.node(id).dataDir, "topics"))
		cliMatchAll(t, "cluster log-dirs", r.stdout, fmt.Sprintf(`(?m)^%d +%s +\d+ +\d+ +\d+ +-$`, id, dir),
			fmt.Sprintf(`(?m)^%d +%s +0 +%d +0$`, id, topic, grown[id][0]))
	}
	r = clusterCLI(t, c, "cluster", "log-dirs", "--broker", "2")
	if r.code != 0 || strings.Contains(r.stdout, "\n1 ") || !strings.Contains(r.stdout, "\n2 ") {
		t.Fatalf("cluster log-dirs --broker 2: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestElectLeadersUnclean: a partition of two replicas loses its
// follower, then its leader, the only in-sync replica, to SIGKILL; the
// follower comes back outside the ISR and the partition stays without a
// leader, since the topic does not allow unclean elections. A preferred
// election cannot help (its preferred replica is fenced); an unclean one,
// asked for by the CLI, elects the follower, now the whole ISR; the old
// leader returns, drops what only it held and follows. A
// partition whose only replica is fenced finds no eligible leader: fenced
// brokers are never elected.
func TestElectLeadersUnclean(t *testing.T) {
	const pair, solo = "elect-unclean", "elect-solo"
	c := startCluster(t, electFlags...)
	c.createTopic(pair, 3, 2, nil)
	c.createTopic(solo, 3, 1, nil)
	views := c.waitISR(pair, 3, 2)
	leader, follower := views[0].replicas[0], views[0].replicas[1]
	soloViews := c.waitISR(solo, 3, 1)
	var onLeader int32 = -1
	for p, v := range soloViews {
		if v.replicas[0] == leader {
			onLeader = p
		}
	}
	if onLeader < 0 {
		t.Fatalf("no partition of %s on broker %d: %v", solo, leader, soloViews)
	}

	c.node(follower).kill()
	c.eventually(30*time.Second, "the follower out of the ISR", func() error {
		v, err := c.agreedPartitions(pair, 3)
		if err != nil {
			return err
		}
		if len(v[0].isr) != 1 || v[0].isr[0] != leader {
			return fmt.Errorf("%s-0: %v", pair, v[0])
		}
		return nil
	})
	// Records only the leader holds: the unclean election loses them.
	cl := c.client(kgo.DefaultProduceTopic(pair), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 5 {
		r := &kgo.Record{Partition: 0, Value: []byte("only on the leader " + strconv.Itoa(i))}
		if err := cl.ProduceSync(ctxTimeout(t, 30*time.Second), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	c.node(leader).kill() // the quorum has one voter left until the follower returns
	c.node(follower).restart()
	c.waitHealthy()
	c.eventually(30*time.Second, "the partition without a leader", func() error {
		v, err := c.agreedPartitions(pair, 3)
		if err != nil {
			return err
		}
		if v[0].leader != -1 {
			return fmt.Errorf("%s-0: %v", pair, v[0])
		}
		return nil
	})

	adm := c.admin()
	set := kadm.TopicsSet{pair: {0: {}}, solo: {onLeader: {}}}
	results, err := adm.ElectLeaders(ctxTimeout(t, 30*time.Second), kadm.ElectPreferredReplica, set)
	if err != nil {
		t.Fatal(err)
	}
	if err := results[pair][0].Err; !errors.Is(err, kerr.PreferredLeaderNotAvailable) {
		t.Fatalf("preferred election with the preferred replica fenced: %v", err)
	}
	r := clusterCLI(t, c, "cluster", "elect-leaders", "--unclean", "--topic", solo, "--partition", strconv.Itoa(int(onLeader)))
	if r.code == 0 || !strings.Contains(r.stdout, "ELIGIBLE_LEADERS_NOT_AVAILABLE") {
		t.Fatalf("unclean election of a partition whose one replica is fenced: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = clusterCLI(t, c, "cluster", "elect-leaders", "--unclean", "--topic", pair, "--partition", "0")
	if r.code != 0 || !regexp.MustCompile(fmt.Sprintf(`(?m)^%s +0 +%d +elected$`, pair, follower)).MatchString(r.stdout) {
		t.Fatalf("unclean election: exit %d\n%q\n%q", r.code, r.stdout, r.stderr)
	}
	c.eventually(30*time.Second, "every broker sees the unclean election", func() error {
		v, err := c.agreedPartitions(pair, 3)
		if err != nil {
			return err
		}
		if v[0].leader != follower || len(v[0].isr) != 1 || v[0].isr[0] != follower {
			return fmt.Errorf("%s-0: %v", pair, v[0])
		}
		return nil
	})
	if err := cl.ProduceSync(ctxTimeout(t, 30*time.Second), &kgo.Record{Partition: 0, Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatalf("produce to the new leader: %v", err)
	}
	results, err = adm.ElectLeaders(ctxTimeout(t, 30*time.Second), kadm.ElectLiveReplica, kadm.TopicsSet{pair: {0: {}}})
	if err != nil || !errors.Is(results[pair][0].Err, kerr.ElectionNotNeeded) {
		t.Fatalf("a second unclean election: %+v %v", results, err)
	}
	// The old leader returns, cuts the records it alone held and follows.
	c.node(leader).restart()
	c.eventually(45*time.Second, "the old leader back in the ISR with the new leader's log", func() error {
		v, err := c.agreedPartitions(pair, 3)
		if err != nil {
			return err
		}
		if v[0].leader != follower || len(v[0].isr) != 2 {
			return fmt.Errorf("%s-0: %v", pair, v[0])
		}
		ends := map[int32]int64{}
		for _, id := range []int32{leader, follower} {
			m, err := c.node(id).logEndOffsets()
			if err != nil {
				return err
			}
			ends[id] = m[pair+"-0"]
		}
		if ends[leader] != 1 || ends[follower] != 1 {
			return fmt.Errorf("log ends of %s-0 %v, want 1 (the record produced after the election) on both", pair, ends)
		}
		return nil
	})
}
