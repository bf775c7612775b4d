package server

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/internal/authz"
	"github.com/runnel-io/runnel/internal/throttle"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// handleFetch answers in the writer: it builds the response from partition
// reads, and if fewer than MinBytes are ready it parks until an append moves
// a high watermark, MaxWaitMillis (capped by Config.MaxFetchWait) passes or
// the connection ends. Record bytes are sent with sendfile by consumer.Send.
func (s *Server) handleFetch(c *conn, h requestHeader, r *kmsg.FetchRequest) *reply {
	// MaxWaitMillis runs from now, as the produce timeout does: a fetch
	// answered behind others on its connection waits no longer for it.
	deadline := time.Now().Add(min(time.Duration(r.MaxWaitMillis)*time.Millisecond, s.cfg.MaxFetchWait))
	id, listener := c.identity(), c.listener
	return &reply{hdr: h, finish: func() any { return s.fetch(c.ctx, id, listener, h, r, deadline) }}
}

type fetchTarget struct {
	topic   string
	id      cluster.TopicID
	part    int32
	offset  int64
	max     int32
	p       *partition.Partition
	errCode int16
	replica bool // a follower's fetch: reads up to the log end
	// throttled: a follower's fetch of a throttled replica, held to the
	// leader replication rate.
	throttled bool
	// committed: a consumer's read_committed fetch (isolation level 1),
	// which reads up to the last stable offset and is told the aborted
	// transactions in what it reads.
	committed bool
	// asFollower: a consumer's fetch this broker serves as an in-sync
	// follower (KIP-392), up to its own high watermark.
	asFollower bool
	// preferred is the replica a consumer is sent to read from instead
	// (PreferredReadReplica), -1 for none: the partition is not read.
	preferred int32
	req       *kmsg.FetchRequestTopicPartition
}

// fetchKey names a partition of a fetch once its topic is resolved; the id
// keeps apart unknown topic ids, which have no name.
type fetchKey struct {
	topic string
	id    cluster.TopicID
	part  int32
}

// fetchTargets lists the partitions a fetch asks for, each once. A
// partition named again is answered once, where it was first named, from
// the fetch position of its last entry: what Kafka does, which keeps its
// request's partitions in a map. Nothing is looked up twice, so a request
// that repeats one partition costs what the partitions it names once cost.
//
// A follower's fetch needs CLUSTER_ACTION on the cluster, a consumer's
// READ on each topic; a partition not allowed is answered
// TOPIC_AUTHORIZATION_FAILED, as Kafka does.
//
// A consumer's fetch from v11 may be served by an in-sync follower, and a
// leader may send it to one in its rack (follower_fetch.go).
func (s *Server) fetchTargets(id identity, listener string, h requestHeader, r *kmsg.FetchRequest) []fetchTarget {
	// A follower names itself; consumers send -1.
	replicaID := fetchReplicaID(h, r)
	replicaAllowed := replicaID < 0 || s.authorizeAs(id, "Fetch", authz.OpClusterAction, authz.ResourceCluster, clusterResource)
	type resolved struct {
		name string
		id   cluster.TopicID
		err  int16
	}
	named := fetchPartitionsNamed(r)
	topics := map[fetchKey]resolved{} // by topic name, or id from v13
	at := make(map[fetchKey]int, named)
	targets := make([]fetchTarget, 0, named)
	for ti := range r.Topics {
		rt := &r.Topics[ti]
		tk := fetchKey{topic: rt.Topic}
		if h.Version >= 13 {
			tk = fetchKey{id: rt.TopicID}
		}
		res, ok := topics[tk]
		if !ok {
			res = resolved{name: rt.Topic, id: rt.TopicID}
			if h.Version >= 13 {
				if t, ok := s.meta.TopicByID(rt.TopicID); ok {
					res.name = t.Name
				} else {
					res.name, res.err = "", kerr.UnknownTopicID.Code
				}
			} else if t, ok := s.meta.Topic(rt.Topic); ok {
				res.id = t.ID
			}
			if res.err == 0 && (!replicaAllowed ||
				replicaID < 0 && !s.authorizeAs(id, "Fetch", authz.OpRead, authz.ResourceTopic, res.name)) {
				res.err = kerr.TopicAuthorizationFailed.Code
			}
			topics[tk] = res
		}
		for pi := range rt.Partitions {
			rp := &rt.Partitions[pi]
			k := fetchKey{topic: res.name, id: res.id, part: rp.Partition}
			if i, ok := at[k]; ok {
				targets[i].req = rp
				continue
			}
			at[k] = len(targets)
			targets = append(targets, fetchTarget{topic: res.name, id: res.id, part: rp.Partition,
				errCode: res.err, replica: replicaID >= 0, committed: replicaID < 0 && r.IsolationLevel == 1, preferred: -1, req: rp})
		}
	}
	if len(targets) < named {
		s.log.Debug("fetch names partitions more than once", "client_id", h.ClientID, "named", named, "distinct", len(targets))
	}
	var brokers map[int32]cluster.BrokerInfo // for the replica selector, on first need
	for i := range targets {
		ft := &targets[i]
		rp := ft.req
		ft.offset, ft.max = rp.FetchOffset, rp.PartitionMaxBytes
		if ft.errCode != 0 {
			continue
		}
		epoch := int32(-1)
		if h.Version >= 9 {
			epoch = rp.CurrentLeaderEpoch
		}
		var p *partition.Partition
		var err error
		if ft.replica {
			p, err = s.leaderPartition(ft.topic, ft.part, epoch)
		} else {
			p, ft.asFollower, err = s.consumerPartition(ft.topic, ft.part, epoch, h.Version)
		}
		if err == nil && !ft.replica && !ft.asFollower && h.Version >= 11 && r.Rack != "" {
			ft.preferred = s.preferredReadReplica(p, r.Rack, rp.FetchOffset, listener, &brokers)
		}
		if err == nil && ft.replica {
			err = s.replicas.FollowerFetched(p, replicaID, rp.FetchOffset, epoch)
			if errors.Is(err, partition.ErrNotReplica) {
				s.log.Warn("replica fetch refused", "client_id", h.ClientID, "err", err)
			}
		}
		if err != nil {
			p = nil
		}
		ft.p, ft.errCode = p, errorCode(err)
		ft.throttled = p != nil && ft.replica && s.cfg.LeaderThrottle != nil &&
			s.cfg.LeaderThrottle.Limit() != throttle.Unlimited && p.LeaderThrottled(replicaID)
	}
	return targets
}

