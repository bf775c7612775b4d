package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	pvfs "github.com/cockroachdb/pebble/vfs"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/index"
	"github.com/runnel-io/runnel/internal/fsutil"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/segment"
)

// ErrUnknownPartition: the broker does not host that partition.
var ErrUnknownPartition = errors.New("partition: unknown topic or partition")

// Options configure a Manager.
type Options struct {
	// DataDir is the broker's data directory; partitions live under
	// DataDir/topics and the index under DataDir/index.
	DataDir string
	// Fsync is the durability policy of every partition.
	Fsync segment.FsyncPolicy
	// Logger: nil means slog.Default().
	Logger *slog.Logger
	// ObserveSync, if set, is told how long each fdatasync took.
	ObserveSync func(time.Duration)
	// ObserveGroupCommit, if set, is told how many batches each flush of
	// a partition's log made durable (segment.Options.ObserveGroupCommit).
	ObserveGroupCommit func(batches int64)
	// SyncGroupMinFiles, under FsyncPolicy always, is the least number of
	// partition files whose flushes of one moment share one sync of the
	// file system (segment.SyncGroup). Zero: the default; negative: every
	// partition fdatasyncs its own files.
	SyncGroupMinFiles int
	// ObserveVolumeSync and ObserveVolumeSyncFiles, if set, are told how
	// long each shared sync took and how many files it covered.
	ObserveVolumeSync      func(time.Duration)
	ObserveVolumeSyncFiles func(files int)
	// NodeID is this broker's id. Default 1.
	NodeID int32
	// FS holds the partitions' folders (the index stays on the real file
	// system). Nil: vfs.Default. Tests give a vfs.MemFS.
	FS vfs.FS
	// MaxDecompressedBatchBytes bounds what the records of one compressed
	// batch from a producer may inflate to; a batch past it is refused
	// (INVALID_RECORD). Default DefaultMaxDecompressedBatchBytes.
	MaxDecompressedBatchBytes int64

	indexFS pvfs.FS // tests: the index's file system (faults injected)
}

// DefaultMaxDecompressedBatchBytes is the default of
// Options.MaxDecompressedBatchBytes: far above any producer's batch (Kafka
// clients bound theirs before compressing, 1 MiB by default), and a bound
// on the decompression work one produce request can ask for.
const DefaultMaxDecompressedBatchBytes = 64 << 20

// Hooks tell the cluster metadata what a leader did to its log, so that
// followers do the same: where it rolled a segment, and where its log now
// starts (after retention or DeleteRecords). They must not block.
type Hooks struct {
	Rolled          func(p *Partition, base int64)
	LogStartChanged func(p *Partition, logStart int64)
}

type key struct {
	topic string
	index int32
}

// Manager owns the partitions this broker hosts.
type Manager struct {
	opts   Options
	log    *slog.Logger
	idx    *index.DB
	topics string             // DataDir/topics
	syncs  *segment.SyncGroup // nil: each log fdatasyncs its own files

	hooks      atomic.Pointer[Hooks]
	markerHook atomic.Pointer[func(p *Partition, producerID int64, commit bool)]
	// defaults are topic configs that replace the built-in defaults
	// (ConfigDefs) for every topic without its own (dynamic broker
	// configs, SetTopicDefaults); nil: none.
	defaults atomic.Pointer[map[string]string]

	// mu guards the set of partitions, not their opening or removal:
	// recovery, fsyncs and RemoveAll run without it, so produces and
	// fetches to other partitions never wait behind them. A partition
	// being opened or removed has an entry in busy until that finishes;
	// an Open or Remove of the same partition waits for it, Get does not
	// see it.
	mu struct {
		sync.RWMutex
		parts  map[key]*Partition
		busy   map[key]chan struct{} // closed when the open or removal ends
		closed bool
	}

	// beforeOpen and beforeRemove, if set, run without mu at the start of
	// a partition's open and removal (tests block them).
	beforeOpen, beforeRemove func(name string)
}

