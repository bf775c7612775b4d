package segment_test

import (
	"errors"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/segment"
)

// crashIndex is an in-memory segment.Index that crashes with a vfs.MemFS.
// Its writes need no sync, as the Pebble index's: what survives a crash is
// every write before it (keepAll, Pebble having written its log anyway) or
// only what the last synced checkpoint covered. While the machine is down
// writes fail, as the process they came from is gone.
type crashIndex struct {
	fs *vfs.MemFS
	mu sync.Mutex
	// cur is what lookups see; durable what a crash without keepAll keeps.
	cur, durable idxState
}

type idxState struct {
	entries []segment.IndexEntry // by offset
	ck      *segment.Checkpoint
	infos   map[int64]segment.SegmentInfo
}

func (s idxState) clone() idxState {
	c := idxState{entries: slices.Clone(s.entries), infos: maps.Clone(s.infos)}
	if s.ck != nil {
		ck := *s.ck
		c.ck = &ck
	}
	return c
}

var errIndexDown = errors.New("crash index: the machine is down")

func newCrashIndex(fs *vfs.MemFS) *crashIndex { return &crashIndex{fs: fs} }

// crash loses what a power failure loses.
func (x *crashIndex) crash(keepAll bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if keepAll {
		x.durable = x.cur.clone()
	}
	x.cur = x.durable.clone()
}

func (x *crashIndex) write() error {
	if x.fs.Down() {
		return errIndexDown
	}
	return nil
}

func (x *crashIndex) Add(e segment.IndexEntry) error {
	if err := x.write(); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.cur.entries = append(x.cur.entries, e)
	return nil
}

func (x *crashIndex) Floor(offset int64) (segment.IndexEntry, bool, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i := sort.Search(len(x.cur.entries), func(i int) bool { return x.cur.entries[i].Offset > offset })
	if i == 0 {
		return segment.IndexEntry{}, false, nil
	}
	return x.cur.entries[i-1], true, nil
}

func (x *crashIndex) TimeFloor(ts int64) (segment.IndexEntry, bool, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i := sort.Search(len(x.cur.entries), func(i int) bool { return x.cur.entries[i].MaxTimestamp >= ts })
	if i == 0 {
		return segment.IndexEntry{}, false, nil
	}
	return x.cur.entries[i-1], true, nil
}

func (x *crashIndex) TruncateFrom(offset int64) error {
	if err := x.write(); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.cur.entries = slices.DeleteFunc(x.cur.entries, func(e segment.IndexEntry) bool { return e.Offset >= offset })
	return nil
}

func (x *crashIndex) DeleteBefore(offset int64) error {
	if err := x.write(); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.cur.entries = slices.DeleteFunc(x.cur.entries, func(e segment.IndexEntry) bool { return e.Offset < offset })
	return nil
}

func (x *crashIndex) ReplaceRange(from, to int64, entries []segment.IndexEntry, sync bool) error {
	if err := x.write(); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.cur.entries = slices.DeleteFunc(x.cur.entries, func(e segment.IndexEntry) bool { return e.Offset >= from && e.Offset < to })
	i := sort.Search(len(x.cur.entries), func(i int) bool { return x.cur.entries[i].Offset >= from })
	x.cur.entries = slices.Insert(x.cur.entries, i, entries...)
	if sync {
		x.durable = x.cur.clone()
	}
	return nil
}

func (x *crashIndex) Checkpoint() (segment.Checkpoint, bool, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.cur.ck == nil {
		return segment.Checkpoint{}, false, nil
	}
	return *x.cur.ck, true, nil
}

func (x *crashIndex) SetCheckpoint(c segment.Checkpoint, sync bool) error {
	if err := x.write(); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.cur.ck = &c
	if sync {
		x.durable = x.cur.clone()
	}
	return nil
}

func (x *crashIndex) SegmentInfo(base int64) (segment.SegmentInfo, bool, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	info, ok := x.cur.infos[base]
	return info, ok, nil
}

func (x *crashIndex) SetSegmentInfo(base int64, info segment.SegmentInfo) error {
	if err := x.write(); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.cur.infos == nil {
		x.cur.infos = map[int64]segment.SegmentInfo{}
	}
	x.cur.infos[base] = info
	return nil
}

func (x *crashIndex) DeleteSegmentInfo(base int64) error {
	if err := x.write(); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.cur.infos, base)
	return nil
}

func (x *crashIndex) Reset() error {
	if err := x.write(); err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.cur = idxState{}
	return nil
}
