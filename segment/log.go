package segment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runnel-io/runnel/internal/vfs"
)

// Defaults, as Kafka's topic configs.
const (
	DefaultSegmentBytes  = 1 << 30            // segment.bytes
	DefaultSegmentAge    = 7 * 24 * time.Hour // segment.ms
	DefaultRetentionAge  = 7 * 24 * time.Hour // retention.ms
	DefaultIndexInterval = 4096               // index.interval.bytes
)

// Options configure a Log. Zero values take the defaults; Open copies them.
type Options struct {
	// Index stores the partition's offset and time index. Required.
	Index Index
	// FS is the file system the log's files are on. Nil: vfs.Default, the
	// real one. Tests give a vfs.MemFS to simulate crashes.
	FS vfs.FS
	// SegmentBytes is the size at which the active segment rolls.
	SegmentBytes int64
	// SegmentAge rolls a non-empty active segment this long after this
	// process first wrote to it (or found it holding data at open).
	SegmentAge time.Duration
	// RetentionBytes deletes the oldest sealed segments while the log
	// would stay at least this big without them. Negative: no limit (the
	// default, as Kafka's -1); zero is taken as "unset" too.
	RetentionBytes int64
	// RetentionAge deletes sealed segments whose newest timestamp is older.
	// Negative: keep forever.
	RetentionAge time.Duration
	// IndexInterval is the number of log bytes between index entries.
	IndexInterval int
	// Fsync is the durability policy.
	Fsync FsyncPolicy
	// Logger gets recovery and error reports. Nil: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// OnDurable, if set, is called with the new durable end each time more
	// of the log reaches the disk, after a flush of the syncer (no log lock
	// held). It must not block and must not call back into the log.
	OnDurable func(durableEnd int64)
	// ObserveSync, if set, is told how long each fdatasync took (group
	// commits and seals), for metrics. It must not block.
	ObserveSync func(time.Duration)
	// Compacted says the log may hold offset gaps: its records are
	// compacted (cleanup.policy has compact), by this replica's cleaner or
	// by the leader it copies from. Recovery and AppendReplica then take a
	// batch whose base offset is past the one expected, as long as offsets
	// only grow; otherwise a gap is damage and recovery cuts there.
	Compacted bool
	// ObserveGroupCommit, if set, is told after each flush of the syncer
	// how many batches it made durable that no flush before it had. It
	// must not block.
	ObserveGroupCommit func(batches int64)
	// SyncGroup, if set, lets the syncer's flushes share one sync of the
	// file system with other logs' flushes of the same moment (see
	// SyncGroup). The log does not own it.
	SyncGroup *SyncGroup
	// OnRoll, if set, is told the base offset of each new segment, with
	// the log lock held. It must not block and must not call back into
	// the log.
	OnRoll func(base int64)
}

