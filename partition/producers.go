package partition

import (
	"errors"
	"fmt"
	"math"
)

// Errors of the idempotent producer checks, each a Kafka error code.
var (
	// ErrOutOfOrderSequence: the batch's first sequence does not follow the
	// producer's last one (OUT_OF_ORDER_SEQUENCE_NUMBER).
	ErrOutOfOrderSequence = errors.New("partition: out of order sequence number")
	// ErrProducerFenced: the batch carries an older producer epoch
	// (INVALID_PRODUCER_EPOCH).
	ErrProducerFenced = errors.New("partition: producer epoch is older than the current one")
)

// producerWindow is how many recent batches per producer are remembered for
// duplicate detection, as Kafka's (max.in.flight.requests.per.connection ≤ 5).
const producerWindow = 5

// batchMeta remembers one appended batch of an idempotent producer.
type batchMeta struct {
	FirstSeq   int32
	LastSeq    int32
	BaseOffset int64
	LastOffset int64
}

// producerState is what a partition knows of one producer id.
type producerState struct {
	Epoch   int16
	Batches []batchMeta // oldest first, at most producerWindow
	// CoordinatorEpoch is that of the transaction coordinator that wrote
	// the producer's last marker (0 before any).
	CoordinatorEpoch int32
}

// check decides what to do with a batch from this producer: duplicate
// returns the batch already appended; a nil error with ok=false means append.
func (s *producerState) check(epoch int16, firstSeq, lastSeq int32) (dup batchMeta, isDup bool, err error) {
	if s == nil {
		if firstSeq != 0 {
			return dup, false, fmt.Errorf("%w: new producer starts at sequence %d", ErrOutOfOrderSequence, firstSeq)
		}
		return dup, false, nil
	}
	switch {
	case epoch < s.Epoch:
		return dup, false, fmt.Errorf("%w: epoch %d, current %d", ErrProducerFenced, epoch, s.Epoch)
	case epoch > s.Epoch:
		if firstSeq != 0 {
			return dup, false, fmt.Errorf("%w: new epoch %d starts at sequence %d", ErrOutOfOrderSequence, epoch, firstSeq)
		}
		return dup, false, nil
	}
	for _, b := range s.Batches {
		if b.FirstSeq == firstSeq && b.LastSeq == lastSeq {
			return b, true, nil
		}
	}
	if n := len(s.Batches); n > 0 {
		if want := nextSeq(s.Batches[n-1].LastSeq); firstSeq != want {
			return dup, false, fmt.Errorf("%w: got %d, expected %d", ErrOutOfOrderSequence, firstSeq, want)
		}
	} else if firstSeq != 0 {
		return dup, false, fmt.Errorf("%w: got %d, expected 0", ErrOutOfOrderSequence, firstSeq)
	}
	return dup, false, nil
}

// nextSeq is the sequence after s.
func nextSeq(s int32) int32 { return addSeq(s, 1) }

// addSeq adds delta to a sequence number; sequences wrap from MaxInt32 to 0.
func addSeq(base, delta int32) int32 {
	if base > math.MaxInt32-delta {
		return delta - (math.MaxInt32 - base) - 1
	}
	return base + delta
}

// record remembers an appended batch.
func (s *producerState) record(epoch int16, b batchMeta) *producerState {
	if s == nil {
		s = &producerState{Epoch: epoch}
	} else if epoch != s.Epoch {
		s = &producerState{Epoch: epoch, CoordinatorEpoch: s.CoordinatorEpoch}
	}
	if len(s.Batches) == producerWindow {
		copy(s.Batches, s.Batches[1:])
		s.Batches = s.Batches[:producerWindow-1]
	}
	s.Batches = append(s.Batches, b)
	return s
}

// marked is the state after a transaction marker at epoch from a
// coordinator at coordinatorEpoch: a newer epoch (the coordinator bumped
// it) starts again with no batches, so the producer's next batch starts at
// sequence 0.
func (s *producerState) marked(epoch int16, coordinatorEpoch int32) *producerState {
	if s == nil || epoch > s.Epoch {
		return &producerState{Epoch: epoch, CoordinatorEpoch: coordinatorEpoch}
	}
	s.CoordinatorEpoch = coordinatorEpoch
	return s
}
