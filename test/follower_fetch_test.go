package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rackOf is the rack of each broker of the follower-fetching tests:
// brokers 1 and 2 in rack a, broker 3 in rack b.
func rackOf(id int32) string {
	if id == 3 {
		return "b"
	}
	return "a"
}

// confluentPython returns a python3 that has confluent-kafka
// (librdkafka), or "" if none does.
func confluentPython() string {
	for _, cand := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(cand); err == nil && exec.Command(path, "-c", "import confluent_kafka").Run() == nil {
			return path
		}
	}
	return ""
}

// followerBytes is a broker's runnel_fetch_follower_bytes_total: record
// bytes it sent consumers from partitions it follows.
func followerBytes(t *testing.T, n *clusterNode) float64 {
	t.Helper()
	v, err := metricAt(n.metrics, "runnel_fetch_follower_bytes_total")
	if err != nil {
		t.Fatalf("broker %d: %v", n.id, err)
	}
	return v
}

// rackConsumer is a franz-go consumer in a rack reading a whole topic
// from its start, keeping every record, and checking after each poll that
// it saw nothing at or past the leaders' high watermarks.
type rackConsumer struct {
	mu   sync.Mutex
	recs map[int32][]*kgo.Record
	errs []string
	done chan struct{}
}

func startRackConsumer(t *testing.T, c *testCluster, topic, rack string) *rackConsumer {
	// franz-go keeps fetching from a preferred replica until the
	// partition's leader or leader epoch changes or this interval passes
	// (30 minutes by default): the interval is what sends it back to the
	// leader when the follower dies.
	cl := c.client(kgo.Rack(rack), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.RecheckPreferredReplicaInterval(3*time.Second))
	adm := kadm.NewClient(c.client())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rc := &rackConsumer{recs: map[int32][]*kgo.Record{}, done: make(chan struct{})}
	go func() {
		defer close(rc.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			seen := map[int32]int64{}
			fs.EachRecord(func(r *kgo.Record) { seen[r.Partition] = max(seen[r.Partition], r.Offset+1) })
			// The leaders' high watermarks now, from ListOffsets (which
			// only leaders answer), bound what was consumed before.
			var hw kadm.ListedOffsets
			if len(seen) > 0 {
				lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
				hw, _ = adm.ListEndOffsets(lctx, topic)
				lcancel()
			}
			rc.mu.Lock()
			for p, next := range seen {
				if o, ok := hw.Lookup(topic, p); ok && o.Err == nil && next > o.Offset {
					rc.errs = append(rc.errs, fmt.Sprintf("%s-%d: consumed offset %d, the leader's high watermark is %d", topic, p, next-1, o.Offset))
				}
			}
			fs.EachRecord(func(r *kgo.Record) { rc.recs[r.Partition] = append(rc.recs[r.Partition], r) })
			rc.mu.Unlock()
		}
	}()
	return rc
}

func (rc *rackConsumer) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, rs := range rc.recs {
		n += len(rs)
	}
	return n
}

// upTo reports whether the consumer holds every partition up to ends.
func (rc *rackConsumer) upTo(ends map[int32]int64) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for p, end := range ends {
		rs := rc.recs[p]
		if end > 0 && (len(rs) == 0 || rs[len(rs)-1].Offset < end-1) {
			got := int64(-1)
			if len(rs) > 0 {
				got = rs[len(rs)-1].Offset
			}
			return fmt.Errorf("partition %d consumed up to %d, end %d", p, got, end)
		}
	}
	return nil
}

