package test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// movedRecord is a record an acks=all producer had acknowledged.
type movedRecord struct {
	partition int32
	offset    int64
	value     string
}

// ackedProducer produces to topic with acks=all until stopped, recording
// every acknowledged record.
type ackedProducer struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	acked  []movedRecord
	failed int
}

func startAckedProducer(t *testing.T, cl *kgo.Client, topic string, every time.Duration, size int) *ackedProducer {
	ctx, cancel := context.WithCancel(context.Background())
	p := &ackedProducer{cancel: cancel, done: make(chan struct{})}
	pad := make([]byte, size)
	go func() {
		defer close(p.done)
		var wg sync.WaitGroup
		for i := 0; ctx.Err() == nil; i++ {
			v := fmt.Sprintf("r%07d-", i)
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: append([]byte(v), pad...)},
				func(r *kgo.Record, err error) {
					defer wg.Done()
					p.mu.Lock()
					defer p.mu.Unlock()
					if err != nil {
						p.failed++
						return
					}
					p.acked = append(p.acked, movedRecord{r.Partition, r.Offset, v})
				})
			if every > 0 {
				time.Sleep(every)
			}
		}
		wg.Wait()
	}()
	return p
}

func (p *ackedProducer) stop() []movedRecord {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acked)
}

// checkAcked reads topic from the start and checks that every acknowledged
// record is at the offset it was acknowledged at, once.
func checkAcked(t *testing.T, c *testCluster, topic string, acked []movedRecord) {
	t.Helper()
	want := map[int32]map[int64]string{}
	for _, a := range acked {
		if want[a.partition] == nil {
			want[a.partition] = map[int64]string{}
		}
		want[a.partition][a.offset] = a.value
	}
	cl := c.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	ctx := ctxTimeout(t, 60*time.Second)
	seen := map[int32]map[int64]bool{}
	missing := len(acked)
	for missing > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d acknowledged records of %s not read back", missing, topic)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s-%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if seen[r.Partition] == nil {
				seen[r.Partition] = map[int64]bool{}
			}
			if seen[r.Partition][r.Offset] {
				t.Fatalf("%s-%d offset %d read twice", topic, r.Partition, r.Offset)
			}
			seen[r.Partition][r.Offset] = true
			v, ok := want[r.Partition][r.Offset]
			if !ok {
				return // produced, not acknowledged: may or may not be there
			}
			if got := string(r.Value[:len(v)]); got != v {
				t.Fatalf("%s-%d offset %d holds %q, acknowledged as %q", topic, r.Partition, r.Offset, got, v)
			}
			missing--
		})
	}
}

// reassignmentsNow returns the reassignments in progress of topic's
// first 16 partitions.
func reassignmentsNow(ctx context.Context, adm *kadm.Client, topic string) (kadm.ListPartitionReassignmentsResponses, error) {
	parts := map[int32]struct{}{}
	for p := range int32(16) {
		parts[p] = struct{}{}
	}
	resp, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: parts})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// TestReassignmentUnderLoad moves every partition of a topic onto a new
