// Package groups serves consumer groups from Kafka's internal topic
// __consumer_offsets, on the coordinator runtime (package coordinator).
//
// The group G belongs to partition abs(javaStringHash(G)) % partitions of
// the topic, as in Kafka, and its coordinator is that partition's leader:
// groups spread over every broker that leads a partition of the topic.
// Each partition led here is a shard: a group.Coordinator whose committed
// offsets are records of the partition (Kafka's OffsetCommit key and value
// schemas), loaded when this broker becomes the partition's leader and
// dropped when it stops. Membership is not kept in the log: after a
// coordinator moves, members rejoin.
//
// Offsets committed in a transaction are a transactional batch of the
// producer on the group's partition, pending until the producer's marker
// lands there: the partitions' marker hook (partition.Manager.SetMarkerHook)
// tells the shard of a marker written here, and a load replays markers in
// log order (see docs/format.md, "__consumer_offsets records").
//
// The topic is created on first need: the first FindCoordinator, or the
// first start of a broker whose Raft state holds offsets an older runnel
// committed there (they are written into the topic once, group by group,
// then dropped from the Raft state).
package groups

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/partition"
)

// Topic is the internal topic of group offsets.
const Topic = "__consumer_offsets"

// Meta is what the service reads and changes of the cluster metadata;
// *cluster.Meta implements it.
type Meta interface {
	Topic(name string) (cluster.Topic, bool)
	Topics() []cluster.Topic
	Partition(topic string, partition int32) (cluster.PartitionInfo, bool)
	Brokers() []cluster.BrokerInfo
	CreateTopic(t cluster.Topic) (cluster.Topic, error)
	LegacyOffsets() map[string][]group.Offset
	DropLegacyOffsets(group string) error
}

var _ Meta = (*cluster.Meta)(nil)