// TestFetchFromFollowers: three brokers in two racks (1 and 2 in a, 3 in
// b), a topic of three partitions replicated on all three. Consumers in
// rack b, librdkafka's, runnel consume's and franz-go's, are sent by the leaders in rack a to
// broker 3 and read those partitions from it (its follower bytes grow,
// rack a's followers serve nothing); they never see a record past the
// leader's high watermark, and read every record produced with acks=all
// exactly once, in order. A consumer in rack a reads the partitions broker
// 3 leads from brokers 1 and 2. Broker 3 is then SIGKILLed under the franz-go
// consumer, which falls back to the leaders and loses nothing.
func TestFetchFromFollowers(t *testing.T) {
	const topic, partitions = "racks", 3
	c := startClusterEach(t, func(id int32) []string { return []string{"--rack", rackOf(id)} }, fastFailover...)
	c.createTopic(topic, partitions, 3, nil)

	// Every broker's rack is in the metadata.
	brokers, err := c.admin().BrokerMetadata(ctxTimeout(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range brokers.Brokers {
		if b.Rack == nil || *b.Rack != rackOf(b.NodeID) {
			t.Fatalf("broker %d: rack %v in the metadata, want %s", b.NodeID, b.Rack, rackOf(b.NodeID))
		}
	}
	// DescribeConfigs gives broker 3's broker.rack, set by its flag, and
	// the replica selector.
	rcs, err := c.admin().DescribeBrokerConfigs(ctxTimeout(t, 30*time.Second), 3)
	if err == nil && (len(rcs) != 1 || rcs[0].Err != nil) {
		err = fmt.Errorf("%+v", rcs)
	}
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"broker.rack": "b", "replica.selector.class": "rack-aware"}
	for _, cfg := range rcs[0].Configs {
		if w, ok := want[cfg.Key]; ok {
			if cfg.Value == nil || *cfg.Value != w {
				t.Fatalf("broker 3's %s is %v, want %s", cfg.Key, cfg.Value, w)
			}
			delete(want, cfg.Key)
		}
	}
	if len(want) > 0 {
		t.Fatalf("DescribeConfigs of broker 3 has no %v", want)
	}

	leaders := map[int32]int32{}
	ledInA := 0
	for p := range int32(partitions) {
		leaders[p] = c.leader(topic, p)
		if rackOf(leaders[p]) == "a" {
			ledInA++
		}
	}
	if ledInA == 0 {
		t.Fatalf("every partition is led by broker 3 (%v): no consumer of rack b would read a follower", leaders)
	}
	t.Logf("leaders %v", leaders)

	sp := startSequenceProducer(t, c.sequenceClient(topic), partitions, 5*time.Millisecond, 5)
	sp.acks.waitMore(t, -1, 600, 60*time.Second, "records before the consumers start")

	// librdkafka in rack b.
	if py := confluentPython(); py == "" {
		t.Log("no python3 with confluent-kafka: librdkafka's rack-b consumer skipped")
	} else {
		// Of the partitions led in rack a, which it reads from broker 3.
		const want = 200
		args := []string{"testdata/rack_consumer.py", c.node(1).addr, topic, "b", strconv.Itoa(want)}
		for p := range int32(partitions) {
			if rackOf(leaders[p]) == "a" {
				args = append(args, strconv.Itoa(int(p)))
			}
		}
		out, err := exec.CommandContext(ctxTimeout(t, 120*time.Second), py, args...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("librdkafka consumer: %v\n%s\n%s", err, out, stderr)
		}
		var got struct{ Records [][3]any }
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("librdkafka consumer printed %s: %v", out, err)
		}
		next := map[int32]int64{}
		for _, r := range got.Records {
			p, off, v := int32(r[0].(float64)), int64(r[1].(float64)), r[2].(string)
			if off != next[p] {
				t.Fatalf("librdkafka consumer: partition %d offset %d after %d", p, off, next[p]-1)
			}
			if seq, err := strconv.Atoi(v); err != nil || int32(seq%partitions) != p {
				t.Fatalf("librdkafka consumer: partition %d offset %d holds %q", p, off, v)
			}
			next[p]++
		}
		if len(got.Records) < want*ledInA {
			t.Fatalf("librdkafka consumer read %d records, want %d of each of %d partitions", len(got.Records), want, ledInA)
		}
		if b3 := followerBytes(t, c.node(3)); b3 == 0 {
			t.Fatalf("librdkafka's consumer in rack b read %d records, none from broker 3 as a follower", len(got.Records))
		}
	}
	// Nobody reads rack a's followers: every consumer is in rack b.
	for _, id := range []int32{1, 2} {
		if b := followerBytes(t, c.node(id)); b != 0 {
			t.Fatalf("broker %d (rack a) served %v bytes as a follower to consumers of rack b", id, b)
		}
	}

	// runnel consume in rack b, of a partition led in rack a.
	var ledInRackA int32 = -1
	for p, l := range leaders {
		if rackOf(l) == "a" {
			ledInRackA = p
		}
	}
	served := followerBytes(t, c.node(3))
	cmd := exec.CommandContext(ctxTimeout(t, 60*time.Second), binary, "consume", topic, "--rack", "b",
		"--partition", strconv.Itoa(int(ledInRackA)), "--count", "50", "--brokers", c.node(1).addr)
	cmd.Env = append(cmd.Environ(), "GORACE=atexit_sleep_ms=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runnel consume --rack b: %v\n%s", err, out)
	}
	if b3 := followerBytes(t, c.node(3)); b3 <= served {
		t.Fatalf("runnel consume --rack b of partition %d (led by %d): broker 3 served no follower bytes", ledInRackA, leaders[ledInRackA])
	}

	// franz-go in rack b.
	served = followerBytes(t, c.node(3))
	rc := startRackConsumer(t, c, topic, "b")
	c.eventually(60*time.Second, "franz-go's rack-b consumer reads from broker 3", func() error {
		if n, b := rc.count(), followerBytes(t, c.node(3)); n < 600 || b <= served {
			return fmt.Errorf("%d records consumed; broker 3 served %v follower bytes, %v before", n, b, served)
		}
		return nil
	})
	for _, id := range []int32{1, 2} {
		if b := followerBytes(t, c.node(id)); b != 0 {
			t.Fatalf("broker %d (rack a) served %v bytes as a follower", id, b)
		}
	}

	// A consumer in rack a reads the partitions broker 3 leads from rack
	// a's followers.
	var ledBy3 []int32
	for p, l := range leaders {
		if l == 3 {
			ledBy3 = append(ledBy3, p)
		}
	}
	if len(ledBy3) > 0 {
		offsets := map[int32]kgo.Offset{}
		for _, p := range ledBy3 {
			offsets[p] = kgo.NewOffset().AtStart()
		}
		ca := c.client(kgo.Rack("a"), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
			kgo.FetchMaxWait(200*time.Millisecond))
		ctx := ctxTimeout(t, 60*time.Second)
		for n := 0; n < 100; {
			fs := ca.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("rack-a consumer of %v: %d records: %v", ledBy3, n, ctx.Err())
			}
			n += fs.NumRecords()
		}
		ca.Close()
		if a := followerBytes(t, c.node(1)) + followerBytes(t, c.node(2)); a == 0 {
			t.Fatalf("a consumer in rack a read partitions %v led by broker 3, none from rack a's followers", ledBy3)
		}
	}

	// Kill the follower the rack-b consumer reads from.
	before := rc.count()
	c.node(3).kill()
	sp.acks.waitMore(t, -1, 600, 60*time.Second, "records after broker 3 was killed")
	sp.finish(t)
	requireNoProduceErrors(t, sp.acks)
	ends, err := kadm.NewClient(c.client()).ListEndOffsets(ctxTimeout(t, 30*time.Second), topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	endsAt := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { endsAt[o.Partition] = o.Offset })
	c.eventually(90*time.Second, "the rack-b consumer reads everything after broker 3 died", func() error {
		return rc.upTo(endsAt)
	})
	t.Logf("consumed %d records before broker 3 was killed, %d in all; ends %v", before, rc.count(), endsAt)

	rc.mu.Lock()
	errs, recs := slices.Clone(rc.errs), map[int32][]*kgo.Record{}
	for p, rs := range rc.recs {
		recs[p] = slices.Clone(rs)
	}
	rc.mu.Unlock()
	for _, e := range errs {
		t.Error(e)
	}
	checkSequenceLog(t, recs, partitions, sp.acks.records())
}