// pair of brokers, each losing its preferred leader, while an acks=all
// producer writes: the adding replicas catch up under the follower
// replication throttle, one of them is killed midway and comes back, and
// the reassignment completes. No acknowledged record is lost or moved,
// the old replicas delete their copies, and the throttle held the copy to
// its rate.
func TestReassignmentUnderLoad(t *testing.T) {
	c := startCluster(t, "--leader-rebalance-interval", "0s")
	const topic, parts = "moving", 3
	c.createTopic(topic, parts, 2, nil)
	adm := c.admin()
	ctx := ctxTimeout(t, 3*time.Minute)

	// 1 MiB per partition before the move (incompressible), then a
	// trickle during it.
	pcl := c.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	var acked []movedRecord
	for i := range parts * 1024 / 64 {
		var batch []*kgo.Record
		for j := range 64 {
			v := make([]byte, 1024)
			rand.Read(v)
			copy(v, fmt.Sprintf("b%07d-", i*64+j))
			batch = append(batch, &kgo.Record{Topic: topic, Value: v})
		}
		res := pcl.ProduceSync(ctx, batch...)
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			acked = append(acked, movedRecord{r.Record.Partition, r.Record.Offset, string(r.Record.Value[:9])})
		}
	}
	load := startAckedProducer(t, pcl, topic, 5*time.Millisecond, 100)

	const rate = 256 << 10
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig,
		Name: "follower.replication.throttled.rate", Value: kmsg.StringPtr(strconv.Itoa(rate))}}); err != nil {
		t.Fatal(err)
	}

	views := c.waitISR(topic, parts, 2)
	targets := map[int32][]int32{}
	req := kadm.AlterPartitionAssignmentsReq{}
	for p, v := range views {
		var spare int32
		for id := int32(1); id <= clusterSize; id++ {
			if !slices.Contains(v.replicas, id) {
				spare = id
			}
		}
		// The spare broker first, then the second replica: the first
		// (the preferred leader) is removed.
		targets[p] = []int32{spare, v.replicas[1]}
		req.Assign(topic, p, targets[p])
	}
	started := time.Now()
	resps, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := resps.Error(); err != nil {
		t.Fatal(err)
	}
	t.Logf("moving %s: %v", topic, targets)

	// In progress: Metadata lists the target and the removing replica,
	// ListPartitionReassignments the adding and removing ones.
	lr, err := reassignmentsNow(ctx, adm, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(lr) == 0 {
		t.Fatal("no reassignment in progress right after the request")
	}
	lr.Each(func(r kadm.ListPartitionReassignmentsResponse) {
		if !slices.Equal(r.Replicas[:2], targets[r.Partition]) || len(r.AddingReplicas) != 1 || len(r.RemovingReplicas) != 1 {
			t.Errorf("%s-%d in progress: replicas %v adding %v removing %v; target %v", topic, r.Partition, r.Replicas,
				r.AddingReplicas, r.RemovingReplicas, targets[r.Partition])
		}
	})

	// The adding replica of partition 0 dies mid-copy and returns.
	victim := c.node(targets[0][0])
	victim.kill()
	time.Sleep(500 * time.Millisecond)
	victim.restart()

	c.eventually(2*time.Minute, "reassignments complete", func() error {
		lr, err := reassignmentsNow(ctx, adm, topic)
		if err != nil {
			return err
		}
		if len(lr) > 0 {
			return fmt.Errorf("%d still in progress", len(lr))
		}
		views, err := c.agreedPartitions(topic, parts)
		if err != nil {
			return err
		}
		for p, v := range views {
			if !slices.Equal(v.replicas, targets[p]) || len(v.isr) != 2 || !slices.Contains(targets[p], v.leader) {
				return fmt.Errorf("%s-%d: %v, target %v", topic, p, v, targets[p])
			}
		}
		return nil
	})
	took := time.Since(started)
	acked = append(acked, load.stop()...)
	// Each broker copied about 1 MiB at 256 KiB/s, with a second's
	// burst: it cannot have taken less than about three seconds.
	if took < 2*time.Second {
		t.Errorf("the throttled copy of 1 MiB per broker at %d B/s took only %v", rate, took)
	}
	t.Logf("moved in %v; %d records acknowledged", took, len(acked))
	checkAcked(t, c, topic, acked)

	// The brokers left out no longer hold the partitions.
	c.eventually(30*time.Second, "removed replicas gone", func() error {
		for _, n := range c.nodes {
			ends, err := n.logEndOffsets()
			if err != nil {
				return err
			}
			for p := range int32(parts) {
				_, has := ends[fmt.Sprintf("%s-%d", topic, p)]
				if want := slices.Contains(targets[p], n.id); has != want {
					return fmt.Errorf("broker %d holds %s-%d: %v, want %v", n.id, topic, p, has, want)
				}
			}
		}
		return nil
	})
}