func fetchPartitionsNamed(r *kmsg.FetchRequest) int {
	n := 0
	for i := range r.Topics {
		n += len(r.Topics[i].Partitions)
	}
	return n
}

// fetchBudget is the record bytes one fetch response may carry: the
// request's MaxBytes, at most FetchMaxBytes (a MaxBytes of 0 or below asks
// for no bound of its own).
func (s *Server) fetchBudget(maxBytes int32) int64 {
	if maxBytes <= 0 || maxBytes > s.cfg.FetchMaxBytes {
		return int64(s.cfg.FetchMaxBytes)
	}
	return int64(maxBytes)
}

func (s *Server) fetch(ctx context.Context, id identity, listener string, h requestHeader, r *kmsg.FetchRequest, until time.Time) *consumer.Encoded {
	resp := &consumer.Response{Version: h.Version, CorrelationID: h.CorrelationID}
	sf := s.sessions.begin(id, h, r)
	if sf.errCode != 0 {
		resp.ErrorCode = sf.errCode
		s.m.errorCode("Fetch", resp.ErrorCode)
		s.log.Debug("fetch session refused", "client_id", h.ClientID, "session_id", r.SessionID,
			"session_epoch", r.SessionEpoch, "err", kerr.ErrorForCode(sf.errCode))
		return consumer.Encode(resp, nil)
	}
	req := r
	if sf.replace {
		// An incremental fetch reads every partition of its session.
		cp := *r
		cp.Topics = sf.topics
		req = &cp
	}
	targets := s.fetchTargets(id, listener, h, req)
	budget := s.fetchBudget(r.MaxBytes)
	replicaID := fetchReplicaID(h, req)

	wake := make(chan struct{}, 1)
	redirected := false
	for _, t := range targets {
		switch {
		case t.p != nil && t.replica:
			// A follower wakes for appends, and for a high watermark
			// past the one it has, which it needs to serve consumers.
			t.p.AddAppendWaiter(wake)
			t.p.AddWaiter(wake)
		case t.preferred >= 0:
			redirected = true
		case t.p != nil:
			t.p.AddWaiter(wake)
		}
	}
	defer func() {
		for _, t := range targets {
			if t.p != nil {
				t.p.RemoveWaiter(wake)
			}
		}
	}()
	deadline := time.NewTimer(time.Until(until))
	defer deadline.Stop()
	for {
		resp.Topics = resp.Topics[:0]
		total := s.fillFetch(resp, targets, budget)
		// A fetch of no partitions is answered at once, as Kafka does,
		// and so is one that sends the consumer to another replica or
		// carries a follower a newer high watermark.
		if total < int64(r.MinBytes) && total >= 0 && len(targets) > 0 && !redirected && !hwBehind(targets, replicaID) {
			expired := false
			select {
			case <-wake:
			case <-deadline.C:
				expired = true
			case <-ctx.Done():
				expired = true
			}
			releaseRegions(resp)
			if !expired {
				continue
			}
			resp.Topics = resp.Topics[:0]
			s.fillFetch(resp, targets, budget)
		}
		sentHW(targets, replicaID, resp) // before an incremental answer drops partitions
		s.sessions.finish(&sf, id, h, r, targets, resp)
		return consumer.Encode(resp, nil)
	}
}

