// Package cleaner is the log cleaner: it compacts the partitions of topics
// whose cleanup.policy has compact, keeping in each only the latest record
// of every key (and tombstones for delete.retention.ms), by rewriting
// their sealed segments in place.
//
// # How a partition is cleaned
//
// Every partition replica is cleaned on its own broker, leader or
// follower alike. Its log is two sections: the clean one, below the
// partition's clean offset (kept in the cleaner checkpoint, see
// checkpoint.go), already holding one record per key, and the dirty one
// after it, up to the active segment, which is never cleaned. The
// dirtiest partition goes first: dirty bytes over all bytes of sealed
// segments, at least min.cleanable.dirty.ratio; a partition whose oldest
// dirty record is older than max.compaction.lag.ms goes whatever its
// ratio, and segments newer than min.compaction.lag.ms stay dirty.
//
// A clean reads the dirty section into a map from key to the offset of
// its latest record, bounded by the dedupe buffer (Options.DedupeBufferBytes
// shared by the threads; the map stops at a batch boundary when full, and
// the rest of the section waits for the next pass). It then rewrites every
// sealed segment from the log start up to where the map stopped: a record
// stays unless the map holds a later offset for its key, or it is a
// tombstone in a segment first cleaned more than delete.retention.ms ago.
// Batches keep their base offset and lastOffsetDelta (BuildBatch, with
// the batch's codec), a batch left without records goes unless it is the
// last of its idempotent producer (so the producer's sequence survives a
// restart) or of its segment (so the segment still ends where the next
// begins, and a follower fetching from inside it reaches the next), which
// stay empty, and each segment is written as
// one new file with the same base offset (segment.Rewrite), so offsets,
// segment boundaries and the leader's roll points never change. A
// segment from which nothing would go is left as it is.
//
// Transactions: only segments wholly below the partition's last stable
// offset are cleaned, so the records of an open transaction (and all that
// follows) stay until its marker is written and replicated. The records
// of aborted transactions (from the partition's aborted-transaction index)
// go into no map, so they never remove a committed record of their key,
// and they are themselves removed, as Kafka's cleaner removes them;
// a control batch (a commit or abort marker) stays while a batch of its
// transaction is in the log, and goes, as Kafka's cleaner removes it, from
// a segment first cleaned more than delete.retention.ms ago once a pass
// from the log start reads no batch of its transaction before it (the
// transaction's last batch may be kept empty as the last of its producer:
// then the marker stays too). The removed abort markers leave the
// aborted-transaction index first (synced), so a read_committed consumer
// is never told of an abort whose marker it would not meet. A marker that
// is its segment's last batch stays.
//
// The cleaner's reads and writes are held to Options.IOBytesPerSecond.
package cleaner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// Defaults of Options.
const (
	DefaultThreads           = 1
	DefaultDedupeBufferBytes = 128 << 20 // Kafka's log.cleaner.dedupe.buffer.size
	DefaultBackoff           = 15 * time.Second
)

// Options configure a Cleaner. Zero values take the defaults; New copies
// them.
type Options struct {
	// Threads is the number of partitions cleaned at once.
	Threads int
	// DedupeBufferBytes bounds the memory of the key maps of all threads
	// together (each thread gets its share).
	DedupeBufferBytes int64
	// IOBytesPerSecond bounds the bytes the cleaner reads and writes per
	// second, all threads together. Zero or negative: no bound.
	IOBytesPerSecond int64
	// Backoff is the pause between looks for work when no partition
	// needs cleaning.
	Backoff time.Duration
	// MaxDecompressedBatchBytes bounds what one compressed batch's records
	// inflate to while they are read. Default
	// partition.DefaultMaxDecompressedBatchBytes.
	MaxDecompressedBatchBytes int64
	// Logger: nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock (tombstone horizons, compaction lags). Nil:
	// time.Now.
	Now func() time.Time

	sleep func(ctx context.Context, d time.Duration) error // tests
}

