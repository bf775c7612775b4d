package segment_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-io/runnel/segment"
)

// events records, in order, the syncs a log reports and the checkpoints it
// writes.
type events struct {
	mu   sync.Mutex
	list []string
	cks  []segment.Checkpoint
}

func (ev *events) add(s string) {
	ev.mu.Lock()
	ev.list = append(ev.list, s)
	ev.mu.Unlock()
}

func (ev *events) snapshot() ([]string, []segment.Checkpoint) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return append([]string(nil), ev.list...), append([]segment.Checkpoint(nil), ev.cks...)
}

// recordingIndex is an index that tells ev of every checkpoint written.
type recordingIndex struct {
	segment.Index
	ev *events
}

func (r recordingIndex) SetCheckpoint(c segment.Checkpoint, sync bool) error {
	r.ev.mu.Lock()
	r.ev.list = append(r.ev.list, "checkpoint")
	r.ev.cks = append(r.ev.cks, c)
	r.ev.mu.Unlock()
	return r.Index.SetCheckpoint(c, sync)
}

// openRecorded opens a small-segment log under FsyncNever whose syncs and
// checkpoints go to ev; onSync, if set, runs after each sync is recorded.
func openRecorded(t *testing.T, e *env, ev *events, onSync func()) *segment.Log {
	t.Helper()
	l, err := segment.Open(filepath.Join(e.dir, "topics", "p"), segment.Options{
		Index:        recordingIndex{e.db.Partition("p"), ev},
		Logger:       quietLogger(),
		SegmentBytes: 64 << 10,
		Fsync:        segment.FsyncPolicy{Mode: segment.FsyncNever},
		ObserveSync: func(time.Duration) {
			ev.add("sync")
			if onSync != nil {
				onSync()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A roll leaves the sealed segment's fdatasync to the syncer; the roll's
// checkpoint, which tells recovery to trust the sealed segment, must come
// after that sync, never with the roll itself.
func TestRollCheckpointFollowsSealSync(t *testing.T) {
	e := newEnv(t)
	ev := &events{}
	l := openRecorded(t, e, ev, nil)
	defer l.Close()
	appendN(t, l, 20, 4, 1000) // ~4 KiB a batch: the 64 KiB segment rolls once
	if n := len(l.Segments()); n != 2 {
		t.Fatalf("%d segments, want 2", n)
	}
	next := l.Segments()[1].Base()
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	list, cks := ev.snapshot()
	synced := false
	found := false
	ci := 0
	for _, s := range list {
		if s == "sync" {
			synced = true
			continue
		}
		ck := cks[ci]
		ci++
		if ck.Segment == next {
			found = true
			if !synced {
				t.Fatalf("the roll's checkpoint %+v was written before any sync: %v", ck, list)
			}
		}
	}
	if !found {
		t.Fatalf("no checkpoint at the new segment %d after a flush: %v %+v", next, list, cks)
	}

	// Recovery after a clean close needs no scan, and a reopen reads it all.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := e.open("p", segment.Options{SegmentBytes: 64 << 10})
	defer l2.Close()
	if hs := readAll(t, l2, 0); len(hs) != 20 {
		t.Fatalf("%d batches after reopening, want 20", len(hs))
	}
}

// A truncation while the syncer is still syncing a roll's seal must win:
// the roll's checkpoint names a segment the truncation removed, so the
// syncer must not write it when it finishes.
func TestTruncateDropsPendingRollCheckpoint(t *testing.T) {
	e := newEnv(t)
	ev := &events{}
	entered := make(chan struct{})
	release := make(chan struct{})
	var first atomic.Bool
	gate := func() {
		// The first sync to report is the syncer's, on the sealed segment:
		// hold it there while the test truncates.
		if first.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
	}
	l := openRecorded(t, e, ev, gate)
	defer l.Close()
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	res := appendN(t, l, 20, 4, 1000)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the roll did not start a sync of the sealed segment")
	}
	if n := len(l.Segments()); n != 2 {
		t.Fatalf("%d segments, want 2", n)
	}
	cut := res[5].BaseOffset // inside the sealed segment
	truncated := make(chan error, 1)
	go func() { truncated <- l.TruncateTo(cut) }()
	// TruncateTo waits for the log's lock, which the gated syncer does not
	// hold; its own syncs pass the gate, which lets only one call block.
	select {
	case err := <-truncated:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("TruncateTo did not finish while the syncer was parked")
	}
	close(release)
	released = true
	if got := l.LogEndOffset(); got != cut {
		t.Fatalf("log end %d after truncating to %d", got, cut)
	}
	// Close waits for the syncer to end, then writes its clean checkpoint.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, cks := ev.snapshot()
	if len(cks) < 2 {
		t.Fatalf("checkpoints %+v: want the truncation's and the close's", cks)
	}
	for _, ck := range cks[len(cks)-2:] {
		if ck.Segment != 0 || ck.NextOffset != cut {
			t.Fatalf("checkpoints %+v: after the truncation to %d, each must be at segment 0, next offset %d", cks, cut, cut)
		}
	}
}
