// Package coordinator runs coordinators as state machines over the
// partitions of an internal topic, as Kafka does for consumer groups
// (__consumer_offsets) and transactions (__transaction_state).
//
// A coordinator's state is split into shards, one per partition of its
// topic; the broker that leads a partition serves that partition's shard.
// The runtime follows leadership:
//
//	led at epoch E ──▶ loading ──(every record replayed)──▶ active ──▶ unloaded
//	                      │                                    ▲
//	                      └──── leadership moves on ───────────┘
//
// Loading replays the partition's records, from its log start to the log
// end it had when the load began, into a Loader; the Loader then yields
// the Shard that serves requests. While a shard loads, Shard answers
// ErrLoadInProgress (COORDINATOR_LOAD_IN_PROGRESS); for a partition this
// broker does not lead, ErrNotCoordinator (NOT_COORDINATOR), so clients
// look the coordinator up again.
//
// A shard changes its state by appending records through its Writer and
// applying them (append, then apply): a change whose append fails is not
// applied. The append returns as soon as the records are in the local log;
// the wait it returns ends when the records are as durable as an acks=all
// produce (in every ISR replica, with min.insync.replicas). A write that
// fails after the records may be in the log makes the runtime reload the
// shard, so memory never drifts from the log.
//
// A shard may write transactional batches of a producer (Writer.AppendTxn,
// for Kafka's TxnOffsetCommit); a load replays their records marked with
// their producer, and hands the producer's commit and abort markers to a
// MarkerLoader in log order, so that the shard counts a transaction's
// records only once its commit marker follows them.
//
// Concurrency: a Runtime is safe for concurrent use. Its lock guards the
// shard table only; loads run on their own goroutines, and no lock of the
// runtime is held across disk or network I/O.
package coordinator

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// Errors of Shard and of writes. The server maps each to a Kafka code.
var (
	// ErrNotCoordinator: this broker does not lead the shard's partition
	// (NOT_COORDINATOR).
	ErrNotCoordinator = errors.New("coordinator: this broker does not lead the coordinator's partition")
	// ErrLoadInProgress: the shard is being loaded
	// (COORDINATOR_LOAD_IN_PROGRESS).
	ErrLoadInProgress = errors.New("coordinator: the coordinator's partition is being loaded")
	// ErrNotAvailable: a write could not be made durable now: too few
	// in-sync replicas, or it timed out (COORDINATOR_NOT_AVAILABLE).
	ErrNotAvailable = errors.New("coordinator: the coordinator's partition cannot take writes now")
	// ErrRecordTooLarge: the records exceed what the partition accepts.
	ErrRecordTooLarge = errors.New("coordinator: records larger than the partition accepts")
	// ErrClosed: the runtime is closed.
	ErrClosed = errors.New("coordinator: closed")
	// ErrProducerFenced: a transactional append at a producer epoch older
	// than the partition's (INVALID_PRODUCER_EPOCH).
	ErrProducerFenced = errors.New("coordinator: producer epoch older than the partition's")
	// ErrInvalidTxnState: the partition refused a transactional append
	// that does not fit the producer's state there (INVALID_TXN_STATE).
	ErrInvalidTxnState = errors.New("coordinator: transactional append does not fit the producer's state")
)

// Partition is what the runtime uses of a replica this broker leads;
// *partition.Partition implements it.
type Partition interface {
	Append(batch []byte, acks int16) (partition.AppendResult, error)
	WaitReplicated(ctx context.Context, next int64, epoch int32) error
	ReadReplica(offset int64, maxBytes int) (segment.Region, error)
	LogStartOffset() int64
	LogEndOffset() int64
	NextSequence(producerID int64, epoch int16) int32
}

var _ Partition = (*partition.Partition)(nil)

// Record is one record of a coordinator partition. A nil Value is a
// tombstone: the key's state is gone.
type Record struct {
	Offset    int64
	Timestamp int64 // milliseconds since the epoch
	Key       []byte
	Value     []byte
	// Transactional: the record is in a transactional batch of the
	// producer (ProducerID, ProducerEpoch), as Writer.AppendTxn writes
	// them; it counts once a commit marker of the producer follows it.
	// Only replayed records say so.
	Transactional bool
	ProducerID    int64
	ProducerEpoch int16
}

