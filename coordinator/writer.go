package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// Writer appends a shard's records to its partition, at the leader epoch
// the shard was loaded under. It is safe for concurrent use; appends are
// written in call order.
type Writer struct {
	r *Runtime
	e *entry

	mu  sync.Mutex
	buf []byte
}

// Partition returns the index of the partition the writer appends to.
func (w *Writer) Partition() int32 { return w.e.led.Index }

// LeaderEpoch returns the leader epoch of the partition the shard was
// loaded under: the transaction coordinator's epoch in its markers.
func (w *Writer) LeaderEpoch() int32 { return w.e.led.Epoch }

// Append writes records as one batch. An error means nothing was written:
// ErrNotCoordinator, ErrNotAvailable or ErrRecordTooLarge, wrapping the
// partition's reason. Otherwise the records are in the local log, and wait
// returns nil once they are as durable as an acks=all produce, or the
// reason they are not within the write timeout.
func (w *Writer) Append(records []Record) (wait func() error, err error) {
	return w.append(records, -1, -1)
}

// AppendTxn writes records as one transactional batch of the producer at
// epoch, as Kafka's group coordinator writes a TxnOffsetCommit: the
// records count once a commit marker of the producer follows them on the
// partition (a MarkerLoader is told). The batch's sequence follows the
// producer's last one on the partition, which only this writer gives
// batches of the producer. Errors as Append, and ErrProducerFenced
// (wrapping the partition's) when the epoch is older than one the
// partition has seen of the producer.
func (w *Writer) AppendTxn(producerID int64, epoch int16, records []Record) (wait func() error, err error) {
	if producerID < 0 || epoch < 0 {
		return nil, fmt.Errorf("%w: producer %d epoch %d", ErrProducerFenced, producerID, epoch)
	}
	return w.append(records, producerID, epoch)
}

func (w *Writer) append(records []Record, producerID int64, epoch int16) (wait func() error, err error) {
	if len(records) == 0 {
		return func() error { return nil }, nil
	}
	p := w.e.led.Partition
	w.mu.Lock()
	batch, err := w.build(records, producerID, epoch)
	var res partition.AppendResult
	if err == nil {
		res, err = p.Append(batch, -1)
	}
	w.mu.Unlock()
	if err != nil {
		return nil, classify(err)
	}
	next, leaderEpoch := res.LastOffset+1, res.Epoch
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), w.r.cfg.WriteTimeout)
		defer cancel()
		err := p.WaitReplicated(ctx, next, leaderEpoch)
		if err == nil {
			return nil
		}
		err = classify(err)
		if errors.Is(err, ErrNotCoordinator) {
			// The records may be in memory and lost from the log (a
			// new leader truncates them): load again from the log.
			w.r.reload(w.e, err)
		}
		return err
	}, nil
}

// build encodes records into w.buf as one uncompressed batch: a
// transactional one of the producer when producerID is not -1.
func (w *Writer) build(records []Record, producerID int64, epoch int16) ([]byte, error) {
	now := w.r.cfg.Now().UnixMilli()
	recs := make([]segment.Record, len(records))
	for i, r := range records {
		ts := r.Timestamp
		if ts == 0 {
			ts = now
		}
		recs[i] = segment.Record{Offset: int64(i), Timestamp: ts, Key: r.Key, Value: r.Value}
	}
	spec := segment.BatchSpec{BaseOffset: 0, LastOffsetDelta: int32(len(recs) - 1), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	if producerID >= 0 {
		spec.Attributes = segment.AttrTransactional
		spec.ProducerID, spec.ProducerEpoch = producerID, epoch
		spec.BaseSequence = w.e.led.Partition.NextSequence(producerID, epoch)
	}
	var err error
	w.buf, err = segment.BuildBatch(w.buf[:0], spec, recs)
	return w.buf, err
}

// classify maps a partition's refusal to the runtime's errors, as Kafka's
// coordinators map their appends' errors.
func classify(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, partition.ErrNotEnoughReplicas), errors.Is(err, partition.ErrNotEnoughReplicasAfterAppend),
		errors.Is(err, partition.ErrUnknownPartition), errors.Is(err, kerr.RequestTimedOut):
		return fmt.Errorf("%w: %v", ErrNotAvailable, err)
	case errors.Is(err, partition.ErrMessageTooLarge):
		return fmt.Errorf("%w: %v", ErrRecordTooLarge, err)
	case errors.Is(err, partition.ErrProducerFenced):
		return fmt.Errorf("%w: %w", ErrProducerFenced, err)
	case errors.Is(err, partition.ErrInvalidTxnState), errors.Is(err, partition.ErrOutOfOrderSequence):
		return fmt.Errorf("%w: %w", ErrInvalidTxnState, err)
	}
	return fmt.Errorf("%w: %v", ErrNotCoordinator, err)
}
