// Package partition manages the partitions a broker hosts: each one's log,
// high watermark, waiting fetchers and idempotent-producer state, and the
// set of them (Manager) with topic configs and retention.
package partition

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/index"
	"github.com/runnel-io/runnel/internal/fsutil"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/segment"
)

// Errors for batches a client may not write, each a Kafka error code.
var (
	// ErrControlBatch: clients may not write control batches (INVALID_RECORD).
	ErrControlBatch = errors.New("partition: control batches may not be produced")
	// ErrTransactional: a transactional batch without a producer id
	// (INVALID_RECORD).
	ErrTransactional = errors.New("partition: transactional batch without a producer id")
	// ErrRecordCount: recordCount differs from lastOffsetDelta+1 (INVALID_RECORD).
	ErrRecordCount = errors.New("partition: record count does not match the offset delta")
	// ErrMessageTooLarge: the batch exceeds max.message.bytes (MESSAGE_TOO_LARGE).
	ErrMessageTooLarge = errors.New("partition: batch larger than max.message.bytes")
	// ErrCompression: an unknown compression codec (UNSUPPORTED_COMPRESSION_TYPE).
	ErrCompression = errors.New("partition: unknown compression codec")
)

// Partition is one partition hosted by this broker.
type Partition struct {
	Topic   string
	Index   int32
	TopicID cluster.TopicID

	self int32                  // this broker
	cfg  atomic.Pointer[Config] // the topic's config; replaced whole by SetConfig
	// gaps says the log may hold offset gaps: its topic is compacted, or
	// was since the log was cleaned (a cleaner checkpoint is in its folder).
	gaps      atomic.Bool
	inflate   int64 // bound on a compressed batch's decompressed records
	log       *segment.Log
	idx       *index.Partition                    // the log's index, holding its aborted transactions
	visibleAt segment.FsyncMode                   // when appended data becomes visible
	txn       txnState                            // open transactions and the LSO (txn.go)
	markerFn  func(producerID int64, commit bool) // the manager's marker hook; nil outside a manager

	mu struct {
		sync.Mutex // orders producer checks with appends and truncation
		producers  map[int64]*producerState
	}
	epochs     *epochHistory // under mu
	rollPoints []int64       // under mu: where the leader rolled segments
	logStartFn func()        // tells the metadata the log start moved

	// Under mu: aborts were indexed since the producer snapshot, or
	// one failed to be (the walk at the next open must find it).
	abortedSinceSnapshot, txnIndexStale bool

	rep struct {
		sync.Mutex
		role       Role
		followers  map[int32]*follower // of a leader
		pending    []int32             // an ISR being proposed
		epochStart int64               // log end when this leader's epoch began
	}

	hw       atomic.Int64 // high watermark: what consumers may read
	localEnd atomic.Int64 // this replica's own acknowledgeable end
	leaderHW atomic.Int64 // a follower's: the leader's high watermark at its last fetch

	waitMu        sync.Mutex
	waiters       map[chan struct{}]struct{} // told when the high watermark moves
	appendWaiters map[chan struct{}]struct{} // told when the log end moves
}

// Name returns the partition's folder name, "topic-index".
func Name(topic string, index int32) string { return fmt.Sprintf("%s-%d", topic, index) }

// Config returns the partition's topic config.
func (p *Partition) Config() Config { return *p.cfg.Load() }

// SetConfig applies a changed topic config to the open partition: limits
// on batches and acks=all at once, and the log's segment, index and
// retention limits from its next append, roll or retention run on (see
// segment.Log.SetLimits). The cleaner reads the config at each pass.
func (p *Partition) SetConfig(cfg Config) error {
	if err := p.log.SetLimits(cfg.logOptions().Limits()); err != nil {
		return err
	}
	if cfg.Compact {
		p.gaps.Store(true)
	}
	p.cfg.Store(&cfg)
	return nil
}

// Log returns the partition's log.
func (p *Partition) Log() *segment.Log { return p.log }

