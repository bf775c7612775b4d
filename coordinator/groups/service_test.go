package groups

import (
	"errors"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

const waitLong = 10 * time.Second

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeMeta is the metadata of one broker (id 1) that leads every
// partition.
type fakeMeta struct {
	mu      sync.Mutex
	topics  map[string]cluster.Topic
	legacy  map[string][]group.Offset
	dropped []string
	creates int
}

func newFakeMeta() *fakeMeta {
	return &fakeMeta{topics: map[string]cluster.Topic{}, legacy: map[string][]group.Offset{}}
}

func (m *fakeMeta) Topic(name string) (cluster.Topic, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[name]
	return t, ok
}

func (m *fakeMeta) Topics() []cluster.Topic {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []cluster.Topic
	for _, t := range m.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (m *fakeMeta) Partition(topic string, p int32) (cluster.PartitionInfo, bool) {
	t, ok := m.Topic(topic)
	if !ok || p < 0 || p >= t.Partitions {
		return cluster.PartitionInfo{}, false
	}
	return cluster.PartitionInfo{Leader: 1, LeaderEpoch: 1, Replicas: []int32{1}, ISR: []int32{1}}, true
}

func (m *fakeMeta) Brokers() []cluster.BrokerInfo {
	return []cluster.BrokerInfo{{ID: 1, Addr: "127.0.0.1:9092"}}
}

func (m *fakeMeta) CreateTopic(t cluster.Topic) (cluster.Topic, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creates++
	if _, ok := m.topics[t.Name]; ok {
		return cluster.Topic{}, cluster.ErrTopicExists
	}
	t.ID = cluster.NewTopicID()
	m.topics[t.Name] = t
	return t, nil
}

func (m *fakeMeta) LegacyOffsets() map[string][]group.Offset {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]group.Offset{}
	for g, o := range m.legacy {
		out[g] = append([]group.Offset(nil), o...)
	}
	return out
}

func (m *fakeMeta) DropLegacyOffsets(g string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.legacy, g)
	m.dropped = append(m.dropped, g)
	return nil
}

// broker is a Service over real partitions, restartable on the same
// directory.
type broker struct {
	t     *testing.T
	dir   string
	meta  *fakeMeta
	parts *partition.Manager
	svc   *Service
}

func newBroker(t *testing.T, meta *fakeMeta, dir string) *broker {
	t.Helper()
	parts, err := partition.OpenManager(partition.Options{DataDir: dir, Logger: quiet,
		Fsync: segment.FsyncPolicy{Mode: segment.FsyncNever}})
	if err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, dir: dir, meta: meta, parts: parts}
	b.svc = New(Options{Meta: meta, Parts: parts, Partitions: 4, Logger: quiet,
		Group: group.Config{Logger: quiet, PartitionExists: func(string, int32) bool { return true }}})
	b.reconcile()
	t.Cleanup(b.close)
	return b
}

// reconcile opens every partition of the offsets topic as leader, as the
// replica manager does, and tells the service.
func (b *broker) reconcile() {
	b.t.Helper()
	if t, ok := b.meta.Topic(Topic); ok {
		for i := int32(0); i < t.Partitions; i++ {
			r := partition.Role{Leader: true, LeaderID: 1, Epoch: 1, ISR: []int32{1}, Replicas: []int32{1}}
			p, err := b.parts.Open(t, i, r)
			if err != nil {
				b.t.Fatal(err)
			}
			if err := p.SetRole(r); err != nil {
				b.t.Fatal(err)
			}
		}
	}
	b.svc.Reconciled()
}

func (b *broker) close() {
	if b.svc != nil {
		b.svc.Close()
		b.parts.Close()
		b.svc = nil
	}
}

