package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
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

// String formats the id as a UUID.
func (id TopicID) String() string {
	h := hex.EncodeToString(id[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// NewTopicID returns a random version-4 UUID.
func NewTopicID() TopicID {
	var id TopicID
	rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}