func (o Options) withDefaults() (Options, error) {
	if o.Index == nil {
		return o, errors.New("segment: Options.Index is required")
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.SegmentBytes < HeaderSize {
		return o, fmt.Errorf("segment: segment size %d is below one batch header", o.SegmentBytes)
	}
	if o.SegmentAge == 0 {
		o.SegmentAge = DefaultSegmentAge
	}
	if o.RetentionBytes == 0 {
		o.RetentionBytes = -1
	}
	if o.RetentionAge == 0 {
		o.RetentionAge = DefaultRetentionAge
	}
	if o.IndexInterval <= 0 {
		o.IndexInterval = DefaultIndexInterval
	}
	if o.Fsync.Mode == FsyncInterval && o.Fsync.Interval <= 0 {
		return o, errors.New("segment: interval fsync policy needs a positive interval")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// Limits are the options of a Log that may change while it is open, when
// its topic's config changes. Zero values take the defaults, as in Options.
type Limits struct {
	SegmentBytes   int64
	SegmentAge     time.Duration
	RetentionBytes int64
	RetentionAge   time.Duration
	IndexInterval  int
	// Compacted, once set, stays set until the log closes: records
	// compacted away leave gaps that a later policy does not close.
	Compacted bool
}

// Limits returns the options' limits.
func (o Options) Limits() Limits {
	return Limits{SegmentBytes: o.SegmentBytes, SegmentAge: o.SegmentAge, RetentionBytes: o.RetentionBytes,
		RetentionAge: o.RetentionAge, IndexInterval: o.IndexInterval, Compacted: o.Compacted}
}

// SetLimits changes the limits of an open log from the next append, roll,
// retention run or rewrite on. A new segment size applies to segments
// created after it: the active segment keeps the mapping it has, and
// rolls at the smaller of the two sizes.
func (l *Log) SetLimits(x Limits) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.opts
	o.SegmentBytes, o.SegmentAge, o.RetentionBytes, o.RetentionAge = x.SegmentBytes, x.SegmentAge, x.RetentionBytes, x.RetentionAge
	o.IndexInterval, o.Compacted = x.IndexInterval, x.Compacted || l.opts.Compacted
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	// Field by field: the others are read without the lock.
	l.opts.SegmentBytes, l.opts.SegmentAge, l.opts.RetentionBytes, l.opts.RetentionAge = o.SegmentBytes, o.SegmentAge, o.RetentionBytes, o.RetentionAge
	l.opts.IndexInterval, l.opts.Compacted = o.IndexInterval, o.Compacted
	return nil
}

// Log is the log of one partition replica: ordered segments in one folder.
//
// Appends, rolls, retention, truncation and Close are serialised by the
// log's lock. Reads take no lock: they load the segment list (replaced
// whole on every change) and hold a reference on the segment they read.
type Log struct {
	dir  string
	opts Options
	fs   vfs.FS
	idx  Index
	log  *slog.Logger

	segs     atomic.Pointer[[]*Segment] // ordered by base; the last is active
	logStart atomic.Int64
	leo      atomic.Int64 // log end offset: the next offset to assign

	sync syncer
	// flushedBatches is mu.appended as the last flush found it; only the
	// syncer's flush (one at a time) touches it.
	flushedBatches int64

	mu struct {
		sync.Mutex
		closed     bool
		sinceIndex int64 // log bytes since the last index entry
		appended   int64 // batches appended since Open
		maxTS      int64 // running maximum timestamp (see IndexEntry)
		timer      *time.Timer
		// unsynced are sealed segments whose seal the syncer has not yet
		// made durable, oldest first; each holds a reference of its own.
		unsynced []*Segment
		// pending is the checkpoint at the start of the segment the last
		// roll created, written once every segment before it is synced.
		pending *Checkpoint
	}
}

// AppendResult says where an appended batch went.
type AppendResult struct {
	BaseOffset int64
	LastOffset int64
	Segment    int64 // base offset of the segment holding it
	Position   int64 // byte position in that segment
}

// Dir returns the log's folder.
func (l *Log) Dir() string { return l.dir }

// FS returns the file system the log is on, for the side files that live
// in its folder.
func (l *Log) FS() vfs.FS { return l.fs }

// LogStartOffset returns the first offset the log holds.
func (l *Log) LogStartOffset() int64 { return l.logStart.Load() }

// LogEndOffset returns the offset the next appended record will get.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// Segments returns the current segments, oldest first. The slice must not be
// modified; segments in it may be removed at any time unless acquired.
func (l *Log) Segments() []*Segment { return *l.segs.Load() }

// Size returns the bytes held by all segments.
func (l *Log) Size() int64 {
	var n int64
	for _, s := range l.Segments() {
		n += s.Size()
	}
	return n
}

func (l *Log) active() *Segment {
	segs := *l.segs.Load()
	return segs[len(segs)-1]
}

func (l *Log) setSegments(segs []*Segment) { l.segs.Store(&segs) }

// Append assigns offsets to one RecordBatch v2, sets its partition leader
// epoch, and appends it. The batch is validated whole first (Validate: header,
// length, CRC-32C), because a bad batch on disk would make recovery cut the
// log there. The bytes are copied once, into the segment's mapping.
//
// Append does not wait for durability: call WaitDurable with the result's
// LastOffset+1 before acknowledging.
func (l *Log) Append(batch []byte, leaderEpoch int32) (AppendResult, error) {
	h, err := Validate(batch)
	if err != nil {
		return AppendResult{}, err
	}
	return l.append(batch, h, leaderEpoch, true)
}

// AppendValidated is Append for a caller that has just validated the batch
// itself (Validate returned h for exactly these bytes), so the CRC is not
// computed twice on the produce path.
func (l *Log) AppendValidated(batch []byte, h Header, leaderEpoch int32) (AppendResult, error) {
	return l.append(batch, h, leaderEpoch, true)
}

// AppendReplica appends a batch that already carries its offsets, as a
// follower does with batches fetched from its leader. The batch's base
// offset must be the log end offset, or past it in a compacted log (the
// leader's cleaner removed the offsets between).
func (l *Log) AppendReplica(batch []byte) (AppendResult, error) {
	h, err := Validate(batch)
	if err != nil {
		return AppendResult{}, err
	}
	return l.append(batch, h, 0, false)
}

func (l *Log) append(batch []byte, h Header, leaderEpoch int32, assign bool) (AppendResult, error) {
	var err error
	if h.Size() != len(batch) {
		return AppendResult{}, fmt.Errorf("%w: batch length says %d bytes, got %d", ErrShortBatch, h.Size(), len(batch))
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if int64(len(batch)) > l.opts.SegmentBytes {
		return AppendResult{}, fmt.Errorf("%w: %d bytes, segment size %d", ErrBatchTooLarge, len(batch), l.opts.SegmentBytes)
	}
	if l.mu.closed {
		return AppendResult{}, ErrClosed
	}
	if err := l.failed(); err != nil {
		return AppendResult{}, err
	}
	base := l.leo.Load()
	if !assign && (h.BaseOffset < base || (h.BaseOffset > base && !l.opts.Compacted)) {
		return AppendResult{}, fmt.Errorf("%w: replica batch at %d, log end is %d", ErrOffsetSequence, h.BaseOffset, base)
	}
	seg := l.active()
	if l.shouldRollLocked(seg, len(batch)) {
		if seg, err = l.rollLocked(); err != nil {
			return AppendResult{}, err
		}
	}
	if !assign {
		base = h.BaseOffset
	}
	pos, err := seg.append(batch, assign, base, leaderEpoch)
	if err != nil {
		return AppendResult{}, err
	}
	next := base + int64(h.LastOffsetDelta) + 1
	if h.MaxTimestamp > l.mu.maxTS {
		l.mu.maxTS = h.MaxTimestamp
	}
	if pos == 0 || l.mu.sinceIndex >= int64(l.opts.IndexInterval) {
		e := IndexEntry{Offset: base, Segment: seg.base, Position: pos, MaxTimestamp: l.mu.maxTS}
		if err := l.idx.Add(e); err != nil {
			// The index is derived; a failed add costs a longer walk, not data.
			l.log.Warn("index add failed", "dir", l.dir, "offset", base, "err", err)
		}
		l.mu.sinceIndex = 0
	}
	l.mu.sinceIndex += int64(len(batch))
	l.mu.appended++
	seg.lastOffset = next - 1
	if h.MaxTimestamp > seg.maxTimestamp {
		seg.maxTimestamp = h.MaxTimestamp
	}
	if seg.rollClock < 0 {
		seg.rollClock = l.opts.Now().UnixMilli()
	}
	l.leo.Store(next)
	seg.publish(pos+int64(len(batch)), next)
	if l.opts.Fsync.Mode == FsyncNever && seg.unreleased() >= releaseEvery {
		// No flush of ours releases the pages ahead of their write-back
		// by the kernel's flusher threads; do it every few MiB.
		seg.releaseWritten()
	}

	if l.opts.Fsync.Mode == FsyncInterval && l.mu.timer == nil {
		l.mu.timer = time.AfterFunc(l.opts.Fsync.Interval, l.intervalFlush)
	}
	return AppendResult{BaseOffset: base, LastOffset: next - 1, Segment: seg.base, Position: pos}, nil
}

func (l *Log) intervalFlush() {
	l.mu.Lock()
	l.mu.timer = nil
	l.mu.Unlock()
	l.sync.request(l.leo.Load())
}

// WaitDurable returns once the durability policy allows acknowledging every
// offset below next: under FsyncAlways when they are on disk, under the
// other policies at once. It fails if the log went offline or ctx ended.
func (l *Log) WaitDurable(ctx context.Context, next int64) error {
	if l.opts.Fsync.Mode != FsyncAlways {
		return l.failed()
	}
	return l.sync.wait(ctx, next)
}

// RequestSync starts a flush of everything appended so far without waiting
// for it, whatever the policy.
func (l *Log) RequestSync() { l.sync.request(l.leo.Load()) }

// Flush makes everything appended so far durable, whatever the policy,
// and the seals of every segment rolled so far: after it, SealedSegments
// lists every sealed segment.
func (l *Log) Flush(ctx context.Context) error {
	if err := l.sync.wait(ctx, l.leo.Load()); err != nil {
		return err
	}
	l.mu.Lock()
	pending := len(l.mu.unsynced) > 0 && !l.mu.closed
	l.mu.Unlock()
	if !pending {
		return nil
	}
	// A roll after everything was durable: its seal is the syncer's to
	// sync, soon; do it now.
	if _, err := l.flushActive(); err != nil {
		l.sync.fail(err)
		return l.failed()
	}
	return nil
}

func (l *Log) failed() error {
	l.sync.mu.Lock()
	defer l.sync.mu.Unlock()
	return l.sync.err
}

// flushActive is the syncer's flush: fdatasync the segments sealed since
// the last flush, then the active segment, which together cover everything
// appended. Once the sealed ones are on disk, the checkpoint of the last
// roll is written: recovery may then trust everything before it.
func (l *Log) flushActive() (int64, error) {
	l.mu.Lock()
	seg := l.active()
	upto := l.leo.Load()
	sealed := append([]*Segment(nil), l.mu.unsynced...)
	for _, s := range sealed {
		s.Acquire() // cannot fail: the list holds a reference
	}
	ck := l.mu.pending
	ok := seg.Acquire()
	appended := l.mu.appended
	l.mu.Unlock()
	defer func() {
		for _, s := range sealed {
			s.Release()
		}
	}()
	if !ok {
		return 0, ErrClosed
	}
	defer seg.Release()
	seg.releaseWritten()
	own, done := l.ownSync(sealed, seg)
	if own {
		took, err := l.syncOwn(sealed, seg)
		if done != nil {
			done(took)
		}
		if err != nil {
			return 0, err
		}
	}
	if appended > l.flushedBatches {
		if l.opts.ObserveGroupCommit != nil {
			l.opts.ObserveGroupCommit(appended - l.flushedBatches)
		}
		l.flushedBatches = appended
	}
	if len(sealed) > 0 || ck != nil {
		l.mu.Lock()
		l.dropUnsyncedLocked(sealed)
		if ck != nil && l.mu.pending == ck {
			// Not replaced by a later roll, nor dropped by a truncation.
			l.mu.pending = nil
			if err := l.idx.SetCheckpoint(*ck, false); err != nil {
				l.log.Warn("index: writing recovery checkpoint failed", "dir", l.dir, "err", err)
			}
		}
		l.mu.Unlock()
	}
	return upto, nil
}

// dropUnsyncedLocked takes the given segments, now synced, off the list of
// unsynced seals and drops the list's references on them.
func (l *Log) dropUnsyncedLocked(synced []*Segment) {
	keep := l.mu.unsynced[:0]
	for _, s := range l.mu.unsynced {
		if slices.Contains(synced, s) {
			s.Release()
		} else {
			keep = append(keep, s)
		}
	}
	clear(l.mu.unsynced[len(keep):])
	l.mu.unsynced = keep
}

// releaseUnsyncedLocked empties the list of unsynced seals, dropping its
// references, when each of them is synced or removed.
func (l *Log) releaseUnsyncedLocked() {
	for _, s := range l.mu.unsynced {
		s.Release()
	}
	l.mu.unsynced = nil
}

// syncSealedLocked syncs every sealed segment not yet synced, as truncation
// and Close must before they write a checkpoint of their own, and drops the
// last roll's pending checkpoint, which theirs replaces.
func (l *Log) syncSealedLocked() error {
	for _, s := range l.mu.unsynced {
		if err := l.timedSync(s); err != nil {
			return err
		}
	}
	l.releaseUnsyncedLocked()
	l.mu.pending = nil
	return nil
}

func (l *Log) shouldRollLocked(seg *Segment, n int) bool {
	if seg.Size() == 0 {
		return false
	}
	if !seg.room(n) || seg.Size()+int64(n) > l.opts.SegmentBytes {
		return true
	}
	if seg.rollClock >= 0 {
		return l.opts.Now().Sub(time.UnixMilli(seg.rollClock)) >= l.opts.SegmentAge
	}
	return false
}

// Roll seals the active segment and starts a new one, if the active segment
// holds anything.
func (l *Log) Roll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if l.active().Size() == 0 {
		return nil
	}
	_, err := l.rollLocked()
	return err
}

// RollAt starts a new segment at base, as Roll does, in a follower that
// copies a compacted leader: the leader's segment starts at base but its
// first batches may have been cleaned away, so base may lie past the log
// end. The offsets between the log end and base are then a gap, as on the
// leader. Past the log end in a log that is not Compacted, RollAt fails.
func (l *Log) RollAt(base int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if err := l.failed(); err != nil {
		return err
	}
	leo := l.leo.Load()
	switch {
	case base < leo:
		return fmt.Errorf("%w: roll at %d below the log end %d", ErrOffsetSequence, base, leo)
	case base > leo && !l.opts.Compacted:
		return fmt.Errorf("%w: roll at %d past the log end %d", ErrOffsetSequence, base, leo)
	}
	if l.active().Size() == 0 && l.active().base == base {
		return nil
	}
	l.leo.Store(base)
	_, err := l.rollLocked()
	return err
}

// rollLocked seals the active segment (unmapped and cut to size) and
// creates the next one. The sealed segment's fdatasync, whatever the
// policy, is left to the syncer, which starts at once: the appends that
// follow do not wait for it (under FsyncAlways their acknowledgements do).
// Until it is done the recovery checkpoint stays where it was, so a crash
// before then scans the sealed segment again.
func (l *Log) rollLocked() (*Segment, error) {
	old := l.active()
	if err := old.seal(); err != nil {
		err = fmt.Errorf("%w: %w", ErrOffline, err)
		l.sync.fail(err)
		l.log.Error("partition offline: sealing a segment failed", "dir", l.dir, "err", err)
		return nil, err
	}
	next := l.leo.Load()
	if err := l.idx.SetSegmentInfo(old.base, SegmentInfo{Size: old.Size(), LastOffset: old.lastOffset, MaxTimestamp: old.maxTimestamp}); err != nil {
		l.log.Warn("index: recording segment info failed", "dir", l.dir, "err", err)
	}
	seg, err := createSegment(l.fs, l.dir, next, l.mapSize())
	if errors.Is(err, vfs.ErrSyncFailed) {
		// The new file's entry may or may not survive a crash, and a
		// second directory sync would prove nothing.
		old.activate() // readers walk it mapped until the log is reopened
		return nil, l.offline(fmt.Errorf("roll %s at offset %d: %w", l.dir, next, err))
	}
	if err != nil {
		// The sealed segment stays active in name; the next append retries.
		// It cannot append to it again because it is unmapped, so re-map it.
		if aerr := old.activate(); aerr != nil {
			l.sync.fail(fmt.Errorf("%w: %w", ErrOffline, aerr))
		}
		return nil, fmt.Errorf("segment: roll %s at offset %d: %w", l.dir, next, err)
	}
	segs := append(append([]*Segment(nil), l.Segments()...), seg)
	l.setSegments(segs)
	if l.opts.OnRoll != nil {
		l.opts.OnRoll(next)
	}
	l.mu.sinceIndex = 0
	old.Acquire() // cannot fail: the segment list holds a reference
	l.mu.unsynced = append(l.mu.unsynced, old)
	l.mu.pending = &Checkpoint{Segment: next, Position: 0, NextOffset: next, MaxTimestamp: l.mu.maxTS}
	l.sync.requestFlush(next)
	l.log.Debug("rolled segment", "dir", l.dir, "sealed", old.path, "size", old.Size(), "next", next)
	return seg, nil
}

func (l *Log) mapSize() int64 { return l.opts.SegmentBytes }

// checkpointLocked records the active segment's end as a recovery point.
// The caller must have made everything before it durable.
func (l *Log) checkpointLocked(clean, sync bool) {
	seg := l.active()
	c := Checkpoint{Segment: seg.base, Position: seg.Size(), NextOffset: l.leo.Load(), MaxTimestamp: l.mu.maxTS, Clean: clean}
	if err := l.idx.SetCheckpoint(c, sync); err != nil {
		l.log.Warn("index: writing recovery checkpoint failed", "dir", l.dir, "err", err)
	}
}

// Close flushes the log, cuts the active segment to size, writes a clean
// checkpoint and releases the segments; readers holding a reference keep
// theirs until they release it. Close is idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return nil
	}
	l.mu.closed = true
	if l.mu.timer != nil {
		l.mu.timer.Stop()
		l.mu.timer = nil
	}
	l.mu.Unlock()
	l.sync.stop()

	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.failed() == nil {
		if err = l.syncSealedLocked(); err == nil {
			if err = l.active().seal(); err == nil {
				if err = l.active().sync(); err == nil {
					l.checkpointLocked(true, false)
					// Waiters that arrived after the syncer stopped are
					// answered by this sync.
					l.sync.advance(l.leo.Load(), false)
				}
			}
		}
	}
	l.releaseUnsyncedLocked()
	for _, s := range l.Segments() {
		s.Release()
	}
	l.sync.fail(ErrClosed)
	return err
}

