package groups

import (
	"fmt"

	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/group"
)

// shard is one partition's group coordinator.
type shard struct {
	c *group.Coordinator
}

// Unload hands the partition's groups over: waiting members are told to
// find the coordinator again.
func (sh *shard) Unload(error) {
	sh.c.Resign()
	sh.c.Close()
}

// loader rebuilds a partition's committed offsets from its records.
type loader struct {
	s     *Service
	index int32
	// offsets holds each group's live commits; a tombstone removes one.
	offsets map[string]map[group.TopicPartition]group.Offset
	// groups holds each group's latest metadata.
	groups  map[string]group.GroupRecord
	skipped int
}

func (s *Service) newLoader(index int32) coordinator.Loader {
	return &loader{s: s, index: index, offsets: map[string]map[group.TopicPartition]group.Offset{},
		groups: map[string]group.GroupRecord{}}
}

// Replay applies one record. Records of kinds or versions this broker
// does not know are skipped, as Kafka skips them.
func (l *loader) Replay(r coordinator.Record) error {
	rec, err := decodeRecord(r)
	if err != nil {
		l.skipped++
		if l.skipped <= 10 {
			l.s.log.Warn("skipping a record of the group offsets topic", "partition", l.index, "offset", r.Offset, "err", err)
		}
		return nil
	}
	switch {
	case rec.isOffset && rec.tombstone:
		delete(l.offsets[rec.group], rec.tp)
		if len(l.offsets[rec.group]) == 0 {
			delete(l.offsets, rec.group)
		}
	case rec.isOffset:
		m := l.offsets[rec.group]
		if m == nil {
			m = map[group.TopicPartition]group.Offset{}
			l.offsets[rec.group] = m
		}
		m[rec.tp] = rec.offset
	case rec.tombstone:
		// A deleted group: its offsets were tombstoned before it.
		delete(l.offsets, rec.group)
		delete(l.groups, rec.group)
	default:
		l.groups[rec.group] = rec.meta
	}
	return nil
}

// Loaded moves any legacy offsets of the partition's groups into the log,
// then starts the coordinator.
func (l *loader) Loaded(w *coordinator.Writer) (coordinator.Shard, error) {
	st := &logStore{w: w, loaded: l.offsets, groups: l.groups}
	if err := l.migrate(st); err != nil {
		return nil, err
	}
	c, err := group.New(l.s.o.Group, st)
	if err != nil {
		return nil, err
	}
	return &shard{c: c}, nil
}

// migrate writes the offsets an older runnel kept in the Raft state for
// this partition's groups into the log, each unless the log has a commit
// of its own for that partition, then drops them from the Raft state.
func (l *loader) migrate(st *logStore) error {
	t, ok := l.s.o.Meta.Topic(Topic)
	if !ok {
		return nil
	}
	for g, offs := range l.s.o.Meta.LegacyOffsets() {
		if PartitionFor(g, t.Partitions) != l.index {
			continue
		}
		var missing []group.Offset
		for _, o := range offs {
			if _, ok := l.offsets[g][group.TopicPartition{Topic: o.Topic, Partition: o.Partition}]; !ok {
				missing = append(missing, o)
			}
		}
		if len(missing) > 0 {
			wait, err := st.Commit(g, missing)
			if err != nil {
				return fmt.Errorf("moving group %q's offsets into %s: %w", g, Topic, err)
			}
			if err := wait(); err != nil {
				return fmt.Errorf("moving group %q's offsets into %s: %w", g, Topic, err)
			}
			m := l.offsets[g]
			if m == nil {
				m = map[group.TopicPartition]group.Offset{}
				l.offsets[g] = m
			}
			for _, o := range missing {
				m[group.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o
			}
		}
		if err := l.s.o.Meta.DropLegacyOffsets(g); err != nil {
			return fmt.Errorf("dropping group %q's offsets from the Raft state: %w", g, err)
		}
		l.s.log.Info("moved a group's committed offsets from the Raft state into the offsets topic",
			"group", g, "partition", l.index, "offsets", len(offs), "written", len(missing))
	}
	return nil
}

// logStore is a shard's group.OffsetStore: commits and deletions are
// records appended to the partition.
type logStore struct {
	w      *coordinator.Writer
	loaded map[string]map[group.TopicPartition]group.Offset
	groups map[string]group.GroupRecord
}

var _ group.GroupStore = (*logStore)(nil)

// StoreGroup appends the group's metadata (GroupMetadataValue).
func (st *logStore) StoreGroup(rec group.GroupRecord) (func() error, error) {
	k, err := groupKey(rec.Group)
	if err != nil {
		return nil, encodeError(err)
	}
	v, err := groupValue(rec)
	if err != nil {
		return nil, encodeError(err)
	}
	return st.w.Append([]coordinator.Record{{Key: k, Value: v, Timestamp: rec.StateTime.UnixMilli()}})
}

// LoadGroups returns the metadata loaded, once.
func (st *logStore) LoadGroups() map[string]group.GroupRecord {
	out := st.groups
	st.groups = nil
	return out
}

func (st *logStore) Commit(g string, offsets []group.Offset) (func() error, error) {
	recs := make([]coordinator.Record, len(offsets))
	for i, o := range offsets {
		k, err := offsetKey(g, o.Topic, o.Partition)
		if err != nil {
			return nil, encodeError(err)
		}
		v, err := offsetValue(o)
		if err != nil {
			return nil, encodeError(err)
		}
		recs[i] = coordinator.Record{Key: k, Value: v, Timestamp: o.CommitTime.UnixMilli()}
	}
	return st.w.Append(recs)
}

func (st *logStore) Delete(g string, partitions []group.TopicPartition) (func() error, error) {
	recs, err := tombstones(g, partitions)
	if err != nil {
		return nil, err
	}
	return st.w.Append(recs)
}

func (st *logStore) DeleteGroup(g string, partitions []group.TopicPartition) (func() error, error) {
	recs, err := tombstones(g, partitions)
	if err != nil {
		return nil, err
	}
	k, err := groupKey(g)
	if err != nil {
		return nil, encodeError(err)
	}
	return st.w.Append(append(recs, coordinator.Record{Key: k}))
}

// tombstones returns the records that delete group g's offsets of
// partitions.
func tombstones(g string, partitions []group.TopicPartition) ([]coordinator.Record, error) {
	recs := make([]coordinator.Record, len(partitions))
	for i, tp := range partitions {
		k, err := offsetKey(g, tp.Topic, tp.Partition)
		if err != nil {
			return nil, encodeError(err)
		}
		recs[i] = coordinator.Record{Key: k}
	}
	return recs, nil
}

func (st *logStore) Load() (map[string][]group.Offset, error) {
	out := make(map[string][]group.Offset, len(st.loaded))
	for g, m := range st.loaded {
		offs := make([]group.Offset, 0, len(m))
		for _, o := range m {
			offs = append(offs, o)
		}
		out[g] = offs
	}
	st.loaded = nil
	return out, nil
}
