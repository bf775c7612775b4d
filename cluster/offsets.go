package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/internal/pebblelog"
)

// Committed offsets are kept in a Pebble database of their own, one key per
// group and partition:
//
//	key:   'o' | uvarint len(group) | group | uvarint len(topic) | topic | int32 partition (big-endian)
//	value: 0x01 (version) | int64 offset | int32 leader epoch | int64 commit time (ms) | metadata
//
// Integers in values are big-endian. The length prefixes keep one group's
// keys a contiguous range whatever bytes its id holds.
const (
	offsetKeyPrefix = 'o'
	offsetValueV1   = 1
	offsetValueSize = 1 + 8 + 4 + 8
)

// ErrOffsetsClosed is returned once the offsets database is closed.
var ErrOffsetsClosed = errors.New("cluster: offsets database closed")

// OffsetsDB keeps committed group offsets on a single broker. It implements
// group.OffsetStore.
type OffsetsDB struct {
	db     *pebble.DB
	sync   bool
	closed atomic.Bool
}

var _ group.OffsetStore = (*OffsetsDB)(nil)

// OpenOffsets opens or creates the offsets database in dir. With sync, a
// commit is durable (fdatasync'd) before it is acknowledged; without, it is
// written to the operating system and synced when the database closes.
func OpenOffsets(dir string, sync bool, logger *slog.Logger) (*OffsetsDB, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: create %s: %w", dir, err)
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebblelog.Logger{L: logger, Component: "offsets"}})
	if err != nil {
		return nil, fmt.Errorf("cluster: open offsets %s: %w", dir, err)
	}
	return &OffsetsDB{db: db, sync: sync}, nil
}

// Close syncs and closes the database. It is idempotent.
func (o *OffsetsDB) Close() error {
	if o.closed.Swap(true) {
		return nil
	}
	serr := o.db.LogData(nil, pebble.Sync)
	if err := o.db.Close(); err != nil {
		return fmt.Errorf("cluster: close offsets: %w", err)
	}
	return serr
}

func groupPrefix(g string) []byte {
	k := []byte{offsetKeyPrefix}
	k = binary.AppendUvarint(k, uint64(len(g)))
	return append(k, g...)
}

func offsetKey(g, topic string, partition int32) []byte {
	k := groupPrefix(g)
	k = binary.AppendUvarint(k, uint64(len(topic)))
	k = append(k, topic...)
	return binary.BigEndian.AppendUint32(k, uint32(partition))
}

// prefixEnd returns the first key after every key that starts with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i]++; end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// Commit applies the offsets without waiting for the disk; the returned
// function waits for durability when the database syncs commits.
func (o *OffsetsDB) Commit(g string, offsets []group.Offset) func() error {
	if o.closed.Load() {
		return func() error { return ErrOffsetsClosed }
	}
	b := o.db.NewBatch()
	defer b.Close()
	for _, off := range offsets {
		v := make([]byte, offsetValueSize, offsetValueSize+len(off.Metadata))
		v[0] = offsetValueV1
		binary.BigEndian.PutUint64(v[1:], uint64(off.Offset))
		binary.BigEndian.PutUint32(v[9:], uint32(off.LeaderEpoch))
		binary.BigEndian.PutUint64(v[13:], uint64(off.CommitTime.UnixMilli()))
		v = append(v, off.Metadata...)
		b.Set(offsetKey(g, off.Topic, off.Partition), v, nil)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return func() error { return fmt.Errorf("cluster: commit offsets of %q: %w", g, err) }
	}
	if !o.sync {
		return func() error { return nil }
	}
	return func() error {
		if err := o.db.LogData(nil, pebble.Sync); err != nil {
			return fmt.Errorf("cluster: sync offsets: %w", err)
		}
		return nil
	}
}

func (o *OffsetsDB) writeOptions() *pebble.WriteOptions {
	if o.sync {
		return pebble.Sync
	}
	return pebble.NoSync
}

// Delete removes some offsets of a group.
func (o *OffsetsDB) Delete(g string, partitions []group.TopicPartition) error {
	if o.closed.Load() {
		return ErrOffsetsClosed
	}
	b := o.db.NewBatch()
	defer b.Close()
	for _, tp := range partitions {
		b.Delete(offsetKey(g, tp.Topic, tp.Partition), nil)
	}
	if err := b.Commit(o.writeOptions()); err != nil {
		return fmt.Errorf("cluster: delete offsets of %q: %w", g, err)
	}
	return nil
}

// DeleteGroup removes every offset of a group.
func (o *OffsetsDB) DeleteGroup(g string) error {
	if o.closed.Load() {
		return ErrOffsetsClosed
	}
	p := groupPrefix(g)
	if err := o.db.DeleteRange(p, prefixEnd(p), o.writeOptions()); err != nil {
		return fmt.Errorf("cluster: delete group %q: %w", g, err)
	}
	return nil
}

// Load returns every committed offset by group.
func (o *OffsetsDB) Load() (map[string][]group.Offset, error) {
	if o.closed.Load() {
		return nil, ErrOffsetsClosed
	}
	it, err := o.db.NewIter(&pebble.IterOptions{LowerBound: []byte{offsetKeyPrefix}, UpperBound: []byte{offsetKeyPrefix + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := map[string][]group.Offset{}
	for it.First(); it.Valid(); it.Next() {
		g, off, err := decodeOffset(it.Key(), it.Value())
		if err != nil {
			return nil, err
		}
		out[g] = append(out[g], off)
	}
	return out, it.Error()
}

// errBadOffsetRecord: a key or value in the offsets database does not
// decode.
var errBadOffsetRecord = errors.New("cluster: undecodable committed offset record")

func decodeOffset(k, v []byte) (string, group.Offset, error) {
	var off group.Offset
	bad := func(what string) (string, group.Offset, error) {
		return "", off, fmt.Errorf("%w: %s (key %x)", errBadOffsetRecord, what, k)
	}
	if len(k) == 0 || k[0] != offsetKeyPrefix {
		return bad("prefix")
	}
	k = k[1:]
	n, w := binary.Uvarint(k)
	if w <= 0 || n > uint64(len(k)-w) {
		return bad("group length")
	}
	g := string(k[w : w+int(n)])
	k = k[w+int(n):]
	n, w = binary.Uvarint(k)
	if w <= 0 || n > uint64(len(k)-w) || len(k)-w-int(n) != 4 {
		return bad("topic length")
	}
	off.Topic = string(k[w : w+int(n)])
	off.Partition = int32(binary.BigEndian.Uint32(k[w+int(n):]))
	if len(v) < offsetValueSize || v[0] != offsetValueV1 {
		return bad("value")
	}
	off.Offset = int64(binary.BigEndian.Uint64(v[1:]))
	off.LeaderEpoch = int32(binary.BigEndian.Uint32(v[9:]))
	off.CommitTime = time.UnixMilli(int64(binary.BigEndian.Uint64(v[13:])))
	off.Metadata = string(v[offsetValueSize:])
	return g, off, nil
}
