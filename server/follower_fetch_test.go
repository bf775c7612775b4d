package server

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// rackServer is a test broker 1 in rack a of a cluster of three, brokers 2
// and 3 in rack b, with topic t of one partition replicated on all three.
func rackServer(t *testing.T, cfg Config) (*testServer, cluster.Topic, *partition.Partition, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	meta := newFakeMeta(3)
	for i, rack := range []string{"a", "b", "b"} {
		meta.brokers[i].Rack = rack
	}
	cfg.Rack = "a"
	cfg.Metrics = NewMetrics(reg)
	ts := newTestServerOver(t, cfg, meta, meta)
	topic := ts.createTopic(t, "t", 1)
	p, err := ts.parts.Get("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	return ts, topic, p, reg
}

// lead makes broker 1 lead p at epoch 1 with the ISR, its followers 2 and 3
// having fetched from the offsets in fetched.
func lead(t *testing.T, p *partition.Partition, isr []int32, fetched map[int32]int64) {
	t.Helper()
	if err := p.SetRole(partition.Role{Leader: true, LeaderID: 1, Epoch: 1, ISR: isr, Replicas: []int32{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	for id, off := range fetched {
		if err := p.FollowerFetched(id, off, 1); err != nil {
			t.Fatal(err)
		}
	}
}

// rackFetch is a consumer's fetch at version v from the client's rack of
// partition 0 of topic from offset.
func rackFetch(v int16, topic cluster.Topic, rack string, offset int64) *kmsg.FetchRequest {
	r := sessionReq(v, 0, -1, topic, map[int32]int64{0: offset})
	r.Rack = rack
	r.Topics[0].Partitions[0].CurrentLeaderEpoch = -1
	return r
}

func onlyPartition(t *testing.T, resp kmsg.Response) kmsg.FetchResponseTopicPartition {
	t.Helper()
	fr := resp.(*kmsg.FetchResponse)
	if fr.ErrorCode != 0 || len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch answer %+v", fr)
	}
	return fr.Topics[0].Partitions[0]
}

// TestPreferredReadReplica: the leader sends a consumer that names its
// rack to the in-sync follower of that rack furthest along, with no
// records; it never sends replica fetchers, consumers of its own rack,
// consumers before v11 or without a rack anywhere, nor to followers out of
// the ISR, fenced, or without the offset.
func TestPreferredReadReplica(t *testing.T) {
	for _, tc := range []struct {
		name     string
		selector ReplicaSelector
		version  int16
		rack     string
		isr      []int32
		fetched  map[int32]int64
		fenced   int32
		offset   int64
		want     int32
	}{
		{name: "rack b, both in sync", version: 11, rack: "b", isr: []int32{1, 2, 3}, fetched: map[int32]int64{2: 5, 3: 5}, want: 2},
		{name: "rack b, 3 further along", version: 16, rack: "b", isr: []int32{1, 2, 3}, fetched: map[int32]int64{2: 3, 3: 5}, want: 3},
		{name: "rack b, 2 out of the ISR", version: 12, rack: "b", isr: []int32{1, 3}, fetched: map[int32]int64{2: 5, 3: 5}, want: 3},
		{name: "rack b, 3 fenced", version: 12, rack: "b", isr: []int32{1, 2, 3}, fetched: map[int32]int64{2: 2, 3: 5}, fenced: 3, want: 2},
		{name: "rack b, neither holds the offset", version: 12, rack: "b", isr: []int32{1, 2, 3}, fetched: map[int32]int64{2: 2, 3: 3}, offset: 4, want: -1},
		{name: "rack b, none fetched yet", version: 12, rack: "b", isr: []int32{1, 2, 3}, want: -1},
		{name: "the leader's rack", version: 12, rack: "a", isr: []int32{1, 2, 3}, fetched: map[int32]int64{2: 5, 3: 5}, want: -1},
		{name: "no client rack", version: 12, isr: []int32{1, 2, 3}, fetched: map[int32]int64{2: 5, 3: 5}, want: -1},
		{name: "a rack without brokers", version: 12, rack: "c", isr: []int32{1, 2, 3}, fetched: map[int32]int64{2: 5, 3: 5}, want: -1},
		{name: "leader selector", selector: LeaderSelector, version: 12, rack: "b", isr: []int32{1, 2, 3}, fetched: map[int32]int64{2: 5, 3: 5}, want: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, topic, p, reg := rackServer(t, Config{ReplicaSelector: tc.selector})
			ts.produce(t, "t", 0, 1, 5, 10) // offsets 0-4
			lead(t, p, tc.isr, tc.fetched)
			if tc.fenced > 0 {
				ts.meta.brokers[tc.fenced-1].Fenced = true
			}
			req := rackFetch(tc.version, topic, tc.rack, tc.offset)
			// A redirect is answered at once, whatever the wait asked.
			req.MinBytes, req.MaxWaitMillis = 1<<20, 10_000
			if tc.want < 0 {
				req.MinBytes, req.MaxWaitMillis = 0, 0
			}
			rp := onlyPartition(t, ts.call(t, req))
			if rp.ErrorCode != 0 || rp.PreferredReadReplica != tc.want {
				t.Fatalf("error %d, preferred read replica %d; want 0, %d", rp.ErrorCode, rp.PreferredReadReplica, tc.want)
			}
			if tc.want >= 0 && (len(rp.RecordBatches) != 0 || rp.HighWatermark != p.HighWatermark() || rp.LogStartOffset != 0) {
				t.Fatalf("redirect carries %d record bytes, HW %d (want %d), log start %d", len(rp.RecordBatches),
					rp.HighWatermark, p.HighWatermark(), rp.LogStartOffset)
			}
			if tc.want < 0 && tc.offset < p.HighWatermark() && len(rp.RecordBatches) == 0 {
				t.Fatal("read here, but no records")
			}
			if got := gathered(t, reg, "runnel_fetch_preferred_replica_total"); got != float64(min(tc.want+1, 1)) {
				t.Fatalf("redirects counted %v", got)
			}
		})
	}

	t.Run("replica fetches are never redirected", func(t *testing.T) {
		ts, topic, p, _ := rackServer(t, Config{})
		ts.produce(t, "t", 0, 1, 5, 10)
		lead(t, p, []int32{1, 2, 3}, map[int32]int64{2: 5, 3: 5})
		req := rackFetch(12, topic, "b", 0)
		req.ReplicaID = 3
		rp := onlyPartition(t, ts.call(t, req))
		if rp.PreferredReadReplica != -1 || len(rp.RecordBatches) == 0 {
			t.Fatalf("a follower's fetch: preferred %d, %d record bytes", rp.PreferredReadReplica, len(rp.RecordBatches))
		}
	})
}

// follow makes broker 1 a follower of p (led by broker 2 at epoch 1) with
// the ISR, holding n records of which the leader has committed hw.
func follow(t *testing.T, p *partition.Partition, isr []int32, n int, hw int64) {
	t.Helper()
	if err := p.SetRole(partition.Role{LeaderID: 2, Epoch: 1, ISR: isr, Replicas: []int32{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		b := testbatch.Make(testbatch.Spec{BaseOffset: int64(i), Timestamp: 1000, ProducerID: -1, Values: testbatch.Values(1, 10, byte(i))})
		segment.SetPartitionLeaderEpoch(b, 1)
		if _, err := p.AppendReplica(b); err != nil {
			t.Fatal(err)
		}
	}
	p.SetFollowerHW(hw)
}

// TestFollowerServesConsumers: an in-sync follower answers consumers from
// v11 from its own log, never past its high watermark, with Kafka's
// errors where it cannot.
func TestFollowerServesConsumers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version int16
		isr     []int32
		offset  int64
		epoch   int32
		code    int16
		last    int64 // last offset served, -1: none
	}{
		{name: "from the start", version: 11, isr: []int32{1, 2}, offset: 0, epoch: -1, last: 5},
		{name: "at its epoch", version: 16, isr: []int32{1, 2}, offset: 2, epoch: 1, last: 5},
		{name: "between its HW and log end", version: 12, isr: []int32{1, 2}, offset: 7, epoch: 1, last: -1},
		{name: "at its log end", version: 12, isr: []int32{1, 2}, offset: 10, epoch: 1, last: -1},
		{name: "past its log end, with an epoch", version: 12, isr: []int32{1, 2}, offset: 12, epoch: 1,
			code: kerr.OffsetOutOfRange.Code, last: -1},
		{name: "past its log end, without an epoch", version: 12, isr: []int32{1, 2}, offset: 12, epoch: -1, last: -1},
		{name: "older epoch", version: 12, isr: []int32{1, 2}, offset: 0, epoch: 0, code: kerr.FencedLeaderEpoch.Code, last: -1},
		{name: "newer epoch", version: 12, isr: []int32{1, 2}, offset: 0, epoch: 2, code: kerr.UnknownLeaderEpoch.Code, last: -1},
		{name: "out of the ISR", version: 12, isr: []int32{2, 3}, offset: 0, epoch: -1, code: kerr.NotLeaderForPartition.Code, last: -1},
		{name: "before v11", version: 10, isr: []int32{1, 2}, offset: 0, epoch: -1, code: kerr.NotLeaderForPartition.Code, last: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, topic, p, reg := rackServer(t, Config{})
			follow(t, p, tc.isr, 10, 6) // offsets 0-9, 0-5 committed
			req := rackFetch(tc.version, topic, "a", tc.offset)
			req.Topics[0].Partitions[0].CurrentLeaderEpoch = tc.epoch
			rp := onlyPartition(t, ts.call(t, req))
			if rp.ErrorCode != tc.code {
				t.Fatalf("error %d, want %d", rp.ErrorCode, tc.code)
			}
			if got := lastOffsetIn(t, rp.RecordBatches); got != tc.last {
				t.Fatalf("served up to %d, want %d", got, tc.last)
			}
			if tc.code == 0 && (rp.HighWatermark != 6 || rp.PreferredReadReplica != -1) {
				t.Fatalf("HW %d, preferred replica %d; want the follower's 6, -1", rp.HighWatermark, rp.PreferredReadReplica)
			}
			served := gathered(t, reg, "runnel_fetch_follower_bytes_total")
			if (tc.last >= 0) != (served > 0) || served != float64(len(rp.RecordBatches)) {
				t.Fatalf("follower bytes counted %v for %d sent", served, len(rp.RecordBatches))
			}
		})
	}
}

// TestFollowerLongPoll: a consumer parked on a follower at its high
// watermark is answered when the leader's next high watermark arrives,
// with what it covers and no more; in a fetch session too.
func TestFollowerLongPoll(t *testing.T) {
	ts, topic, p, reg := rackServer(t, Config{})
	follow(t, p, []int32{1, 2}, 10, 6)

	full := sessionReq(12, 0, 0, topic, map[int32]int64{0: 0})
	full.Rack = "a"
	fr := ts.call(t, full).(*kmsg.FetchResponse)
	if fr.SessionID == 0 || lastOffsetIn(t, fr.Topics[0].Partitions[0].RecordBatches) != 5 {
		t.Fatalf("full fetch: session %d, %+v", fr.SessionID, fr.Topics)
	}
	next := sessionReq(12, fr.SessionID, 1, topic, map[int32]int64{0: 6})
	next.Rack, next.MinBytes, next.MaxWaitMillis = "a", 1, 10_000
	got := make(chan kmsg.Response, 1)
	go func() { got <- ts.call(t, next) }()
	// The fetch parks: nothing is committed past 6 yet.
	select {
	case resp := <-got:
		t.Fatalf("answered before the high watermark moved: %+v", resp)
	case <-time.After(20 * time.Millisecond):
	}
	p.SetFollowerHW(8)
	var resp kmsg.Response
	select {
	case resp = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("parked consumer fetch not answered when the high watermark moved")
	}
	rp := onlyPartition(t, resp)
	if rp.ErrorCode != 0 || rp.HighWatermark != 8 || lastOffsetIn(t, rp.RecordBatches) != 7 {
		t.Fatalf("incremental fetch: error %d, HW %d, up to %d; want 0, 8, 7", rp.ErrorCode, rp.HighWatermark,
			lastOffsetIn(t, rp.RecordBatches))
	}
	if n := gathered(t, reg, "runnel_fetch_follower_bytes_total"); n != float64(len(fr.Topics[0].Partitions[0].RecordBatches)+len(rp.RecordBatches)) {
		t.Fatalf("follower bytes counted %v", n)
	}
}

// TestBrokerRacks: Metadata and DescribeCluster give each broker's rack,
// null for one without.
func TestBrokerRacks(t *testing.T) {
	ts, _, _, _ := rackServer(t, Config{})
	ts.meta.brokers[2].Rack = ""
	want := map[int32]*string{1: kmsg.StringPtr("a"), 2: kmsg.StringPtr("b"), 3: nil}
	check := func(api string, id int32, rack *string) {
		w := want[id]
		if (w == nil) != (rack == nil) || w != nil && *w != *rack {
			t.Errorf("%s: broker %d rack %v, want %v", api, id, rack, w)
		}
	}
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	dc := kmsg.NewPtrDescribeClusterRequest()
	dc.SetVersion(1)
	seen := map[string]int{}
	for _, b := range ts.call(t, md).(*kmsg.MetadataResponse).Brokers {
		check("Metadata", b.NodeID, b.Rack)
		seen["Metadata"]++
	}
	for _, b := range ts.call(t, dc).(*kmsg.DescribeClusterResponse).Brokers {
		check("DescribeCluster", b.NodeID, b.Rack)
		seen["DescribeCluster"]++
	}
	if seen["Metadata"] != 3 || seen["DescribeCluster"] != 3 {
		t.Fatalf("brokers answered: %v, want 3 each", seen)
	}
}

// TestFollowerFetchCarriesNewHW: a follower's fetch parked for appends is
// answered as soon as the high watermark moves past the one it was last
// sent, so the followers consumers read from lag the leader's high
// watermark by a round trip, not by a whole long poll.
func TestFollowerFetchCarriesNewHW(t *testing.T) {
	ts, topic, p, _ := rackServer(t, Config{})
	lead(t, p, []int32{1, 2, 3}, map[int32]int64{2: 0, 3: 0})
	ts.produce(t, "t", 0, 1, 5, 10) // offsets 0-4
	if err := p.FollowerFetched(2, 5, 1); err != nil {
		t.Fatal(err)
	}
	replicaFetch := func(minBytes int32) *kmsg.FetchRequest {
		r := rackFetch(12, topic, "", 5)
		r.ReplicaID, r.MinBytes, r.MaxWaitMillis = 2, minBytes, 10_000
		return r
	}
	if rp := onlyPartition(t, ts.call(t, replicaFetch(0))); rp.HighWatermark != 0 {
		t.Fatalf("HW %d with follower 3 holding nothing, want 0", rp.HighWatermark)
	}
	got := make(chan kmsg.Response, 1)
	go func() { got <- ts.call(t, replicaFetch(1)) }()
	select {
	case resp := <-got:
		t.Fatalf("answered with nothing new: %+v", resp)
	case <-time.After(20 * time.Millisecond):
	}
	if err := p.FollowerFetched(3, 5, 1); err != nil { // follower 3 catches up: HW 5
		t.Fatal(err)
	}
	select {
	case resp := <-got:
		if rp := onlyPartition(t, resp); rp.HighWatermark != 5 || len(rp.RecordBatches) != 0 {
			t.Fatalf("HW %d, %d record bytes; want 5, none", rp.HighWatermark, len(rp.RecordBatches))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("parked follower fetch not answered when the high watermark moved")
	}
}

// TestFollowerReadCommitted: a read_committed consumer on a follower reads
// below the follower's last stable offset, held by a transaction open in
// what it replicated, and is told that offset.
func TestFollowerReadCommitted(t *testing.T) {
	ts, topic, p, _ := rackServer(t, Config{})
	follow(t, p, []int32{1, 2}, 3, 0) // offsets 0-2, plain
	txn := testbatch.Make(testbatch.Spec{BaseOffset: 3, Timestamp: 1000, Idempotent: true, ProducerID: 9,
		Attributes: segment.AttrTransactional, Values: testbatch.Values(2, 10, 9)}) // 3-4, left open
	segment.SetPartitionLeaderEpoch(txn, 1)
	if _, err := p.AppendReplica(txn); err != nil {
		t.Fatal(err)
	}
	p.SetFollowerHW(5)
	for _, tc := range []struct {
		isolation int8
		last      int64
		lso       int64
	}{{0, 4, 3}, {1, 2, 3}} {
		req := rackFetch(12, topic, "a", 0)
		req.IsolationLevel = tc.isolation
		rp := onlyPartition(t, ts.call(t, req))
		if rp.ErrorCode != 0 || rp.HighWatermark != 5 || rp.LastStableOffset != tc.lso || lastOffsetIn(t, rp.RecordBatches) != tc.last {
			t.Fatalf("isolation %d: error %d, HW %d, LSO %d, up to %d; want 0, 5, %d, %d", tc.isolation, rp.ErrorCode,
				rp.HighWatermark, rp.LastStableOffset, lastOffsetIn(t, rp.RecordBatches), tc.lso, tc.last)
		}
	}
}
