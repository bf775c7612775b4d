package coordinator

import (
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/runnel-io/runnel/cluster"
)

type fakeTopicMeta struct {
	mu      sync.Mutex
	brokers int
	topics  map[string]cluster.Topic
	creates []cluster.Topic
	fail    error // CreateTopic's answer, after it creates the topic anyway when raced
	raced   bool
}

func (m *fakeTopicMeta) Topic(name string) (cluster.Topic, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[name]
	return t, ok
}

func (m *fakeTopicMeta) Brokers() []cluster.BrokerInfo { return make([]cluster.BrokerInfo, m.brokers) }

func (m *fakeTopicMeta) CreateTopic(t cluster.Topic) (cluster.Topic, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creates = append(m.creates, t)
	if m.fail != nil {
		if m.raced {
			m.topics[t.Name] = t // another broker's creation won
		}
		return cluster.Topic{}, m.fail
	}
	m.topics[t.Name] = t
	return t, nil
}

// TestInternalTopic: the topic is created once, with the replication
// factor capped at the brokers registered and the configs for it; a
// creation another broker won is no error; one that failed is.
func TestInternalTopic(t *testing.T) {
	meta := &fakeTopicMeta{brokers: 2, topics: map[string]cluster.Topic{}}
	it := &InternalTopic{Meta: meta, Name: "__internal", Partitions: 7, ReplicationFactor: 3, Logger: slog.New(slog.DiscardHandler),
		Configs: func(rf int16) map[string]string { return map[string]string{"rf": string(rune('0' + rf))} }}
	if err := it.Create(); err != nil {
		t.Fatal(err)
	}
	if err := it.Create(); err != nil {
		t.Fatal(err)
	}
	if len(meta.creates) != 1 {
		t.Fatalf("%d creations, want 1", len(meta.creates))
	}
	c := meta.creates[0]
	if c.Partitions != 7 || c.ReplicationFactor != 2 || c.Configs["rf"] != "2" {
		t.Fatalf("created %+v: want 7 partitions, replication factor 2 (two brokers) and its configs", c)
	}

	meta = &fakeTopicMeta{brokers: 3, topics: map[string]cluster.Topic{}, fail: errors.New("exists"), raced: true}
	it.Meta = meta
	if err := it.Create(); err != nil {
		t.Fatalf("a creation another broker won: %v", err)
	}
	meta = &fakeTopicMeta{brokers: 3, topics: map[string]cluster.Topic{}, fail: errors.New("no quorum")}
	it.Meta = meta
	if err := it.Create(); err == nil {
		t.Fatal("a failed creation reported success")
	}
}
