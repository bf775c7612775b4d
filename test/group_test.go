package test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupBrokerArgs make group tests quick: no initial rebalance delay, and
// session timeouts down to 1 s allowed.
var groupBrokerArgs = []string{"--group-initial-rebalance-delay", "0s", "--group-min-session-timeout", "1s"}

// produceSpread writes n records per partition, record i of partition p
// valued "p-i".
func produceSpread(t *testing.T, b *broker, topic string, partitions, n int) {
	t.Helper()
	cl := b.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := ctxTimeout(t, 60*time.Second)
	var recs []*kgo.Record
	for p := 0; p < partitions; p++ {
		for i := 0; i < n; i++ {
			recs = append(recs, &kgo.Record{Partition: int32(p), Value: []byte(fmt.Sprintf("%d-%d", p, i))})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func createTopic(t *testing.T, b *broker, topic string, partitions int32) {
	t.Helper()
	adm := kadm.NewClient(b.client())
	resp, err := adm.CreateTopic(ctxTimeout(t, 30*time.Second), partitions, 1, nil, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, resp.Err)
	}
}

// groupMember is an in-process group consumer that records what it is
// assigned and what it reads.
type groupMember struct {
	cl       *kgo.Client
	mu       sync.Mutex
	assigned map[int32]bool
	changes  chan struct{}
	seen     map[string]int // "partition/offset" → times read
}

func newGroupMember(t *testing.T, b *broker, groupID, topic string, opts ...kgo.Opt) *groupMember {
	m := &groupMember{assigned: map[int32]bool{}, changes: make(chan struct{}, 100), seen: map[string]int{}}
	opts = append([]kgo.Opt{
		kgo.ConsumerGroup(groupID), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(2 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			for _, p := range a[topic] {
				m.assigned[p] = true
			}
			m.mu.Unlock()
			m.changes <- struct{}{}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			for _, p := range r[topic] {
				delete(m.assigned, p)
			}
			m.mu.Unlock()
			m.changes <- struct{}{}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			for _, p := range r[topic] {
				delete(m.assigned, p)
			}
			m.mu.Unlock()
			m.changes <- struct{}{}
		}),
	}, opts...)
	m.cl = b.client(opts...)
	return m
}

func (m *groupMember) partitions() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for p := range m.assigned {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// poll reads whatever is available for up to d and counts it.
func (m *groupMember) poll(t *testing.T, d time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	fs := m.cl.PollFetches(ctx)
	n := 0
	fs.EachError(func(topic string, p int32, err error) {
		if err != context.DeadlineExceeded && err != context.Canceled {
			t.Errorf("fetch %s/%d: %v", topic, p, err)
		}
	})
	fs.EachRecord(func(r *kgo.Record) {
		m.mu.Lock()
		m.seen[fmt.Sprintf("%d/%d", r.Partition, r.Offset)]++
		m.mu.Unlock()
		n++
	})
	return n
}

// waitFor polls every member until cond holds, or fails after a minute.
func waitFor(t *testing.T, what string, members []*groupMember, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for i, m := range members {
				t.Logf("member %d has %v", i, m.partitions())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		for _, m := range members {
			m.poll(t, 50*time.Millisecond)
		}
	}
}

// TestGroupSplitCommitRestartResume: three franz-go members split six
// partitions two each, read every record once, commit; after a broker
// restart the group resumes at its commits.
func TestGroupSplitCommitRestartResume(t *testing.T) {
	b := startBroker(t, "", groupBrokerArgs...)
	const topic, groupID, partitions, perPartition = "split", "split-group", 6, 100
	createTopic(t, b, topic, partitions)
	var members []*groupMember
	for i := 0; i < 3; i++ {
		members = append(members, newGroupMember(t, b, groupID, topic, kgo.DisableAutoCommit()))
	}
	waitFor(t, "three members with two partitions each", members, func() bool {
		owned := map[int32]bool{}
		for _, m := range members {
			ps := m.partitions()
			if len(ps) != 2 {
				return false
			}
			for _, p := range ps {
				owned[p] = true
			}
		}
		return len(owned) == partitions
	})
	produceSpread(t, b, topic, partitions, perPartition)
	total := func() int {
		n := 0
		for _, m := range members {
			m.mu.Lock()
			n += len(m.seen)
			m.mu.Unlock()
		}
		return n
	}
	waitFor(t, "every record read", members, func() bool { return total() == partitions*perPartition })
	for i, m := range members {
		for key, n := range m.seen {
			if n != 1 {
				t.Errorf("member %d read %s %d times", i, key, n)
			}
		}
		if err := m.cl.CommitUncommittedOffsets(ctxTimeout(t, 30*time.Second)); err != nil {
			t.Fatalf("member %d commit: %v", i, err)
		}
	}
	for _, m := range members {
		m.cl.Close() // leaves the group
	}
	adm := kadm.NewClient(b.client())
	offs, err := adm.FetchOffsets(ctxTimeout(t, 30*time.Second), groupID)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < partitions; p++ {
		if o, ok := offs.Lookup(topic, p); !ok || o.At != perPartition {
			t.Errorf("committed offset of partition %d: %+v, want %d", p, o, perPartition)
		}
	}

	b.stop()
	b.restart()
	produceSpread(t, b, topic, partitions, 10)
	m := newGroupMember(t, b, groupID, topic)
	waitFor(t, "the new records after the commits", []*groupMember{m}, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.seen) >= partitions*10
	})
	for key := range m.seen {
		off, _ := strconv.Atoi(key[strings.Index(key, "/")+1:])
		if off < perPartition {
			t.Errorf("after restart the group re-read %s, below its commit", key)
		}
	}
}

