// Package index keeps runnel's offset and time indexes in Pebble: one
// database per broker, holding every partition.
//
// # Layout (on-disk format; never change silently)
//
// Keys start with a kind byte and (but for 'v') the partition name, closed
// by a 0x00 byte (partition names never contain it). Integers are big-endian; timestamps
// have their sign bit flipped so that they sort as signed numbers.
//
//	'o' name 0x00 offset(8)           → segment(8) position(8) maxTimestamp(8)
//	't' name 0x00 maxTimestamp(8) offset(8) → segment(8) position(8)
//	'c' name 0x00                     → segment(8) position(8) nextOffset(8)
//	                                    maxTimestamp(8) clean(1)
//	's' name 0x00 segmentBase(8)      → size(8) lastOffset(8) maxTimestamp(8)
//	'a' name 0x00 markerOffset(8)     → producerID(8) firstOffset(8) lastStableOffset(8)
//	'e' name 0x00                     → abortedIndexEnd(8)
//	'v'                               → formatVersion(4)
//
// The aborted-transaction index ('a', from version 2) holds one entry per
// abort marker; 'e' is the offset below which it is complete (txn.go).
//
// The offset index ('o') is sparse: the log adds an entry every few KiB. The
// time index ('t') holds the same entries keyed by the running maximum
// timestamp, which never decreases along the log, so both orders agree.
//
// The 'v' key holds the format version of the database (FormatVersion),
// written at open; a database without it is version 1, the format above
// without 'a' and 'e', and is marked version 2 when opened. A
// database of a newer version does not open (ErrVersion): it is derived, so
// the broker moves it aside and rebuilds it.
//
// Everything here is derived from the segment files and rebuilt by recovery.
// Writes are batched in memory per partition and committed without fsync;
// only checkpoints may ask for a sync, and Pebble's write-ahead log keeps them
// in order with the entries before them.
package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/runnel-io/runnel/internal/pebblelog"
	rvfs "github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/segment"
)

// ErrClosed is returned by every Partition method once the DB is closed.
var ErrClosed = errors.New("index: closed")

// ErrCorrupt is returned by Open when Pebble finds its files damaged.
// Everything here can be rebuilt from the segments (see Rebuild).
var ErrCorrupt = errors.New("index: corrupt")

// ErrNoSpace is returned by Open when the file system is full: opening
// replays Pebble's write-ahead log and writes new files, so a database
// that a crash left with unflushed writes cannot open on a full disk.
var ErrNoSpace = errors.New("index: no space left on device")

// ErrVersion is returned by Open when the database was written in a
// format version newer than FormatVersion, by a newer broker. Everything
// here can be rebuilt from the segments (see MoveAside).
var ErrVersion = errors.New("index: unknown format version")

// pendingLimit is how many entries a partition buffers before committing them.
const pendingLimit = 64

// Options configure Open.
type Options struct {
	// Logger receives Pebble's own messages at debug level. Nil: slog.Default().
	Logger *slog.Logger
	// CacheSize is Pebble's block cache in bytes. Zero: 8 MiB.
	CacheSize int64
	// InMemory keeps the database in memory only: nothing is written
	// under dir, and everything is lost at Close. For a broker that
	// cannot open its index on disk; its next start rebuilds one.
	InMemory bool
	// FS, if set, is the file system Pebble uses (tests inject faults
	// with it). Nil: the operating system's.
	FS vfs.FS
}

// DB is the index database of one broker.
type DB struct {
	db     *pebble.DB
	dir    string
	closed atomic.Bool
}

// Open opens or creates the index database in dir.
func Open(dir string, opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	po := &pebble.Options{Logger: pebblelog.Logger{L: logger, Component: "index"}, FS: opts.FS}
	if opts.InMemory {
		po.FS = vfs.NewMem()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return nil, fmt.Errorf("%w: create %s: %w", ErrNoSpace, dir, err)
		}
		return nil, fmt.Errorf("index: create %s: %w", dir, err)
	}
	if opts.CacheSize > 0 {
		c := pebble.NewCache(opts.CacheSize)
		defer c.Unref()
		po.Cache = c
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		if pebble.IsCorruptionError(err) {
			return nil, fmt.Errorf("%w: open %s: %w", ErrCorrupt, dir, err)
		}
		if errors.Is(err, syscall.ENOSPC) {
			return nil, fmt.Errorf("%w: open %s: %w", ErrNoSpace, dir, err)
		}
		return nil, fmt.Errorf("index: open %s: %w", dir, err)
	}
	if err := checkVersion(db, dir); err != nil {
		db.Close()
		return nil, err
	}
	return &DB{db: db, dir: dir}, nil
}

