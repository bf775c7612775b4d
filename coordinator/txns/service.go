// Package txns is the transaction coordinator: it serves transactional ids
// from Kafka's internal topic __transaction_state, on the coordinator
// runtime (package coordinator).
//
// The transactional id T belongs to partition abs(javaStringHash(T)) %
// partitions of the topic, as in Kafka, and its coordinator is that
// partition's leader. Each partition led here is a shard: the state of its
// transactional ids, one record (Kafka's TransactionLogKey and
// TransactionLogValue, package txnlogfmt) per change, loaded when this
// broker becomes the partition's leader and dropped when it stops.
//
// A transaction moves through Kafka's states:
//
//	Empty ──AddPartitions──▶ Ongoing ──EndTxn──▶ PrepareCommit ──markers──▶ CompleteCommit
//	  ▲                         │   └──EndTxn(abort), timeout, fence──▶ PrepareAbort ──markers──▶ CompleteAbort
//	  └──InitProducerId─────────┴────────────────────────── Complete* ◀─────────┘
//
// Every change is appended to the partition, then applied (append, then
// apply); while one is in flight for an id, or its markers are being
// written, other requests for that id are answered CONCURRENT_TRANSACTIONS
// and retried by the client. After a Prepare* record is durable the
// coordinator writes the commit or abort marker to every partition of the
// transaction (through a MarkerWriter: directly to partitions led here,
// with WriteTxnMarkers to the leaders of the others), retrying until each
// is written, then appends the Complete* record. A shard loaded with ids in
// Prepare* (its previous coordinator failed between the two records)
// resumes their markers.
//
// The topic is created on the first FindCoordinator for a transactional
// id.
package txns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/group/offsetsfmt"
	"github.com/runnel-io/runnel/partition"
)

// Topic is the internal topic of transactions.
const Topic = "__transaction_state"

// Errors of the coordinator, besides the runtime's (coordinator.ErrNotCoordinator,
// coordinator.ErrLoadInProgress, ...). The server maps each to a Kafka code.
var (
	// ErrConcurrentTransactions: a change of the id is in flight, or its
	// markers are being written (CONCURRENT_TRANSACTIONS; clients retry).
	ErrConcurrentTransactions = errors.New("txns: a change of the transactional id is in progress")
	// ErrProducerFenced: the request's producer epoch is not the id's
	// (PRODUCER_FENCED).
	ErrProducerFenced = errors.New("txns: producer fenced by a newer epoch")
	// ErrInvalidProducerIDMapping: the id is unknown, or has another
	// producer id (INVALID_PRODUCER_ID_MAPPING).
	ErrInvalidProducerIDMapping = errors.New("txns: the producer id is not the transactional id's")
	// ErrInvalidTxnState: the request does not fit the transaction's
	// state (INVALID_TXN_STATE).
	ErrInvalidTxnState = errors.New("txns: the request does not fit the transaction's state")
	// ErrInvalidTimeout: the transaction timeout is not positive or is
	// above the broker's maximum (INVALID_TRANSACTION_TIMEOUT).
	ErrInvalidTimeout = errors.New("txns: invalid transaction timeout")
	// ErrUnknownID: DescribeTransactions of an id the coordinator does not
	// have (TRANSACTIONAL_ID_NOT_FOUND).
	ErrUnknownID = errors.New("txns: unknown transactional id")
)

// Meta is what the service reads and changes of the cluster metadata;
// *cluster.Meta implements it.
type Meta interface {
	Topic(name string) (cluster.Topic, bool)
	Partition(topic string, partition int32) (cluster.PartitionInfo, bool)
	Brokers() []cluster.BrokerInfo
	CreateTopic(t cluster.Topic) (cluster.Topic, error)
}

var _ Meta = (*cluster.Meta)(nil)

