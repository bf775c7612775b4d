package test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestOffsetsCoordinatorFailover: on three brokers, 300 groups commit
// offsets while each broker in turn, coordinating some of them, is
// SIGKILLed and restarted. Groups are coordinated by the leaders of
// __consumer_offsets partitions, so every broker coordinates some; the
// groups of a killed broker move to the new leaders of its partitions.
// Consumer groups with live members rebalance on their new coordinator and
// go on consuming and committing. No group's committed offset ever goes
// below one the broker acknowledged, and the topic is internal in the
// metadata.
func TestOffsetsCoordinatorFailover(t *testing.T) {
	const (
		topic         = "work"
		offsetsParts  = 12
		groupsN       = 300
		committers    = 10
		memberGroupsN = 4
	)
	c := startCluster(t, append(append([]string{}, fastFailover...), "--offsets-topic-partitions", fmt.Sprint(offsetsParts),
		"--group-initial-rebalance-delay", "0s", "--group-min-session-timeout", "1s")...)
	c.createTopic(topic, 4, 3, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	// 300 groups committing without members (as admin tools and consumers
	// that assign partitions themselves do), each the offset after its
	// last acknowledged one.
	var acked [groupsN]atomic.Int64
	var commits, refused atomic.Int64
	for w := 0; w < committers; w++ {
		adm := kadm.NewClient(c.client(kgo.RequestTimeoutOverhead(5 * time.Second)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := int64(1); ctx.Err() == nil; round++ {
				for g := w; g < groupsN; g += committers {
					offs := kadm.Offsets{}
					offs.Add(kadm.Offset{Topic: topic, Partition: int32(g % 4), At: round, LeaderEpoch: -1})
					cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
					resp, err := adm.CommitOffsets(cctx, groupName(g), offs)
					ccancel()
					if err == nil {
						err = resp.Error()
					}
					if err != nil {
						refused.Add(1)
						continue
					}
					acked[g].Store(round)
					commits.Add(1)
				}
			}
		}()
	}
	waitCommits := func(n int64, what string) {
		t.Helper()
		from := commits.Load()
		c.eventually(60*time.Second, what, func() error {
			if got := commits.Load() - from; got < n {
				return fmt.Errorf("%d commits acknowledged, want %d more", got, n)
			}
			return nil
		})
	}

	// Consumer groups with one live member each, consuming what a
	// producer writes and committing as they go.
	type member struct {
		group    string
		assigned atomic.Int64 // assignments received
		consumed atomic.Int64
	}
	var members []*member
	for i := 0; i < memberGroupsN; i++ {
		m := &member{group: fmt.Sprintf("members-%d", i)}
		members = append(members, m)
		cl := c.client(kgo.ConsumerGroup(m.group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(3*time.Second),
			kgo.HeartbeatInterval(300*time.Millisecond), kgo.AutoCommitInterval(200*time.Millisecond),
			kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { m.assigned.Add(1) }))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				m.consumed.Add(int64(fs.NumRecords()))
			}
		}()
	}
	producer := c.client(kgo.DefaultProduceTopic(topic))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			producer.ProduceSync(pctx, &kgo.Record{Value: []byte(fmt.Sprint(i))})
			pcancel()
			time.Sleep(5 * time.Millisecond)
		}
	}()

	waitCommits(groupsN, "every group's first commits")
	c.waitISR("__consumer_offsets", offsetsParts, 3)

	// The coordinators are spread: each broker leads some partitions of
	// the topic and so coordinates some groups.
	coordinated := c.coordinators(groupsN)
	for _, n := range c.nodes {
		if coordinated[n.id] == 0 {
			t.Fatalf("broker %d coordinates none of %d groups: %v", n.id, groupsN, coordinated)
		}
	}
	t.Logf("groups coordinated per broker: %v", coordinated)
	md, err := c.nodes[0].metadata()
	if err != nil {
		t.Fatal(err)
	}
	internal := false
	for _, mt := range md.Topics {
		if mt.Topic != nil && *mt.Topic == "__consumer_offsets" {
			internal = mt.IsInternal
		}
	}
	if !internal {
		t.Fatal("__consumer_offsets is not shown as internal in the metadata")
	}

	rebalanced := 0
	for _, victim := range c.nodes {
		before := c.coordinators(groupsN)[victim.id]
		// The member groups the victim coordinates must rebalance on
		// their new coordinator: membership is not in the log.
		var moving []*member
		var assigned []int64
		for _, m := range members {
			if c.coordinatorOf(m.group) == victim.id {
				moving = append(moving, m)
				assigned = append(assigned, m.assigned.Load())
			}
		}
		killed := time.Now()
		victim.kill()
		// Every partition it led gets a new leader among the others.
		for p := int32(0); p < offsetsParts; p++ {
			c.waitLeader("__consumer_offsets", p, func(id int32) bool { return id != victim.id })
		}
		waitCommits(groupsN, fmt.Sprintf("commits of every group without broker %d", victim.id))
		moved := time.Since(killed)
		c.eventually(60*time.Second, "the victim's member groups rebalanced on a new coordinator", func() error {
			for i, m := range moving {
				if m.assigned.Load() == assigned[i] {
					return fmt.Errorf("group %s has had no new assignment", m.group)
				}
			}
			return nil
		})
		rebalanced += len(moving)
		victim.restart()
		c.waitISR("__consumer_offsets", offsetsParts, 3)
		t.Logf("killed broker %d (coordinator of %d groups): every group committing again after %v; %d commits, %d refused so far",
			victim.id, before, moved.Round(time.Millisecond), commits.Load(), refused.Load())
	}
	waitCommits(groupsN, "commits after the last restart")
	cancel()
	wg.Wait()

	// No committed offset went back: each group's is at least the last
	// one acknowledged.
	adm := c.admin()
	for g := 0; g < groupsN; g++ {
		offs, err := adm.FetchOffsets(ctxTimeout(t, 30*time.Second), groupName(g))
		if err != nil {
			t.Fatalf("group %s: %v", groupName(g), err)
		}
		o, ok := offs.Lookup(topic, int32(g%4))
		if want := acked[g].Load(); !ok || o.At < want {
			t.Fatalf("group %s: committed %+v, but %d was acknowledged", groupName(g), o, want)
		}
	}
	for _, m := range members {
		if m.consumed.Load() == 0 {
			t.Errorf("group %s consumed nothing", m.group)
		}
	}
	if rebalanced == 0 {
		t.Error("no member group's coordinator was killed: the rebalance on a new coordinator went untested")
	}
	t.Logf("%d member-group rebalances on a new coordinator checked", rebalanced)
}