// fillFetch reads every target into resp and returns the record bytes
// gathered, or -1 when an error should be returned at once.
// budget is fetchBudget's: the record bytes past which no partition but the
// first with data is read.
func (s *Server) fillFetch(resp *consumer.Response, targets []fetchTarget, budget int64) int64 {
	var total int64
	hasError := false
	for _, t := range targets {
		n := len(resp.Topics)
		if n == 0 || resp.Topics[n-1].Topic != t.topic || resp.Topics[n-1].TopicID != t.id {
			resp.Topics = append(resp.Topics, consumer.TopicData{Topic: t.topic, TopicID: t.id})
			n++
		}
		pd := consumer.PartitionData{Partition: t.part, ErrorCode: t.errCode, HighWatermark: -1, LastStableOffset: -1,
			LogStartOffset: -1, PreferredReadReplica: -1}
		if t.p != nil && t.preferred >= 0 {
			// Sent elsewhere: offsets and no records, as Kafka does.
			pd.PreferredReadReplica = t.preferred
			pd.HighWatermark, pd.LastStableOffset, pd.LogStartOffset = t.p.HighWatermark(), t.p.LastStableOffset(), t.p.LogStartOffset()
			s.m.preferredReplicaRedirect()
		} else if t.p != nil {
			hw, lso := t.p.HighWatermark(), t.p.LastStableOffset()
			pd.HighWatermark, pd.LastStableOffset, pd.LogStartOffset = hw, lso, t.p.LogStartOffset()
			limit := int64(t.max)
			if limit > budget {
				limit = budget
			}
			if t.offset < t.p.LogStartOffset() || t.offset > t.p.LogEndOffset() {
				pd.ErrorCode = kerr.OffsetOutOfRange.Code
				if t.asFollower && t.offset > t.p.LogEndOffset() && t.req.CurrentLeaderEpoch < 0 {
					// Past this follower's end, from a client that sent
					// no leader epoch, so cannot tell a follower behind
					// from a lost offset: an empty answer it retries,
					// as Kafka gives (KAFKA-14305).
					pd.ErrorCode = 0
				}
			} else if t.throttled && s.cfg.LeaderThrottle.Exceeded() {
				// Over the leader replication rate: no data for now, as
				// Kafka answers a throttled replica.
			} else if limit > 0 || total == 0 {
				// KIP-74: the first partition with data always gets one
				// whole batch, whatever the limits say.
				if total > 0 && limit <= 0 {
					limit = 0
				}
				read := t.p.Read
				switch {
				case t.replica:
					read = t.p.ReadReplica // followers read past the high watermark
				case t.committed:
					read = func(offset int64, maxBytes int) (segment.Region, error) {
						return t.p.ReadCommitted(offset, maxBytes, lso)
					}
				}
				region, err := read(t.offset, int(max(limit, 1)))
				if err == nil && t.committed && region.Length > 0 {
					if pd.Aborted, err = abortedIn(t.p, t.offset, lso); err != nil {
						region.Release()
					}
				}
				if err != nil {
					pd.ErrorCode = errorCode(err)
				} else {
					if total > 0 && region.Length > limit {
						region.Release() // over budget and not the first: skip
					} else {
						pd.Records = region
						total += region.Length
						budget -= region.Length
						if t.throttled {
							s.cfg.LeaderThrottle.Record(region.Length)
						}
						if t.asFollower {
							s.m.followerFetchBytes(region.Length)
						}
					}
				}
			}
		}
		if pd.ErrorCode != 0 {
			hasError = true
			s.m.errorCode("Fetch", pd.ErrorCode)
		}
		resp.Topics[n-1].Partitions = append(resp.Topics[n-1].Partitions, pd)
	}
	if hasError {
		return -1
	}
	return total
}

// abortedIn lists the aborted transactions a read_committed fetch from
// offset up to lso must know of (an empty list, not null, when there are
// none): the client drops their records itself.
func abortedIn(p *partition.Partition, offset, lso int64) ([]consumer.Aborted, error) {
	list, err := p.AbortedTransactions(nil, offset, lso)
	if err != nil {
		return nil, err
	}
	out := make([]consumer.Aborted, len(list))
	for i, a := range list {
		out[i] = consumer.Aborted{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset}
	}
	return out, nil
}

func releaseRegions(resp *consumer.Response) {
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			resp.Topics[i].Partitions[j].Records.Release()
		}
	}
}

// hwBehind reports whether a follower's fetch should be answered now to
// carry a high watermark that moved past the one it last got.
func hwBehind(targets []fetchTarget, replicaID int32) bool {
	if replicaID < 0 {
		return false
	}
	for _, t := range targets {
		if t.p != nil && t.replica && t.p.HWBehind(replicaID) {
			return true
		}
	}
	return false
}

// sentHW records the high watermarks a follower's fetch response carries.
func sentHW(targets []fetchTarget, replicaID int32, resp *consumer.Response) {
	if replicaID < 0 {
		return
	}
	i := 0
	for ti := range resp.Topics {
		for pi := range resp.Topics[ti].Partitions {
			if i < len(targets) && targets[i].p != nil && targets[i].replica {
				targets[i].p.SentHW(replicaID, resp.Topics[ti].Partitions[pi].HighWatermark)
			}
			i++
		}
	}
}
