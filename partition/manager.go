package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/index"
	"github.com/runnel-io/runnel/internal/fsutil"
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
}

// Manager owns the partitions this broker hosts.
type Manager struct {
	opts   Options
	log    *slog.Logger
	idx    *index.DB
	topics string // DataDir/topics

	mu struct {
		sync.RWMutex
		parts  map[string][]*Partition // by topic, indexed by partition
		closed bool
	}
}

// OpenManager opens the index database and prepares the topics folder.
// Partitions are opened by OpenTopic.
func OpenManager(opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	topics := filepath.Join(opts.DataDir, "topics")
	if err := fsutil.MkdirAllDurable(topics, 0o755); err != nil {
		return nil, err
	}
	idx, err := index.Open(filepath.Join(opts.DataDir, "index"), index.Options{Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	m := &Manager{opts: opts, log: opts.Logger, idx: idx, topics: topics}
	m.mu.parts = map[string][]*Partition{}
	return m, nil
}

// OpenTopic opens (creating them if new) the partitions of a topic. With
// fresh set, any folder left from an earlier topic of the same name is
// removed first.
func (m *Manager) OpenTopic(t cluster.Topic, fresh bool) error {
	cfg, err := ResolveConfig(t.Configs)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return segment.ErrClosed
	}
	have := m.mu.parts[t.Name]
	for i := int32(len(have)); i < t.Partitions; i++ {
		p, err := m.openPartition(t, i, cfg, fresh)
		if err != nil {
			return err
		}
		have = append(have, p)
		m.mu.parts[t.Name] = have
	}
	return nil
}

func (m *Manager) openPartition(t cluster.Topic, i int32, cfg Config, fresh bool) (*Partition, error) {
	name := Name(t.Name, i)
	dir := filepath.Join(m.topics, name)
	if fresh {
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("partition: clear %s: %w", dir, err)
		}
	}
	p := &Partition{Topic: t.Name, Index: i, TopicID: t.ID, cfg: cfg, visibleAt: m.opts.Fsync.Mode}
	o := cfg.logOptions()
	o.Index = m.idx.Partition(name)
	o.Fsync = m.opts.Fsync
	o.Logger = m.log.With("partition", name)
	o.OnDurable = p.advanceHW
	o.ObserveSync = m.opts.ObserveSync
	l, err := segment.Open(dir, o)
	if err != nil {
		return nil, err
	}
	p.log = l
	p.hw.Store(l.LogEndOffset()) // recovery synced what it kept
	if err := p.loadProducers(); err != nil {
		l.Close()
		return nil, fmt.Errorf("partition: %s: rebuilding producer state: %w", name, err)
	}
	return p, nil
}

// Get returns a hosted partition.
func (m *Manager) Get(topic string, index int32) (*Partition, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ps := m.mu.parts[topic]
	if index < 0 || int(index) >= len(ps) {
		return nil, fmt.Errorf("%w: %s-%d", ErrUnknownPartition, topic, index)
	}
	return ps[index], nil
}

// Partitions returns every hosted partition, ordered by topic and index.
func (m *Manager) Partitions() []*Partition {
	m.mu.RLock()
	defer m.mu.RUnlock()
	names := make([]string, 0, len(m.mu.parts))
	for n := range m.mu.parts {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*Partition
	for _, n := range names {
		out = append(out, m.mu.parts[n]...)
	}
	return out
}

// DeleteTopic closes a topic's partitions and removes their data and index.
func (m *Manager) DeleteTopic(name string) error {
	m.mu.Lock()
	ps := m.mu.parts[name]
	delete(m.mu.parts, name)
	m.mu.Unlock()
	var first error
	for _, p := range ps {
		p.log.Close()
		if err := m.idx.Partition(Name(p.Topic, p.Index)).Reset(); err != nil && first == nil {
			first = err
		}
		if err := os.RemoveAll(p.log.Dir()); err != nil && first == nil {
			first = fmt.Errorf("partition: remove %s: %w", p.log.Dir(), err)
		}
	}
	if err := fsutil.SyncDir(m.topics); err != nil && first == nil {
		first = err
	}
	return first
}

// ApplyRetention runs retention on every partition once.
func (m *Manager) ApplyRetention() {
	for _, p := range m.Partitions() {
		if _, err := p.log.ApplyRetention(); err != nil && !errors.Is(err, segment.ErrClosed) {
			m.log.Warn("retention failed", "partition", Name(p.Topic, p.Index), "err", err)
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
// checkpoints) and then the index. It is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return nil
	}
	m.mu.closed = true
	parts := m.mu.parts
	m.mu.parts = nil
	m.mu.Unlock()
	var first error
	for _, ps := range parts {
		for _, p := range ps {
			if err := p.close(); err != nil && first == nil {
				first = err
			}
		}
	}
	if err := m.idx.Close(); err != nil && first == nil {
		first = err
	}
	return first
}
