package txns

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/coordinator"
)

// verifyTimeout bounds a verification asked of another broker.
const verifyTimeout = 10 * time.Second

// Verify checks, before a partition's leader appends the first
// transactional batch of a producer's transaction, that the partition is
// in the id's open transaction of that producer and epoch (KIP-890 part
// 1): so a late or zombie batch cannot open a transaction no coordinator
// will end. The id's coordinator answers, here or on another broker (an
// AddPartitionsToTxn v4 with VerifyOnly over the inter-broker listener).
// It returns nil, ErrInvalidTxnState, ErrProducerFenced,
// ErrInvalidProducerIDMapping, ErrConcurrentTransactions, or an error
// wrapping coordinator.ErrNotAvailable when no coordinator could answer.
func (s *Service) Verify(id string, producerID int64, epoch int16, tp TopicPartition) error {
	sh, err := s.shardOf(id)
	if err == nil {
		errs, err := sh.verifyPartitions(id, producerID, epoch, []TopicPartition{tp})
		if err != nil {
			return err
		}
		return errs[0]
	}
	if !errors.Is(err, coordinator.ErrNotCoordinator) {
		return fmt.Errorf("%w: %v", coordinator.ErrNotAvailable, err)
	}
	leader, err := s.Locate(id)
	if err != nil {
		return err
	}
	bm, ok := s.markers.(*BrokerMarkers)
	if leader == s.o.NodeID || !ok {
		return fmt.Errorf("%w: the coordinator of %q is moving", coordinator.ErrNotAvailable, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), verifyTimeout)
	defer cancel()
	return bm.verify(ctx, leader, id, producerID, epoch, tp)
}

// verify asks broker leader, the id's coordinator, to verify tp.
func (b *BrokerMarkers) verify(ctx context.Context, leader int32, id string, producerID int64, epoch int16, tp TopicPartition) error {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.SetVersion(4)
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = id, producerID, epoch, true
	rt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
	rt.Topic, rt.Partitions = tp.Topic, []int32{tp.Partition}
	tx.Topics = append(tx.Topics, rt)
	req.Transactions = append(req.Transactions, tx)
	c, err := b.conn(ctx, leader)
	if err != nil {
		return fmt.Errorf("%w: %v", coordinator.ErrNotAvailable, err)
	}
	kresp, err := c.do(ctx, req)
	if err != nil {
		b.drop(leader, c)
		return fmt.Errorf("%w: verifying with broker %d: %v", coordinator.ErrNotAvailable, leader, err)
	}
	resp := kresp.(*kmsg.AddPartitionsToTxnResponse)
	code := resp.ErrorCode
	for _, t := range resp.Transactions {
		for _, rt := range t.Topics {
			for _, rp := range rt.Partitions {
				if code == 0 && t.TransactionalID == id && rt.Topic == tp.Topic && rp.Partition == tp.Partition {
					code = rp.ErrorCode
				}
			}
		}
	}
	return verifyError(code)
}

// verifyError turns a coordinator's answer into Verify's errors.
func verifyError(code int16) error {
	switch err := kerr.ErrorForCode(code); {
	case err == nil:
		return nil
	case errors.Is(err, kerr.InvalidTxnState):
		return ErrInvalidTxnState
	case errors.Is(err, kerr.ProducerFenced), errors.Is(err, kerr.InvalidProducerEpoch):
		return ErrProducerFenced
	case errors.Is(err, kerr.InvalidProducerIDMapping):
		return ErrInvalidProducerIDMapping
	case errors.Is(err, kerr.ConcurrentTransactions):
		return ErrConcurrentTransactions
	default:
		return fmt.Errorf("%w: %v", coordinator.ErrNotAvailable, err)
	}
}