// checkVersion reads the database's format version, and writes it to a
// database that has none (a new one, or one written before the version
// key existed, which is version 1). A database of a newer version is
// refused with ErrVersion; a version that does not decode is ErrCorrupt.
func checkVersion(db *pebble.DB, dir string) error {
	v, closer, err := db.Get(versionKey)
	if errors.Is(err, pebble.ErrNotFound) {
		// Without sync: until the key is durable, its absence says the same.
		b := versionValue(FormatVersion)
		if err := db.Set(versionKey, b[:], pebble.NoSync); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return fmt.Errorf("%w: %s: writing the format version: %w", ErrNoSpace, dir, err)
			}
			return fmt.Errorf("index: %s: writing the format version: %w", dir, err)
		}
		return nil
	}
	if err != nil {
		if pebble.IsCorruptionError(err) {
			return fmt.Errorf("%w: %s: reading the format version: %w", ErrCorrupt, dir, err)
		}
		return fmt.Errorf("index: %s: reading the format version: %w", dir, err)
	}
	version, derr := decodeVersion(v)
	closer.Close()
	switch {
	case derr != nil:
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, dir, derr)
	case version > FormatVersion:
		return fmt.Errorf("%w: %s is in format version %d; this broker reads version %d", ErrVersion, dir, version, FormatVersion)
	case version < FormatVersion:
		// Version 1 is version 2 without its new kinds: mark it, so
		// that an older broker, which would leave those kinds behind,
		// does not take it for its own.
		b := versionValue(FormatVersion)
		if err := db.Set(versionKey, b[:], pebble.NoSync); err != nil {
			return fmt.Errorf("index: %s: writing the format version: %w", dir, err)
		}
	}
	return nil
}

// MoveAside renames a damaged index directory out of the way (to
// dir.damaged-UNIXNANO, kept for inspection), so that Open starts an empty
// one and recovery rebuilds it from the segments. It returns the new name.
func MoveAside(dir string) (string, error) {
	to := fmt.Sprintf("%s.damaged-%d", dir, time.Now().UnixNano())
	if err := os.Rename(dir, to); err != nil {
		return "", fmt.Errorf("index: moving %s aside: %w", dir, err)
	}
	if err := rvfs.Default.SyncDir(filepath.Dir(dir)); err != nil {
		return "", fmt.Errorf("index: moving %s aside: %w", dir, err)
	}
	return to, nil
}

// Sync makes every write so far durable.
func (d *DB) Sync() error {
	if err := d.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("index: sync: %w", err)
	}
	return nil
}

// Close syncs and closes the database. Partitions must have been flushed by
// their logs first (Log.Close does that).
func (d *DB) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	serr := d.Sync()
	cerr := d.db.Close()
	d.db = nil
	if cerr != nil {
		return fmt.Errorf("index: close: %w", cerr)
	}
	return serr
}

// Partition returns the index of one partition. name is the partition's
// folder name ("topic-0"); it must not contain a 0x00 byte.
func (d *DB) Partition(name string) *Partition {
	p := &Partition{db: d.db, owner: d, name: []byte(name)}
	lo, hi := p.bounds(kindOffset)
	p.offsetIter = pebble.IterOptions{LowerBound: lo, UpperBound: hi}
	return p
}

// Partition is one partition's index. It implements segment.Index.
type Partition struct {
	db    *pebble.DB
	owner *DB
	name  []byte
	// offsetIter bounds iterators to the offset index; built once, as
	// Floor runs on every fetch. Pebble copies it and never changes it.
	offsetIter pebble.IterOptions

	mu struct {
		sync.Mutex
		pending []segment.IndexEntry // added, not yet committed; in offset order
	}
}

var _ segment.Index = (*Partition)(nil)

func (p *Partition) prefix(kind byte, extra int) []byte {
	return keyPrefix(kind, p.name, extra)
}

