package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-io/runnel/index"
	"github.com/runnel-io/runnel/segment"
)

// Transactions on a partition's log.
//
// A transactional batch (of an idempotent producer) opens its producer's
// transaction at the batch's offset, unless one is open; a control batch
// (a commit or abort marker, written by WriteMarker for the transaction
// coordinator's WriteTxnMarkers) ends it. The last stable offset (LSO) is
// the first offset of the oldest transaction that is open, or ended by a
// marker the high watermark has not passed yet, and the high watermark
// when there is none: read_committed consumers read below it.
//
// Each abort goes into the index's aborted-transaction index (producer id,
// first offset, marker offset), which read_committed fetches return as
// AbortedTransactions so that clients drop those records themselves: the
// broker never filters a batch. The open transactions are in producers.json
// (the first offset of each producer's), and both are rebuilt by the walk
// over the batch headers that loadProducers does at open.

// Errors of transactional writes, each a Kafka error code.
var (
	// ErrInvalidTxnState: a producer with an open transaction wrote a
	// batch outside it (INVALID_TXN_STATE).
	ErrInvalidTxnState = errors.New("partition: the batch does not fit the producer's transaction")
	// ErrCoordinatorFenced: a marker from a transaction coordinator older
	// than one that wrote a marker for the producer
	// (TRANSACTION_COORDINATOR_FENCED).
	ErrCoordinatorFenced = errors.New("partition: marker from an older transaction coordinator epoch")
	// ErrControlRecord: a control batch whose record is not a commit or
	// abort marker in Kafka's schema (the batch is still in the log; the
	// transaction state ignores it).
	ErrControlRecord = errors.New("partition: control record is not a transaction marker")
)

// Control record types: the type field of a control record's key, as in
// Kafka's ControlRecordType.
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

// Sizes of a transaction marker's record (on-disk and wire format): the
// key is version int16, type int16; the value version int16, coordinator
// epoch int32. Both versions are 0.
const (
	controlKeySize   = 4
	controlValueSize = 6
)

// noTxn is firstUnstable when no transaction is unstable.
const noTxn = math.MaxInt64

// endedTxn is a transaction whose marker the high watermark has not passed.
type endedTxn struct{ first, marker int64 }

// txnState is a partition's transactions. Its lock is taken inside p.mu
// when both are held, and alone by advanceHW, which may run under p.mu or
// not.
type txnState struct {
	mu sync.Mutex
	// open: producer id → first offset of its open transaction.
	open map[int64]int64
	// ended: transactions ended by a marker at or above the high
	// watermark, in marker order.
	ended []endedTxn
	// firstUnstable is the smallest first offset of open and ended, or
	// noTxn; hasEnded says ended is not empty. Both are written under mu.
	firstUnstable atomic.Int64
	hasEnded      atomic.Bool
	// lastAborted is the marker offset of the newest aborted transaction
	// in the index, -1 without one: a fetch from past it looks no
	// further.
	lastAborted atomic.Int64
}

// resetLocked empties the state; the caller holds mu.
func (t *txnState) resetLocked() {
	t.open = map[int64]int64{}
	t.ended = nil
	t.hasEnded.Store(false)
	t.firstUnstable.Store(noTxn)
}

// recomputeLocked sets firstUnstable from open and ended.
func (t *txnState) recomputeLocked() {
	first := int64(noTxn)
	for _, o := range t.open {
		first = min(first, o)
	}
	for _, e := range t.ended {
		first = min(first, e.first)
	}
	t.firstUnstable.Store(first)
	t.hasEnded.Store(len(t.ended) > 0)
}

// oldestOpenLocked is the first offset of the oldest open transaction,
// or end if none is open.
func (t *txnState) oldestOpenLocked(end int64) int64 {
	for _, o := range t.open {
		end = min(end, o)
	}
	return end
}

// LastStableOffset returns the offset below which every transaction has
// ended and its marker is below the high watermark: what read_committed
// consumers may read. It is the high watermark when no transaction is
// open.
func (p *Partition) LastStableOffset() int64 {
	hw := p.hw.Load()
	return min(p.txn.firstUnstable.Load(), hw)
}

