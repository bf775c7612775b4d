package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/partition"
)

// markerTimeout bounds how long WriteTxnMarkers waits for its markers to
// be replicated, as Kafka's request.timeout.ms (30 s) does.
const markerTimeout = 30 * time.Second

// handleWriteTxnMarkers appends the commit or abort marker of each
// producer to each partition it names, in the reader (so a connection's
// markers keep request order), as the transaction coordinator asks of the
// partitions' leaders; the writer waits until every in-sync replica holds
// them (acks=all), as Kafka does. Errors are per partition: the leader
// checks of Produce, INVALID_PRODUCER_EPOCH for an epoch older than the
// producer's, TRANSACTION_COORDINATOR_FENCED for an older coordinator.
func (s *Server) handleWriteTxnMarkers(c *conn, h requestHeader, r *kmsg.WriteTxnMarkersRequest) *reply {
	resp := kmsg.NewPtrWriteTxnMarkersResponse()
	resp.SetVersion(h.Version)
	var waits []produced
	var codes []*int16
	for _, m := range r.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		for _, mt := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = mt.Topic
			rt.Partitions = make([]kmsg.WriteTxnMarkersResponseMarkerTopicPartition, len(mt.Partitions))
			for i, part := range mt.Partitions {
				rp := &rt.Partitions[i]
				*rp = kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition = part
				p, err := s.leaderPartition(mt.Topic, part, -1)
				var res partition.AppendResult
				if err == nil {
					res, err = p.WriteMarker(m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch, m.Committed)
				}
				if err != nil {
					rp.ErrorCode = errorCode(err)
					s.m.errorCode("WriteTxnMarkers", rp.ErrorCode)
					if !errors.Is(err, partition.ErrUnknownPartition) && !errors.Is(err, partition.ErrNotLeader) &&
						!errors.Is(err, partition.ErrLeaderNotAvailable) {
						c.warn("transaction marker refused", "remote", c.remote, "client_id", h.ClientID, "topic", mt.Topic,
							"partition", part, "producer_id", m.ProducerID, "producer_epoch", m.ProducerEpoch,
							"coordinator_epoch", m.CoordinatorEpoch, "code", kerr.ErrorForCode(rp.ErrorCode), "err", err)
					}
					continue
				}
				waits = append(waits, produced{p: p, next: res.LastOffset + 1, epoch: res.Epoch})
				codes = append(codes, &rp.ErrorCode)
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	deadline := time.Now().Add(markerTimeout)
	return &reply{hdr: h, finish: func() any {
		ctx, cancel := context.WithDeadline(c.ctx, deadline)
		defer cancel()
		for _, w := range waits {
			w.p.RequestSync()
		}
		for i, w := range waits {
			err := w.p.WaitReplicated(ctx, w.next, w.epoch)
			if err != nil && c.gone.Load() {
				return nil
			}
			if err != nil {
				if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
					err = fmt.Errorf("%w: marker not replicated within %s", kerr.RequestTimedOut, markerTimeout)
				}
				*codes[i] = errorCode(err)
				s.m.errorCode("WriteTxnMarkers", *codes[i])
				s.log.Info("transaction marker not acknowledged", "topic", w.p.Topic, "partition", w.p.Index, "err", err)
			}
		}
		return resp
	}}
}