// TestGroupMemberKilled: a member process killed with SIGKILL leaves no
// LeaveGroup; its partitions move to the survivor once its session times
// out, and the survivor reads what is produced to them.
func TestGroupMemberKilled(t *testing.T) {
	b := startBroker(t, "", groupBrokerArgs...)
	const topic, groupID, partitions = "killed", "killed-group", 4
	createTopic(t, b, topic, partitions)

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "RUNNEL_TEST_GROUP_MEMBER="+strings.Join([]string{b.addr, groupID, topic}, ","))
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	childAssigned := make(chan int, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "assigned "); ok {
				k, _ := strconv.Atoi(n)
				childAssigned <- k
			}
		}
	}()
	select {
	case n := <-childAssigned:
		if n != partitions {
			t.Logf("child first assigned %d partitions", n)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("child member never got partitions")
	}

	survivor := newGroupMember(t, b, groupID, topic)
	waitFor(t, "the survivor owning half", []*groupMember{survivor}, func() bool { return len(survivor.partitions()) == partitions/2 })

	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	killed := time.Now()
	waitFor(t, "the survivor owning every partition", []*groupMember{survivor}, func() bool { return len(survivor.partitions()) == partitions })
	t.Logf("partitions reassigned %v after the kill", time.Since(killed).Round(time.Millisecond))
	waitLog(t, b, "INFO", "member session expired", "group="+groupID)

	produceSpread(t, b, topic, partitions, 5)
	waitFor(t, "records of every partition", []*groupMember{survivor}, func() bool {
		survivor.mu.Lock()
		defer survivor.mu.Unlock()
		got := map[string]bool{}
		for key := range survivor.seen {
			got[key[:strings.Index(key, "/")]] = true
		}
		return len(got) == partitions
	})
}