// OpenManager opens the index database and prepares the topics folder.
// Partitions are opened by Open.
func OpenManager(opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.NodeID == 0 {
		opts.NodeID = 1
	}
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.MaxDecompressedBatchBytes <= 0 {
		opts.MaxDecompressedBatchBytes = DefaultMaxDecompressedBatchBytes
	}
	topics := filepath.Join(opts.DataDir, "topics")
	if err := fsutil.MkdirAllDurable(opts.FS, topics, 0o755); err != nil {
		return nil, err
	}
	dir := filepath.Join(opts.DataDir, "index")
	idxOpts := index.Options{Logger: opts.Logger, FS: opts.indexFS}
	idx, err := index.Open(dir, idxOpts)
	if errors.Is(err, index.ErrNoSpace) {
		idx, err = openIndexOnFullDisk(dir, idxOpts, err, opts.Logger)
	}
	if errors.Is(err, index.ErrCorrupt) || errors.Is(err, index.ErrVersion) {
		// The index holds nothing the segments do not: start it
		// again, and recovery scans every segment. One written by a
		// newer broker is kept aside too, for that broker's return.
		aside, merr := index.MoveAside(dir)
		if merr != nil {
			return nil, errors.Join(err, merr)
		}
		what := "the index is damaged"
		if errors.Is(err, index.ErrVersion) {
			what = "the index is in a newer format than this broker reads"
		}
		opts.Logger.Error(what+"; moved it aside and rebuilding it from the segments",
			"err", err, "moved_to", aside)
		idx, err = index.Open(dir, idxOpts)
	}
	if err != nil {
		return nil, err
	}
	m := &Manager{opts: opts, log: opts.Logger, idx: idx, topics: topics}
	if opts.Fsync.Mode == segment.FsyncAlways && opts.SyncGroupMinFiles >= 0 {
		m.syncs, err = segment.NewSyncGroup(opts.FS, topics, segment.SyncGroupOptions{
			MinFiles: opts.SyncGroupMinFiles, ObserveSync: opts.ObserveVolumeSync,
			ObserveCovered: opts.ObserveVolumeSyncFiles, Logger: opts.Logger})
		if err != nil {
			idx.Close()
			return nil, err
		}
	}
	m.mu.parts = map[key]*Partition{}
	m.mu.busy = map[key]chan struct{}{}
	return m, nil
}

// openIndexOnFullDisk starts a broker whose index does not open for want
// of space (a crash left Pebble a write-ahead log to replay, and replaying
// writes). The index is derived from the segments, so it is removed, which
// frees its space, and a new one is opened; if even that does not fit, the
// index lives in memory until the next start. Either way recovery finds
// no checkpoint and scans every segment, and the next start does again
// after an index in memory.
func openIndexOnFullDisk(dir string, o index.Options, cause error, log *slog.Logger) (*index.DB, error) {
	log.Error("the index cannot be opened: the disk is full; removing it (it is derived from the segments) and rebuilding it from the segments",
		"dir", dir, "err", cause)
	if err := vfs.Default.RemoveAll(dir); err != nil {
		return nil, errors.Join(cause, fmt.Errorf("partition: removing the index: %w", err))
	}
	if err := vfs.Default.SyncDir(filepath.Dir(dir)); err != nil {
		return nil, errors.Join(cause, err)
	}
	idx, err := index.Open(dir, o)
	if !errors.Is(err, index.ErrNoSpace) {
		return idx, err
	}
	log.Error("no space for a new index either: running with the index in memory; the next start rebuilds it on disk",
		"dir", dir, "err", err)
	vfs.Default.RemoveAll(dir) // whatever the failed open left
	o.InMemory = true
	return index.Open(dir, o)
}

// CleanerCheckpointName is the cleaner's checkpoint in a partition folder
// (package cleaner writes it): its presence says the log was cleaned, so
// it may hold offset gaps whatever its topic's cleanup.policy is now.
const CleanerCheckpointName = "cleaner-checkpoint.json"

// topicIDFile holds the id of the topic a partition folder belongs to, so
// a folder left by an earlier topic of the same name is not taken for it.
const topicIDFile = "topic-id"

