package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/authz"
	"github.com/runnel-io/runnel/partition"
)

// produced is one partition's outcome, waiting for durability.
type produced struct {
	resp  *kmsg.ProduceResponseTopicPartition
	p     *partition.Partition
	next  int64
	epoch int32
}

// handleProduce validates and appends every partition's batch in the
// reader (so a connection's appends keep request order), then waits for
// durability in the writer.
func (s *Server) handleProduce(c *conn, h requestHeader, r *kmsg.ProduceRequest) *reply {
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(h.Version)
	var waits []produced
	badAcks := r.Acks != 0 && r.Acks != 1 && r.Acks != -1
	txnAllowed := r.TransactionID == nil ||
		s.authorize(c, "Produce", authz.OpWrite, authz.ResourceTransactionalID, *r.TransactionID)
	for _, rt := range r.Topics {
		allowed := txnAllowed && s.authorize(c, "Produce", authz.OpWrite, authz.ResourceTopic, rt.Topic)
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for i, rp := range rt.Partitions {
			sp := &st.Partitions[i]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			var err error
			var p *partition.Partition
			var res partition.AppendResult
			switch {
			case badAcks:
				err = fmt.Errorf("%w: acks=%d", kerr.InvalidRequiredAcks, r.Acks)
			case !txnAllowed:
				err = kerr.TransactionalIDAuthorizationFailed
			case !allowed:
				err = kerr.TopicAuthorizationFailed
			case internalTopics[rt.Topic]:
				err = errInternalTopic(rt.Topic)
			default:
				p, err = s.leaderPartition(rt.Topic, rp.Partition, -1)
			}
			if err == nil && r.TransactionID != nil {
				err = s.verifyTxnWrite(*r.TransactionID, p, rp.Records)
			}
			if err == nil {
				res, err = p.Append(rp.Records, r.Acks)
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
				sp.ErrorMessage = errMessage(err)
				s.m.errorCode("Produce", sp.ErrorCode)
				if !errors.Is(err, partition.ErrUnknownPartition) && !errors.Is(err, partition.ErrNotLeader) &&
					!errors.Is(err, partition.ErrLeaderNotAvailable) && allowed {
					c.warn("produce refused", "remote", c.remote, "client_id", h.ClientID, "topic", rt.Topic,
						"partition", rp.Partition, "code", kerr.ErrorForCode(sp.ErrorCode), "err", err)
				}
				continue
			}
			sp.BaseOffset = res.BaseOffset
			sp.LogStartOffset = p.LogStartOffset()
			waits = append(waits, produced{resp: sp, p: p, next: res.LastOffset + 1, epoch: res.Epoch})
		}
		resp.Topics = append(resp.Topics, st)
	}
	if r.Acks == 0 {
		for _, w := range waits {
			w.p.RequestSync()
		}
		return nil
	}
	// The timeout runs from now, not from when finish is called: finish
	// runs after the replies to earlier requests on the connection, and
	// with five requests in flight a timeout that began there would
	// compound into five.
	deadline := time.Now().Add(max(time.Duration(r.TimeoutMillis)*time.Millisecond, time.Millisecond))
	// finish must not refer to r: its records are slices of the request
	// frame, which the log has copied and the request budget no longer
	// counts once the handler returns (see conn.readRequest).
	acks := r.Acks
	return &reply{hdr: h, finish: func() any {
		// The connection's context: a client that is gone waits no more.
		ctx, cancel := context.WithDeadline(c.ctx, deadline)
		defer cancel()
		// Start every partition's flush before waiting on the first, so
		// their fdatasyncs overlap instead of running one after another.
		for _, w := range waits {
			w.p.RequestSync()
		}
		for _, w := range waits {
			var err error
			if acks == -1 {
				err = w.p.WaitReplicated(ctx, w.next, w.epoch)
			} else {
				err = w.p.WaitDurable(ctx, w.next)
			}
			if err != nil && c.gone.Load() {
				return nil // no one to answer
			}
			if err != nil {
				if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
					err = fmt.Errorf("%w: not durable within the request timeout", kerr.RequestTimedOut)
				}
				w.resp.ErrorCode = errorCode(err)
				w.resp.ErrorMessage = errMessage(err)
				w.resp.BaseOffset = -1
				s.m.errorCode("Produce", w.resp.ErrorCode)
				switch {
				case errors.Is(err, kerr.RequestTimedOut), errors.Is(err, partition.ErrNotLeader),
					errors.Is(err, partition.ErrNotEnoughReplicasAfterAppend):
					s.log.Info("produce not acknowledged", "topic", w.p.Topic, "partition", w.p.Index, "err", err)
				default:
					s.log.Error("produce not durable", "topic", w.p.Topic, "partition", w.p.Index, "err", err)
				}
			}
		}
		return resp
	}}
}
