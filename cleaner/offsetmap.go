package cleaner

import "hash/maphash"

// offsetMap maps record keys to the offset of their latest record in the
// dirty section, within a fixed number of entries. Keys are held as a
// 128-bit hash (two seeded maphash sums), so an entry costs the same
// whatever the key's size: entryBytes, counted against the dedupe buffer.
// Two keys sharing all 128 bits would make the cleaner drop the older
// one's records: at 10^9 keys the odds are below 10^-20.
type offsetMap struct {
	seeds [2]maphash.Seed
	m     map[[2]uint64]int64
	limit int
}

// entryBytes is what one entry of the map is taken to cost: the 16-byte
// key, the 8-byte offset and the Go map's own overhead per entry.
const entryBytes = 48

func newOffsetMap(budget int64) *offsetMap {
	limit := int(max(budget/entryBytes, 1))
	return &offsetMap{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		m: make(map[[2]uint64]int64, min(limit, 1<<16)), limit: limit}
}

func (o *offsetMap) key(k []byte) [2]uint64 {
	return [2]uint64{maphash.Bytes(o.seeds[0], k), maphash.Bytes(o.seeds[1], k)}
}

// set records offset as key's latest. The caller checks room first, a
// batch at a time (so one batch, the first, may pass the limit: a pass
// always makes progress).
func (o *offsetMap) set(k []byte, offset int64) { o.m[o.key(k)] = offset }

// latest returns the offset recorded for key.
func (o *offsetMap) latest(k []byte) (int64, bool) {
	off, ok := o.m[o.key(k)]
	return off, ok
}

// room reports whether n more new keys fit.
func (o *offsetMap) room(n int) bool { return len(o.m)+n <= o.limit }

func (o *offsetMap) len() int { return len(o.m) }