// Open opens (creating it if new) one partition replica with its role, or
// returns it if open. A folder left by an earlier topic of the same name
// (another topic id) is removed first. Open runs recovery without holding
// the manager's lock; concurrent Opens and Removes of one partition take
// turns.
func (m *Manager) Open(t cluster.Topic, i int32, r Role) (*Partition, error) {
	k := key{t.Name, i}
	m.mu.Lock()
	if err := m.waitIdleLocked(k); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	old := m.mu.parts[k]
	cfg, err := ResolveConfig(m.withDefaults(t.Configs))
	if old != nil && old.TopicID == t.ID {
		m.mu.Unlock()
		if err == nil && !cfg.Equal(old.Config()) {
			// The topic's config changed: the open replica takes it.
			err = old.SetConfig(cfg)
		}
		if err != nil {
			m.log.Warn("a changed topic config does not apply; the partition keeps the one it has",
				"partition", Name(t.Name, i), "err", err)
		}
		return old, nil
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	done := m.reserveLocked(k)
	m.mu.Unlock()

	if old != nil {
		// A replica of an earlier topic of the same name. Should its
		// removal fail, opening finds its topic id and removes it again.
		if err := m.closeAndRemove(old); err != nil {
			m.log.Warn("removing a replica of an earlier topic of the same name failed", "partition", Name(t.Name, i), "err", err)
		}
	}
	p, err := m.openPartition(t, i, cfg, r)

	m.mu.Lock()
	if err == nil && m.mu.closed {
		// Close is waiting for this open to end: close what it opened.
		m.mu.Unlock()
		p.SetRole(Role{LeaderID: -1})
		p.close()
		p, err = nil, segment.ErrClosed
		m.mu.Lock()
	}
	if err == nil {
		m.mu.parts[k] = p
	}
	m.releaseLocked(k, done)
	m.mu.Unlock()
	return p, err
}

// SetTopicDefaults sets the topic configs that apply to every topic that
// does not set them itself, over ConfigDefs' defaults. They are checked
// (ValidateConfigs); an open partition takes them at its next Open (the
// replicas' reconciliation, which a change of broker configs wakes).
func (m *Manager) SetTopicDefaults(defaults map[string]string) error {
	if err := ValidateConfigs(defaults); err != nil {
		return err
	}
	d := maps.Clone(defaults)
	m.defaults.Store(&d)
	return nil
}

// TopicDefaults returns the topic configs set by SetTopicDefaults.
func (m *Manager) TopicDefaults() map[string]string {
	if d := m.defaults.Load(); d != nil {
		return maps.Clone(*d)
	}
	return nil
}

// withDefaults returns a topic's explicit configs over the defaults set by
// SetTopicDefaults.
func (m *Manager) withDefaults(explicit map[string]string) map[string]string {
	d := m.defaults.Load()
	if d == nil || len(*d) == 0 {
		return explicit
	}
	out := maps.Clone(*d)
	maps.Copy(out, explicit)
	return out
}

// waitIdleLocked waits, releasing mu meanwhile, until no open or removal of
// k is under way. It fails once the manager is closed.
func (m *Manager) waitIdleLocked(k key) error {
	for {
		if m.mu.closed {
			return segment.ErrClosed
		}
		done := m.mu.busy[k]
		if done == nil {
			return nil
		}
		m.mu.Unlock()
		<-done
		m.mu.Lock()
	}
}

// reserveLocked marks k busy; the caller ends it with releaseLocked.
func (m *Manager) reserveLocked(k key) chan struct{} {
	done := make(chan struct{})
	m.mu.busy[k] = done
	delete(m.mu.parts, k)
	return done
}

func (m *Manager) releaseLocked(k key, done chan struct{}) {
	delete(m.mu.busy, k)
	close(done)
}

func (m *Manager) openPartition(t cluster.Topic, i int32, cfg Config, r Role) (*Partition, error) {
	name := Name(t.Name, i)
	if m.beforeOpen != nil {
		m.beforeOpen(name)
	}
	dir := filepath.Join(m.topics, name)
	idPath := filepath.Join(dir, topicIDFile)
	if b, err := vfs.ReadFile(m.opts.FS, idPath); err == nil && !sameTopic(b, t.ID) {
		m.log.Info("removing a replica of an earlier topic of the same name", "partition", name, "dir", dir)
		if err := m.opts.FS.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("partition: clear %s: %w", dir, err)
		}
		if err := m.idx.Partition(name).Reset(); err != nil {
			return nil, err
		}
	}
	p := &Partition{Topic: t.Name, Index: i, TopicID: t.ID, visibleAt: m.opts.Fsync.Mode, self: m.opts.NodeID,
		inflate: m.opts.MaxDecompressedBatchBytes}
	p.cfg.Store(&cfg)
	p.logStartFn = func() { m.logStartChanged(p) }
	p.markerFn = func(producerID int64, commit bool) {
		if f := m.markerHook.Load(); f != nil {
			(*f)(p, producerID, commit)
		}
	}
	o := cfg.logOptions()
	if _, err := m.opts.FS.Stat(filepath.Join(dir, CleanerCheckpointName)); err == nil {
		// Cleaned while compacted: its gaps stay whatever the policy is now.
		o.Compacted = true
	}
	p.gaps.Store(o.Compacted)
	p.idx = m.idx.Partition(name)
	o.Index = p.idx
	o.FS = m.opts.FS
	o.Fsync = m.opts.Fsync
	o.Logger = m.log.With("partition", name)
	o.OnDurable = p.localDurable
	o.OnRoll = func(base int64) {
		// Logs roll only inside appends, which hold p.mu.
		if err := p.saveProducersLocked(); err != nil {
			o.Logger.Warn("writing the producer snapshot failed; a restart after a crash walks further", "err", err)
		}
		if h := m.hooks.Load(); h != nil && h.Rolled != nil && p.Role().Leader {
			h.Rolled(p, base)
		}
	}
	o.ObserveSync = m.opts.ObserveSync
	o.ObserveGroupCommit = m.opts.ObserveGroupCommit
	o.SyncGroup = m.syncs
	l, err := segment.Open(dir, o)
	if err != nil {
		return nil, err
	}
	p.log = l
	if _, err := m.opts.FS.Stat(idPath); err != nil {
		if err := fsutil.WriteFileAtomic(m.opts.FS, idPath, encodeTopicID(t.ID), 0o644); err != nil {
			l.Close()
			return nil, err
		}
	}
	p.localEnd.Store(l.LogEndOffset()) // recovery synced what it kept
	// With other replicas, what this one holds may not all be committed:
	// the high watermark starts at the log start and comes from the ISR
	// (as leader) or the leader (as follower).
	p.hw.Store(l.LogStartOffset())
	if len(r.Replicas) <= 1 {
		p.hw.Store(l.LogEndOffset())
	}
	if p.epochs, err = loadEpochs(l); err != nil {
		l.Close()
		return nil, fmt.Errorf("partition: %s: leader epochs: %w", name, err)
	}
	if err := p.loadProducers(); err != nil {
		var save *snapshotSaveError
		if !errors.As(err, &save) {
			l.Close()
			return nil, fmt.Errorf("partition: %s: rebuilding producer state: %w", name, err)
		}
		// The state is rebuilt; only its snapshot, a cache of what the log
		// holds, could not be written (a full disk): the partition opens,
		// and the next roll or close writes the snapshot again.
		m.log.Warn("writing the producer snapshot failed; the partition opens without it", "partition", name, "err", err)
	}
	if err := p.SetRole(r); err != nil {
		l.Close()
		return nil, err
	}
	return p, nil
}

