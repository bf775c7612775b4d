package replica

import (
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/partition"
)

// fetchSession is a fetcher's side of its incremental fetch session with
// the leader (KIP-227), as Kafka's followers keep one: the first fetch
// names every partition and opens the session; later fetches name only
// the partitions whose fetch position, log start or leader epoch changed
// and the ones to forget, and the leader answers only the partitions with
// something new. The leader reads every partition of the session on every
// fetch, and reports each as fetched at the position the session holds,
// so a follower that sends nothing for a partition still counts as having
// fetched it. Only the fetcher's goroutine uses it.
type fetchSession struct {
	id    int32 // 0: none
	epoch int32 // of the next fetch; 0 opens a session (closing id's)
	// sent is what the leader's session holds of each partition, once the
	// fetch that sent it was answered.
	// Keyed by name, as the leader keys them: a replica reopened (a new
	// *partition.Partition) is the same partition to the session.
	sent map[cluster.TP]sentPartition
}

// sentPartition is a partition as a fetch last named it.
type sentPartition struct {
	offset, logStart int64
	epoch            int32
}

// wantPartition is a partition a fetch is for, at its position.
type wantPartition struct {
	p *partition.Partition
	sentPartition
}

// fill sets req's session fields and names the partitions of want the
// leader's session needs to hear of, and those it must forget. It returns
// what the session will hold once the fetch is answered, for done.
func (s *fetchSession) fill(req *kmsg.FetchRequest, want []wantPartition, maxBytes int32) map[cluster.TP]sentPartition {
	req.SessionID, req.SessionEpoch = s.id, s.epoch
	full := s.epoch == 0
	next := make(map[cluster.TP]sentPartition, len(want))
	topics := map[string]int{} // index in req.Topics
	for _, w := range want {
		tp := tpOf(w.p)
		if _, dup := next[tp]; dup {
			continue
		}
		next[tp] = w.sentPartition
		if prev, ok := s.sent[tp]; !full && ok && prev == w.sentPartition {
			continue
		}
		i, ok := topics[w.p.Topic]
		if !ok {
			i = len(req.Topics)
			topics[w.p.Topic] = i
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = w.p.Topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = w.p.Index
		rp.CurrentLeaderEpoch = w.epoch
		rp.FetchOffset = w.offset
		rp.LastFetchedEpoch = -1
		rp.LogStartOffset = w.logStart
		rp.PartitionMaxBytes = maxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	if full {
		return next
	}
	forgotten := map[string]int{}
	for p := range s.sent {
		if _, ok := next[p]; ok {
			continue
		}
		i, ok := forgotten[p.Topic]
		if !ok {
			i = len(req.ForgottenTopics)
			forgotten[p.Topic] = i
			ft := kmsg.NewFetchRequestForgottenTopic()
			ft.Topic = p.Topic
			req.ForgottenTopics = append(req.ForgottenTopics, ft)
		}
		req.ForgottenTopics[i].Partitions = append(req.ForgottenTopics[i].Partitions, p.Partition)
	}
	return next
}

// done records an answered fetch: a full one opens the session the
// leader named (none if it had no room: the next fetch is full again).
func (s *fetchSession) done(resp *kmsg.FetchResponse, next map[cluster.TP]sentPartition) {
	if s.epoch == 0 {
		s.id = resp.SessionID
		if s.id == 0 {
			s.sent = nil
			return
		}
		s.epoch = 1
	} else if s.epoch == math.MaxInt32 {
		s.epoch = 1
	} else {
		s.epoch++
	}
	s.sent = next
}

// reset makes the next fetch full. It still names the session, so that
// the leader closes it.
func (s *fetchSession) reset() {
	s.epoch, s.sent = 0, nil
}

// sessionError says whether a fetch was refused for its session: the
// session is lost and the next fetch opens another.
func sessionError(code int16) bool {
	switch code {
	case kerr.FetchSessionIDNotFound.Code, kerr.InvalidFetchSessionEpoch.Code, kerr.FetchSessionTopicIDError.Code:
		return true
	}
	return false
}