// pruneEnded forgets the ended transactions whose markers are below the
// high watermark, and reports whether the LSO may have moved.
func (p *Partition) pruneEnded() bool {
	if !p.txn.hasEnded.Load() {
		return false
	}
	p.txn.mu.Lock()
	defer p.txn.mu.Unlock()
	hw := p.hw.Load()
	n := 0
	for _, e := range p.txn.ended {
		if e.marker >= hw {
			p.txn.ended[n] = e
			n++
		}
	}
	if n == len(p.txn.ended) {
		return false
	}
	clear(p.txn.ended[n:])
	p.txn.ended = p.txn.ended[:n]
	p.txn.recomputeLocked()
	return true
}

// OpenTransaction returns the first offset of the producer's open
// transaction on this partition.
func (p *Partition) OpenTransaction(producerID int64) (int64, bool) {
	p.txn.mu.Lock()
	defer p.txn.mu.Unlock()
	first, ok := p.txn.open[producerID]
	return first, ok
}

// ProducerInfo is what a partition knows of one idempotent producer, as
// DescribeProducers reports it.
type ProducerInfo struct {
	ProducerID       int64
	Epoch            int16
	LastSequence     int32 // of its last batch, -1 if none is remembered
	CoordinatorEpoch int32 // of its last marker, 0 before any
	TxnFirstOffset   int64 // first offset of its open transaction, -1 for none
}

// Producers returns the partition's idempotent producers, in id order.
func (p *Partition) Producers() []ProducerInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.txn.mu.Lock()
	defer p.txn.mu.Unlock()
	out := make([]ProducerInfo, 0, len(p.mu.producers))
	for _, id := range slices.Sorted(maps.Keys(p.mu.producers)) {
		st := p.mu.producers[id]
		info := ProducerInfo{ProducerID: id, Epoch: st.Epoch, LastSequence: -1, CoordinatorEpoch: st.CoordinatorEpoch, TxnFirstOffset: -1}
		if n := len(st.Batches); n > 0 {
			info.LastSequence = st.Batches[n-1].LastSeq
		}
		if first, ok := p.txn.open[id]; ok {
			info.TxnFirstOffset = first
		}
		out = append(out, info)
	}
	return out
}

// beginTxnLocked applies a data batch about to be appended at offset base
// to the transaction state: a transactional batch opens its producer's
// transaction there, if none is open; an idempotent batch outside a
// transaction while one is open is refused. It runs before the append, so
// that the high watermark never passes the batch before the LSO holds at
// it; began says the transaction was opened, for undoTxnLocked should the
// append fail. The caller holds p.mu.
func (p *Partition) beginTxnLocked(h *segment.Header, base int64) (began bool, err error) {
	if h.ProducerID < 0 || h.IsControl() {
		return false, nil
	}
	p.txn.mu.Lock()
	defer p.txn.mu.Unlock()
	_, open := p.txn.open[h.ProducerID]
	switch {
	case open && !h.IsTransactional():
		return false, fmt.Errorf("%w: producer %d has an open transaction and wrote a batch outside it", ErrInvalidTxnState, h.ProducerID)
	case open || !h.IsTransactional():
		return false, nil
	}
	p.txn.open[h.ProducerID] = base
	p.txn.firstUnstable.Store(min(p.txn.firstUnstable.Load(), base))
	return true, nil
}

// undoTxnLocked forgets a transaction beginTxnLocked opened for an append
// that failed.
func (p *Partition) undoTxnLocked(producerID int64) {
	p.txn.mu.Lock()
	delete(p.txn.open, producerID)
	p.txn.recomputeLocked()
	p.txn.mu.Unlock()
}