// HighWatermark returns the offset below which consumers may read. With
// --fsync always it is the end of what is on disk, so a consumer never reads
// a record that a crash could take back; otherwise it is the log end.
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// LogStartOffset returns the first offset held.
func (p *Partition) LogStartOffset() int64 { return p.log.LogStartOffset() }

// LogEndOffset returns the next offset to be assigned.
func (p *Partition) LogEndOffset() int64 { return p.log.LogEndOffset() }

func (p *Partition) advanceHW(next int64) {
	for {
		cur := p.hw.Load()
		if next <= cur {
			return
		}
		if p.hw.CompareAndSwap(cur, next) {
			break
		}
	}
	p.pruneEnded() // the LSO follows the high watermark past markers
	p.waitMu.Lock()
	for ch := range p.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	p.waitMu.Unlock()
}

// AddWaiter registers ch to receive a token (non-blocking) whenever the high
// watermark moves, or the replica's role changes. ch should have a buffer
// of one.
func (p *Partition) AddWaiter(ch chan struct{}) {
	p.waitMu.Lock()
	if p.waiters == nil {
		p.waiters = map[chan struct{}]struct{}{}
	}
	p.waiters[ch] = struct{}{}
	p.waitMu.Unlock()
}

// AddAppendWaiter registers ch to receive a token whenever the log end
// moves (for followers' fetches, which read past the high watermark).
func (p *Partition) AddAppendWaiter(ch chan struct{}) {
	p.waitMu.Lock()
	if p.appendWaiters == nil {
		p.appendWaiters = map[chan struct{}]struct{}{}
	}
	p.appendWaiters[ch] = struct{}{}
	p.waitMu.Unlock()
}

// RemoveWaiter undoes AddWaiter and AddAppendWaiter.
func (p *Partition) RemoveWaiter(ch chan struct{}) {
	p.waitMu.Lock()
	delete(p.waiters, ch)
	delete(p.appendWaiters, ch)
	p.waitMu.Unlock()
}

func (p *Partition) notifyAppend() {
	p.waitMu.Lock()
	for ch := range p.appendWaiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	p.waitMu.Unlock()
}

// AppendResult is the outcome of a produce to one partition.
type AppendResult struct {
	BaseOffset int64
	LastOffset int64
	// Duplicate: the batch had been appended before (an idempotent retry);
	// the offsets are the original ones and nothing was written.
	Duplicate bool
	// Epoch is the leader epoch it was appended under.
	Epoch int32
}

// checkClientBatch applies the rules for batches coming from producers. It
// runs before Append takes any lock. Batches a follower copies from its
// leader are not walked again (AppendReplica): the leader walked them.
func (p *Partition) checkClientBatch(batch []byte) (segment.Header, error) {
	h, err := segment.Validate(batch)
	if err != nil {
		return h, err
	}
	switch {
	case h.Size() != len(batch):
		return h, fmt.Errorf("%w: %d bytes after a %d-byte batch", segment.ErrBatchLength, len(batch)-h.Size(), h.Size())
	case len(batch) > int(p.Config().MaxMessageBytes):
		return h, fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(batch), p.Config().MaxMessageBytes)
	case h.IsControl():
		return h, ErrControlBatch
	case h.IsTransactional() && h.ProducerID < 0:
		return h, ErrTransactional
	case h.Compression() > 4:
		return h, fmt.Errorf("%w: %d", ErrCompression, h.Compression())
	case int64(h.RecordCount) != int64(h.LastOffsetDelta)+1:
		return h, fmt.Errorf("%w: %d records, last offset delta %d", ErrRecordCount, h.RecordCount, h.LastOffsetDelta)
	}
	// The records themselves, as Kafka checks them: a batch whose header
	// is sound but whose records are not would stop every consumer there.
	// A compacted topic refuses null keys in the same walk.
	if p.Config().Compact {
		return h, segment.ValidateKeyedRecords(batch, &h, p.inflate)
	}
	return h, segment.ValidateRecords(batch, &h, p.inflate)
}