func (o Options) withDefaults() (Options, error) {
	if o.Threads == 0 {
		o.Threads = DefaultThreads
	}
	if o.Threads < 0 {
		return o, fmt.Errorf("cleaner: %d threads", o.Threads)
	}
	if o.DedupeBufferBytes == 0 {
		o.DedupeBufferBytes = DefaultDedupeBufferBytes
	}
	if o.DedupeBufferBytes < 0 {
		return o, fmt.Errorf("cleaner: dedupe buffer of %d bytes", o.DedupeBufferBytes)
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxDecompressedBatchBytes <= 0 {
		o.MaxDecompressedBatchBytes = partition.DefaultMaxDecompressedBatchBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.sleep == nil {
		o.sleep = sleepCtx
	}
	return o, nil
}

// Partitions is where the cleaner finds the partitions to clean
// (*partition.Manager).
type Partitions interface {
	Partitions() []*partition.Partition
}

// Cleaner cleans the compacted partitions of one broker.
type Cleaner struct {
	opts  Options
	parts Partitions
	log   *slog.Logger
	io    *throttle

	mu struct {
		sync.Mutex
		busy  map[*partition.Partition]bool // being cleaned
		state map[string]*partState         // by partition folder
	}
	wake chan struct{}

	stats Stats
}

// partState is what the cleaner knows of one partition between cleans.
type partState struct {
	ck     *checkpoint // nil until read
	dirty  float64     // dirty ratio at the last look
	topic  string
	index  int32
	failed bool // the last clean failed: wait a backoff before the next
}

// Stats are the cleaner's counters, for metrics.
type Stats struct {
	// BytesRead and BytesWritten count the log bytes the cleaner read
	// and wrote (segments it rewrote, and segments it read to find that
	// nothing would go).
	BytesRead, BytesWritten atomic.Int64
	// BytesCleaned counts the bytes of the segments rewritten, before;
	// BytesAfter the same segments after.
	BytesCleaned, BytesAfter atomic.Int64
	// Cleans, Failures and Segments count passes, failed passes and
	// segments rewritten.
	Cleans, Failures, Segments atomic.Int64
	// RecordsRemoved counts the records cleaned away; MarkersRemoved the
	// transaction markers.
	RecordsRemoved, MarkersRemoved atomic.Int64
	// Nanos is the time spent cleaning; LastRunUnixMs when the last pass
	// ended; LastRatio the share of bytes the last pass kept.
	Nanos, LastRunUnixMs atomic.Int64
	LastRatio            atomic.Uint64 // math.Float64bits
}

// New returns a cleaner of parts's partitions. It starts nothing: see Run.
func New(parts Partitions, opts Options) (*Cleaner, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cleaner{opts: opts, parts: parts, log: opts.Logger, wake: make(chan struct{}, 1)}
	c.io = newThrottle(opts.IOBytesPerSecond, opts.Now, opts.sleep)
	c.mu.busy = map[*partition.Partition]bool{}
	c.mu.state = map[string]*partState{}
	return c, nil
}

// Stats returns the cleaner's counters.
func (c *Cleaner) Stats() *Stats { return &c.stats }

// SetIOBytesPerSecond changes Options.IOBytesPerSecond of a running
// cleaner (0: unlimited), from the next read or write on.
func (c *Cleaner) SetIOBytesPerSecond(n int64) { c.io.setRate(n) }

// Run cleans until ctx ends, with Options.Threads goroutines, each taking
// the dirtiest partition no other is cleaning, and waiting Options.Backoff
// when there is none. It returns when every thread has stopped.
func (c *Cleaner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < c.opts.Threads; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.thread(ctx)
		}()
	}
	wg.Wait()
}

func (c *Cleaner) thread(ctx context.Context) {
	backoff := time.NewTimer(0)
	defer backoff.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-backoff.C:
		case <-c.wake:
		}
		for ctx.Err() == nil {
			p := c.pick(false)
			if p == nil {
				break
			}
			_, err := c.clean(ctx, p, false)
			c.done(p, err)
		}
		c.Forget()
		backoff.Reset(c.opts.Backoff)
	}
}

