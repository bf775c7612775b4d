package cleaner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/runnel-io/runnel/internal/fsutil"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/partition"
)

// The cleaner checkpoint (on-disk format; never change silently): one JSON
// file per compacted partition folder, replaced whole and synced
// (internal/fsutil), after each clean. testdata/v1 holds the exact bytes
// the code writes for a fixed state, docs/format.md describes it, and
// checkpoint_test.go keeps both honest.
//
// It is advice, not data: a file lost, damaged or of a version this code
// does not read makes the cleaner start again from the log start with no
// segment cleaned, which costs a clean and keeps tombstones longer, and
// loses no record.

// CheckpointFile is the checkpoint's name in a partition folder.
const CheckpointFile = partition.CleanerCheckpointName

// checkpointVersion is the version this code writes and reads.
const checkpointVersion = 1

// errCheckpointVersion: a checkpoint of a version this code does not read.
var errCheckpointVersion = errors.New("cleaner: unknown checkpoint version")

// checkpointV1 is the checkpoint, version 1.
type checkpointV1 struct {
	Version int `json:"version"`
	// CleanOffset: every offset below it has been cleaned (is in the
	// clean section); the dirty section starts there.
	CleanOffset int64 `json:"clean_offset"`
	// Segments are the segments cleaned at least once, by base offset,
	// with the time of their first clean (their tombstones go
	// delete.retention.ms after it) and their size after the last pass:
	// a segment of another size changed since (a follower cut its log
	// back into it and wrote it again), and is dirty from its start.
	Segments []cleanedSegmentV1 `json:"segments"`
}

// cleanedSegmentV1 is one cleaned segment.
type cleanedSegmentV1 struct {
	Base      int64 `json:"base"`
	CleanedMs int64 `json:"cleaned_ms"`
	Size      int64 `json:"size"`
}

// checkpoint is the cleaner's state of one partition, in memory.
type checkpoint struct {
	cleanOffset int64
	cleaned     map[int64]cleanedSeg // by segment base
}

// cleanedSeg is a segment's first clean (Unix ms) and its size after the
// last pass.
type cleanedSeg struct{ ms, size int64 }

// without returns c with the segments from base on dirty again.
func (c checkpoint) without(base int64) checkpoint {
	out := checkpoint{cleanOffset: min(c.cleanOffset, base), cleaned: map[int64]cleanedSeg{}}
	for b, cs := range c.cleaned {
		if b < base {
			out.cleaned[b] = cs
		}
	}
	return out
}

func encodeCheckpoint(c checkpoint) []byte {
	f := checkpointV1{Version: checkpointVersion, CleanOffset: c.cleanOffset, Segments: []cleanedSegmentV1{}}
	for base, cs := range c.cleaned {
		f.Segments = append(f.Segments, cleanedSegmentV1{Base: base, CleanedMs: cs.ms, Size: cs.size})
	}
	slices.SortFunc(f.Segments, func(a, b cleanedSegmentV1) int { return int(min(max(a.Base-b.Base, -1), 1)) })
	b, err := json.Marshal(f)
	if err != nil {
		panic(fmt.Sprintf("cleaner: encoding a checkpoint: %v", err)) // plain integers: cannot fail
	}
	return append(b, '\n')
}

func decodeCheckpoint(b []byte) (checkpoint, error) {
	var v struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return checkpoint{}, err
	}
	if v.Version == nil || *v.Version != checkpointVersion {
		got := "none"
		if v.Version != nil {
			got = fmt.Sprint(*v.Version)
		}
		return checkpoint{}, fmt.Errorf("%w: %s", errCheckpointVersion, got)
	}
	var f checkpointV1
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return checkpoint{}, err
	}
	if f.CleanOffset < 0 {
		return checkpoint{}, fmt.Errorf("cleaner: negative clean offset %d", f.CleanOffset)
	}
	c := checkpoint{cleanOffset: f.CleanOffset, cleaned: map[int64]cleanedSeg{}}
	for _, s := range f.Segments {
		c.cleaned[s.Base] = cleanedSeg{ms: s.CleanedMs, size: s.Size}
	}
	return c, nil
}

// readCheckpoint reads dir's checkpoint; a missing file is the zero state.
func readCheckpoint(fsys vfs.FS, dir string) (checkpoint, error) {
	b, err := vfs.ReadFile(fsys, filepath.Join(dir, CheckpointFile))
	if errors.Is(err, fs.ErrNotExist) {
		return checkpoint{cleaned: map[int64]cleanedSeg{}}, nil
	}
	if err != nil {
		return checkpoint{cleaned: map[int64]cleanedSeg{}}, err
	}
	c, err := decodeCheckpoint(b)
	if err != nil {
		return checkpoint{cleaned: map[int64]cleanedSeg{}}, fmt.Errorf("cleaner: %s: %w", filepath.Join(dir, CheckpointFile), err)
	}
	return c, nil
}

// writeCheckpoint replaces dir's checkpoint durably.
func writeCheckpoint(fsys vfs.FS, dir string, c checkpoint) error {
	return fsutil.WriteFileAtomic(fsys, filepath.Join(dir, CheckpointFile), encodeCheckpoint(c), 0o644)
}
