package partition

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// readEpochsFile returns the history as it is on disk.
func readEpochsFile(t *testing.T, dir string) []EpochEntry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, epochsFile))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := decodeEpochs(b)
	if err != nil {
		t.Fatalf("%s: %v", epochsFile, err)
	}
	return entries
}

func writeEpochsFile(t *testing.T, dir string, entries []EpochEntry) {
	t.Helper()
	b, err := encodeEpochs(entries)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, epochsFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEpochHistoryAssign(t *testing.T) {
	h := &epochHistory{dir: t.TempDir()}
	if got := h.latest(); got != UndefinedEpoch {
		t.Fatalf("latest of an empty history = %d, want %d", got, UndefinedEpoch)
	}
	steps := []struct {
		epoch  int32
		offset int64
		want   []EpochEntry
	}{
		{0, 0, []EpochEntry{{0, 0}}},
		{0, 10, []EpochEntry{{0, 0}}},                   // same epoch: its start stays
		{3, 10, []EpochEntry{{0, 0}, {3, 10}}},          // epochs may skip
		{2, 20, []EpochEntry{{0, 0}, {3, 10}}},          // older epoch: ignored
		{4, 10, []EpochEntry{{0, 0}, {3, 10}, {4, 10}}}, // an epoch that wrote nothing ends where it began
		{7, 25, []EpochEntry{{0, 0}, {3, 10}, {4, 10}, {7, 25}}},
	}
	for _, s := range steps {
		h.assign(s.epoch, s.offset)
		if !slices.Equal(h.entries, s.want) {
			t.Fatalf("after assign(%d, %d): %v, want %v", s.epoch, s.offset, h.entries, s.want)
		}
		if err := h.flush(); err != nil {
			t.Fatalf("flush after assign(%d, %d): %v", s.epoch, s.offset, err)
		}
		if got := readEpochsFile(t, h.dir); !slices.Equal(got, s.want) {
			t.Fatalf("after assign(%d, %d): file holds %v, want %v", s.epoch, s.offset, got, s.want)
		}
	}
	if got := h.latest(); got != 7 {
		t.Fatalf("latest = %d, want 7", got)
	}
}

func TestEpochHistoryAssignSaveFails(t *testing.T) {
	h := &epochHistory{dir: filepath.Join(t.TempDir(), "missing")}
	h.assign(1, 0)
	if err := h.flush(); err == nil {
		t.Fatal("flush into a missing folder succeeded")
	}
	if err := h.flush(); err == nil {
		t.Fatal("a failed flush is not tried again")
	}
}

func TestEpochHistoryTruncateFrom(t *testing.T) {
	base := []EpochEntry{{1, 0}, {3, 10}, {4, 10}, {6, 25}}
	tests := []struct {
		offset  int64
		want    []EpochEntry
		changed bool
	}{
		{100, base, false},
		{26, base, false},
		{25, []EpochEntry{{1, 0}, {3, 10}, {4, 10}}, true},
		{11, []EpochEntry{{1, 0}, {3, 10}, {4, 10}}, true},
		{10, []EpochEntry{{1, 0}}, true}, // both epochs starting at 10 go
		{1, []EpochEntry{{1, 0}}, true},
		{0, []EpochEntry{}, true},
	}
	for _, tt := range tests {
		h := &epochHistory{entries: slices.Clone(base)}
		if changed := h.truncateFrom(tt.offset); changed != tt.changed {
			t.Errorf("truncateFrom(%d) changed = %v, want %v", tt.offset, changed, tt.changed)
		}
		if !slices.Equal(h.entries, tt.want) {
			t.Errorf("truncateFrom(%d) left %v, want %v", tt.offset, h.entries, tt.want)
		}
	}
	empty := &epochHistory{}
	if empty.truncateFrom(0) {
		t.Error("truncating an empty history reported a change")
	}
}

// TestEpochHistoryEndOffsetFor checks the OffsetForLeaderEpoch answer, as
// Kafka gives it: the newest epoch at or below the one asked for and the
// start of the epoch after it (the log end for the newest); an epoch older
// than the history ends where the history starts; a newer one is undefined.
func TestEpochHistoryEndOffsetFor(t *testing.T) {
	const logEnd = 40
	h := &epochHistory{entries: []EpochEntry{{1, 5}, {3, 10}, {4, 10}, {6, 25}}}
	tests := []struct {
		epoch     int32
		wantEpoch int32
		wantEnd   int64
	}{
		{-1, UndefinedEpoch, UndefinedEpoch}, // a follower that wrote nothing
		{0, 0, 5},                            // older than the history
		{1, 1, 10},
		{2, 1, 10}, // never led: the epoch before it, ending where the next began
		{3, 3, 10},
		{4, 4, 25},
		{5, 4, 25},
		{6, 6, logEnd},                      // the newest runs to the log end
		{9, UndefinedEpoch, UndefinedEpoch}, // newer than the newest
	}
	for _, tt := range tests {
		e, end := h.endOffsetFor(tt.epoch, logEnd)
		if e != tt.wantEpoch || end != tt.wantEnd {
			t.Errorf("endOffsetFor(%d) = (%d, %d), want (%d, %d)", tt.epoch, e, end, tt.wantEpoch, tt.wantEnd)
		}
	}
	empty := &epochHistory{}
	for _, epoch := range []int32{-1, 0, 5} {
		if e, end := empty.endOffsetFor(epoch, logEnd); e != UndefinedEpoch || end != UndefinedEpoch {
			t.Errorf("empty history: endOffsetFor(%d) = (%d, %d), want undefined", epoch, e, end)
		}
	}
}

// replicaLog opens a follower replica holding batches of the given epochs,
// five records each, from offset 0.
func replicaLog(t *testing.T, epochs ...int32) *Partition {
	t.Helper()
	m := newManager(t, t.TempDir(), 2, fsyncNever)
	p := openReplica(t, m, testTopic(nil), followerRole(1, 1, 1, 2))
	var off int64
	for i, e := range epochs {
		appendReplica(t, p, replicaBatch(off, e, 5, byte(i)))
		off += 5
	}
	return p
}

func TestLoadEpochsRebuildsFromBatchHeaders(t *testing.T) {
	p := replicaLog(t, 0, 0, 2, 2, 2, 5)
	want := []EpochEntry{{0, 0}, {2, 10}, {5, 25}}
	if !slices.Equal(p.epochs.entries, want) {
		t.Fatalf("history kept while appending: %v, want %v", p.epochs.entries, want)
	}
	if err := os.Remove(filepath.Join(p.log.Dir(), epochsFile)); err != nil {
		t.Fatal(err)
	}
	h, err := loadEpochs(p.log)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h.entries, want) {
		t.Fatalf("rebuilt %v, want %v", h.entries, want)
	}
	if got := readEpochsFile(t, p.log.Dir()); !slices.Equal(got, want) {
		t.Fatalf("rebuilt history saved as %v, want %v", got, want)
	}
}