// TestReassignmentAPIs drives the reassignment requests' error cases with
// kadm, and a reassignment held by a zero leader rate through sarama's
// admin client: listed in progress, then cancelled back to the original
// replicas.
func TestReassignmentAPIs(t *testing.T) {
	c := startCluster(t)
	c.createTopic("held", 1, 1, nil)
	adm := c.admin()
	ctx := ctxTimeout(t, 2*time.Minute)

	cases := []struct {
		name      string
		topic     string
		partition int32
		replicas  []int32
		want      error
	}{
		{"unknown topic", "nope", 0, []int32{1}, kerr.UnknownTopicOrPartition},
		{"unknown partition", "held", 7, []int32{1}, kerr.UnknownTopicOrPartition},
		{"unknown broker", "held", 0, []int32{9}, kerr.InvalidReplicaAssignment},
		{"broker twice", "held", 0, []int32{1, 1}, kerr.InvalidReplicaAssignment},
		{"empty", "held", 0, []int32{}, kerr.InvalidReplicaAssignment},
		{"cancel with none", "held", 0, nil, kerr.NoReassignmentInProgress},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
			rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
			rt.Topic = tc.topic
			rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
			rp.Partition, rp.Replicas = tc.partition, tc.replicas
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			resp, err := req.RequestWith(ctx, c.client())
			if err != nil {
				t.Fatal(err)
			}
			if got := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); !errors.Is(got, tc.want) {
				t.Fatalf("error %v, want %v", got, tc.want)
			}
		})
	}

	// No leader traffic to throttled replicas passes at a rate of 0: the
	// reassignment stays in progress until cancelled.
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig,
		Name: "leader.replication.throttled.rate", Value: kmsg.StringPtr("0")}}); err != nil {
		t.Fatal(err)
	}
	orig := c.waitISR("held", 1, 1)[0].replicas
	pcl := c.client(kgo.RequiredAcks(kgo.AllISRAcks()))
	if err := pcl.ProduceSync(ctx, &kgo.Record{Topic: "held", Value: []byte("before")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	other := int32(1)
	if orig[0] == 1 {
		other = 2
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	sa, err := sarama.NewClusterAdmin(c.addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	if err := sa.AlterPartitionReassignments("held", [][]int32{{other}}); err != nil {
		t.Fatal(err)
	}
	st, err := sa.ListPartitionReassignments("held", []int32{0})
	if err != nil {
		t.Fatal(err)
	}
	got := st["held"][0]
	if got == nil || !slices.Equal(got.Replicas, []int32{other, orig[0]}) || !slices.Equal(got.AddingReplicas, []int32{other}) ||
		!slices.Equal(got.RemovingReplicas, orig) {
		t.Fatalf("sarama lists %+v, want replicas [%d %d] adding [%d] removing %v", got, other, orig[0], other, orig)
	}
	// It stays so: the added replica copies nothing.
	time.Sleep(2 * time.Second)
	if st, err = sa.ListPartitionReassignments("held", []int32{0}); err != nil || st["held"][0] == nil {
		t.Fatalf("the held reassignment is no longer in progress: %v %v", st, err)
	}
	if err := sa.AlterPartitionReassignments("held", [][]int32{nil}); err != nil {
		t.Fatalf("cancelling: %v", err)
	}
	c.eventually(30*time.Second, "the cancelled partition on its original replicas", func() error {
		views, err := c.agreedPartitions("held", 1)
		if err != nil {
			return err
		}
		if v := views[0]; !slices.Equal(v.replicas, orig) || v.leader != orig[0] {
			return fmt.Errorf("held-0: %v, want replicas %v", v, orig)
		}
		st, err := sa.ListPartitionReassignments("held", []int32{0})
		if err != nil {
			return err
		}
		if len(st["held"]) > 0 {
			return fmt.Errorf("still listed: %+v", st["held"][0])
		}
		return nil
	})
	if err := pcl.ProduceSync(ctx, &kgo.Record{Topic: "held", Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// UnregisterBroker: a live broker and an unknown one are refused.
	for _, tc := range []struct {
		id   int32
		want error
	}{{2, kerr.InvalidRequest}, {9, kerr.BrokerIDNotRegistered}} {
		req := kmsg.NewPtrUnregisterBrokerRequest()
		req.BrokerID = tc.id
		resp, err := req.RequestWith(ctx, c.client())
		if err != nil {
			t.Fatal(err)
		}
		if got := kerr.ErrorForCode(resp.ErrorCode); !errors.Is(got, tc.want) {
			t.Fatalf("unregistering broker %d: %v, want %v", tc.id, got, tc.want)
		}
	}
}

// addObserver starts a fourth broker that is not among the voters: it
// joins the quorum as an observer.
func (c *testCluster) addObserver(id int32) *clusterNode {
	c.t.Helper()
	var voters []string
	for _, n := range c.nodes {
		voters = append(voters, fmt.Sprintf("%d@%s", n.id, n.raftAddr))
	}
	n := &clusterNode{t: c.t, id: id, dataDir: c.t.TempDir(), addr: freePort(c.t), raftAddr: freePort(c.t),
		metrics: freePort(c.t), log: &nodeLog{}}
	n.args = []string{"serve", "--node-id", strconv.Itoa(int(id)), "--data-dir", n.dataDir,
		"--listen", n.addr, "--raft-listen", n.raftAddr, "--voters", strings.Join(voters, ","),
		"--metrics-listen", n.metrics, "--log-level", "debug", "--auto-create-topics", "false"}
	c.t.Cleanup(n.kill)
	c.nodes = append(c.nodes, n)
	n.launch()
	n.waitServing()
	return n
}

// quorumOf returns the voters and observers broker n's DescribeQuorum
// names.
func quorumOf(t *testing.T, n *clusterNode) (voters, observers []int32) {
	t.Helper()
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rp := kmsg.NewDescribeQuorumRequestTopicPartition()
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := clusterRequest(n.addr, req, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.(*kmsg.DescribeQuorumResponse).Topics[0].Partitions[0]
	for _, v := range p.CurrentVoters {
		voters = append(voters, v.ReplicaID)
	}
	for _, o := range p.Observers {
		observers = append(observers, o.ReplicaID)
	}
	slices.Sort(voters)
	slices.Sort(observers)
	return voters, observers
}

// TestBrokerJoinsAndIsDecommissioned: a broker started with an id not in
// --voters joins the quorum as an observer, takes replicas moved onto it
// under an acks=all producer, survives a SIGKILL as a member, and is
// decommissioned: its replicas moved off, stopped, unregistered, and out
// of the quorum.
func TestBrokerJoinsAndIsDecommissioned(t *testing.T) {
	c := startCluster(t)
	n4 := c.addObserver(4)
	c.waitHealthy() // every broker lists 4 as live
	for _, n := range c.nodes {
		voters, observers := quorumOf(t, n)
		if !slices.Equal(voters, []int32{1, 2, 3}) || !slices.Equal(observers, []int32{4}) {
			t.Fatalf("broker %d: voters %v observers %v, want [1 2 3] and [4]", n.id, voters, observers)
		}
	}

	const topic, parts = "grow", 2
	c.createTopic(topic, parts, 2, nil)
	adm := c.admin()
	ctx := ctxTimeout(t, 3*time.Minute)
	pcl := c.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond))
	load := startAckedProducer(t, pcl, topic, 2*time.Millisecond, 100)

	move := func(targets map[int32][]int32) {
		t.Helper()
		req := kadm.AlterPartitionAssignmentsReq{}
		for p, r := range targets {
			req.Assign(topic, p, r)
		}
		resps, err := adm.AlterPartitionAssignments(ctx, req)
		if err == nil {
			err = resps.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
		c.eventually(2*time.Minute, fmt.Sprintf("%s on %v", topic, targets), func() error {
			views, err := c.agreedPartitions(topic, parts)
			if err != nil {
				return err
			}
			for p, v := range views {
				if !slices.Equal(v.replicas, targets[p]) || len(v.isr) != len(targets[p]) {
					return fmt.Errorf("%s-%d: %v, want replicas %v", topic, p, v, targets[p])
				}
			}
			return nil
		})
	}
	views := c.waitISR(topic, parts, 2)
	onto, back := map[int32][]int32{}, map[int32][]int32{}
	for p, v := range views {
		if slices.Contains(v.replicas, 4) {
			onto[p] = v.replicas
		} else {
			onto[p] = []int32{4, v.replicas[0]}
		}
		back[p] = slices.DeleteFunc(slices.Clone(v.replicas), func(r int32) bool { return r == 4 })
		if len(back[p]) < 2 {
			for id := int32(1); id <= 3; id++ {
				if !slices.Contains(back[p], id) {
					back[p] = append(back[p], id)
					break
				}
			}
		}
	}
	move(onto)

	// A member across restarts: killed, it comes back without joining.
	n4.kill()
	n4.restart()
	c.waitISR(topic, parts, 2)

	// Refused while alive and holding replicas.
	unregister := func(id int32) *kmsg.UnregisterBrokerResponse {
		req := kmsg.NewPtrUnregisterBrokerRequest()
		req.BrokerID = id
		resp, err := clusterRequest(c.node(1).addr, req, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.UnregisterBrokerResponse)
	}
	if r := unregister(4); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("unregistering a live broker holding replicas: %v", kerr.ErrorForCode(r.ErrorCode))
	}

	move(back)
	acked := load.stop()
	checkAcked(t, c, topic, acked)

	n4.stop()
	c.nodes = c.nodes[:3]
	c.eventually(30*time.Second, "broker 4 fenced", func() error {
		if r := unregister(4); r.ErrorCode != 0 {
			return fmt.Errorf("%v: %s", kerr.ErrorForCode(r.ErrorCode), *r.ErrorMessage)
		}
		return nil
	})
	c.eventually(30*time.Second, "broker 4 out of the quorum and the metadata", func() error {
		for _, n := range c.nodes {
			voters, observers := quorumOf(t, n)
			if !slices.Equal(voters, []int32{1, 2, 3}) || len(observers) > 0 {
				return fmt.Errorf("broker %d: voters %v observers %v", n.id, voters, observers)
			}
		}
		dreq := kmsg.NewPtrDescribeClusterRequest()
		resp, err := clusterRequest(c.node(1).addr, dreq, 10*time.Second)
		if err != nil {
			return err
		}
		if bs := resp.(*kmsg.DescribeClusterResponse).Brokers; len(bs) != 3 {
			return fmt.Errorf("DescribeCluster lists %d brokers", len(bs))
		}
		return nil
	})
	if r := unregister(4); r.ErrorCode != kerr.BrokerIDNotRegistered.Code {
		t.Fatalf("unregistering broker 4 again: %v", kerr.ErrorForCode(r.ErrorCode))
	}
}
