package index

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble"
)

// The aborted-transaction index of a partition ('a' keys) and how far
// along the log it is complete ('e'). The partition writes an entry when
// it appends an abort marker; after a crash it walks the batch headers
// from the 'e' offset (or the log start, without one) and writes again
// what the walk finds, so the entries are derived data like the rest.

// AbortedTxn is one aborted transaction of a partition's log.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64 // the transaction's first batch (or the marker, for a transaction the log never saw begin)
	LastOffset  int64 // its abort marker
	// LastStableOffset is the first offset of the oldest transaction still
	// open once the marker was written, or LastOffset+1 if none was: no
	// transaction that began before it ends after this entry.
	LastStableOffset int64
}

func abortedKey(name []byte, lastOffset int64) []byte {
	return binary.BigEndian.AppendUint64(keyPrefix(kindAborted, name, 8), uint64(lastOffset))
}

func txnEndKey(name []byte) []byte { return keyPrefix(kindTxnEnd, name, 0) }

func abortedValue(a AbortedTxn) [abortedValueSize]byte {
	var v [abortedValueSize]byte
	binary.BigEndian.PutUint64(v[0:], uint64(a.ProducerID))
	binary.BigEndian.PutUint64(v[8:], uint64(a.FirstOffset))
	binary.BigEndian.PutUint64(v[16:], uint64(a.LastStableOffset))
	return v
}

// decodeAborted decodes an aborted-index key (the marker's offset is its
// last 8 bytes) and value.
func decodeAborted(k, v []byte) (AbortedTxn, error) {
	if len(k) < 8 || len(v) != abortedValueSize {
		return AbortedTxn{}, fmt.Errorf("index: malformed aborted transaction (key %d bytes, value %d bytes)", len(k), len(v))
	}
	return AbortedTxn{
		LastOffset:       int64(binary.BigEndian.Uint64(k[len(k)-8:])),
		ProducerID:       int64(binary.BigEndian.Uint64(v[0:])),
		FirstOffset:      int64(binary.BigEndian.Uint64(v[8:])),
		LastStableOffset: int64(binary.BigEndian.Uint64(v[16:])),
	}, nil
}

func txnEndValue(end int64) [txnEndValueSize]byte {
	var v [txnEndValueSize]byte
	binary.BigEndian.PutUint64(v[:], uint64(end))
	return v
}

func decodeTxnEnd(v []byte) (int64, error) {
	if len(v) != txnEndValueSize {
		return 0, fmt.Errorf("malformed aborted-index end (%d bytes)", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// AddAborted records an aborted transaction, without fsync. An entry for
// the same marker offset is replaced (a walk after a crash writes again
// what it finds).
func (p *Partition) AddAborted(a AbortedTxn) error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	v := abortedValue(a)
	return p.wrap("aborted", p.db.Set(abortedKey(p.name, a.LastOffset), v[:], pebble.NoSync))
}

// DeleteAborted forgets the aborted transactions whose markers are at the
// offsets given (the cleaner removed those markers), synced: the index
// never names a marker the log no longer holds.
func (p *Partition) DeleteAborted(markers []int64) error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	if len(markers) == 0 {
		return nil
	}
	b := p.db.NewBatch()
	defer b.Close()
	for _, m := range markers {
		if err := b.Delete(abortedKey(p.name, m), nil); err != nil {
			return p.wrap("aborted", err)
		}
	}
	return p.wrap("aborted", b.Commit(pebble.Sync))
}

// Aborted appends to dst the aborted transactions that may overlap the
// offsets [from, upper): those whose marker is at or after from and whose
// first offset is below upper, in marker order. It stops at the first
// entry whose LastStableOffset reaches upper: every transaction that
// began below upper had ended by then.
func (p *Partition) Aborted(dst []AbortedTxn, from, upper int64) ([]AbortedTxn, error) {
	if p.owner.closed.Load() {
		return dst, ErrClosed
	}
	lo, hi := p.bounds(kindAborted)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return dst, p.wrap("aborted", err)
	}
	for ok := it.SeekGE(abortedKey(p.name, max(from, 0))); ok; ok = it.Next() {
		a, err := decodeAborted(it.Key(), it.Value())
		if err != nil {
			it.Close()
			return dst, p.wrap("aborted", err)
		}
		if a.FirstOffset < upper {
			dst = append(dst, a)
		}
		if a.LastStableOffset >= upper {
			break
		}
	}
	if err := it.Close(); err != nil {
		return dst, p.wrap("aborted", err)
	}
	return dst, nil
}

// LastAborted returns the marker offset of the newest aborted transaction.
func (p *Partition) LastAborted() (int64, bool, error) {
	if p.owner.closed.Load() {
		return 0, false, ErrClosed
	}
	lo, hi := p.bounds(kindAborted)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, false, p.wrap("aborted", err)
	}
	defer it.Close()
	if !it.Last() {
		return 0, false, p.wrap("aborted", it.Error())
	}
	a, err := decodeAborted(it.Key(), it.Value())
	if err != nil {
		return 0, false, p.wrap("aborted", err)
	}
	return a.LastOffset, true, nil
}

// DeleteAbortedFrom forgets the aborted transactions whose marker is at or
// after offset, and an aborted-index end past it, as a log cut back there
// does.
func (p *Partition) DeleteAbortedFrom(offset int64) error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	_, hi := p.bounds(kindAborted)
	start := abortedKey(p.name, max(offset, 0))
	b := p.db.NewBatch()
	defer b.Close()
	if found, err := p.anyKey(start, hi); err != nil {
		return p.wrap("aborted", err)
	} else if found {
		if err := b.DeleteRange(start, hi, nil); err != nil {
			return p.wrap("aborted", err)
		}
	}
	if end, ok, err := p.TxnIndexEnd(); err != nil {
		return err
	} else if ok && end > offset {
		v := txnEndValue(offset)
		if err := b.Set(txnEndKey(p.name), v[:], nil); err != nil {
			return p.wrap("aborted", err)
		}
	}
	if b.Empty() {
		return nil
	}
	return p.wrap("aborted", b.Commit(pebble.NoSync))
}

// DeleteAbortedBefore forgets the aborted transactions whose marker is
// below offset (the log start moved past them).
func (p *Partition) DeleteAbortedBefore(offset int64) error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	lo, _ := p.bounds(kindAborted)
	end := abortedKey(p.name, max(offset, 0))
	if found, err := p.anyKey(lo, end); err != nil || !found {
		return p.wrap("aborted", err)
	}
	b := p.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(lo, end, nil); err != nil {
		return p.wrap("aborted", err)
	}
	return p.wrap("aborted", b.Commit(pebble.NoSync))
}

// TxnIndexEnd returns the offset below which the aborted-transaction index
// holds every aborted transaction of the log; none has been recorded in a
// new or rebuilt database.
func (p *Partition) TxnIndexEnd() (int64, bool, error) {
	if p.owner.closed.Load() {
		return 0, false, ErrClosed
	}
	v, ok, err := p.get(txnEndKey(p.name))
	if err != nil || !ok {
		return 0, false, err
	}
	end, err := decodeTxnEnd(v)
	if err != nil {
		return 0, false, fmt.Errorf("index: %s: %w", p.name, err)
	}
	return end, true, nil
}

// SetTxnIndexEnd records that the aborted-transaction index is complete
// below end. sync makes it, and every entry written before it, durable.
func (p *Partition) SetTxnIndexEnd(end int64, sync bool) error {
	if p.owner.closed.Load() {
		return ErrClosed
	}
	v := txnEndValue(end)
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	return p.wrap("aborted-index end", p.db.Set(txnEndKey(p.name), v[:], opt))
}