// Append validates a producer's batch, checks its idempotence sequence, and
// appends it, if this replica leads the partition. With acks=all (-1) it
// first checks that the ISR is at least min.insync.replicas. It does not
// wait for durability or replication: see WaitDurable and WaitReplicated.
func (p *Partition) Append(batch []byte, acks int16) (AppendResult, error) {
	h, err := p.checkClientBatch(batch)
	if err != nil {
		return AppendResult{}, err
	}
	idempotent := h.ProducerID >= 0
	lastSeq := addSeq(h.BaseSequence, h.LastOffsetDelta)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rep.Lock()
	role := p.rep.role
	p.rep.Unlock()
	if !role.Leader {
		return AppendResult{}, p.CheckLeader(-1)
	}
	if acks == -1 && len(role.ISR) < p.MinInsyncReplicas() {
		return AppendResult{}, fmt.Errorf("%w: ISR %v, min.insync.replicas %d", ErrNotEnoughReplicas, role.ISR, p.MinInsyncReplicas())
	}
	var st *producerState
	if idempotent {
		st = p.mu.producers[h.ProducerID]
		dup, isDup, err := st.check(h.ProducerEpoch, h.BaseSequence, lastSeq)
		if err != nil {
			return AppendResult{}, err
		}
		if isDup {
			return AppendResult{BaseOffset: dup.BaseOffset, LastOffset: dup.LastOffset, Duplicate: true, Epoch: role.Epoch}, nil
		}
	}
	began, err := p.beginTxnLocked(&h, p.log.LogEndOffset())
	if err != nil {
		return AppendResult{}, err
	}
	if err := p.epochs.flush(); err != nil {
		if began {
			p.undoTxnLocked(h.ProducerID)
		}
		return AppendResult{}, fmt.Errorf("partition: %s: recording leader epoch %d: %w", Name(p.Topic, p.Index), role.Epoch, err)
	}
	r, err := p.log.AppendValidated(batch, h, role.Epoch)
	if err != nil {
		if began {
			p.undoTxnLocked(h.ProducerID)
		}
		return AppendResult{}, err
	}
	if idempotent {
		p.mu.producers[h.ProducerID] = st.record(h.ProducerEpoch, batchMeta{
			FirstSeq: h.BaseSequence, LastSeq: lastSeq, BaseOffset: r.BaseOffset, LastOffset: r.LastOffset})
	}
	if p.visibleAt != segment.FsyncAlways {
		p.localDurable(r.LastOffset + 1)
	}
	p.notifyAppend()
	return AppendResult{BaseOffset: r.BaseOffset, LastOffset: r.LastOffset, Epoch: role.Epoch}, nil
}

// WaitDurable waits until the durability policy lets the broker acknowledge
// offsets below next (see segment.Log.WaitDurable).
func (p *Partition) WaitDurable(ctx context.Context, next int64) error {
	return p.log.WaitDurable(ctx, next)
}

// RequestSync makes appended data durable (and so visible) soon, for
// producers that do not wait (acks=0).
func (p *Partition) RequestSync() {
	if p.visibleAt == segment.FsyncAlways {
		p.log.RequestSync()
	}
}

// Read returns the region of batches from offset, bounded by the high
// watermark and maxBytes.
func (p *Partition) Read(offset int64, maxBytes int) (segment.Region, error) {
	return p.log.Read(offset, maxBytes, p.hw.Load())
}

// The producer snapshot is written, unsynced, whenever the log marks a
// recovery point: when a segment rolls, after recovery at open, and at a
// clean close. After a kill -9, loadProducers then walks about as much of
// the log as recovery scanned, not all of it. A snapshot that does not fit
// the log (torn by an operating-system crash, or past a log end that
// recovery cut back) is replaced by one rebuilt from the whole log.
const producerSnapshotFile = "producers.json"

