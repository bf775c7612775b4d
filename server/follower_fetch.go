package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/partition"
)

// Fetch from followers (KIP-392). A consumer that names its rack
// (client.rack, Fetch v11+ RackID) and fetches from a partition's leader
// is told, with the rack-aware selector, to read from an in-sync replica
// in its rack instead: the partition's answer carries PreferredReadReplica
// and no records. The consumer then fetches from that follower, which
// serves it from its own log up to its own high watermark
// (partition.CheckReadable). Followers never redirect, and fetches from
// followers' replica fetchers are never redirected, as in Kafka.

// ReplicaSelector is how a partition's leader picks the replica a consumer
// reads from (Kafka's replica.selector.class).
type ReplicaSelector int

const (
	// RackAwareSelector sends a consumer that names its rack to an
	// in-sync replica on a broker of that rack, unless the leader is in
	// it (Kafka's RackAwareReplicaSelector). Without a client rack or
	// broker racks it reads from the leader. runnel's default.
	RackAwareSelector ReplicaSelector = iota
	// LeaderSelector: every consumer reads from the leader (Kafka's
	// default, no replica.selector.class).
	LeaderSelector
)

// ParseReplicaSelector parses leader or rack-aware.
func ParseReplicaSelector(s string) (ReplicaSelector, error) {
	switch s {
	case "rack-aware":
		return RackAwareSelector, nil
	case "leader":
		return LeaderSelector, nil
	}
	return 0, fmt.Errorf("server: replica selector %q: want leader or rack-aware", s)
}

func (r ReplicaSelector) String() string {
	if r == LeaderSelector {
		return "leader"
	}
	return "rack-aware"
}

// consumerPartition returns the partition a consumer's fetch at leader
// epoch reads, and whether this broker serves it as a follower. A
// consumer fetch before v11 (followers may serve only from v11, which
// carries the client's rack) reads only from the leader.
func (s *Server) consumerPartition(topic string, index, epoch int32, version int16) (p *partition.Partition, asFollower bool, err error) {
	if version < 11 {
		p, err = s.leaderPartition(topic, index, epoch)
		return p, false, err
	}
	p, gerr := s.parts.Get(topic, index)
	if gerr != nil {
		p, err = s.leaderPartition(topic, index, epoch) // not hosted here
		return p, false, err
	}
	leader, err := p.CheckReadable(epoch)
	return p, !leader, err
}

// preferredReadReplica returns the broker a consumer in rack should read
// the partition from, from offset, when it is not this leader: -1 to read
// here. The rack-aware selector picks, among the in-sync followers that
// hold the offset, on unfenced brokers of the client's rack with the
// listener the client uses, the one furthest along (the lowest id among
// equals); none, or the leader in the client's rack, reads here.
//
// brokers holds the registered brokers by id, filled on first need and
// kept for the other partitions of the same fetch.
func (s *Server) preferredReadReplica(p *partition.Partition, rack string, offset int64, listener string,
	brokers *map[int32]cluster.BrokerInfo) int32 {
	if s.cfg.ReplicaSelector != RackAwareSelector || rack == "" || rack == s.cfg.Rack {
		return -1
	}
	var buf [8]partition.FollowerState
	followers := p.ReadableFollowers(buf[:0], offset)
	if len(followers) == 0 {
		return -1
	}
	if *brokers == nil {
		*brokers = map[int32]cluster.BrokerInfo{}
		for _, b := range s.meta.Brokers() {
			(*brokers)[b.ID] = b
		}
	}
	best := partition.FollowerState{ID: -1}
	for _, f := range followers {
		b, ok := (*brokers)[f.ID]
		if !ok || b.Fenced || b.Rack != rack {
			continue
		}
		if _, ok := b.ListenerAddr(listener); !ok {
			continue
		}
		if best.ID < 0 || f.LogEnd > best.LogEnd || f.LogEnd == best.LogEnd && f.ID < best.ID {
			best = f
		}
	}
	return best.ID
}

// rackOf is a broker's rack for Metadata and DescribeCluster: null when it
// has none.
func rackOf(b cluster.BrokerInfo) *string {
	if b.Rack == "" {
		return nil
	}
	r := b.Rack
	return &r
}

// followerFetchMetrics count what consumers read from followers.
type followerFetchMetrics struct {
	bytes     prometheus.Counter
	redirects prometheus.Counter
}

func newFollowerFetchMetrics(reg prometheus.Registerer) *followerFetchMetrics {
	m := &followerFetchMetrics{
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_fetch_follower_bytes_total",
			Help: "Record bytes this broker sent consumers from partitions it follows (KIP-392 fetch from followers)."}),
		redirects: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_fetch_preferred_replica_total",
			Help: "Partitions of consumer fetches this leader answered with a preferred read replica in the client's rack instead of records."}),
	}
	reg.MustRegister(m.bytes, m.redirects)
	return m
}

func (m *Metrics) followerFetchBytes(n int64) {
	if m != nil {
		m.follower.bytes.Add(float64(n))
	}
}

func (m *Metrics) preferredReplicaRedirect() {
	if m != nil {
		m.follower.redirects.Inc()
	}
}