// Get returns a hosted partition.
func (m *Manager) Get(topic string, index int32) (*Partition, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p := m.mu.parts[key{topic, index}]
	if p == nil {
		return nil, fmt.Errorf("%w: %s-%d", ErrUnknownPartition, topic, index)
	}
	return p, nil
}

// Partitions returns every hosted partition, ordered by topic and index.
func (m *Manager) Partitions() []*Partition {
	m.mu.RLock()
	out := make([]*Partition, 0, len(m.mu.parts))
	for _, p := range m.mu.parts {
		out = append(out, p)
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Index < out[j].Index
	})
	return out
}

// Remove closes a partition replica and deletes its data and index, as
// when its topic is deleted or it is no longer assigned to this broker. The
// partition leaves the set at once; closing and deleting it run without the
// manager's lock.
func (m *Manager) Remove(p *Partition) error {
	k := key{p.Topic, p.Index}
	m.mu.Lock()
	if err := m.waitIdleLocked(k); err != nil {
		m.mu.Unlock()
		if errors.Is(err, segment.ErrClosed) {
			return nil // Close closes it
		}
		return err
	}
	if m.mu.parts[k] != p {
		m.mu.Unlock()
		return nil
	}
	done := m.reserveLocked(k)
	m.mu.Unlock()
	err := m.closeAndRemove(p)
	m.mu.Lock()
	m.releaseLocked(k, done)
	m.mu.Unlock()
	return err
}