// runGroupMemberChild is the body of the child process of
// TestGroupMemberKilled: a group consumer that prints "assigned N" on every
// assignment and reads until it is killed.
func runGroupMemberChild(spec string) {
	parts := strings.Split(spec, ",")
	addr, groupID, topic := parts[0], parts[1], parts[2]
	var mu sync.Mutex
	owned := map[int32]bool{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(groupID), kgo.ConsumeTopics(topic),
		kgo.SessionTimeout(2*time.Second), kgo.HeartbeatInterval(200*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			mu.Lock()
			for _, p := range a[topic] {
				owned[p] = true
			}
			fmt.Printf("assigned %d\n", len(owned))
			mu.Unlock()
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			mu.Lock()
			for _, p := range r[topic] {
				delete(owned, p)
			}
			mu.Unlock()
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		cl.PollFetches(context.Background())
	}
}

// TestGroupBadInput: group requests that cannot be honoured get the Kafka
// error code that says why, refused input is logged, and the broker keeps
// serving.
func TestGroupBadInput(t *testing.T) {
	b := startBroker(t, "", groupBrokerArgs...)
	canary := newCanary(t, b)
	rc := dialRaw(t, b.addr)
	rc.mustCreateTopic("bad-groups", nil)
	rc.waitGroupCoordinators(t)
	g := groupSweep{t: t, rc: rc, topic: "bad-groups"}

	join := func(groupID string, mutate func(*kmsg.JoinGroupRequest)) *kmsg.JoinGroupResponse {
		r := g.joinRequest(groupID, "")
		mutate(r)
		r.SetVersion(3) // no member id round trip
		return rc.roundTrip(r).(*kmsg.JoinGroupResponse)
	}
	t.Run("heartbeat to an unknown group is UNKNOWN_MEMBER_ID", func(t *testing.T) {
		r := kmsg.NewPtrHeartbeatRequest()
		r.SetVersion(4)
		r.Group, r.MemberID, r.Generation = "nobody-here", "m", 1
		if code := rc.roundTrip(r).(*kmsg.HeartbeatResponse).ErrorCode; code != 25 {
			t.Fatalf("error %d, want 25", code)
		}
	})
	t.Run("wrong generation is ILLEGAL_GENERATION", func(t *testing.T) {
		member, gen := g.join("bad-gen", false)
		s := g.syncRequest("bad-gen", member, gen+7)
		s.SetVersion(5)
		if code := rc.roundTrip(s).(*kmsg.SyncGroupResponse).ErrorCode; code != 22 {
			t.Fatalf("SyncGroup: error %d, want 22", code)
		}
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.SetVersion(4)
		hb.Group, hb.MemberID, hb.Generation = "bad-gen", member, gen-1
		if code := rc.roundTrip(hb).(*kmsg.HeartbeatResponse).ErrorCode; code != 22 {
			t.Fatalf("Heartbeat: error %d, want 22", code)
		}
	})
	t.Run("oversized member metadata is INVALID_REQUEST", func(t *testing.T) {
		resp := join("bad-metadata", func(r *kmsg.JoinGroupRequest) {
			r.Protocols[0].Metadata = make([]byte, 2<<20)
		})
		if resp.ErrorCode != 42 {
			t.Fatalf("error %d, want 42", resp.ErrorCode)
		}
		waitLog(t, b, "WARN", "JoinGroup refused", "group=bad-metadata", "larger than the limit")
	})
	t.Run("session timeout out of range is INVALID_SESSION_TIMEOUT", func(t *testing.T) {
		resp := join("bad-session", func(r *kmsg.JoinGroupRequest) { r.SessionTimeoutMillis = 100 })
		if resp.ErrorCode != 26 {
			t.Fatalf("error %d, want 26", resp.ErrorCode)
		}
		waitLog(t, b, "WARN", "JoinGroup refused", "group=bad-session")
	})
	t.Run("empty group id is INVALID_GROUP_ID", func(t *testing.T) {
		if code := join("", func(*kmsg.JoinGroupRequest) {}).ErrorCode; code != 24 {
			t.Fatalf("error %d, want 24", code)
		}
	})
	t.Run("mismatched protocol type is INCONSISTENT_GROUP_PROTOCOL", func(t *testing.T) {
		g.join("bad-protocol", true)
		resp := join("bad-protocol", func(r *kmsg.JoinGroupRequest) { r.ProtocolType = "connect" })
		if resp.ErrorCode != 23 {
			t.Fatalf("error %d, want 23", resp.ErrorCode)
		}
	})
	t.Run("commits for unknown partitions are UNKNOWN_TOPIC_OR_PARTITION, the rest commit", func(t *testing.T) {
		r := kmsg.NewPtrOffsetCommitRequest()
		r.SetVersion(8)
		r.Group, r.Generation = "bad-commit", -1
		r.Topics = []kmsg.OffsetCommitRequestTopic{
			{Topic: "bad-groups", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5, LeaderEpoch: -1}, {Partition: 9, Offset: 5, LeaderEpoch: -1}}},
			{Topic: "no-such-topic", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5, LeaderEpoch: -1}}},
			{Topic: "bad-groups", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 6, LeaderEpoch: -1, Metadata: kmsg.StringPtr(strings.Repeat("m", 5000))}}},
		}
		got := errorCodes(rc.roundTrip(r))
		if want := []int16{0, 3, 3, 12}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("error codes %v, want %v", got, want)
		}
		waitLog(t, b, "WARN", "offset commit refused", "topic=no-such-topic")
		f := kmsg.NewPtrOffsetFetchRequest()
		f.SetVersion(7)
		f.Group = "bad-commit"
		resp := rc.roundTrip(f).(*kmsg.OffsetFetchResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].Offset != 5 {
			t.Fatalf("committed: %+v, want only bad-groups/0 at 5", resp.Topics)
		}
	})
	t.Run("offsets of an unknown group are -1", func(t *testing.T) {
		f := kmsg.NewPtrOffsetFetchRequest()
		f.SetVersion(5)
		f.Group = "never-committed"
		f.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "bad-groups", Partitions: []int32{0}}}
		resp := rc.roundTrip(f).(*kmsg.OffsetFetchResponse)
		if p := resp.Topics[0].Partitions[0]; p.Offset != -1 || p.ErrorCode != 0 || resp.ErrorCode != 0 {
			t.Fatalf("got %+v (error %d)", p, resp.ErrorCode)
		}
	})
	t.Run("deleting a group with members is NON_EMPTY_GROUP, unknown GROUP_ID_NOT_FOUND", func(t *testing.T) {
		g.join("bad-delete", true)
		r := kmsg.NewPtrDeleteGroupsRequest()
		r.SetVersion(2)
		r.Groups = []string{"bad-delete", "never-existed"}
		if got := errorCodes(rc.roundTrip(r)); fmt.Sprint(got) != "[68 69]" {
			t.Fatalf("error codes %v, want [68 69]", got)
		}
	})
	canary.check(t)
}