func TestLoadEpochsEmptyLog(t *testing.T) {
	p := replicaLog(t)
	if got := p.LatestEpoch(); got != UndefinedEpoch {
		t.Fatalf("LatestEpoch of an empty follower = %d, want %d", got, UndefinedEpoch)
	}
	if _, err := os.Stat(filepath.Join(p.log.Dir(), epochsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("history of an empty log written: %v", err)
	}
	h, err := loadEpochs(p.log)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.entries) != 0 {
		t.Fatalf("history of an empty log: %v", h.entries)
	}
}

// TestLoadEpochsDropsEntriesPastLogEnd: a crash can leave the history
// ahead of the log (it is written first). An epoch starting at the log end
// is a leader's that has not written yet, and stays.
func TestLoadEpochsDropsEntriesPastLogEnd(t *testing.T) {
	p := replicaLog(t, 1, 1, 2) // log end 15
	writeEpochsFile(t, p.log.Dir(), []EpochEntry{{1, 0}, {2, 10}, {3, 15}, {4, 16}, {5, 30}})
	h, err := loadEpochs(p.log)
	if err != nil {
		t.Fatal(err)
	}
	if want := []EpochEntry{{1, 0}, {2, 10}, {3, 15}}; !slices.Equal(h.entries, want) {
		t.Fatalf("loaded %v, want %v", h.entries, want)
	}
}

func TestLoadEpochsCorruptFile(t *testing.T) {
	p := replicaLog(t, 1)
	if err := os.WriteFile(filepath.Join(p.log.Dir(), epochsFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadEpochs(p.log); err == nil {
		t.Fatal("loaded a corrupt history")
	}
}

// TestOpenLoadsEpochs runs loadEpochs through Manager.Open: after a clean
// close, without the file, and with a file Open refuses.
func TestOpenLoadsEpochs(t *testing.T) {
	dir := t.TempDir()
	topic := testTopic(nil)
	role := followerRole(1, 3, 1, 2)
	m := newManager(t, dir, 2, fsyncNever)
	p := openReplica(t, m, topic, role)
	appendReplica(t, p, replicaBatch(0, 1, 5, 1))
	appendReplica(t, p, replicaBatch(5, 3, 5, 2))
	pdir := p.log.Dir()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	want := []EpochEntry{{1, 0}, {3, 5}}

	m = newManager(t, dir, 2, fsyncNever)
	p = openReplica(t, m, topic, role)
	if !slices.Equal(p.epochs.entries, want) {
		t.Fatalf("reopened: %v, want %v", p.epochs.entries, want)
	}
	if e, end := p.EndOffsetForEpoch(1); e != 1 || end != 5 {
		t.Fatalf("EndOffsetForEpoch(1) = (%d, %d), want (1, 5)", e, end)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(filepath.Join(pdir, epochsFile)); err != nil {
		t.Fatal(err)
	}
	m = newManager(t, dir, 2, fsyncNever)
	p = openReplica(t, m, topic, role)
	if !slices.Equal(p.epochs.entries, want) {
		t.Fatalf("reopened without the file: %v, want %v", p.epochs.entries, want)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(filepath.Join(pdir, epochsFile), []byte("[{"), 0o644); err != nil {
		t.Fatal(err)
	}
	m = newManager(t, dir, 2, fsyncNever)
	if _, err := m.Open(topic, 0, role); err == nil {
		t.Fatal("opened a partition with a corrupt epoch history")
	} else if errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unexpected error: %v", err)
	}
	// The failed Open released the log: after a repair the partition opens.
	writeEpochsFile(t, pdir, want)
	p = openReplica(t, m, topic, role)
	if p.LogEndOffset() != 10 || !slices.Equal(p.epochs.entries, want) {
		t.Fatalf("after repair: log end %d, history %v", p.LogEndOffset(), p.epochs.entries)
	}
}