// TestFetchFromFollowersReadCommitted: a read_committed consumer in rack b
// reads a partition led in rack a from broker 3, the follower: it gets the
// committed transactions' records and none of the aborted one's, and the
// follower holds it at the first offset of a transaction still open,
// which it reports as the last stable offset, until the transaction
// commits.
func TestFetchFromFollowersReadCommitted(t *testing.T) {
	const topic = "racks-txn"
	c := startClusterEach(t, func(id int32) []string { return []string{"--rack", rackOf(id)} }, fastFailover...)
	c.createTopic(topic, 3, 3, nil)
	part := int32(-1)
	for p := range int32(3) {
		if rackOf(c.leader(topic, p)) == "a" {
			part = p
			break
		}
	}
	if part < 0 {
		t.Fatal("every partition is led by broker 3")
	}
	prod := c.client(kgo.TransactionalID("rack-tx"), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(60*time.Second))
	ctx := ctxTimeout(t, 90*time.Second)
	produce := func(vals []string) int64 {
		t.Helper()
		first := int64(-1)
		for _, v := range vals {
			r := &kgo.Record{Partition: part, Value: []byte(v)}
			if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("producing %s: %v", v, err)
			}
			if first < 0 {
				first = r.Offset
			}
		}
		return first
	}
	txn := func(commit bool, vals []string) {
		t.Helper()
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		produce(vals)
		if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn(true, values("c1", 10))
	txn(false, values("aborted", 10))
	txn(true, values("c2", 10))
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	open := produce(values("open", 5))

	// Broker 3, asked directly as a consumer of rack b would, answers up
	// to its last stable offset: the open transaction's first offset.
	c.eventually(30*time.Second, "broker 3 holds read_committed at the open transaction", func() error {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(12)
		req.ReplicaID, req.MaxBytes, req.IsolationLevel, req.Rack, req.SessionEpoch = -1, 1<<20, 1, "b", -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = part, 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := clusterRequest(c.node(3).addr, req, 10*time.Second)
		if err != nil {
			return err
		}
		fr := resp.(*kmsg.FetchResponse)
		if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 1 {
			return fmt.Errorf("answer %+v", fr)
		}
		got := fr.Topics[0].Partitions[0]
		if got.ErrorCode != 0 || got.LastStableOffset != open || got.HighWatermark != open+5 || len(got.AbortedTransactions) != 1 {
			return fmt.Errorf("error %d, LSO %d (want %d), HW %d (want %d), aborted %+v", got.ErrorCode,
				got.LastStableOffset, open, got.HighWatermark, open+5, got.AbortedTransactions)
		}
		return nil
	})

	served := followerBytes(t, c.node(3))
	cons := c.client(kgo.Rack("b"), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	var got []string
	read := func(n int) {
		t.Helper()
		for len(got) < n {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("read_committed consumer read %v: %v", got, ctx.Err())
			}
			fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
	}
	read(20)
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	read(25)
	want := append(append(values("c1", 10), values("c2", 10)...), values("open", 5)...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read_committed from the follower: %v, want %v", got, want)
	}
	if b := followerBytes(t, c.node(3)); b <= served {
		t.Fatalf("the rack-b consumer read nothing from broker 3 as a follower (%v bytes, %v before)", b, served)
	}
}