// TestKcatBalancedGroup: two kcat balanced consumers (librdkafka's group
// consumer, range assignor) split a topic and together read every record
// once.
func TestKcatBalancedGroup(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed; .ci/run installs it")
	}
	b := startBroker(t, "", groupBrokerArgs...)
	const topic, groupID, partitions, perPartition = "kcat-group", "kcat-group", 4, 50
	createTopic(t, b, topic, partitions)
	type proc struct {
		cmd *exec.Cmd
		mu  sync.Mutex
		out []string
	}
	var procs []*proc
	for i := 0; i < 2; i++ {
		p := &proc{cmd: exec.Command("kcat", "-b", b.addr, "-G", groupID, "-X", "auto.offset.reset=earliest",
			"-X", "session.timeout.ms=6000", "-q", "-u", "-f", "%p %o %s\n", topic)}
		stdout, err := p.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				p.mu.Lock()
				p.out = append(p.out, sc.Text())
				p.mu.Unlock()
			}
		}()
		procs = append(procs, p)
	}
	adm := kadm.NewClient(b.client())
	deadline := time.Now().Add(60 * time.Second)
	for {
		d, err := adm.DescribeGroups(ctxTimeout(t, 10*time.Second), groupID)
		if err == nil && d[groupID].State == "Stable" && len(d[groupID].Members) == 2 {
			assigned := 0
			for _, m := range d[groupID].Members {
				if ca, ok := m.Assigned.AsConsumer(); ok {
					for _, tp := range ca.Topics {
						assigned += len(tp.Partitions)
					}
				}
			}
			if assigned == partitions {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kcat members never settled: %+v %v", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	produceSpread(t, b, topic, partitions, perPartition)
	seen := map[string]int{}
	deadline = time.Now().Add(60 * time.Second)
	for len(seen) < partitions*perPartition {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d records", len(seen), partitions*perPartition)
		}
		time.Sleep(100 * time.Millisecond)
		seen = map[string]int{}
		for _, p := range procs {
			p.mu.Lock()
			for _, line := range p.out {
				seen[line]++
			}
			p.mu.Unlock()
		}
	}
	for line, n := range seen {
		if n != 1 {
			t.Errorf("%q read %d times", line, n)
		}
	}
	for i, p := range procs {
		p.mu.Lock()
		if len(p.out) == 0 {
			t.Errorf("kcat %d read nothing: the group did not split", i)
		}
		p.mu.Unlock()
		p.cmd.Process.Signal(syscall.SIGTERM) // kcat commits and leaves
		p.cmd.Wait()
	}
	offs, err := adm.FetchOffsets(ctxTimeout(t, 30*time.Second), groupID)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < partitions; p++ {
		if o, ok := offs.Lookup(topic, p); !ok || o.At != perPartition {
			t.Errorf("committed offset of partition %d after kcat left: %+v, want %d", p, o, perPartition)
		}
	}
}

// TestGroupStaticMemberRestart: a static member (group.instance.id) that
// restarts within its session timeout takes its place back without a
// rebalance: the other member keeps its partitions untouched and the
// restarted one gets its old ones. Its previous member id is fenced.
func TestGroupStaticMemberRestart(t *testing.T) {
	b := startBroker(t, "", groupBrokerArgs...)
	const topic, groupID, partitions = "static", "static-group", 4
	createTopic(t, b, topic, partitions)
	static := func() *groupMember {
		return newGroupMember(t, b, groupID, topic, kgo.InstanceID("static-1"), kgo.SessionTimeout(30*time.Second))
	}
	a := static()
	other := newGroupMember(t, b, groupID, topic, kgo.SessionTimeout(30*time.Second))
	members := []*groupMember{a, other}
	waitFor(t, "two members with two partitions each", members, func() bool {
		return len(a.partitions()) == 2 && len(other.partitions()) == 2
	})
	before := a.partitions()
	oldID, generation := a.cl.GroupMetadata()
	// Drain the callbacks seen so far; from here on the other member must
	// see none.
	for len(other.changes) > 0 {
		<-other.changes
	}
	a.cl.Close() // a static member does not leave the group on close
	a2 := static()
	waitFor(t, "the restarted static member owning its old partitions", []*groupMember{a2, other}, func() bool {
		return fmt.Sprint(a2.partitions()) == fmt.Sprint(before)
	})
	waitLog(t, b, "INFO", "static member rejoined without a rebalance", "instance_id=static-1")
	if n := len(other.changes); n != 0 {
		t.Fatalf("the other member saw %d assignment changes; a static rejoin must not rebalance", n)
	}
	if _, gen := a2.cl.GroupMetadata(); gen != generation {
		t.Fatalf("generation %d after the static rejoin, was %d", gen, generation)
	}

	rc := dialRaw(t, b.addr)
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.SetVersion(4)
	hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = groupID, oldID, generation, kmsg.StringPtr("static-1")
	if code := rc.roundTrip(hb).(*kmsg.HeartbeatResponse).ErrorCode; code != 82 {
		t.Fatalf("heartbeat with the replaced member id: error %d, want 82 (FENCED_INSTANCE_ID)", code)
	}
}