func groupName(i int) string { return fmt.Sprintf("failover-%03d", i) }

// coordinators asks a running broker for the coordinator of groups
// failover-000 ... and counts them per broker.
func (c *testCluster) coordinators(n int) map[int32]int {
	c.t.Helper()
	out := map[int32]int{}
	c.eventually(30*time.Second, "a coordinator for every group", func() error {
		clear(out)
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.SetVersion(4)
		for i := 0; i < n; i++ {
			req.CoordinatorKeys = append(req.CoordinatorKeys, groupName(i))
		}
		running := c.running()
		if len(running) == 0 {
			return errors.New("no broker running")
		}
		resp, err := clusterRequest(running[0].addr, req, 5*time.Second)
		if err != nil {
			return err
		}
		for _, co := range resp.(*kmsg.FindCoordinatorResponse).Coordinators {
			if co.ErrorCode != 0 {
				return fmt.Errorf("group %s: error %d", co.Key, co.ErrorCode)
			}
			out[co.NodeID]++
		}
		return nil
	})
	return out
}

// coordinatorOf returns the broker coordinating one group.
func (c *testCluster) coordinatorOf(g string) int32 {
	c.t.Helper()
	var id int32 = -1
	c.eventually(30*time.Second, "the coordinator of "+g, func() error {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey = g
		running := c.running()
		if len(running) == 0 {
			return errors.New("no broker running")
		}
		resp, err := clusterRequest(running[0].addr, req, 5*time.Second)
		if err != nil {
			return err
		}
		r := resp.(*kmsg.FindCoordinatorResponse)
		if r.ErrorCode != 0 {
			return fmt.Errorf("error %d", r.ErrorCode)
		}
		id = r.NodeID
		return nil
	})
	return id
}