// Marker is a transaction marker (a control batch) of a coordinator
// partition: the end of its producer's transaction there.
type Marker struct {
	Offset        int64
	ProducerID    int64
	ProducerEpoch int16
	Commit        bool // a commit; else an abort
}

// MarkerLoader is a Loader of a partition that holds transactional
// batches: it is given the partition's transaction markers too, in offset
// order with the records. A Loader that is not one never sees them.
type MarkerLoader interface {
	Loader
	// ReplayMarker applies one marker. A control batch whose record is
	// not a marker in Kafka's schema is not given.
	ReplayMarker(m Marker) error
}

// Loader rebuilds one shard from its partition's records.
type Loader interface {
	// Replay applies one record, in offset order. Its Key and Value alias
	// a read buffer reused after Replay returns: copy what is kept. An
	// error stops the load, which is retried from the start.
	Replay(r Record) error
	// Loaded ends the load and returns the shard that serves from now on,
	// writing through w.
	Loaded(w *Writer) (Shard, error)
}

// Shard is one partition's coordinator state, serving.
type Shard interface {
	// Unload ends the shard: its partition is led elsewhere, the shard is
	// being reloaded, or the broker closes. Waiting requests are answered
	// with err (ErrNotCoordinator or ErrClosed).
	Unload(err error)
}

// Config configures a Runtime.
type Config struct {
	// Topic is the internal topic, for logs.
	Topic string
	// NewLoader returns the loader of one partition's shard.
	NewLoader func(partition int32) Loader
	// WriteTimeout bounds the wait for a write to be durable (Kafka's
	// offsets.commit.timeout.ms). Default 5 s.
	WriteTimeout time.Duration
	// ReadBytes is how much of the log a load reads at a time. Default
	// 1 MiB.
	ReadBytes int
	// MaxDecompressedBatchBytes bounds a compressed batch's records when
	// loading. Default 64 MiB.
	MaxDecompressedBatchBytes int64
	// LoadRetry is the pause before a failed load is tried again.
	// Default 1 s.
	LoadRetry time.Duration
	// Now: nil means time.Now.
	Now func() time.Time
	// Logger: nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.ReadBytes <= 0 {
		c.ReadBytes = 1 << 20
	}
	if c.MaxDecompressedBatchBytes <= 0 {
		c.MaxDecompressedBatchBytes = 64 << 20
	}
	if c.LoadRetry <= 0 {
		c.LoadRetry = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Led is one partition of the topic this broker leads, at a leader epoch.
type Led struct {
	Index     int32
	Epoch     int32
	Partition Partition
}

// Runtime serves the shards of the partitions this broker leads.
type Runtime struct {
	cfg Config
	log *slog.Logger

	mu struct {
		sync.Mutex
		shards map[int32]*entry
		closed bool
	}
	wg sync.WaitGroup

	loads, loadedRecords, loadNanos, reloads atomic.Int64
}

// Stats are a runtime's counters since it started.
type Stats struct {
	Loads         int64         // shards loaded
	LoadedRecords int64         // records replayed by those loads
	LoadTime      time.Duration // spent loading them
	Reloads       int64         // shards reloaded after a failed write
}

// Stats returns the runtime's counters.
func (r *Runtime) Stats() Stats {
	return Stats{Loads: r.loads.Load(), LoadedRecords: r.loadedRecords.Load(),
		LoadTime: time.Duration(r.loadNanos.Load()), Reloads: r.reloads.Load()}
}

// entry is one partition's shard, loading or active.
type entry struct {
	led    Led
	cancel context.CancelFunc // stops the load
	shard  Shard              // nil while loading
}

// New returns a runtime that serves no partition until Lead.
func New(cfg Config) *Runtime {
	cfg = cfg.withDefaults()
	r := &Runtime{cfg: cfg, log: cfg.Logger.With("topic", cfg.Topic)}
	r.mu.shards = map[int32]*entry{}
	return r
}

// Lead makes the runtime serve exactly the partitions in led: it starts
// loading those it does not serve at that epoch, and unloads the others.
func (r *Runtime) Lead(led []Led) {
	want := make(map[int32]Led, len(led))
	for _, l := range led {
		want[l.Index] = l
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return
	}
	for i, e := range r.mu.shards {
		if l, ok := want[i]; !ok || l.Epoch != e.led.Epoch || l.Partition != e.led.Partition {
			r.unloadLocked(e, ErrNotCoordinator)
		}
	}
	for i, l := range want {
		if _, ok := r.mu.shards[i]; !ok {
			r.startLoadLocked(l)
		}
	}
}

func (r *Runtime) startLoadLocked(l Led) {
	ctx, cancel := context.WithCancel(context.Background())
	e := &entry{led: l, cancel: cancel}
	r.mu.shards[l.Index] = e
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.load(ctx, e)
	}()
}

