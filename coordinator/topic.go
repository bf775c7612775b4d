package coordinator

import (
	"log/slog"
	"sync"

	"github.com/runnel-io/runnel/cluster"
)

// TopicMeta is what an InternalTopic needs of the cluster metadata.
type TopicMeta interface {
	Topic(name string) (cluster.Topic, bool)
	Brokers() []cluster.BrokerInfo
	CreateTopic(t cluster.Topic) (cluster.Topic, error)
}

// InternalTopic creates a coordinator's internal topic (__consumer_offsets,
// __transaction_state) the first time it is needed, as Kafka does:
// Partitions partitions, ReplicationFactor replicas or as many as there
// are brokers registered, the configs Configs gives for that replication
// factor.
type InternalTopic struct {
	Meta              TopicMeta
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           func(replicationFactor int16) map[string]string
	Logger            *slog.Logger

	mu       sync.Mutex
	creating bool // a creation is under way
}

// ReplicationFactor is the replication factor the topic would be created
// with now.
func (t *InternalTopic) replicationFactor() int16 {
	rf := t.ReplicationFactor
	if n := int16(len(t.Meta.Brokers())); n < rf {
		rf = max(n, 1)
	}
	return rf
}

// TopicConfigs are the configs the topic would be created with now.
func (t *InternalTopic) TopicConfigs() map[string]string { return t.Configs(t.replicationFactor()) }

// Ensure asks the metadata for the topic in the background, one request
// at a time; the caller does not wait.
func (t *InternalTopic) Ensure() {
	t.mu.Lock()
	if t.creating {
		t.mu.Unlock()
		return
	}
	t.creating = true
	t.mu.Unlock()
	go func() {
		defer func() {
			t.mu.Lock()
			t.creating = false
			t.mu.Unlock()
		}()
		if err := t.Create(); err != nil {
			t.Logger.Warn("creating an internal topic", "topic", t.Name, "err", err)
		}
	}()
}

// Create creates the topic unless it exists, and returns once the metadata
// holds it (another broker may have created it first).
func (t *InternalTopic) Create() error {
	if _, ok := t.Meta.Topic(t.Name); ok {
		return nil
	}
	rf := t.replicationFactor()
	_, err := t.Meta.CreateTopic(cluster.Topic{Name: t.Name, Partitions: t.Partitions, ReplicationFactor: rf,
		Configs: t.Configs(rf)})
	if err == nil {
		t.Logger.Info("created an internal topic", "topic", t.Name, "partitions", t.Partitions, "replication_factor", rf)
		return nil
	}
	if _, ok := t.Meta.Topic(t.Name); ok {
		return nil
	}
	return err
}