// endTxnLocked applies a marker appended at offset marker: the producer's
// transaction ends (it stays unstable until the high watermark passes the
// marker) and an abort is recorded in the aborted-transaction index. The
// caller holds p.mu.
func (p *Partition) endTxnLocked(producerID, marker int64, commit bool) error {
	p.txn.mu.Lock()
	first, ok := p.txn.open[producerID]
	if !ok {
		first = marker // a marker for a transaction this log never saw begin
	}
	delete(p.txn.open, producerID)
	p.txn.ended = append(p.txn.ended, endedTxn{first: first, marker: marker})
	lso := p.txn.oldestOpenLocked(marker + 1)
	p.txn.recomputeLocked()
	p.txn.mu.Unlock()
	if p.pruneEnded() {
		p.wakeAll()
	}
	if commit {
		return nil
	}
	if err := p.idx.AddAborted(index.AbortedTxn{ProducerID: producerID, FirstOffset: first, LastOffset: marker, LastStableOffset: lso}); err != nil {
		p.txnIndexStale = true
		return err
	}
	p.abortedSinceSnapshot = true
	if marker > p.txn.lastAborted.Load() {
		p.txn.lastAborted.Store(marker)
	}
	return nil
}

// walkMarkerLocked applies a control batch met by loadProducers' walk,
// reading its record from the log.
func (p *Partition) walkMarkerLocked(h *segment.Header) error {
	r, err := p.log.Read(h.BaseOffset, h.Size(), h.NextOffset())
	if err != nil {
		return err
	}
	defer r.Release()
	if r.BaseOffset != h.BaseOffset || r.Length < int64(h.Size()) {
		return fmt.Errorf("partition: %s: control batch at %d not found in the log", Name(p.Topic, p.Index), h.BaseOffset)
	}
	b := make([]byte, h.Size())
	if _, err := r.ReadAt(b, r.Position); err != nil {
		return err
	}
	err = p.applyMarkerLocked(h, b)
	if errors.Is(err, ErrControlRecord) {
		return nil // not a marker: nothing to apply
	}
	return err
}

// applyMarkerLocked applies a control batch of the log (batch, with header
// h) to the producer table and the transaction state, as loadProducers'
// walk and a follower's appends do.
func (p *Partition) applyMarkerLocked(h *segment.Header, batch []byte) error {
	typ, coordEpoch, err := parseMarker(batch, h)
	if err != nil {
		return err
	}
	st := p.mu.producers[h.ProducerID]
	p.mu.producers[h.ProducerID] = st.marked(h.ProducerEpoch, coordEpoch)
	return p.endTxnLocked(h.ProducerID, h.BaseOffset, typ == ControlCommit)
}

// parseMarker returns the type and coordinator epoch of a control batch's
// marker record.
func parseMarker(batch []byte, h *segment.Header) (typ int16, coordinatorEpoch int32, err error) {
	found := false
	err = segment.ForEachRecord(batch, h, 1<<20, func(r *segment.Record) error {
		if found {
			return fmt.Errorf("%w: more than one record", ErrControlRecord)
		}
		found = true
		if len(r.Key) < controlKeySize || len(r.Value) < controlValueSize {
			return fmt.Errorf("%w: key of %d bytes, value of %d", ErrControlRecord, len(r.Key), len(r.Value))
		}
		typ = int16(binary.BigEndian.Uint16(r.Key[2:]))
		coordinatorEpoch = int32(binary.BigEndian.Uint32(r.Value[2:]))
		return nil
	})
	switch {
	case errors.Is(err, ErrControlRecord):
		return 0, 0, err
	case err != nil:
		return 0, 0, fmt.Errorf("%w: %w", ErrControlRecord, err)
	case !found:
		return 0, 0, fmt.Errorf("%w: no record", ErrControlRecord)
	case typ != ControlAbort && typ != ControlCommit:
		return 0, 0, fmt.Errorf("%w: type %d", ErrControlRecord, typ)
	}
	return typ, coordinatorEpoch, nil
}