// Options configure a Service.
type Options struct {
	Meta Meta
	// Parts are the broker's partitions; New installs their marker hook
	// (partition.Manager.SetMarkerHook).
	Parts *partition.Manager
	// Partitions of the topic when this broker creates it
	// (offsets.topic.num.partitions). Default 50.
	Partitions int32
	// ReplicationFactor of the topic when this broker creates it, capped
	// at the brokers registered then (offsets.topic.replication.factor).
	// Default 3.
	ReplicationFactor int16
	// SegmentBytes of the topic's segments (offsets.topic.segment.bytes).
	// Default 100 MiB.
	SegmentBytes int64
	// Group configures every shard's coordinator. Its Logger and
	// PartitionExists are set by the service when nil.
	Group group.Config
	// WriteTimeout bounds a commit's wait for the ISR
	// (offsets.commit.timeout.ms). Default 5 s.
	WriteTimeout time.Duration
	// Logger: nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Partitions <= 0 {
		o.Partitions = 50
	}
	if o.ReplicationFactor <= 0 {
		o.ReplicationFactor = 3
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 100 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Service finds and serves the group coordinators of this broker.
type Service struct {
	o     Options
	log   *slog.Logger
	rt    *coordinator.Runtime
	topic *coordinator.InternalTopic

	mu struct {
		sync.Mutex
		topics map[string]bool // the topics seen at the last Reconciled
		// shards are the loaded shards, by partition; late holds the
		// transaction markers written to a partition while its shard
		// loads, applied once it has loaded.
		shards map[int32]*shard
		late   map[int32][]coordinator.Marker
	}
}

// New returns a service that serves no group until Reconciled finds
// partitions of the topic led here.
func New(o Options) *Service {
	o = o.withDefaults()
	s := &Service{o: o, log: o.Logger}
	s.topic = &coordinator.InternalTopic{Meta: o.Meta, Name: Topic, Partitions: o.Partitions,
		ReplicationFactor: o.ReplicationFactor, Logger: o.Logger,
		Configs: func(int16) map[string]string {
			return map[string]string{"cleanup.policy": "compact", "segment.bytes": fmt.Sprint(o.SegmentBytes)}
		}}
	if s.o.Group.Logger == nil {
		s.o.Group.Logger = o.Logger
	}
	if s.o.Group.PartitionExists == nil {
		meta := o.Meta
		s.o.Group.PartitionExists = func(topic string, p int32) bool {
			t, ok := meta.Topic(topic)
			return ok && p >= 0 && p < t.Partitions
		}
	}
	o.Parts.SetMarkerHook(func(p *partition.Partition, producerID int64, commit bool) {
		if p.Topic == Topic {
			s.TxnMarkerWritten(p.Index, producerID, commit)
		}
	})
	s.rt = coordinator.New(coordinator.Config{
		Topic:        Topic,
		NewLoader:    s.newLoader,
		WriteTimeout: o.WriteTimeout,
		Logger:       o.Logger,
	})
	return s
}

// Runtime returns the runtime under the service, for metrics.
func (s *Service) Runtime() *coordinator.Runtime { return s.rt }

// Reconciled follows the replica manager: it is called after every
// reconcile, and loads the shards of the partitions led here, unloads the
// others, and drops the offsets of topics that are gone.
func (s *Service) Reconciled() {
	topics := map[string]bool{}
	for _, t := range s.o.Meta.Topics() {
		topics[t.Name] = true
	}
	s.mu.Lock()
	var gone []string
	for name := range s.mu.topics {
		if !topics[name] {
			gone = append(gone, name)
		}
	}
	s.mu.topics = topics
	s.mu.Unlock()

	var led []coordinator.Led
	if t, ok := s.o.Meta.Topic(Topic); ok {
		for i := int32(0); i < t.Partitions; i++ {
			p, err := s.o.Parts.Get(Topic, i)
			if err != nil {
				continue
			}
			if r := p.Role(); r.Leader {
				led = append(led, coordinator.Led{Index: i, Epoch: r.Epoch, Partition: p})
			}
		}
	}
	s.rt.Lead(led)
	if len(gone) > 0 {
		go s.dropTopics(gone)
	}
}

// dropTopics removes the committed offsets of deleted topics from every
// group this broker coordinates.
func (s *Service) dropTopics(names []string) {
	for _, gc := range s.Coordinators() {
		for _, name := range names {
			if err := gc.DeleteTopic(name); err != nil {
				s.log.Warn("deleting the committed offsets of a deleted topic", "topic", name, "err", err)
			}
		}
	}
}

// Coordinator returns this broker's coordinator of the group.
func (s *Service) Coordinator(groupID string) (*group.Coordinator, error) {
	t, ok := s.o.Meta.Topic(Topic)
	if !ok {
		return nil, fmt.Errorf("%w: %s does not exist yet", coordinator.ErrNotCoordinator, Topic)
	}
	sh, err := s.rt.Shard(PartitionFor(groupID, t.Partitions))
	if err != nil {
		return nil, err
	}
	return sh.(*shard).c, nil
}

// Coordinators returns every group coordinator serving on this broker.
func (s *Service) Coordinators() []*group.Coordinator {
	shards := s.rt.Shards()
	out := make([]*group.Coordinator, len(shards))
	for i, sh := range shards {
		out[i] = sh.(*shard).c
	}
	return out
}

// Locate returns the broker that coordinates the group: the leader of its
// partition. The first call in a cluster without the topic creates it.
func (s *Service) Locate(groupID string) (int32, error) {
	t, ok := s.o.Meta.Topic(Topic)
	if !ok {
		s.ensureTopic()
		return -1, fmt.Errorf("%w: %s is being created", coordinator.ErrNotAvailable, Topic)
	}
	i := PartitionFor(groupID, t.Partitions)
	p, ok := s.o.Meta.Partition(Topic, i)
	if !ok || p.Leader < 0 {
		return -1, fmt.Errorf("%w: partition %d of %s has no leader", coordinator.ErrNotAvailable, i, Topic)
	}
	return p.Leader, nil
}

// TopicConfigs are the configs the topic is created with.
func (s *Service) TopicConfigs() map[string]string { return s.topic.TopicConfigs() }

// ensureTopic asks the metadata for the topic, once at a time; the caller
// does not wait.
func (s *Service) ensureTopic() { s.topic.Ensure() }

// CreateTopic creates the topic if it does not exist, and returns once the
// metadata holds it.
func (s *Service) CreateTopic() error { return s.topic.Create() }

// MigrateLegacy creates the topic when the Raft state holds offsets an
// older runnel committed there, so that their coordinators load and move
// them. It is called once at start.
func (s *Service) MigrateLegacy() error {
	if len(s.o.Meta.LegacyOffsets()) == 0 {
		return nil
	}
	return s.CreateTopic()
}

// TxnMarkerWritten tells the coordinator of a partition of the topic that
// a transaction marker of the producer is in the partition's log (this
// broker wrote it as leader, for the transaction coordinator: the
// partitions' marker hook calls it): the offsets the producer
// committed there in the transaction become visible or are dropped. A
// marker written while the partition's shard loads is applied once it has
// loaded (the load may have replayed it too: applying it twice changes
// nothing).
func (s *Service) TxnMarkerWritten(partition int32, producerID int64, commit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := coordinator.Marker{ProducerID: producerID, Commit: commit}
	if sh := s.mu.shards[partition]; sh != nil {
		sh.c.CompleteTxn(producerID, commit)
		return
	}
	if s.mu.late == nil {
		s.mu.late = map[int32][]coordinator.Marker{}
	}
	s.mu.late[partition] = append(s.mu.late[partition], m)
}

// loading forgets the markers written before a load of the partition
// starts: the load replays them.
func (s *Service) loading(partition int32) {
	s.mu.Lock()
	delete(s.mu.late, partition)
	s.mu.Unlock()
}

// register makes a loaded shard take markers, first those written while
// it loaded.
func (s *Service) register(sh *shard) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.shards == nil {
		s.mu.shards = map[int32]*shard{}
	}
	s.mu.shards[sh.index] = sh
	for _, m := range s.mu.late[sh.index] {
		sh.c.CompleteTxn(m.ProducerID, m.Commit)
	}
	delete(s.mu.late, sh.index)
}

func (s *Service) unregister(sh *shard) {
	s.mu.Lock()
	if s.mu.shards[sh.index] == sh {
		delete(s.mu.shards, sh.index)
	}
	s.mu.Unlock()
}

// Close unloads every shard.
func (s *Service) Close() { s.rt.Close() }