// loadProducers rebuilds the producer table from the snapshot and a walk
// over the batch headers that follow it, or over the whole log without a
// snapshot that fits. The caller holds p.mu or has the partition to itself.
func (p *Partition) loadProducers() error {
	p.mu.producers = map[int64]*producerState{}
	p.txn.mu.Lock()
	p.txn.resetLocked()
	p.txn.mu.Unlock()
	p.abortedSinceSnapshot, p.txnIndexStale = false, false
	txnFrom, err := p.loadTxnIndexLocked()
	if err != nil {
		return err
	}
	from, end := p.log.LogStartOffset(), p.log.LogEndOffset()
	save := false // a snapshot is there and does not fit: replace it
	b, err := vfs.ReadFile(p.log.FS(), filepath.Join(p.log.Dir(), producerSnapshotFile))
	if err == nil {
		// Whatever does not decode (torn, damaged, or of a newer
		// version) is rebuilt: the file is a cache. So is one past
		// where the aborted-transaction index is complete (the index
		// was rebuilt, or lost its last writes): the walk from the
		// log start completes both.
		if snapEnd, table, open, err := decodeProducers(b); err == nil && snapEnd <= end && snapEnd >= from && snapEnd <= txnFrom {
			p.mu.producers = table
			p.txn.mu.Lock()
			p.txn.open = open
			p.txn.recomputeLocked()
			p.txn.mu.Unlock()
			from = snapEnd
		} else {
			save = true
		}
	}
	if err := p.walkProducers(from); err != nil {
		return err
	}
	if save || from < end {
		if err := p.saveProducersLocked(); err != nil {
			return &snapshotSaveError{err}
		}
	}
	return nil
}

// snapshotSaveError: loadProducers rebuilt the producer state but could
// not write its snapshot.
type snapshotSaveError struct{ err error }

func (e *snapshotSaveError) Error() string { return "saving the producer snapshot: " + e.err.Error() }
func (e *snapshotSaveError) Unwrap() error { return e.err }

// walkProducers records the producers and transactions of the batches
// from offset on.
func (p *Partition) walkProducers(from int64) error {
	var werr error
	err := p.log.WalkHeaders(from, func(h *segment.Header) bool {
		if h.ProducerID < 0 {
			return true
		}
		if h.IsControl() {
			werr = p.walkMarkerLocked(h)
			return werr == nil
		}
		st := p.mu.producers[h.ProducerID]
		if st != nil && h.ProducerEpoch < st.Epoch {
			return true
		}
		// The log is what it is: a batch outside an open transaction
		// (which Append refuses) changes nothing here.
		p.beginTxnLocked(h, h.BaseOffset)
		p.mu.producers[h.ProducerID] = st.record(h.ProducerEpoch, batchMeta{
			FirstSeq: h.BaseSequence, LastSeq: addSeq(h.BaseSequence, h.LastOffsetDelta),
			BaseOffset: h.BaseOffset, LastOffset: h.LastOffset()})
		return true
	})
	return errors.Join(err, werr)
}

// saveProducersLocked snapshots the producer table as of the log end. The
// caller holds p.mu, so every batch below the log end is in the table.
func (p *Partition) saveProducersLocked() error {
	if err := p.saveTxnIndexLocked(); err != nil {
		return err
	}
	p.txn.mu.Lock()
	b, err := encodeProducers(p.log.LogEndOffset(), p.mu.producers, p.txn.open)
	p.txn.mu.Unlock()
	if err != nil {
		return err
	}
	return fsutil.ReplaceFile(p.log.FS(), filepath.Join(p.log.Dir(), producerSnapshotFile), b, 0o644)
}

// close snapshots producers and closes the log.
func (p *Partition) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.log.Close()
	if err == nil {
		err = p.saveProducersLocked()
	}
	return err
}

// DeleteRecords moves the log start offset to offset (-1: the high
// watermark), as Kafka's DeleteRecords, and returns the new log start.
func (p *Partition) DeleteRecords(offset int64) (int64, error) {
	hw := p.hw.Load()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return -1, fmt.Errorf("%w: delete records before %d, high watermark %d", segment.ErrOffsetOutOfRange, offset, hw)
	}
	if err := p.log.AdvanceLogStart(offset); err != nil {
		return -1, err
	}
	if p.logStartFn != nil {
		p.logStartFn()
	}
	return p.log.LogStartOffset(), nil
}
