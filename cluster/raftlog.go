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
	"github.com/hashicorp/raft"

	"github.com/runnel-io/runnel/internal/pebblelog"
)

// RaftStore keeps a broker's Raft log and Raft's stable state (current
// term, last vote) in a Pebble database of its own:
//
//	'l' | index (8)  →  0x01 | term (8) | type (1) | appended at, Unix ns (8) |
//	                    uvarint len | data | uvarint len | extensions
//	's' | key        →  value
//
// Integers are big-endian, so log keys sort by index. Every write is synced
// before it returns: Raft counts on what it stored surviving a crash.
type RaftStore struct {
	db     *pebble.DB
	closed atomic.Bool
}

var (
	_ raft.LogStore    = (*RaftStore)(nil)
	_ raft.StableStore = (*RaftStore)(nil)
)

const (
	raftLogPrefix    = 'l'
	raftStablePrefix = 's'
	raftLogV1        = 1
	raftLogFixed     = 1 + 8 + 1 + 8
)

// Errors of the Raft store.
var (
	// ErrKeyNotFound is what Raft expects for a stable key never set: it
	// compares the message, "not found".
	ErrKeyNotFound = errors.New("not found")
	// ErrRaftStoreClosed is returned once the store is closed.
	ErrRaftStoreClosed = errors.New("cluster: raft store closed")
	// ErrBadRaftRecord: a stored log entry does not decode.
	ErrBadRaftRecord = errors.New("cluster: undecodable raft log entry")
)

// OpenRaftStore opens or creates the store in dir.
func OpenRaftStore(dir string, logger *slog.Logger) (*RaftStore, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: create %s: %w", dir, err)
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebblelog.Logger{L: logger, Component: "raft"}})
	if err != nil {
		return nil, fmt.Errorf("cluster: open raft store %s: %w", dir, err)
	}
	return &RaftStore{db: db}, nil
}

// Close closes the store; it is idempotent.
func (s *RaftStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("cluster: close raft store: %w", err)
	}
	return nil
}

func raftLogKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{raftLogPrefix}, index)
}

// edgeIndex returns the first (or last) log index, 0 if the log is empty.
func (s *RaftStore) edgeIndex(last bool) (uint64, error) {
	if s.closed.Load() {
		return 0, ErrRaftStoreClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{raftLogPrefix}, UpperBound: []byte{raftLogPrefix + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	ok := it.First()
	if last {
		ok = it.Last()
	}
	if !ok {
		return 0, it.Error()
	}
	k := it.Key()
	if len(k) != 9 {
		return 0, fmt.Errorf("%w: key %x", ErrBadRaftRecord, k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// FirstIndex returns the first index in the log, 0 if it is empty.
func (s *RaftStore) FirstIndex() (uint64, error) { return s.edgeIndex(false) }

// LastIndex returns the last index in the log, 0 if it is empty.
func (s *RaftStore) LastIndex() (uint64, error) { return s.edgeIndex(true) }

// GetLog reads the entry at index into l, or returns raft.ErrLogNotFound.
func (s *RaftStore) GetLog(index uint64, l *raft.Log) error {
	if s.closed.Load() {
		return ErrRaftStoreClosed
	}
	v, closer, err := s.db.Get(raftLogKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	return decodeRaftLog(index, v, l)
}

func encodeRaftLog(l *raft.Log) []byte {
	v := make([]byte, raftLogFixed, raftLogFixed+len(l.Data)+len(l.Extensions)+2*binary.MaxVarintLen64)
	v[0] = raftLogV1
	binary.BigEndian.PutUint64(v[1:], l.Term)
	v[9] = byte(l.Type)
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	binary.BigEndian.PutUint64(v[10:], uint64(at))
	v = binary.AppendUvarint(v, uint64(len(l.Data)))
	v = append(v, l.Data...)
	v = binary.AppendUvarint(v, uint64(len(l.Extensions)))
	return append(v, l.Extensions...)
}

// decodeRaftLog decodes a stored entry; the slices it sets are copies.
func decodeRaftLog(index uint64, v []byte, l *raft.Log) error {
	bad := func(what string) error { return fmt.Errorf("%w: index %d: %s", ErrBadRaftRecord, index, what) }
	if len(v) < raftLogFixed || v[0] != raftLogV1 {
		return bad("header")
	}
	*l = raft.Log{Index: index, Term: binary.BigEndian.Uint64(v[1:]), Type: raft.LogType(v[9])}
	if at := int64(binary.BigEndian.Uint64(v[10:])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	rest := v[raftLogFixed:]
	field := func() ([]byte, bool) {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return nil, false
		}
		out := append([]byte(nil), rest[w:w+int(n)]...)
		rest = rest[w+int(n):]
		return out, true
	}
	var ok bool
	if l.Data, ok = field(); !ok {
		return bad("data length")
	}
	if l.Extensions, ok = field(); !ok {
		return bad("extensions length")
	}
	if len(l.Extensions) == 0 {
		l.Extensions = nil
	}
	return nil
}

// StoreLog stores one entry.
func (s *RaftStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores entries in one synced write.
func (s *RaftStore) StoreLogs(logs []*raft.Log) error {
	if s.closed.Load() {
		return ErrRaftStoreClosed
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, l := range logs {
		if err := b.Set(raftLogKey(l.Index), encodeRaftLog(l), nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("cluster: store raft logs: %w", err)
	}
	return nil
}

// DeleteRange deletes the entries from min to max, both included.
func (s *RaftStore) DeleteRange(min, max uint64) error {
	if s.closed.Load() {
		return ErrRaftStoreClosed
	}
	if max < min {
		return nil
	}
	end := raftLogKey(max + 1)
	if max == ^uint64(0) {
		end = []byte{raftLogPrefix + 1}
	}
	if err := s.db.DeleteRange(raftLogKey(min), end, pebble.Sync); err != nil {
		return fmt.Errorf("cluster: delete raft logs %d-%d: %w", min, max, err)
	}
	return nil
}

func raftStableKey(k []byte) []byte { return append([]byte{raftStablePrefix}, k...) }

// Set stores a stable value.
func (s *RaftStore) Set(key, val []byte) error {
	if s.closed.Load() {
		return ErrRaftStoreClosed
	}
	if err := s.db.Set(raftStableKey(key), val, pebble.Sync); err != nil {
		return fmt.Errorf("cluster: raft stable set %q: %w", key, err)
	}
	return nil
}

// Get returns a stable value, or ErrKeyNotFound.
func (s *RaftStore) Get(key []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrRaftStoreClosed
	}
	v, closer, err := s.db.Get(raftStableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// SetUint64 stores a stable integer.
func (s *RaftStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns a stable integer, or ErrKeyNotFound.
func (s *RaftStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: stable key %q holds %d bytes, not an integer", ErrBadRaftRecord, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