// Options configure a Service.
type Options struct {
	Meta  Meta
	Parts *partition.Manager
	// NodeID is this broker's id.
	NodeID int32
	// Partitions of the topic when this broker creates it
	// (transaction.state.log.num.partitions). Default 50.
	Partitions int32
	// ReplicationFactor of the topic when this broker creates it, capped
	// at the brokers registered then
	// (transaction.state.log.replication.factor). Default 3.
	ReplicationFactor int16
	// SegmentBytes of the topic's segments. Default 100 MiB.
	SegmentBytes int64
	// MaxTimeout caps the transaction timeout a producer asks for
	// (transaction.max.timeout.ms). Default 15 minutes.
	MaxTimeout time.Duration
	// IDExpiration: a transactional id without a transaction for this long
	// is forgotten (transactional.id.expiration.ms). Default 7 days.
	IDExpiration time.Duration
	// CheckInterval is how often expired transactions are aborted and
	// expired ids removed
	// (transaction.abort.timed.out.transaction.cleanup.interval.ms).
	// Default 10 s.
	CheckInterval time.Duration
	// WriteTimeout bounds a record's wait for the ISR. Default 5 s.
	WriteTimeout time.Duration
	// MarkerRetry is the pause before markers that failed are sent again.
	// Default 100 ms.
	MarkerRetry time.Duration
	// AllocateProducerID hands out a new producer id.
	AllocateProducerID func() (int64, error)
	// Markers writes transaction markers; nil: a BrokerMarkers over Parts
	// and Meta, dialling with Dial.
	Markers MarkerWriter
	// Dial connects to another broker's inter-broker listener. Nil: TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Now: nil means time.Now.
	Now func() time.Time
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
	if o.MaxTimeout <= 0 {
		o.MaxTimeout = 15 * time.Minute
	}
	if o.IDExpiration <= 0 {
		o.IDExpiration = 7 * 24 * time.Hour
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = 10 * time.Second
	}
	if o.MarkerRetry <= 0 {
		o.MarkerRetry = 100 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Service finds and serves the transaction coordinators of this broker.
type Service struct {
	o       Options
	log     *slog.Logger
	rt      *coordinator.Runtime
	markers MarkerWriter
	// wg counts the shards' goroutines (timers, marker writers).
	wg sync.WaitGroup

	markerRetries, timedOut, expired atomic.Int64

	topic *coordinator.InternalTopic
}

// New returns a service that serves no transactional id until Reconciled
// finds partitions of the topic led here.
func New(o Options) *Service {
	o = o.withDefaults()
	s := &Service{o: o, log: o.Logger.With("coordinator", "transactions")}
	s.topic = &coordinator.InternalTopic{Meta: o.Meta, Name: Topic, Partitions: o.Partitions,
		ReplicationFactor: o.ReplicationFactor, Logger: s.log,
		Configs: func(rf int16) map[string]string {
			return map[string]string{"cleanup.policy": "compact", "segment.bytes": fmt.Sprint(o.SegmentBytes),
				"min.insync.replicas": fmt.Sprint(min(2, int(rf)))}
		}}
	s.markers = o.Markers
	if s.markers == nil {
		s.markers = NewBrokerMarkers(o.NodeID, o.Parts, o.Meta, o.Dial, o.Logger)
	}
	s.rt = coordinator.New(coordinator.Config{
		Topic:        Topic,
		NewLoader:    s.newLoader,
		WriteTimeout: o.WriteTimeout,
		Now:          o.Now,
		Logger:       o.Logger,
	})
	return s
}

// Runtime returns the runtime under the service, for metrics.
func (s *Service) Runtime() *coordinator.Runtime { return s.rt }

// Stats are the service's counters since it started.
type Stats struct {
	MarkerRetries int64 // markers written again after a partition's leader failed them
	TimedOut      int64 // transactions aborted past their timeout
	Expired       int64 // transactional ids removed after --transactional-id-expiration
}

// Stats returns the service's counters.
func (s *Service) Stats() Stats {
	return Stats{MarkerRetries: s.markerRetries.Load(), TimedOut: s.timedOut.Load(), Expired: s.expired.Load()}
}

// MaxTimeout returns the largest transaction timeout the service accepts.
func (s *Service) MaxTimeout() time.Duration { return s.o.MaxTimeout }

// Reconciled follows the replica manager: it loads the shards of the
// partitions of the topic led here and unloads the others.
func (s *Service) Reconciled() {
	var led []coordinator.Led
	if t, ok := s.o.Meta.Topic(Topic); ok && s.o.Parts != nil {
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
}

// Lead serves exactly the partitions in led (what Reconciled computes from
// the replica manager; tests call it directly).
func (s *Service) Lead(led []coordinator.Led) { s.rt.Lead(led) }

// PartitionFor returns the partition of the topic that holds the id.
func PartitionFor(id string, partitions int32) int32 { return offsetsfmt.PartitionFor(id, partitions) }

// Locate returns the broker that coordinates the id: the leader of its
// partition. The first call in a cluster without the topic creates it.
func (s *Service) Locate(id string) (int32, error) {
	t, ok := s.o.Meta.Topic(Topic)
	if !ok {
		s.ensureTopic()
		return -1, fmt.Errorf("%w: %s is being created", coordinator.ErrNotAvailable, Topic)
	}
	i := PartitionFor(id, t.Partitions)
	p, ok := s.o.Meta.Partition(Topic, i)
	if !ok || p.Leader < 0 {
		return -1, fmt.Errorf("%w: partition %d of %s has no leader", coordinator.ErrNotAvailable, i, Topic)
	}
	return p.Leader, nil
}

// shardOf returns this broker's shard of the id.
func (s *Service) shardOf(id string) (*shard, error) {
	t, ok := s.o.Meta.Topic(Topic)
	if !ok {
		return nil, fmt.Errorf("%w: %s does not exist yet", coordinator.ErrNotCoordinator, Topic)
	}
	sh, err := s.rt.Shard(PartitionFor(id, t.Partitions))
	if err != nil {
		return nil, err
	}
	return sh.(*shard), nil
}

// TopicConfigs are the configs the topic is created with.
func (s *Service) TopicConfigs() map[string]string { return s.topic.TopicConfigs() }

func (s *Service) ensureTopic() { s.topic.Ensure() }

// CreateTopic creates the topic if it does not exist.
func (s *Service) CreateTopic() error { return s.topic.Create() }

// Close unloads every shard and stops their marker writers.
func (s *Service) Close() {
	s.rt.Close()
	s.wg.Wait()
	if c, ok := s.markers.(interface{ Close() }); ok {
		c.Close()
	}
}

// Describe returns the state of a transactional id coordinated here.
func (s *Service) Describe(id string) (Txn, error) {
	sh, err := s.shardOf(id)
	if err != nil {
		return Txn{}, err
	}
	return sh.describe(id)
}

// List returns the transactional ids coordinated here, by id.
func (s *Service) List() []Txn {
	var out []Txn
	for _, sh := range s.rt.Shards() {
		out = append(out, sh.(*shard).list()...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// InitProducerID answers InitProducerId for a transactional id: a producer
// id and epoch, fencing the id's earlier producers. producerID and epoch
// are the client's own (KIP-360), -1 when it has none.
func (s *Service) InitProducerID(id string, timeout time.Duration, producerID int64, epoch int16) (int64, int16, error) {
	if timeout <= 0 || timeout > s.o.MaxTimeout {
		return -1, -1, fmt.Errorf("%w: %s, maximum %s", ErrInvalidTimeout, timeout, s.o.MaxTimeout)
	}
	sh, err := s.shardOf(id)
	if err != nil {
		return -1, -1, err
	}
	return sh.initProducerID(id, timeout, producerID, epoch)
}

// AddPartitions adds partitions to the id's transaction, starting one if
// none is open.
func (s *Service) AddPartitions(id string, producerID int64, epoch int16, parts []TopicPartition) error {
	sh, err := s.shardOf(id)
	if err != nil {
		return err
	}
	return sh.addPartitions(id, producerID, epoch, parts)
}

// VerifyPartitions reports, per partition, whether it is in the id's open
// transaction of that producer (KIP-890's verify-only AddPartitionsToTxn):
// the error of the whole check, or nil and one error per partition.
func (s *Service) VerifyPartitions(id string, producerID int64, epoch int16, parts []TopicPartition) ([]error, error) {
	sh, err := s.shardOf(id)
	if err != nil {
		return nil, err
	}
	return sh.verifyPartitions(id, producerID, epoch, parts)
}

// EndTxn commits or aborts the id's transaction: it returns once the
// Prepare record is durable; the markers and the Complete record follow.
func (s *Service) EndTxn(id string, producerID int64, epoch int16, commit bool) error {
	sh, err := s.shardOf(id)
	if err != nil {
		return err
	}
	return sh.endTxn(id, producerID, epoch, commit)
}