// bounds returns the key range of one kind for this partition.
func (p *Partition) bounds(kind byte) (lo, hi []byte) {
	lo = p.prefix(kind, 0)
	hi = append(lo[:len(lo)-1:len(lo)-1], 1)
	return lo, hi
}

func (p *Partition) offsetKey(offset int64) []byte { return offsetKey(p.name, offset) }

func (p *Partition) timeKey(ts, offset int64) []byte { return timeKey(p.name, ts, offset) }

func (p *Partition) segmentKey(base int64) []byte { return segmentKey(p.name, base) }

func putEntry(b *pebble.Batch, p *Partition, e segment.IndexEntry) error {
	v := offsetValue(e)
	if err := b.Set(p.offsetKey(e.Offset), v[:], nil); err != nil {
		return err
	}
	return b.Set(p.timeKey(e.MaxTimestamp, e.Offset), v[:timeValueSize], nil)
}

// Add buffers an entry and commits the buffer once it is full.
func (p *Partition) Add(e segment.IndexEntry) error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.pending = append(p.mu.pending, e)
	if len(p.mu.pending) >= pendingLimit {
		return p.flushLocked()
	}
	return nil
}

// Flush commits buffered entries (without fsync).
func (p *Partition) Flush() error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flushLocked()
}

func (p *Partition) flushLocked() error {
	if len(p.mu.pending) == 0 {
		return nil
	}
	b := p.db.NewBatch()
	defer b.Close()
	for _, e := range p.mu.pending {
		if err := putEntry(b, p, e); err != nil {
			return fmt.Errorf("index: %s: %w", p.name, err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("index: %s: commit: %w", p.name, err)
	}
	p.mu.pending = p.mu.pending[:0]
	return nil
}

// Floor returns the entry with the largest offset <= offset.
func (p *Partition) Floor(offset int64) (segment.IndexEntry, bool, error) {
	if p.owner.closed.Load() {
		return segment.IndexEntry{}, false, ErrClosed
	}
	if offset < 0 {
		return segment.IndexEntry{}, false, nil // offsets are never negative
	}
	p.mu.Lock()
	if n := len(p.mu.pending); n > 0 && offset >= p.mu.pending[0].Offset {
		i := sort.Search(n, func(i int) bool { return p.mu.pending[i].Offset > offset })
		e := p.mu.pending[i-1]
		p.mu.Unlock()
		return e, true, nil
	}
	p.mu.Unlock()
	if offset == maxInt64 {
		offset--
	}
	// A new iterator per lookup: a Pebble iterator sees the database as it
	// was when made, and the log adds entries all the time. Pebble pools
	// the iterator's memory; the seek key comes from a pool here.
	it, err := p.db.NewIter(&p.offsetIter)
	if err != nil {
		return segment.IndexEntry{}, false, fmt.Errorf("index: %s: %w", p.name, err)
	}
	kb := keyPool.Get().(*[]byte)
	*kb = binary.BigEndian.AppendUint64(append((*kb)[:0], p.offsetIter.LowerBound...), uint64(offset+1))
	found := it.SeekLT(*kb)
	keyPool.Put(kb)
	if !found {
		err := it.Error()
		it.Close()
		return segment.IndexEntry{}, false, err
	}
	e, err := decodeOffsetEntry(it.Key(), it.Value())
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return e, err == nil, err
}

// keyPool holds the buffers Floor builds its seek keys in.
var keyPool = sync.Pool{New: func() any { b := make([]byte, 0, 64); return &b }}

const maxInt64 = 1<<63 - 1

// TimeFloor returns the last entry whose running maximum timestamp is < ts.
func (p *Partition) TimeFloor(ts int64) (segment.IndexEntry, bool, error) {
	if p.owner.closed.Load() {
		return segment.IndexEntry{}, false, ErrClosed
	}
	if err := p.Flush(); err != nil {
		return segment.IndexEntry{}, false, err
	}
	lo, hi := p.bounds(kindTime)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return segment.IndexEntry{}, false, fmt.Errorf("index: %s: %w", p.name, err)
	}
	defer it.Close()
	if !it.SeekLT(p.timeKey(ts, 0)) {
		return segment.IndexEntry{}, false, it.Error()
	}
	e, err := decodeTimeEntry(it.Key(), it.Value())
	if err != nil {
		return segment.IndexEntry{}, false, fmt.Errorf("index: %s: %w", p.name, err)
	}
	return e, true, nil
}

// firstAtOrAfter returns the first committed offset entry with Offset >= offset.
func (p *Partition) firstAtOrAfter(offset int64) (segment.IndexEntry, bool, error) {
	lo, hi := p.bounds(kindOffset)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return segment.IndexEntry{}, false, err
	}
	defer it.Close()
	if !it.SeekGE(p.offsetKey(offset)) {
		return segment.IndexEntry{}, false, it.Error()
	}
	e, err := decodeOffsetEntry(it.Key(), it.Value())
	return e, err == nil, err
}