// Wake makes an idle thread look for work now.
func (c *Cleaner) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// CleanAll cleans every compacted partition once, on the calling
// goroutine, in as many passes as its dirty section takes. force cleans
// whatever the dirty ratio (and removes tombstones past their time even
// with nothing dirty), as tests and benchmarks want; the compaction lags
// still hold.
func (c *Cleaner) CleanAll(ctx context.Context, force bool) error {
	var errs []error
	for _, p := range c.compacted() {
		c.mu.Lock()
		if c.mu.busy[p] {
			c.mu.Unlock()
			continue
		}
		c.mu.busy[p] = true
		c.mu.Unlock()
		more, err := c.clean(ctx, p, force)
		for more && err == nil {
			more, err = c.clean(ctx, p, force)
		}
		c.done(p, err)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Cleaner) compacted() []*partition.Partition {
	var out []*partition.Partition
	for _, p := range c.parts.Partitions() {
		if p.Config().Compact {
			out = append(out, p)
		}
	}
	return out
}

// pick returns the dirtiest partition that needs a clean and that no
// thread is cleaning, marked busy, or nil.
func (c *Cleaner) pick(force bool) *partition.Partition {
	type cand struct {
		p     *partition.Partition
		ratio float64
	}
	var cands []cand
	now := c.opts.Now()
	for _, p := range c.compacted() {
		st := c.state(p)
		d, err := c.dirtySection(p, st, now)
		if err != nil {
			continue
		}
		c.mu.Lock()
		st.dirty = d.ratio
		failed := st.failed
		st.failed = false
		c.mu.Unlock()
		if failed || !d.cleanable(p.Config(), now, force) {
			continue
		}
		cands = append(cands, cand{p, d.ratio})
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].ratio > cands[j].ratio })
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range cands {
		if !c.mu.busy[k.p] {
			c.mu.busy[k.p] = true
			return k.p
		}
	}
	return nil
}

func (c *Cleaner) done(p *partition.Partition, err error) {
	c.mu.Lock()
	delete(c.mu.busy, p)
	if err != nil {
		if st := c.mu.state[p.Log().Dir()]; st != nil {
			st.failed = true
		}
	}
	c.mu.Unlock()
	// A partition closed under the pass (its topic deleted, the broker
	// stopping) is no failure.
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, segment.ErrClosed) {
		c.stats.Failures.Add(1)
		c.log.Warn("log cleaner: cleaning failed; trying again later",
			"partition", partition.Name(p.Topic, p.Index), "err", err)
	}
}

// state returns the cleaner's state of p, made on first use.
func (c *Cleaner) state(p *partition.Partition) *partState {
	c.mu.Lock()
	defer c.mu.Unlock()
	dir := p.Log().Dir()
	st := c.mu.state[dir]
	if st == nil {
		st = &partState{topic: p.Topic, index: p.Index}
		c.mu.state[dir] = st
	}
	return st
}

// loadCheckpoint returns p's checkpoint, read from its folder the first
// time. A file that cannot be used is logged and taken as no checkpoint.
func (c *Cleaner) loadCheckpoint(p *partition.Partition, st *partState) checkpoint {
	c.mu.Lock()
	ck := st.ck
	c.mu.Unlock()
	if ck != nil {
		return *ck
	}
	l := p.Log()
	got, err := readCheckpoint(l.FS(), l.Dir())
	if err != nil {
		c.log.Warn("log cleaner: the cleaner checkpoint cannot be used; cleaning from the log start",
			"partition", partition.Name(p.Topic, p.Index), "err", err)
	}
	c.mu.Lock()
	st.ck = &got
	c.mu.Unlock()
	return got
}

func (c *Cleaner) storeCheckpoint(p *partition.Partition, st *partState, ck checkpoint) error {
	l := p.Log()
	err := writeCheckpoint(l.FS(), l.Dir(), ck)
	c.mu.Lock()
	st.ck = &ck // used in memory whether or not it reached the disk
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("cleaner: writing %s: %w", filepath.Join(l.Dir(), CheckpointFile), err)
	}
	return nil
}

// DirtyRatio is one partition's dirty ratio as of the cleaner's last look.
type DirtyRatio struct {
	Topic     string
	Partition int32
	Ratio     float64
}

