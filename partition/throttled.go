package partition

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Replication throttles of a topic: leader.replication.throttled.replicas
// and follower.replication.throttled.replicas, as Kafka's. Each is empty
// (none), "*" (every replica of the topic), or a list of
// partition:broker pairs naming replicas. On a leader listed, the
// fetches of its followers are held to the broker's
// leader.replication.throttled.rate; on a follower listed, its fetches to
// follower.replication.throttled.rate. Replicas a reassignment is adding
// are throttled on both sides whatever the lists say. A replica in the
// ISR is not throttled, listed or not (Kafka's rule).

// Throttled is a parsed throttled-replicas list.
type Throttled struct {
	All      bool
	Replicas []ThrottledReplica
}

// ThrottledReplica is one partition:broker pair of a list.
type ThrottledReplica struct{ Partition, Broker int32 }

// ParseThrottled reads a throttled-replicas list.
func ParseThrottled(s string) (Throttled, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return Throttled{}, nil
	case "*":
		return Throttled{All: true}, nil
	}
	var t Throttled
	for _, item := range strings.Split(s, ",") {
		p, b, ok := strings.Cut(strings.TrimSpace(item), ":")
		pn, err1 := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
		bn, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 32)
		if !ok || err1 != nil || err2 != nil || pn < 0 || bn < 0 {
			return Throttled{}, fmt.Errorf("want * or partition:broker pairs separated by commas; %q is neither", item)
		}
		t.Replicas = append(t.Replicas, ThrottledReplica{int32(pn), int32(bn)})
	}
	return t, nil
}

func throttledList(s string) error { _, err := ParseThrottled(s); return err }

// Has reports whether the replica of partition on broker is listed.
func (t Throttled) Has(partition, broker int32) bool {
	return t.All || slices.Contains(t.Replicas, ThrottledReplica{partition, broker})
}

// LeaderThrottled reports whether this replica, leading, holds the
// fetches of follower to the leader replication rate. A follower in the
// ISR never is, as in Kafka: the throttle is for replicas catching up,
// and holding back one in sync would slow acks=all produces and could
// drop it from the ISR.
func (p *Partition) LeaderThrottled(follower int32) bool {
	listed := p.Config().LeaderThrottled.Has(p.Index, p.self)
	p.rep.Lock()
	defer p.rep.Unlock()
	if slices.Contains(p.rep.role.ISR, follower) {
		return false
	}
	return listed || slices.Contains(p.rep.role.Adding, follower)
}

// FollowerThrottled reports whether this replica's fetches as a follower
// are held to the follower replication rate: never while it is in the
// ISR, as LeaderThrottled.
func (p *Partition) FollowerThrottled() bool {
	listed := p.Config().FollowerThrottled.Has(p.Index, p.self)
	p.rep.Lock()
	defer p.rep.Unlock()
	if slices.Contains(p.rep.role.ISR, p.self) {
		return false
	}
	return listed || slices.Contains(p.rep.role.Adding, p.self)
}

// Equal reports whether two configs are the same.
func (c Config) Equal(o Config) bool { return reflect.DeepEqual(c, o) }