// TruncateFrom removes entries with offset >= offset.
func (p *Partition) TruncateFrom(offset int64) error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	offset = max(offset, 0)
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := sort.Search(len(p.mu.pending), func(i int) bool { return p.mu.pending[i].Offset >= offset })
	p.mu.pending = p.mu.pending[:keep]
	if err := p.flushLocked(); err != nil {
		return err
	}
	first, ok, err := p.firstAtOrAfter(offset)
	if err != nil || !ok {
		return p.wrap("truncate", err)
	}
	b := p.db.NewBatch()
	defer b.Close()
	_, ohi := p.bounds(kindOffset)
	_, thi := p.bounds(kindTime)
	if err := b.DeleteRange(p.offsetKey(offset), ohi, nil); err != nil {
		return p.wrap("truncate", err)
	}
	if err := b.DeleteRange(p.timeKey(first.MaxTimestamp, first.Offset), thi, nil); err != nil {
		return p.wrap("truncate", err)
	}
	return p.wrap("truncate", b.Commit(pebble.NoSync))
}

// DeleteBefore removes entries with offset < offset.
func (p *Partition) DeleteBefore(offset int64) error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	if offset <= 0 {
		return p.Flush() // nothing is below offset 0; commit what is pending, as always
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.flushLocked(); err != nil {
		return err
	}
	first, ok, err := p.firstAtOrAfter(offset)
	if err != nil {
		return p.wrap("delete", err)
	}
	olo, _ := p.bounds(kindOffset)
	oend := p.offsetKey(offset)
	tlo, thi := p.bounds(kindTime)
	tend := thi
	if ok {
		tend = p.timeKey(first.MaxTimestamp, first.Offset)
	}
	// Write no range deletion over an empty range (see anyKey): a log calls
	// this on every open, usually with nothing to delete.
	oany, err := p.anyKey(olo, oend)
	if err != nil {
		return p.wrap("delete", err)
	}
	tany, err := p.anyKey(tlo, tend)
	if err != nil {
		return p.wrap("delete", err)
	}
	if !oany && !tany {
		return nil
	}
	b := p.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(olo, oend, nil); err != nil {
		return p.wrap("delete", err)
	}
	if err := b.DeleteRange(tlo, tend, nil); err != nil {
		return p.wrap("delete", err)
	}
	return p.wrap("delete", b.Commit(pebble.NoSync))
}

// ReplaceRange replaces the entries with from <= offset < to by entries, in
// one batch: the time index entries of the range lie between those of the
// first entry at or after from and the first at or after to, as running
// maximum timestamps never decrease along the log. sync makes the batch
// durable before returning.
func (p *Partition) ReplaceRange(from, to int64, entries []segment.IndexEntry, sync bool) error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	from, to = max(from, 0), max(to, 0)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.flushLocked(); err != nil {
		return err
	}
	first, ok, err := p.firstAtOrAfter(from)
	if err != nil {
		return p.wrap("replace", err)
	}
	b := p.db.NewBatch()
	defer b.Close()
	if ok && first.Offset < to {
		_, thi := p.bounds(kindTime)
		tend := thi
		if after, ok, err := p.firstAtOrAfter(to); err != nil {
			return p.wrap("replace", err)
		} else if ok {
			tend = p.timeKey(after.MaxTimestamp, after.Offset)
		}
		if err := b.DeleteRange(p.offsetKey(from), p.offsetKey(to), nil); err != nil {
			return p.wrap("replace", err)
		}
		if err := b.DeleteRange(p.timeKey(first.MaxTimestamp, first.Offset), tend, nil); err != nil {
			return p.wrap("replace", err)
		}
	}
	for _, e := range entries {
		if e.Offset < from || e.Offset >= to {
			return fmt.Errorf("index: %s: entry at %d outside [%d, %d)", p.name, e.Offset, from, to)
		}
		if err := putEntry(b, p, e); err != nil {
			return p.wrap("replace", err)
		}
	}
	if b.Empty() {
		return nil
	}
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	return p.wrap("replace", b.Commit(opt))
}