// DirtyRatios returns the dirty ratio of every compacted partition the
// cleaner has looked at.
func (c *Cleaner) DirtyRatios() []DirtyRatio {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]DirtyRatio, 0, len(c.mu.state))
	for _, st := range c.mu.state {
		out = append(out, DirtyRatio{Topic: st.topic, Partition: st.index, Ratio: st.dirty})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// Forget drops what the cleaner keeps of partitions no longer hosted.
func (c *Cleaner) Forget() {
	live := map[string]bool{}
	for _, p := range c.parts.Partitions() {
		live[p.Log().Dir()] = true
	}
	c.mu.Lock()
	for dir := range c.mu.state {
		if !live[dir] {
			delete(c.mu.state, dir)
		}
	}
	c.mu.Unlock()
}

// trust returns what of ck still describes the log: a follower that cut
// its log back into (or below) the clean section and wrote it again holds
// records there that no pass has seen, so the clean section ends before
// the first segment that changed since its last pass (another size), or
// before the active segment when the clean offset lies past the log end.
func trust(l *segment.Log, segs []*segment.Segment, ck checkpoint) checkpoint {
	if ck.cleanOffset > l.LogEndOffset() {
		all := l.Segments()
		ck = ck.without(all[len(all)-1].Base())
	}
	for _, s := range segs {
		if cs, ok := ck.cleaned[s.Base()]; ok && cs.size != s.Size() {
			return ck.without(s.Base())
		}
	}
	return ck
}

// dirty describes a partition's dirty section.
type dirty struct {
	ck       checkpoint // the part of the stored checkpoint still true
	clean    int64      // the clean offset, within the log
	from, to int        // sealed segments [from, to) are (partly) dirty and cleanable
	ratio    float64
	firstTS  int64 // first timestamp of the first dirty segment; -1 unknown
	tombs    bool  // some cleaned segment is past its tombstone horizon
}

func (d dirty) cleanable(cfg partition.Config, now time.Time, force bool) bool {
	if force {
		return d.to > d.from || d.tombs
	}
	if d.to <= d.from {
		return false
	}
	if d.ratio >= cfg.MinCleanableDirtyRatio {
		return true
	}
	return d.firstTS >= 0 && cfg.MaxCompactionLagMs < now.UnixMilli() && d.firstTS < now.UnixMilli()-cfg.MaxCompactionLagMs
}

// dirtySection measures p's dirty section from its sealed segments (those
// synced) and its checkpoint, reading at most one batch header.
func (c *Cleaner) dirtySection(p *partition.Partition, st *partState, now time.Time) (dirty, error) {
	l := p.Log()
	segs := l.SealedSegments()
	defer release(segs)
	ck := c.loadCheckpoint(p, st)
	return c.measure(p, l, segs, ck, now)
}

func (c *Cleaner) measure(p *partition.Partition, l *segment.Log, segs []*segment.Segment, ck checkpoint, now time.Time) (dirty, error) {
	cfg := p.Config()
	d := dirty{firstTS: -1}
	d.ck = trust(l, segs, ck)
	d.clean = max(d.ck.cleanOffset, l.LogStartOffset())
	var cleanBytes, dirtyBytes int64
	// Only segments below the last stable offset are cleaned: records of
	// open transactions stay, and a transaction's records are mapped only
	// once its marker says whether it committed.
	lso := p.LastStableOffset()
	d.from = len(segs)
	for i, s := range segs {
		if s.NextOffset() <= d.clean {
			cleanBytes += s.Size()
			if cs, ok := d.ck.cleaned[s.Base()]; ok && now.UnixMilli()-cs.ms >= cfg.DeleteRetentionMs {
				d.tombs = true
			}
			continue
		}
		if d.from == len(segs) {
			d.from = i
		}
		if s.NextOffset() > lso {
			break // this one and later ones hold unstable transactions
		}
		if cfg.MinCompactionLagMs > 0 {
			ts, err := l.SegmentMaxTimestamp(s)
			if err != nil {
				return d, err
			}
			if ts > now.UnixMilli()-cfg.MinCompactionLagMs {
				break // this one and later ones are too new
			}
		}
		dirtyBytes += s.Size()
		d.to = i + 1
	}
	if d.to < d.from {
		d.to = d.from
	}
	if total := cleanBytes + dirtyBytes; total > 0 {
		d.ratio = float64(dirtyBytes) / float64(total)
	}
	if d.to > d.from && cfg.MaxCompactionLagMs < 1<<63-1 {
		_, err := segs[d.from].ReadBatches(nil, func(h *segment.Header, _ []byte) (bool, error) {
			d.firstTS = h.BaseTimestamp
			return false, nil
		})
		if err != nil {
			return d, err
		}
	}
	return d, nil
}

func release(segs []*segment.Segment) {
	for _, s := range segs {
		s.Release()
	}
}