// markerBatch builds the control batch of a marker for the producer.
func markerBatch(producerID int64, producerEpoch int16, coordinatorEpoch int32, commit bool, now int64) ([]byte, error) {
	var key [controlKeySize]byte
	var value [controlValueSize]byte
	if commit {
		binary.BigEndian.PutUint16(key[2:], uint16(ControlCommit))
	}
	binary.BigEndian.PutUint32(value[2:], uint32(coordinatorEpoch))
	return segment.BuildBatch(nil, segment.BatchSpec{
		Attributes: segment.AttrTransactional | segment.AttrControl,
		ProducerID: producerID, ProducerEpoch: producerEpoch, BaseSequence: -1,
		FirstTimestamp: now, MaxTimestamp: now,
	}, []segment.Record{{Offset: 0, Timestamp: now, Key: key[:], Value: value[:]}})
}

// WriteMarker appends a commit or abort marker for the producer's
// transaction, as the leader does for the transaction coordinator's
// WriteTxnMarkers, and ends the transaction (see the file comment). The
// producer epoch must be at least the producer's on this partition
// (ErrProducerFenced otherwise) and the coordinator epoch at least the one
// of the producer's last marker (ErrCoordinatorFenced). It requires
// leadership and min.insync.replicas as a produce with acks=all does, and
// does not wait: see WaitReplicated. The manager's marker hook is told of
// the marker once it is in the log (see Manager.SetMarkerHook).
func (p *Partition) WriteMarker(producerID int64, producerEpoch int16, coordinatorEpoch int32, commit bool) (AppendResult, error) {
	res, err := p.writeMarker(producerID, producerEpoch, coordinatorEpoch, commit)
	if err == nil && p.markerFn != nil {
		p.markerFn(producerID, commit)
	}
	return res, err
}