// anyKey reports whether a key exists in [lo, hi).
//
// Callers use it to skip range deletions that would delete nothing: every
// range deletion added to Pebble's memtable makes the next read re-fragment
// all of the memtable's range deletions, so one per partition open (or
// create) made opening N partitions cost O(N²) — 56 s for 10,000.
func (p *Partition) anyKey(lo, hi []byte) (bool, error) {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return false, err
	}
	found := it.First()
	if err := it.Close(); err != nil {
		return false, err
	}
	return found, nil
}

func (p *Partition) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("index: %s: %s: %w", p.name, op, err)
}

// Checkpoint returns the stored recovery checkpoint.
func (p *Partition) Checkpoint() (segment.Checkpoint, bool, error) {
	if p.owner.closed.Load() {
		return segment.Checkpoint{}, false, ErrClosed
	}
	v, ok, err := p.get(checkpointKey(p.name))
	if err != nil || !ok {
		return segment.Checkpoint{}, false, err
	}
	c, err := decodeCheckpoint(v)
	if err != nil {
		return segment.Checkpoint{}, false, fmt.Errorf("index: %s: %w", p.name, err)
	}
	return c, true, nil
}

// SetCheckpoint commits pending entries and the checkpoint in one batch.
func (p *Partition) SetCheckpoint(c segment.Checkpoint, sync bool) error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.db.NewBatch()
	defer b.Close()
	for _, e := range p.mu.pending {
		if err := putEntry(b, p, e); err != nil {
			return p.wrap("checkpoint", err)
		}
	}
	v := checkpointValue(c)
	if err := b.Set(checkpointKey(p.name), v[:], nil); err != nil {
		return p.wrap("checkpoint", err)
	}
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	if err := b.Commit(wo); err != nil {
		return p.wrap("checkpoint", err)
	}
	p.mu.pending = p.mu.pending[:0]
	return nil
}

// SegmentInfo returns a sealed segment's summary.
func (p *Partition) SegmentInfo(base int64) (segment.SegmentInfo, bool, error) {
	if p.owner.closed.Load() {
		return segment.SegmentInfo{}, false, ErrClosed
	}
	v, ok, err := p.get(p.segmentKey(base))
	if err != nil || !ok {
		return segment.SegmentInfo{}, false, err
	}
	info, err := decodeSegmentInfo(v)
	if err != nil {
		return segment.SegmentInfo{}, false, fmt.Errorf("index: %s: %w", p.name, err)
	}
	return info, true, nil
}

// SetSegmentInfo records a sealed segment's summary.
func (p *Partition) SetSegmentInfo(base int64, info segment.SegmentInfo) error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	v := segmentValue(info)
	return p.wrap("segment info", p.db.Set(p.segmentKey(base), v[:], pebble.NoSync))
}

// DeleteSegmentInfo forgets a segment's summary.
func (p *Partition) DeleteSegmentInfo(base int64) error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	return p.wrap("segment info", p.db.Delete(p.segmentKey(base), pebble.NoSync))
}

// Reset removes every key of the partition, durably.
func (p *Partition) Reset() error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.pending = p.mu.pending[:0]
	b := p.db.NewBatch()
	defer b.Close()
	for _, kind := range []byte{kindOffset, kindTime, kindCheckpoint, kindSegment, kindAborted, kindTxnEnd} {
		lo, hi := p.bounds(kind)
		found, err := p.anyKey(lo, hi) // see anyKey: no empty range deletions
		if err != nil {
			return p.wrap("reset", err)
		}
		if !found {
			continue
		}
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return p.wrap("reset", err)
		}
	}
	if b.Empty() {
		// Nothing to delete; still make earlier unsynced deletions durable.
		return p.wrap("reset", p.db.LogData(nil, pebble.Sync))
	}
	return p.wrap("reset", b.Commit(pebble.Sync))
}

func (p *Partition) get(key []byte) ([]byte, bool, error) {
	v, closer, err := p.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, p.wrap("get", err)
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}