// segmentFor returns the segment that would hold offset: the last one whose
// base is at or below it.
func segmentFor(segs []*Segment, offset int64) int {
	return sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
}

// syncDir syncs the log's folder after files were created or removed.
func (l *Log) syncDir() error { return l.fs.SyncDir(l.dir) }

// ownSync hands a flush's files to the sync group, if there is one, and
// says whether the log must still fdatasync them itself: without a group,
// when the group leaves them to it, or when a file's earlier sync failed
// (its own sync answers with that failure; a syncfs would not). done, if
// not nil, must be told when those fdatasyncs are over and the time they
// took (negative: one failed), for the group's window and its choice.
func (l *Log) ownSync(sealed []*Segment, active *Segment) (own bool, done func(time.Duration)) {
	g := l.opts.SyncGroup
	if g == nil {
		return true, nil
	}
	for _, s := range sealed {
		if l.fs.SyncFailed(s.path) != nil {
			return true, nil
		}
	}
	if l.fs.SyncFailed(active.path) != nil {
		return true, nil
	}
	return g.flush(len(sealed) + 1)
}

// syncOwn fdatasyncs the sealed segments and then the active one, and
// returns the time that took, or -1 and the error (the log goes offline)
// if one failed.
func (l *Log) syncOwn(sealed []*Segment, active *Segment) (time.Duration, error) {
	start := time.Now()
	for _, s := range sealed {
		if err := l.timedSync(s); err != nil {
			l.log.Error("partition offline: fdatasync of a sealed segment failed", "dir", l.dir, "segment", s.path, "err", err)
			return -1, fmt.Errorf("%w: %w", ErrOffline, err)
		}
	}
	if err := l.timedSync(active); err != nil {
		l.log.Error("partition offline: fdatasync failed", "dir", l.dir, "segment", active.path, "err", err)
		return -1, fmt.Errorf("%w: %w", ErrOffline, err)
	}
	return time.Since(start), nil
}

// timedSync syncs seg and reports the time it took.
func (l *Log) timedSync(seg *Segment) error {
	if l.opts.ObserveSync == nil {
		return seg.sync()
	}
	start := time.Now()
	err := seg.sync()
	l.opts.ObserveSync(time.Since(start))
	return err
}
