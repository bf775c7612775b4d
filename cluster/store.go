package cluster

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/runnel-io/runnel/internal/fsutil"
)

// Errors of the metadata store.
var (
	ErrTopicExists  = errors.New("cluster: topic already exists")
	ErrUnknownTopic = errors.New("cluster: unknown topic")
	ErrPartitions   = errors.New("cluster: invalid partition count")
)

// TopicID is a topic's 16-byte id (a random UUID), as Kafka's.
type TopicID [16]byte

// Topic is one topic's metadata.
type Topic struct {
	Name       string            `json:"name"`
	ID         TopicID           `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"` // set explicitly; the rest take defaults
	// ReplicationFactor is the replicas asked for at creation; 0 means 1.
	ReplicationFactor int16 `json:"replication_factor,omitempty"`
}

// Store is the broker's metadata. Implementations are safe for concurrent
// use; every change is durable when the call returns.
type Store interface {
	// Topics returns every topic, sorted by name.
	Topics() []Topic
	// Topic returns one topic.
	Topic(name string) (Topic, bool)
	// TopicByID returns the topic with the id.
	TopicByID(id TopicID) (Topic, bool)
	// CreateTopic adds a topic; its ID is assigned if zero.
	CreateTopic(t Topic) (Topic, error)
	// DeleteTopic removes a topic.
	DeleteTopic(name string) error
	// SetPartitions raises a topic's partition count.
	SetPartitions(name string, n int32) error
	// SetConfigs replaces a topic's explicit configs.
	SetConfigs(name string, configs map[string]string) error
	// AllocateProducerIDs reserves n producer ids never handed out before,
	// even across restarts, and returns the first.
	AllocateProducerIDs(n int64) (int64, error)
}

// LocalStore is a Store kept in one JSON file, replaced durably (temporary
// file, fsync, rename, directory fsync) on every change.
type LocalStore struct {
	path string
	mu   struct {
		sync.Mutex
		state localState
	}
}

type localState struct {
	Topics         map[string]Topic `json:"topics"`
	NextProducerID int64            `json:"next_producer_id"`
}

var _ Store = (*LocalStore)(nil)

// OpenLocal opens or creates the store in dir.
func OpenLocal(dir string) (*LocalStore, error) {
	if err := fsutil.MkdirAllDurable(dir, 0o755); err != nil {
		return nil, err
	}
	s := &LocalStore{path: filepath.Join(dir, "metadata.json")}
	s.mu.state = localState{Topics: map[string]Topic{}}
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s, s.saveLocked()
	case err != nil:
		return nil, fmt.Errorf("cluster: read %s: %w", s.path, err)
	}
	if err := json.Unmarshal(b, &s.mu.state); err != nil {
		return nil, fmt.Errorf("cluster: %s is corrupt: %w", s.path, err)
	}
	if s.mu.state.Topics == nil {
		s.mu.state.Topics = map[string]Topic{}
	}
	return s, nil
}

func (s *LocalStore) saveLocked() error {
	b, err := json.MarshalIndent(&s.mu.state, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(s.path, b, 0o644)
}

// Topics returns every topic sorted by name.
func (s *LocalStore) Topics() []Topic {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Topic, 0, len(s.mu.state.Topics))
	for _, t := range s.mu.state.Topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topic returns one topic.
func (s *LocalStore) Topic(name string) (Topic, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.mu.state.Topics[name]
	return t, ok
}

// TopicByID returns the topic with the id.
func (s *LocalStore) TopicByID(id TopicID) (Topic, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.mu.state.Topics {
		if t.ID == id {
			return t, true
		}
	}
	return Topic{}, false
}

// CreateTopic adds a topic.
func (s *LocalStore) CreateTopic(t Topic) (Topic, error) {
	if t.Partitions <= 0 {
		return Topic{}, fmt.Errorf("%w: %d", ErrPartitions, t.Partitions)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mu.state.Topics[t.Name]; ok {
		return Topic{}, fmt.Errorf("%w: %s", ErrTopicExists, t.Name)
	}
	if t.ID == (TopicID{}) {
		t.ID = NewTopicID()
	}
	s.mu.state.Topics[t.Name] = t
	if err := s.saveLocked(); err != nil {
		delete(s.mu.state.Topics, t.Name)
		return Topic{}, err
	}
	return t, nil
}

// DeleteTopic removes a topic.
func (s *LocalStore) DeleteTopic(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.mu.state.Topics[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	delete(s.mu.state.Topics, name)
	if err := s.saveLocked(); err != nil {
		s.mu.state.Topics[name] = t
		return err
	}
	return nil
}

// SetPartitions raises a topic's partition count.
func (s *LocalStore) SetPartitions(name string, n int32) error {
	return s.update(name, func(t *Topic) error {
		if n <= t.Partitions {
			return fmt.Errorf("%w: topic %s has %d partitions, asked for %d", ErrPartitions, name, t.Partitions, n)
		}
		t.Partitions = n
		return nil
	})
}

// SetConfigs replaces a topic's explicit configs.
func (s *LocalStore) SetConfigs(name string, configs map[string]string) error {
	return s.update(name, func(t *Topic) error {
		t.Configs = configs
		return nil
	})
}

func (s *LocalStore) update(name string, fn func(*Topic) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.mu.state.Topics[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	t := old
	if err := fn(&t); err != nil {
		return err
	}
	s.mu.state.Topics[name] = t
	if err := s.saveLocked(); err != nil {
		s.mu.state.Topics[name] = old
		return err
	}
	return nil
}

// AllocateProducerIDs reserves n fresh producer ids.
func (s *LocalStore) AllocateProducerIDs(n int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.mu.state.NextProducerID
	s.mu.state.NextProducerID += n
	if err := s.saveLocked(); err != nil {
		s.mu.state.NextProducerID = first
		return 0, err
	}
	return first, nil
}

// NewTopicID returns a random version-4 UUID.
func NewTopicID() TopicID {
	var id TopicID
	rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}