// coordinator waits for the group's coordinator to be loaded.
func (b *broker) coordinator(g string) *group.Coordinator {
	b.t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		c, err := b.svc.Coordinator(g)
		if err == nil {
			return c
		}
		if !errors.Is(err, coordinator.ErrLoadInProgress) || time.Now().After(deadline) {
			b.t.Fatalf("coordinator of %q: %v", g, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func commit(t *testing.T, c *group.Coordinator, g string, offs ...group.Offset) {
	t.Helper()
	errs, wait := c.Commit(group.CommitRequest{Group: g, Generation: -1, Offsets: offs})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

func off(topic string, p int32, o int64) group.Offset {
	return group.Offset{Topic: topic, Partition: p, Offset: o, LeaderEpoch: -1}
}

// TestLocateCreatesTopic: the first lookup creates the topic, compacted,
// with the configured partitions; until it exists, lookups say not
// available and commits are refused with NOT_COORDINATOR.
func TestLocateCreatesTopic(t *testing.T) {
	meta := newFakeMeta()
	b := newBroker(t, meta, t.TempDir())
	if _, err := b.svc.Coordinator("g"); !errors.Is(err, coordinator.ErrNotCoordinator) {
		t.Fatalf("before the topic: %v", err)
	}
	_, err := b.svc.Locate("g")
	if !errors.Is(err, coordinator.ErrNotAvailable) {
		t.Fatalf("first Locate: %v, want ErrNotAvailable", err)
	}
	deadline := time.Now().Add(waitLong)
	for {
		if _, ok := meta.Topic(Topic); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the topic was not created")
		}
		time.Sleep(time.Millisecond)
	}
	tp, _ := meta.Topic(Topic)
	if tp.Partitions != 4 || tp.Configs["cleanup.policy"] != "compact" || tp.ReplicationFactor != 1 {
		t.Fatalf("created %+v", tp)
	}
	if id, err := b.svc.Locate("g"); err != nil || id != 1 {
		t.Fatalf("Locate = %d, %v", id, err)
	}
}

// TestCommitsSurviveRestart: commits and deletions are records of the
// topic, in Kafka's schemas; a restarted broker loads exactly the live
// offsets, each group on the partition Kafka would put it on.
func TestCommitsSurviveRestart(t *testing.T) {
	meta := newFakeMeta()
	dir := t.TempDir()
	b := newBroker(t, meta, dir)
	if err := b.svc.CreateTopic(); err != nil {
		t.Fatal(err)
	}
	b.reconcile()
	groupsByPart := map[int32][]string{}
	for _, g := range []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta"} {
		c := b.coordinator(g)
		commit(t, c, g, off("t", 0, 5), off("t", 1, 6))
		commit(t, c, g, off("t", 0, 7))
		groupsByPart[PartitionFor(g, 4)] = append(groupsByPart[PartitionFor(g, 4)], g)
	}
	if errs, err := b.coordinator("beta").DeleteOffsets("beta", []group.TopicPartition{{Topic: "t", Partition: 1}}); err != nil || errs[0] != nil {
		t.Fatal(errs, err)
	}
	if errs := b.coordinator("gamma").DeleteGroups([]string{"gamma"}); errs[0] != nil {
		t.Fatal(errs)
	}

	// Every record decodes with Kafka's own schemas, each group on its
	// partition.
	for i := int32(0); i < 4; i++ {
		p, err := b.parts.Get(Topic, i)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range readAll(t, p) {
			version := int16(r.Key[0])<<8 | int16(r.Key[1])
			var g string
			switch version {
			case 0, 1:
				var k kmsg.OffsetCommitKey
				if err := k.ReadFrom(r.Key); err != nil {
					t.Fatal(err)
				}
				g = k.Group
				if r.Value != nil {
					var v kmsg.OffsetCommitValue
					if err := v.ReadFrom(r.Value); err != nil {
						t.Fatalf("offset value: %v", err)
					}
					if k.Topic != "t" || v.Offset < 5 || v.CommitTimestamp <= 0 {
						t.Fatalf("commit %+v %+v", k, v)
					}
				}
			case 2:
				var k kmsg.GroupMetadataKey
				if err := k.ReadFrom(r.Key); err != nil {
					t.Fatal(err)
				}
				g = k.Group
			default:
				t.Fatalf("key version %d", version)
			}
			if PartitionFor(g, 4) != i {
				t.Fatalf("group %q's record on partition %d, want %d", g, i, PartitionFor(g, 4))
			}
		}
	}

	b.close()
	b = newBroker(t, meta, dir)
	for _, g := range []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta"} {
		got, err := b.coordinator(g).FetchOffsets(g, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[group.TopicPartition]int64{{Topic: "t", Partition: 0}: 7, {Topic: "t", Partition: 1}: 6}
		switch g {
		case "beta":
			delete(want, group.TopicPartition{Topic: "t", Partition: 1})
		case "gamma":
			want = map[group.TopicPartition]int64{}
		}
		if len(got) != len(want) {
			t.Fatalf("group %s loaded %v, want %v", g, got, want)
		}
		for tp, o := range want {
			if got[tp].Offset != o {
				t.Fatalf("group %s %v: loaded %d, want %d", g, tp, got[tp].Offset, o)
			}
		}
	}
}

// TestLegacyOffsetsMoveOnce: offsets an older runnel kept in the Raft
// state are written into the topic when their partition loads, unless the
// log has a newer commit, and dropped from the Raft state; a later load
// writes nothing again.
func TestLegacyOffsetsMoveOnce(t *testing.T) {
	meta := newFakeMeta()
	at := time.UnixMilli(1_700_000_000_000)
	meta.legacy["old"] = []group.Offset{{Topic: "t", Partition: 0, Offset: 10, LeaderEpoch: 2, Metadata: "m", CommitTime: at},
		{Topic: "t", Partition: 1, Offset: 11, LeaderEpoch: -1, CommitTime: at}}
	dir := t.TempDir()
	b := newBroker(t, meta, dir)
	if err := b.svc.MigrateLegacy(); err != nil {
		t.Fatal(err)
	}
	b.reconcile()
	got, err := b.coordinator("old").FetchOffsets("old", nil)
	if err != nil {
		t.Fatal(err)
	}
	if o := got[group.TopicPartition{Topic: "t", Partition: 0}]; o.Offset != 10 || o.LeaderEpoch != 2 || o.Metadata != "m" || !o.CommitTime.Equal(at) {
		t.Fatalf("moved offset %+v", o)
	}
	meta.mu.Lock()
	dropped := len(meta.dropped)
	meta.mu.Unlock()
	if len(meta.LegacyOffsets()) != 0 || dropped != 1 {
		t.Fatalf("legacy offsets left %v, dropped %d groups", meta.LegacyOffsets(), dropped)
	}
	p, _ := b.parts.Get(Topic, PartitionFor("old", 4))
	n := len(readAll(t, p))
	if n != 2 {
		t.Fatalf("%d records after the move, want 2", n)
	}
	// A newer commit in the log wins over a legacy one still listed (the
	// drop did not reach the Raft state before a crash).
	commit(t, b.coordinator("old"), "old", off("t", 0, 99))
	meta.mu.Lock()
	meta.legacy["old"] = []group.Offset{{Topic: "t", Partition: 0, Offset: 10, LeaderEpoch: -1, CommitTime: at}}
	meta.mu.Unlock()
	b.close()
	b = newBroker(t, meta, dir)
	got, _ = b.coordinator("old").FetchOffsets("old", nil)
	if o := got[group.TopicPartition{Topic: "t", Partition: 0}]; o.Offset != 99 {
		t.Fatalf("after a second load: %+v, want the log's 99", o)
	}
	if n2 := len(readAll(t, p2(t, b))); n2 != n+1 {
		t.Fatalf("%d records after a second load, want %d", n2, n+1)
	}
}

func p2(t *testing.T, b *broker) *partition.Partition {
	p, err := b.parts.Get(Topic, PartitionFor("old", 4))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDeletedTopicOffsetsDropped: when a topic leaves the metadata, every
// group here loses its offsets of it.
func TestDeletedTopicOffsetsDropped(t *testing.T) {
	meta := newFakeMeta()
	b := newBroker(t, meta, t.TempDir())
	if err := b.svc.CreateTopic(); err != nil {
		t.Fatal(err)
	}
	meta.mu.Lock()
	meta.topics["t"] = cluster.Topic{Name: "t", Partitions: 2}
	meta.topics["u"] = cluster.Topic{Name: "u", Partitions: 1}
	meta.mu.Unlock()
	b.reconcile()
	c := b.coordinator("g")
	commit(t, c, "g", off("t", 0, 1), off("u", 0, 2))
	meta.mu.Lock()
	delete(meta.topics, "t")
	meta.mu.Unlock()
	b.svc.Reconciled()
	deadline := time.Now().Add(waitLong)
	for {
		got, _ := c.FetchOffsets("g", nil)
		if _, ok := got[group.TopicPartition{Topic: "t", Partition: 0}]; !ok && len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("offsets of the deleted topic remain: %v", got)
		}
		time.Sleep(time.Millisecond)
	}
}

type rec struct{ Key, Value []byte }

// readAll returns every record of p.
func readAll(t *testing.T, p *partition.Partition) []rec {
	t.Helper()
	var out []rec
	for from := p.LogStartOffset(); from < p.LogEndOffset(); {
		reg, err := p.ReadReplica(from, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, reg.Length)
		if _, err := reg.ReadAt(b, reg.Position); err != nil {
			t.Fatal(err)
		}
		reg.Release()
		for len(b) > 0 {
			h, err := segment.ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			err = segment.ForEachRecord(b[:h.Size()], &h, 1<<20, func(r *segment.Record) error {
				out = append(out, rec{Key: append([]byte(nil), r.Key...), Value: clone(r.Value)})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			from = h.NextOffset()
			b = b[h.Size():]
		}
	}
	return out
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// TestOversizedGroupID: a group id longer than Kafka's schemas can hold
// (a compact string in a flexible request may be) is refused, not written.
func TestOversizedGroupID(t *testing.T) {
	meta := newFakeMeta()
	b := newBroker(t, meta, t.TempDir())
	if err := b.svc.CreateTopic(); err != nil {
		t.Fatal(err)
	}
	b.reconcile()
	long := strings.Repeat("g", 40000)
	c := b.coordinator(long)
	errs, wait := c.Commit(group.CommitRequest{Group: long, Generation: -1, Offsets: []group.Offset{off("t", 0, 1)}})
	if !errors.Is(errs[0], coordinator.ErrRecordTooLarge) {
		t.Fatalf("commit with a 40,000-byte group id: %v, want ErrRecordTooLarge", errs[0])
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.FetchOffsets(long, nil); len(got) != 0 {
		t.Fatalf("refused commit applied: %v", got)
	}
}

// TestGroupMetadataSurvivesRestart: a stable generation is written as
// Kafka's GroupMetadataValue (readable by franz-go's decoder), and the
// coordinator that loads it goes on from its generation.
func TestGroupMetadataSurvivesRestart(t *testing.T) {
	meta := newFakeMeta()
	dir := t.TempDir()
	b := newBroker(t, meta, dir)
	if err := b.svc.CreateTopic(); err != nil {
		t.Fatal(err)
	}
	b.reconcile()
	c := b.coordinator("members")
	join := group.JoinRequest{Group: "members", ClientID: "cl", ClientHost: "/127.0.0.1", ProtocolType: "consumer",
		Protocols: []group.Protocol{{Name: "range", Metadata: []byte{0, 1}}}, SessionTimeout: 10 * time.Second,
		RebalanceTimeout: 10 * time.Second}
	jr := <-c.Join(join)
	if jr.Err != nil {
		t.Fatal(jr.Err)
	}
	sr := <-c.Sync(group.SyncRequest{Group: "members", MemberID: jr.MemberID, Generation: jr.Generation,
		Assignments: map[string][]byte{jr.MemberID: []byte("mine")}})
	if sr.Err != nil {
		t.Fatal(sr.Err)
	}
	p, _ := b.parts.Get(Topic, PartitionFor("members", 4))
	var found bool
	for _, r := range readAll(t, p) {
		if r.Key[1] != 2 || r.Value == nil {
			continue
		}
		var v kmsg.GroupMetadataValue
		if err := v.ReadFrom(r.Value); err != nil {
			t.Fatal(err)
		}
		if v.Generation == jr.Generation && len(v.Members) == 1 && string(v.Members[0].Assignment) == "mine" &&
			v.Members[0].MemberID == jr.MemberID && v.Protocol != nil && *v.Protocol == "range" {
			found = true
		}
	}
	if !found {
		t.Fatal("no GroupMetadataValue of the stable generation in the log")
	}
	b.close()
	b = newBroker(t, meta, dir)
	d, ok := b.coordinator("members").Describe("members")
	if !ok || d.Generation != jr.Generation || d.State != group.Empty {
		t.Fatalf("after the restart: %+v, want Empty at generation %d", d, jr.Generation)
	}
}