// closeAndRemove closes a partition that has left the set and deletes its
// data and index. The caller holds k's busy mark, not mu.
func (m *Manager) closeAndRemove(p *Partition) error {
	name := Name(p.Topic, p.Index)
	if m.beforeRemove != nil {
		m.beforeRemove(name)
	}
	p.SetRole(Role{LeaderID: -1})
	p.log.Close()
	var first error
	if err := m.idx.Partition(name).Reset(); err != nil {
		first = err
	}
	if err := m.opts.FS.RemoveAll(p.log.Dir()); err != nil && first == nil {
		first = fmt.Errorf("partition: remove %s: %w", p.log.Dir(), err)
	}
	if err := m.opts.FS.SyncDir(m.topics); err != nil && first == nil {
		first = err
	}
	return first
}

// SetHooks installs the hooks (package replica does).
func (m *Manager) SetHooks(h Hooks) { m.hooks.Store(&h) }

// SetMarkerHook installs the function told of every transaction marker a
// leader here writes (WriteMarker, for the transaction coordinator), once
// it is in the log and no lock of the partition is held: the group
// coordinators of __consumer_offsets apply their partitions' markers to
// the offsets committed in transactions (package coordinator/groups
// does). It must not block for long.
func (m *Manager) SetMarkerHook(f func(p *Partition, producerID int64, commit bool)) {
	m.markerHook.Store(&f)
}

func (m *Manager) logStartChanged(p *Partition) {
	if h := m.hooks.Load(); h != nil && h.LogStartChanged != nil {
		h.LogStartChanged(p, p.LogStartOffset())
	}
}

// ApplyRetention runs retention once on every partition this broker
// leads; followers drop what their leader dropped (FollowLeaderLog).
func (m *Manager) ApplyRetention() {
	for _, p := range m.Partitions() {
		if !p.Role().Leader {
			continue
		}
		n, err := p.log.ApplyRetention()
		if err != nil && !errors.Is(err, segment.ErrClosed) {
			m.log.Warn("retention failed", "partition", Name(p.Topic, p.Index), "err", err)
		}
		if n > 0 {
			m.logStartChanged(p)
		}
	}
}

// RunRetention applies retention every interval until ctx ends.
func (m *Manager) RunRetention(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.ApplyRetention()
		}
	}
}

// Close closes every partition (flushing them and writing their clean
// checkpoints) and then the index, after any open or removal under way has
// finished. It is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return nil
	}
	m.mu.closed = true
	for len(m.mu.busy) > 0 {
		var done chan struct{}
		for _, done = range m.mu.busy {
			break
		}
		m.mu.Unlock()
		<-done
		m.mu.Lock()
	}
	parts := m.mu.parts
	m.mu.parts = nil
	m.mu.Unlock()
	var first error
	for _, p := range parts {
		if err := p.close(); err != nil && first == nil {
			first = err
		}
	}
	if err := m.idx.Close(); err != nil && first == nil {
		first = err
	}
	if m.syncs != nil {
		if err := m.syncs.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