func (p *Partition) writeMarker(producerID int64, producerEpoch int16, coordinatorEpoch int32, commit bool) (AppendResult, error) {
	if producerID < 0 || producerEpoch < 0 {
		return AppendResult{}, fmt.Errorf("%w: marker for producer %d epoch %d", ErrInvalidTxnState, producerID, producerEpoch)
	}
	batch, err := markerBatch(producerID, producerEpoch, coordinatorEpoch, commit, time.Now().UnixMilli())
	if err != nil {
		return AppendResult{}, err
	}
	h, err := segment.Validate(batch)
	if err != nil {
		return AppendResult{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rep.Lock()
	role := p.rep.role
	p.rep.Unlock()
	if !role.Leader {
		return AppendResult{}, p.CheckLeader(-1)
	}
	if len(role.ISR) < p.MinInsyncReplicas() {
		return AppendResult{}, fmt.Errorf("%w: ISR %v, min.insync.replicas %d", ErrNotEnoughReplicas, role.ISR, p.MinInsyncReplicas())
	}
	st := p.mu.producers[producerID]
	if st != nil && producerEpoch < st.Epoch {
		return AppendResult{}, fmt.Errorf("%w: marker at epoch %d, current %d", ErrProducerFenced, producerEpoch, st.Epoch)
	}
	if st != nil && coordinatorEpoch < st.CoordinatorEpoch {
		return AppendResult{}, fmt.Errorf("%w: %d, last %d", ErrCoordinatorFenced, coordinatorEpoch, st.CoordinatorEpoch)
	}
	if err := p.epochs.flush(); err != nil {
		return AppendResult{}, fmt.Errorf("partition: %s: recording leader epoch %d: %w", Name(p.Topic, p.Index), role.Epoch, err)
	}
	r, err := p.log.AppendValidated(batch, h, role.Epoch)
	if err != nil {
		return AppendResult{}, err
	}
	p.mu.producers[producerID] = st.marked(producerEpoch, coordinatorEpoch)
	if err := p.endTxnLocked(producerID, r.BaseOffset, commit); err != nil {
		// The marker is in the log; the walk at the next open records
		// the abort the index did not take.
		return AppendResult{}, fmt.Errorf("partition: %s: recording the aborted transaction at %d: %w", Name(p.Topic, p.Index), r.BaseOffset, err)
	}
	if p.visibleAt != segment.FsyncAlways {
		p.localDurable(r.LastOffset + 1)
	}
	p.notifyAppend()
	return AppendResult{BaseOffset: r.BaseOffset, LastOffset: r.LastOffset, Epoch: role.Epoch}, nil
}

// ReadCommitted returns the region of batches from offset for a
// read_committed consumer: bounded by lso (the caller's reading of
// LastStableOffset, which it answers with) and maxBytes.
func (p *Partition) ReadCommitted(offset int64, maxBytes int, lso int64) (segment.Region, error) {
	return p.log.Read(offset, maxBytes, min(lso, p.hw.Load()))
}

// AbortedTxn is an aborted transaction: its producer and first offset, as
// a read_committed fetch returns them, and its marker's offset.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
}

// AbortedTransactions appends to dst the aborted transactions that overlap
// the offsets [from, upper), for a read_committed fetch from offset from
// bounded by upper (the LSO). A fetch past the newest abort costs no
// lookup.
func (p *Partition) AbortedTransactions(dst []AbortedTxn, from, upper int64) ([]AbortedTxn, error) {
	if from > p.txn.lastAborted.Load() || from >= upper {
		return dst, nil
	}
	list, err := p.idx.Aborted(nil, from, upper)
	if err != nil {
		return dst, err
	}
	for _, a := range list {
		dst = append(dst, AbortedTxn{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset, LastOffset: a.LastOffset})
	}
	return dst, nil
}

// loadTxnIndexLocked prepares the aborted-transaction index at open and
// returns the offset from which loadProducers' walk must go to complete
// it: where the index says it is complete, or the log start. Entries past
// the log end (recovery cut the log back) are dropped.
func (p *Partition) loadTxnIndexLocked() (int64, error) {
	end, start := p.log.LogEndOffset(), p.log.LogStartOffset()
	if err := p.idx.DeleteAbortedFrom(end); err != nil {
		return 0, err
	}
	if err := p.idx.DeleteAbortedBefore(start); err != nil {
		return 0, err
	}
	p.txn.lastAborted.Store(-1)
	if last, ok, err := p.idx.LastAborted(); err != nil {
		return 0, err
	} else if ok {
		p.txn.lastAborted.Store(last)
	}
	from, ok, err := p.idx.TxnIndexEnd()
	if err != nil {
		return 0, err
	}
	if !ok || from < start || from > end {
		from = start
	}
	return from, nil
}

// saveTxnIndexLocked records that the aborted-transaction index is
// complete below the log end, before the producer snapshot says the
// walk may start there: synced when aborts were added since the last
// time, so the index is never behind what the snapshot claims.
func (p *Partition) saveTxnIndexLocked() error {
	if p.txnIndexStale {
		return nil // an abort is missing: the next open walks from the old end
	}
	sync := p.abortedSinceSnapshot
	if err := p.idx.SetTxnIndexEnd(p.log.LogEndOffset(), sync); err != nil {
		return err
	}
	p.abortedSinceSnapshot = false
	return nil
}

// NextSequence returns the sequence number the producer's next batch at
// epoch must start at: one past its last batch's at that epoch, and 0 for
// a producer or an epoch the partition has not seen. A coordinator that
// writes a producer's transactional batches itself (TxnOffsetCommit) sets
// their sequences with it.
func (p *Partition) NextSequence(producerID int64, epoch int16) int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.mu.producers[producerID]
	if st == nil || st.Epoch != epoch || len(st.Batches) == 0 {
		return 0
	}
	return nextSeq(st.Batches[len(st.Batches)-1].LastSeq)
}

// ForgetAborted removes the aborted transactions whose markers are at the
// offsets given from the aborted-transaction index, durably, before the
// cleaner installs a segment without those markers (their transactions'
// records are gone): a read_committed consumer told of an abort whose
// marker it never meets would drop the producer's later records.
func (p *Partition) ForgetAborted(markers []int64) error {
	return p.idx.DeleteAborted(markers)
}
