package groups

import (
	"fmt"
	"sort"

	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/group"
)

// shard is one partition's group coordinator.
type shard struct {
	s     *Service
	index int32
	c     *group.Coordinator
}

// Unload hands the partition's groups over: waiting members are told to
// find the coordinator again.
func (sh *shard) Unload(error) {
	sh.s.unregister(sh)
	sh.c.Resign()
	sh.c.Close()
}

// loader rebuilds a partition's committed offsets from its records.
type loader struct {
	s     *Service
	index int32
	// offsets holds each group's live commits; a tombstone removes one.
	offsets map[string]map[group.TopicPartition]group.Offset
	// order holds the log offset of each of them.
	order map[string]map[group.TopicPartition]int64
	// pending holds the transactional commits whose transaction has not
	// ended yet, by producer id.
	pending map[int64]map[string]map[group.TopicPartition]pendingOffset
	// groups holds each group's latest metadata.
	groups  map[string]group.GroupRecord
	skipped int
	end     int64 // the offset of the last record or marker replayed
}

// pendingOffset is a transactional commit and its log offset.
type pendingOffset struct {
	o     group.Offset
	order int64
}

func (s *Service) newLoader(index int32) coordinator.Loader {
	s.loading(index)
	return &loader{s: s, index: index, offsets: map[string]map[group.TopicPartition]group.Offset{},
		order:   map[string]map[group.TopicPartition]int64{},
		pending: map[int64]map[string]map[group.TopicPartition]pendingOffset{},
		groups:  map[string]group.GroupRecord{}}
}

// Replay applies one record. Records of kinds or versions this broker
// does not know are skipped, as Kafka skips them.
func (l *loader) Replay(r coordinator.Record) error {
	l.end = max(l.end, r.Offset)
	rec, err := decodeRecord(r)
	if err != nil {
		l.skipped++
		if l.skipped <= 10 {
			l.s.log.Warn("skipping a record of the group offsets topic", "partition", l.index, "offset", r.Offset, "err", err)
		}
		return nil
	}
	switch {
	case rec.isOffset && r.Transactional && rec.tombstone:
		// Kafka's coordinators write none; Kafka's loader drops the
		// producer's pending commit of the partition.
		if pg := l.pending[r.ProducerID][rec.group]; pg != nil {
			delete(pg, rec.tp)
		}
	case rec.isOffset && r.Transactional:
		pg := l.pending[r.ProducerID]
		if pg == nil {
			pg = map[string]map[group.TopicPartition]pendingOffset{}
			l.pending[r.ProducerID] = pg
		}
		m := pg[rec.group]
		if m == nil {
			m = map[group.TopicPartition]pendingOffset{}
			pg[rec.group] = m
		}
		m[rec.tp] = pendingOffset{o: rec.offset, order: r.Offset}
	case rec.isOffset && rec.tombstone:
		l.removeOffset(rec.group, rec.tp)
	case rec.isOffset:
		l.setOffset(rec.group, rec.tp, rec.offset, r.Offset)
	case rec.tombstone:
		// A deleted group: its offsets were tombstoned before it.
		delete(l.offsets, rec.group)
		delete(l.order, rec.group)
		delete(l.groups, rec.group)
		for _, pg := range l.pending {
			delete(pg, rec.group)
		}
	default:
		l.groups[rec.group] = rec.meta
	}
	return nil
}

// ReplayMarker ends a producer's transaction: on a commit its pending
// offsets become committed, each unless the partition's committed offset
// was written after it; on an abort they are dropped.
func (l *loader) ReplayMarker(m coordinator.Marker) error {
	l.end = max(l.end, m.Offset)
	pg := l.pending[m.ProducerID]
	delete(l.pending, m.ProducerID)
	if !m.Commit {
		return nil
	}
	for g, offs := range pg {
		for tp, p := range offs {
			if at, ok := l.order[g][tp]; ok && at > p.order {
				continue
			}
			l.setOffset(g, tp, p.o, p.order)
		}
	}
	return nil
}

// setOffset makes o, written at order, the group's commit of tp.
func (l *loader) setOffset(g string, tp group.TopicPartition, o group.Offset, order int64) {
	m := l.offsets[g]
	if m == nil {
		m = map[group.TopicPartition]group.Offset{}
		l.offsets[g] = m
		l.order[g] = map[group.TopicPartition]int64{}
	}
	m[tp] = o
	l.order[g][tp] = order
}

// removeOffset applies an offset tombstone: the commit and every pending
// transactional commit of the partition go, as the coordinator removes
// them when it writes one (package group, txn.go).
func (l *loader) removeOffset(g string, tp group.TopicPartition) {
	delete(l.offsets[g], tp)
	delete(l.order[g], tp)
	if len(l.offsets[g]) == 0 {
		delete(l.offsets, g)
		delete(l.order, g)
	}
	for _, pg := range l.pending {
		delete(pg[g], tp)
	}
}

// txnLoad is what the load leaves of transactions, for the coordinator.
func (l *loader) txnLoad() group.TxnLoad {
	ld := group.TxnLoad{Order: l.order}
	for pid, pg := range l.pending {
		for g, offs := range pg {
			for _, p := range offs {
				ld.Pending = append(ld.Pending, group.PendingOffset{Group: g, ProducerID: pid, Offset: p.o, Order: p.order})
			}
		}
	}
	sort.Slice(ld.Pending, func(i, j int) bool { return ld.Pending[i].Order < ld.Pending[j].Order })
	return ld
}

// Loaded moves any legacy offsets of the partition's groups into the log,
// then starts the coordinator.
func (l *loader) Loaded(w *coordinator.Writer) (coordinator.Shard, error) {
	st := &logStore{w: w, loaded: l.offsets, groups: l.groups}
	if err := l.migrate(st); err != nil {
		return nil, err
	}
	st.txn = l.txnLoad()
	c, err := group.New(l.s.o.Group, st)
	if err != nil {
		return nil, err
	}
	sh := &shard{s: l.s, index: l.index, c: c}
	l.s.register(sh)
	return sh, nil
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
			for _, o := range missing {
				// Written after every record replayed.
				l.end++
				l.setOffset(g, group.TopicPartition{Topic: o.Topic, Partition: o.Partition}, o, l.end)
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
	txn    group.TxnLoad
}

var (
	_ group.GroupStore = (*logStore)(nil)
	_ group.TxnStore   = (*logStore)(nil)
)

// CommitTxn appends the offsets as a transactional batch of the producer.
func (st *logStore) CommitTxn(g string, producerID int64, epoch int16, offsets []group.Offset) (func() error, error) {
	recs, err := commitRecords(g, offsets)
	if err != nil {
		return nil, err
	}
	return st.w.AppendTxn(producerID, epoch, recs)
}

// LoadTxn returns what the load left of transactions, once.
func (st *logStore) LoadTxn() group.TxnLoad {
	out := st.txn
	st.txn = group.TxnLoad{}
	return out
}

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
	recs, err := commitRecords(g, offsets)
	if err != nil {
		return nil, err
	}
	return st.w.Append(recs)
}

// commitRecords returns the records of group g's commit of offsets.
func commitRecords(g string, offsets []group.Offset) ([]coordinator.Record, error) {
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
	return recs, nil
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
