package partition

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/runnel-io/runnel/internal/fsutil"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/segment"
)

// The leader-epoch history of a partition: for each leader epoch whose
// leader appended to this log, the first offset it wrote. Followers
// compare theirs with the leader's (OffsetForLeaderEpoch) to find where
// their logs diverge. It is kept in a small file beside the segments,
// written (and synced) before the first batch of a new epoch is appended,
// so the file is never behind the log; entries past the log end after a
// crash are dropped at open. An epoch that appends nothing is never
// written: a broker that takes the lead of many partitions at start-up
// (a lone broker does, at a new epoch, each time it starts) does not sync
// a file for each of them.

const epochsFile = "leader-epochs.json"

// EpochEntry is one leader epoch and the first offset written in it.
type EpochEntry struct {
	Epoch       int32 `json:"epoch"`
	StartOffset int64 `json:"start_offset"`
}

// UndefinedEpoch is the epoch and offset of an OffsetForLeaderEpoch answer
// for an epoch older than the history (Kafka's -1, -1).
const UndefinedEpoch = -1

type epochHistory struct {
	dir     string
	log     *segment.Log // whose folder holds the file; nil in some tests
	entries []EpochEntry // ascending epochs and offsets
	unsaved bool         // entries holds an epoch the file does not
}

// loadEpochs reads the history, dropping what lies past the log end. With
// no file (a log written before histories were kept), it is rebuilt from
// the batch headers.
func loadEpochs(l *segment.Log) (*epochHistory, error) {
	h := &epochHistory{dir: l.Dir(), log: l}
	b, err := vfs.ReadFile(l.FS(), filepath.Join(l.Dir(), epochsFile))
	switch {
	case err == nil:
		if h.entries, err = decodeEpochs(b); err != nil {
			return nil, fmt.Errorf("partition: %s: %w", filepath.Join(l.Dir(), epochsFile), err)
		}
		h.truncateFrom(l.LogEndOffset() + 1)
		return h, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	err = l.WalkHeaders(l.LogStartOffset(), func(bh *segment.Header) bool {
		if n := len(h.entries); n == 0 || bh.PartitionLeaderEpoch > h.entries[n-1].Epoch {
			h.entries = append(h.entries, EpochEntry{bh.PartitionLeaderEpoch, bh.BaseOffset})
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(h.entries) == 0 {
		return h, nil // nothing to save: a log with no batch rebuilds it at no cost
	}
	return h, h.save()
}

func (h *epochHistory) save() error {
	b, err := encodeEpochs(h.entries)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(h.fs(), filepath.Join(h.dir, epochsFile), b, 0o644); err != nil {
		if errors.Is(err, vfs.ErrSyncFailed) && h.log != nil {
			// The file may be old or new after a crash, and a second
			// sync would prove nothing: no batch of this epoch may be
			// appended until the partition is opened again.
			return h.log.TakeOffline(fmt.Errorf("recording leader epochs: %w", err))
		}
		return err
	}
	h.unsaved = false
	return nil
}

func (h *epochHistory) fs() vfs.FS {
	if h.log == nil {
		return vfs.Default
	}
	return h.log.FS()
}

// flush saves the history if assign added an epoch since the last save.
// Call it before appending a batch: the file is then never behind the log.
func (h *epochHistory) flush() error {
	if !h.unsaved {
		return nil
	}
	return h.save()
}

// latest returns the newest epoch, or -1 with an empty history.
func (h *epochHistory) latest() int32 {
	if len(h.entries) == 0 {
		return UndefinedEpoch
	}
	return h.entries[len(h.entries)-1].Epoch
}

// assign records that epoch starts at offset, if it is newer than the
// newest epoch. The file has it after the next flush.
func (h *epochHistory) assign(epoch int32, offset int64) {
	if epoch <= h.latest() {
		return
	}
	h.entries = append(h.entries, EpochEntry{epoch, offset})
	h.unsaved = true
}

// truncateFrom drops the epochs starting at or after offset (the log was
// cut there).
func (h *epochHistory) truncateFrom(offset int64) bool {
	n := len(h.entries)
	for n > 0 && h.entries[n-1].StartOffset >= offset {
		n--
	}
	changed := n != len(h.entries)
	h.entries = h.entries[:n]
	return changed
}

// endOffsetFor answers OffsetForLeaderEpoch as Kafka does: for the newest
// epoch, the log end; for an older one, the newest epoch at or below it
// and the start of the epoch after that; for one older than the whole
// history, the epoch asked for and the start of the first; for one newer
// than the newest (or an empty history), undefined (-1, -1).
func (h *epochHistory) endOffsetFor(epoch int32, logEnd int64) (int32, int64) {
	n := len(h.entries)
	switch {
	case epoch < 0 || n == 0 || epoch > h.entries[n-1].Epoch:
		return UndefinedEpoch, UndefinedEpoch
	case epoch == h.entries[n-1].Epoch:
		return epoch, logEnd
	case epoch < h.entries[0].Epoch:
		return epoch, h.entries[0].StartOffset
	}
	for i := n - 2; i >= 0; i-- {
		if h.entries[i].Epoch <= epoch {
			return h.entries[i].Epoch, h.entries[i+1].StartOffset
		}
	}
	return UndefinedEpoch, UndefinedEpoch // not reached
}
