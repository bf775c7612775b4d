package partition

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/runnel-io/runnel/index"
	"github.com/runnel-io/runnel/internal/pebblelog"
)

// rawIndexVersion sets (v non-nil) and returns the version key of the
// index database in dir, opened with Pebble alone.
func rawIndexVersion(t *testing.T, dir string, v []byte) []byte {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebblelog.Logger{L: slog.New(slog.DiscardHandler), Component: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v != nil {
		if err := db.Set([]byte("v"), v, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	got, closer, err := db.Get([]byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	return append([]byte(nil), got...)
}

// TestIndexOfNewerVersionIsRebuilt: an index written in a newer format (by
// a newer broker) is moved aside, kept, and rebuilt from the segments; the
// partition opens with all its batches.
func TestIndexOfNewerVersionIsRebuilt(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir, 1, fsyncNever)
	p := openReplica(t, m, testTopic(nil), leaderRole(1, 1, []int32{1}, 1))
	for range 3 {
		produce(t, p, plain(4), -1)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	idxDir := filepath.Join(dir, "index")
	if got := rawIndexVersion(t, idxDir, nil); !bytes.Equal(got, []byte{0, 0, 0, index.FormatVersion}) {
		t.Fatalf("index version %x, want %d", got, index.FormatVersion)
	}
	rawIndexVersion(t, idxDir, []byte{0, 0, 0, index.FormatVersion + 1})

	m = newManager(t, dir, 1, fsyncNever)
	p = openReplica(t, m, testTopic(nil), leaderRole(1, 2, []int32{1}, 1))
	if got := p.LogEndOffset(); got != 12 {
		t.Fatalf("log end %d after rebuilding the index, want 12", got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	aside, err := filepath.Glob(idxDir + ".damaged-*")
	if err != nil || len(aside) != 1 {
		t.Fatalf("indexes moved aside: %v, %v; want one", aside, err)
	}
	if got := rawIndexVersion(t, aside[0], nil); !bytes.Equal(got, []byte{0, 0, 0, index.FormatVersion + 1}) {
		t.Fatalf("the index moved aside has version %x", got)
	}
	if got := rawIndexVersion(t, idxDir, nil); !bytes.Equal(got, []byte{0, 0, 0, index.FormatVersion}) {
		t.Fatalf("the rebuilt index has version %x", got)
	}
}