// unloadLocked removes e from the table and ends its load or its shard.
func (r *Runtime) unloadLocked(e *entry, err error) {
	if r.mu.shards[e.led.Index] != e {
		return
	}
	delete(r.mu.shards, e.led.Index)
	e.cancel()
	if e.shard != nil {
		e.shard.Unload(err)
		r.log.Info("coordinator unloaded", "partition", e.led.Index, "leader_epoch", e.led.Epoch, "reason", err)
	}
}

// Shard returns the active shard of a partition: ErrLoadInProgress while
// it loads, ErrNotCoordinator when this broker does not lead it.
func (r *Runtime) Shard(index int32) (Shard, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return nil, ErrNotCoordinator
	}
	e := r.mu.shards[index]
	switch {
	case e == nil:
		return nil, ErrNotCoordinator
	case e.shard == nil:
		return nil, ErrLoadInProgress
	}
	return e.shard, nil
}

// Shards returns the active shards, by partition.
func (r *Runtime) Shards() []Shard {
	r.mu.Lock()
	defer r.mu.Unlock()
	idx := make([]int32, 0, len(r.mu.shards))
	for i, e := range r.mu.shards {
		if e.shard != nil {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	out := make([]Shard, len(idx))
	for k, i := range idx {
		out[k] = r.mu.shards[i].shard
	}
	return out
}

// Loading reports how many shards are loading and how many are active.
func (r *Runtime) Loading() (loading, active int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.mu.shards {
		if e.shard == nil {
			loading++
		} else {
			active++
		}
	}
	return loading, active
}

// Close unloads every shard and waits for the loads to stop.
func (r *Runtime) Close() {
	r.mu.Lock()
	if !r.mu.closed {
		r.mu.closed = true
		for _, e := range r.mu.shards {
			r.unloadLocked(e, ErrClosed)
		}
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// reload unloads e's shard after a write failed and loads it again, if e
// is still the partition's entry.
func (r *Runtime) reload(e *entry, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed || r.mu.shards[e.led.Index] != e {
		return
	}
	r.log.Warn("reloading a coordinator after a failed write", "partition", e.led.Index, "err", cause)
	r.reloads.Add(1)
	r.unloadLocked(e, ErrNotCoordinator)
	r.startLoadLocked(e.led)
}

// load replays e's partition into a new loader until it succeeds or e is
// unloaded, then makes the shard active.
func (r *Runtime) load(ctx context.Context, e *entry) {
	for {
		start := time.Now()
		loader := r.cfg.NewLoader(e.led.Index)
		n, err := r.replay(ctx, e.led.Partition, loader)
		var shard Shard
		if err == nil {
			shard, err = loader.Loaded(&Writer{r: r, e: e})
		}
		if err == nil {
			r.mu.Lock()
			current := r.mu.shards[e.led.Index] == e && !r.mu.closed
			if current {
				e.shard = shard
			}
			r.mu.Unlock()
			if !current {
				shard.Unload(ErrNotCoordinator)
				return
			}
			took := time.Since(start)
			r.loads.Add(1)
			r.loadedRecords.Add(int64(n))
			r.loadNanos.Add(int64(took))
			r.log.Info("coordinator loaded", "partition", e.led.Index, "leader_epoch", e.led.Epoch, "records", n, "took", took)
			return
		}
		if ctx.Err() != nil {
			return
		}
		r.log.Error("loading a coordinator failed; trying again", "partition", e.led.Index, "err", err, "retry_in", r.cfg.LoadRetry)
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.LoadRetry):
		}
	}
}

// replay feeds the records of p, from its log start to its log end now,
// to l; transaction markers go to a MarkerLoader, other control batches
// are skipped.
func (r *Runtime) replay(ctx context.Context, p Partition, l Loader) (int, error) {
	from, end := p.LogStartOffset(), p.LogEndOffset()
	buf := make([]byte, r.cfg.ReadBytes)
	n := 0
	for from < end {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		next, got, err := r.replayRegion(p, from, &buf, l)
		n += got
		if err != nil {
			return n, err
		}
		if next <= from {
			return n, fmt.Errorf("coordinator: the log does not advance past offset %d", from)
		}
		from = next
	}
	return n, nil
}

// replayRegion replays the whole batches of the region at from and
// returns the offset after the last one.
func (r *Runtime) replayRegion(p Partition, from int64, buf *[]byte, l Loader) (next int64, n int, err error) {
	reg, err := p.ReadReplica(from, len(*buf))
	if err != nil {
		return from, 0, err
	}
	defer reg.Release()
	if reg.Length == 0 {
		return from, 0, nil
	}
	if int64(len(*buf)) < reg.Length {
		*buf = make([]byte, reg.Length)
	}
	b := (*buf)[:reg.Length]
	if _, err := reg.ReadAt(b, reg.Position); err != nil {
		return from, 0, fmt.Errorf("coordinator: reading offset %d: %w", from, err)
	}
	next = from
	for len(b) >= segment.LogOverhead {
		h, err := segment.ParseHeader(b)
		if err != nil {
			return next, n, err
		}
		if h.Size() > len(b) {
			break // cut short by the read size: the next read starts here
		}
		batch := b[:h.Size()]
		b = b[h.Size():]
		if h.NextOffset() <= from {
			continue // a batch before the offset asked for
		}
		if h.IsControl() {
			if ml, ok := l.(MarkerLoader); ok && h.BaseOffset >= from {
				if m, ok := parseMarker(batch, &h); ok {
					if err := ml.ReplayMarker(m); err != nil {
						return next, n, fmt.Errorf("coordinator: marker at offset %d: %w", h.BaseOffset, err)
					}
				}
			}
		} else {
			txn := h.IsTransactional() && h.ProducerID >= 0
			err := segment.ForEachRecord(batch, &h, r.cfg.MaxDecompressedBatchBytes, func(rec *segment.Record) error {
				if rec.Offset < from {
					return nil
				}
				n++
				out := Record{Offset: rec.Offset, Timestamp: rec.Timestamp, Key: rec.Key, Value: rec.Value, ProducerID: -1, ProducerEpoch: -1}
				if txn {
					out.Transactional, out.ProducerID, out.ProducerEpoch = true, h.ProducerID, h.ProducerEpoch
				}
				return l.Replay(out)
			})
			if err != nil {
				return next, n, fmt.Errorf("coordinator: batch at offset %d: %w", h.BaseOffset, err)
			}
		}
		next = h.NextOffset()
	}
	return next, n, nil
}

// parseMarker reads the marker of a control batch: its record's key is
// version int16, type int16 (0 abort, 1 commit), as Kafka's
// ControlRecordType. ok is false for any other control record.
func parseMarker(batch []byte, h *segment.Header) (m Marker, ok bool) {
	typ := int16(-1)
	err := segment.ForEachRecord(batch, h, 1<<20, func(rec *segment.Record) error {
		if typ != -1 || len(rec.Key) < 4 {
			typ = -2
			return nil
		}
		typ = int16(binary.BigEndian.Uint16(rec.Key[2:]))
		return nil
	})
	if err != nil || typ < 0 || typ > 1 {
		return Marker{}, false
	}
	return Marker{Offset: h.BaseOffset, ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch, Commit: typ == 1}, true
}
