package server

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/coordinator/groups"
	"github.com/runnel-io/runnel/coordinator/txns"
	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/internal/authz"
)

// handleTxnOffsetCommit commits offsets in the producer's transaction, as
// the group's coordinator: they are written as a transactional batch of
// the producer and become visible when a commit marker of its transaction
// lands on the group's partition (package group, txn.go). As Kafka: WRITE
// on the transactional id, else every partition answers
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED; READ on the group, else
// GROUP_AUTHORIZATION_FAILED; READ on each topic, else its partitions
// answer TOPIC_AUTHORIZATION_FAILED and are not committed. The answer
// waits until the commit is durable.
func (s *Server) handleTxnOffsetCommit(c *conn, h requestHeader, r *kmsg.TxnOffsetCommitRequest) *reply {
	req := group.TxnCommitRequest{Group: r.Group, ProducerID: r.ProducerID, ProducerEpoch: r.ProducerEpoch, Generation: -1}
	if r.Version >= 3 {
		req.Generation, req.MemberID = r.Generation, r.MemberID
		if r.InstanceID != nil {
			req.InstanceID = *r.InstanceID
		}
	}
	var whole int16 // an error for every partition
	switch {
	case !s.authorize(c, "TxnOffsetCommit", authz.OpWrite, authz.ResourceTransactionalID, r.TransactionalID):
		whole = kerr.TransactionalIDAuthorizationFailed.Code
	case !s.authorize(c, "TxnOffsetCommit", authz.OpRead, authz.ResourceGroup, r.Group):
		whole = kerr.GroupAuthorizationFailed.Code
	}
	denied := map[string]bool{}
	for _, t := range r.Topics {
		if whole != 0 || !s.authorize(c, "TxnOffsetCommit", authz.OpRead, authz.ResourceTopic, t.Topic) {
			denied[t.Topic] = true
			continue
		}
		for _, p := range t.Partitions {
			o := group.Offset{Topic: t.Topic, Partition: p.Partition, Offset: p.Offset, LeaderEpoch: -1}
			if r.Version >= 2 {
				o.LeaderEpoch = p.LeaderEpoch
			}
			if p.Metadata != nil {
				o.Metadata = *p.Metadata
			}
			req.Offsets = append(req.Offsets, o)
		}
	}
	errs, wait := []error(nil), func() error { return nil }
	if whole == 0 && len(req.Offsets) > 0 {
		if err := s.verifyTxnOffsets(r); err != nil {
			errs = make([]error, len(req.Offsets))
			for i := range errs {
				errs[i] = err
			}
		} else if gc, err := s.groups.Coordinator(r.Group); err != nil {
			errs = make([]error, len(req.Offsets))
			for i := range errs {
				errs[i] = err
			}
		} else {
			errs, wait = gc.CommitTxn(req)
		}
	}
	for i, err := range errs {
		if code := errorCode(err); refusedInput(err) || code == kerr.InvalidProducerEpoch.Code || code == kerr.InvalidTxnState.Code {
			s.log.Warn("transactional offset commit refused", "remote", c.remote, "client_id", h.ClientID,
				"transactional_id", r.TransactionalID, "group", r.Group, "producer_id", r.ProducerID,
				"producer_epoch", r.ProducerEpoch, "topic", req.Offsets[i].Topic, "partition", req.Offsets[i].Partition, "err", err)
		}
	}
	return &reply{hdr: h, finish: func() any {
		durable := wait()
		resp := kmsg.NewPtrTxnOffsetCommitResponse()
		resp.SetVersion(h.Version)
		i := 0
		for _, t := range r.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				switch {
				case whole != 0:
					rp.ErrorCode = whole
				case denied[t.Topic]:
					rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				default:
					err := errs[i]
					if err == nil {
						err = durable
					}
					rp.ErrorCode = errorCode(err)
					i++
				}
				if rp.ErrorCode != 0 {
					s.m.errorCode("TxnOffsetCommit", rp.ErrorCode)
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		if durable != nil {
			s.log.Error("transactional offset commit not durable", "group", r.Group, "producer_id", r.ProducerID, "err", durable)
		}
		return resp
	}}
}

// verifyTxnOffsets checks, before the producer's first transactional
// commit in a transaction opens it on the group's partition of
// __consumer_offsets, that the transaction coordinator holds that
// partition in the id's transaction of this producer and epoch (KIP-890
// part 1, as for Produce; AddOffsetsToTxn adds it): so a late or zombie
// TxnOffsetCommit cannot open a transaction on the partition that no
// coordinator will end, which would hold its last stable offset and the
// offsets back for good. A partition this broker does not lead is left
// to the group coordinator's own answer.
func (s *Server) verifyTxnOffsets(r *kmsg.TxnOffsetCommitRequest) error {
	t, ok := s.meta.Topic(groups.Topic)
	if !ok {
		return nil
	}
	idx := groups.PartitionFor(r.Group, t.Partitions)
	p, err := s.parts.Get(groups.Topic, idx)
	if err != nil || !p.Role().Leader {
		return nil
	}
	if _, open := p.OpenTransaction(r.ProducerID); open {
		return nil
	}
	err = s.txns.Verify(r.TransactionalID, r.ProducerID, r.ProducerEpoch, txns.TopicPartition{Topic: groups.Topic, Partition: idx})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, txns.ErrInvalidTxnState), errors.Is(err, txns.ErrInvalidProducerIDMapping):
		return fmt.Errorf("%w: the group's partition is not in the producer's transaction: %v", kerr.InvalidTxnState, err)
	case errors.Is(err, txns.ErrProducerFenced):
		return fmt.Errorf("%w: %v", kerr.InvalidProducerEpoch, err)
	case errors.Is(err, txns.ErrConcurrentTransactions):
		return err
	}
	return fmt.Errorf("%w: the transaction could not be verified with its coordinator: %v", coordinator.ErrNotAvailable, err)
}

// handleDescribeProducers answers, for each partition this broker leads,
// the idempotent and transactional producers its log knows: epoch, last
// sequence, the coordinator epoch of the last marker and the first offset
// of the open transaction. As Kafka: READ on the topic, else
// TOPIC_AUTHORIZATION_FAILED; a partition led elsewhere answers
// NOT_LEADER_OR_FOLLOWER. runnel keeps no timestamp per producer: it
// answers LastTimestamp -1.
func (s *Server) handleDescribeProducers(c *conn, r *kmsg.DescribeProducersRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeProducersResponse()
	for _, t := range r.Topics {
		rt := kmsg.NewDescribeProducersResponseTopic()
		rt.Topic = t.Topic
		allowed := s.authorize(c, "DescribeProducers", authz.OpRead, authz.ResourceTopic, t.Topic)
		for _, part := range t.Partitions {
			rp := kmsg.NewDescribeProducersResponseTopicPartition()
			rp.Partition = part
			if !allowed {
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			p, err := s.leaderPartition(t.Topic, part, -1)
			if err != nil {
				rp.ErrorCode = errorCode(err)
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			for _, info := range p.Producers() {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID, ap.ProducerEpoch = info.ProducerID, int32(info.Epoch)
				ap.LastSequence, ap.CoordinatorEpoch = info.LastSequence, info.CoordinatorEpoch
				ap.CurrentTxnStartOffset = info.TxnFirstOffset
				rp.ActiveProducers = append(rp.ActiveProducers, ap)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
