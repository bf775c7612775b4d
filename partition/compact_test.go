package partition

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/runnel-io/runnel/compression"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

// TestCompactionConfigs: cleanup.policy takes delete, compact and both in
// either order, the compaction configs take their ranges, and a topic's
// effective config says which policies apply; with compact alone
// retention deletes nothing.
func TestCompactionConfigs(t *testing.T) {
	for _, tc := range []struct {
		policy          string
		ok              bool
		compact, delete bool
	}{
		{"delete", true, false, true},
		{"compact", true, true, false},
		{"compact,delete", true, true, true},
		{"delete,compact", true, true, true},
		{"compact, delete", true, true, true},
		{"", false, false, false},
		{"compact,compact", false, false, false},
		{"compacted", false, false, false},
		{"delete,", false, false, false},
	} {
		cfg, err := ResolveConfig(map[string]string{"cleanup.policy": tc.policy})
		if (err == nil) != tc.ok {
			t.Errorf("cleanup.policy=%q: %v, want ok=%v", tc.policy, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("cleanup.policy=%q: %v, want ErrInvalidConfig", tc.policy, err)
			}
			continue
		}
		if cfg.Compact != tc.compact || cfg.Delete != tc.delete {
			t.Errorf("cleanup.policy=%q: compact %v delete %v, want %v %v", tc.policy, cfg.Compact, cfg.Delete, tc.compact, tc.delete)
		}
		o := cfg.logOptions()
		if o.Compacted != tc.compact {
			t.Errorf("cleanup.policy=%q: log options Compacted %v", tc.policy, o.Compacted)
		}
		if !tc.delete && (o.RetentionAge >= 0 || o.RetentionBytes >= 0) {
			t.Errorf("cleanup.policy=%q: retention %v / %d bytes, want none", tc.policy, o.RetentionAge, o.RetentionBytes)
		}
		if tc.delete && o.RetentionAge < 0 {
			t.Errorf("cleanup.policy=%q: no time retention", tc.policy)
		}
	}
	def, err := ResolveConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if def.Compact || !def.Delete || def.DeleteRetentionMs != 86400000 || def.MinCleanableDirtyRatio != 0.5 ||
		def.MinCompactionLagMs != 0 || def.MaxCompactionLagMs != 1<<63-1 {
		t.Errorf("defaults: %+v", def)
	}
	for name, bad := range map[string][]string{
		"min.cleanable.dirty.ratio": {"-0.1", "1.01", "NaN", "x"},
		"delete.retention.ms":       {"-1", "x"},
		"min.compaction.lag.ms":     {"-1"},
		"max.compaction.lag.ms":     {"0", "-5"},
	} {
		for _, v := range bad {
			if _, err := ResolveConfig(map[string]string{name: v}); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%s=%q: %v, want ErrInvalidConfig", name, v, err)
			}
		}
	}
	cfg, err := ResolveConfig(map[string]string{"min.cleanable.dirty.ratio": "0.25", "delete.retention.ms": "5",
		"min.compaction.lag.ms": "7", "max.compaction.lag.ms": "9"})
	if err != nil || cfg.MinCleanableDirtyRatio != 0.25 || cfg.DeleteRetentionMs != 5 || cfg.MinCompactionLagMs != 7 || cfg.MaxCompactionLagMs != 9 {
		t.Errorf("explicit compaction configs: %+v, %v", cfg, err)
	}
}

// keyed is a batch of records with the given keys (nil: a null key).
func keyed(keys ...[]byte) []byte {
	return testbatch.Make(testbatch.Spec{Timestamp: 1000, Keys: keys, Values: testbatch.Values(len(keys), 8, 1)})
}

// TestCompactedTopicRefusesNullKeys: on a compacted topic a batch holding a
// record without a key is refused whole with ErrNullKey (INVALID_RECORD),
// plain or compressed; a record with an empty key is taken; a topic that is
// not compacted takes null keys.
func TestCompactedTopicRefusesNullKeys(t *testing.T) {
	m := newManager(t, t.TempDir(), 1, fsyncNever)
	p := openReplica(t, m, testTopic(map[string]string{"cleanup.policy": "compact"}), leaderRole(1, 1, []int32{1}, 1))
	nullLast := keyed([]byte("a"), []byte("b"), nil)
	for _, tc := range []struct {
		name  string
		batch []byte
	}{
		{"plain", nullLast},
		{"plain, first record", keyed(nil, []byte("b"))},
		{"zstd", reframe(compression.Zstd, 3, compressRecords(t, compression.Zstd, nullLast[segment.HeaderSize:]))},
		{"gzip", reframe(compression.Gzip, 3, compressRecords(t, compression.Gzip, nullLast[segment.HeaderSize:]))},
	} {
		_, err := p.Append(tc.batch, 1)
		if !errors.Is(err, segment.ErrNullKey) || !errors.Is(err, segment.ErrInvalidRecord) {
			t.Errorf("%s: %v, want ErrNullKey (an ErrInvalidRecord)", tc.name, err)
		}
	}
	if end := p.LogEndOffset(); end != 0 {
		t.Fatalf("log end %d after refused batches", end)
	}
	if _, err := p.Append(keyed([]byte("a"), []byte{}), 1); err != nil {
		t.Errorf("empty key: %v", err)
	}
	zk := keyed([]byte("a"), []byte("b"))
	if _, err := p.Append(reframe(compression.LZ4, 2, compressRecords(t, compression.LZ4, zk[segment.HeaderSize:])), 1); err != nil {
		t.Errorf("lz4 with keys: %v", err)
	}

	m2 := newManager(t, t.TempDir(), 1, fsyncNever)
	d := openReplica(t, m2, testTopic(nil), leaderRole(1, 1, []int32{1}, 1))
	if _, err := d.Append(nullLast, 1); err != nil {
		t.Errorf("null key on a delete topic: %v", err)
	}
}

// TestReplicaAcceptsCompactedGaps: a follower of a compacted topic takes a
// batch past its log end (its leader's cleaner removed the offsets
// between), rolls where the leader rolled even when the leader's segment
// no longer holds its first offsets, and reopens with the gaps; a topic
// that is not compacted still refuses the gap (TestAppendReplica "gap").
func TestReplicaAcceptsCompactedGaps(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir, 2, fsyncNever)
	topic := testTopic(map[string]string{"cleanup.policy": "compact"})
	p := openReplica(t, m, topic, followerRole(1, 1, 1, 2))
	a, b, c := replicaBatch(0, 1, 3, 1), replicaBatch(5, 1, 2, 2), replicaBatch(12, 1, 2, 3)
	// The leader rolled at 10; its batches 10 and 11 were cleaned away.
	if err := p.FollowLeaderLog([]int64{0, 10}, 0); err != nil {
		t.Fatal(err)
	}
	if leo := appendReplica(t, p, slices.Concat(a, b, c)); leo != 14 {
		t.Fatalf("log end %d, want 14", leo)
	}
	var bases []int64
	for _, s := range p.Log().Segments() {
		bases = append(bases, s.Base())
	}
	if !slices.Equal(bases, []int64{0, 10}) {
		t.Fatalf("segments at %v, want [0 10] as the leader's", bases)
	}
	// A batch straddling the log end is still refused.
	if _, err := p.AppendReplica(replicaBatch(13, 1, 2, 4)); !errors.Is(err, ErrReplicaGap) {
		t.Fatalf("straddling batch: %v, want ErrReplicaGap", err)
	}
	// Reads of a removed offset find the next batch.
	if got := readReplica(t, p, 3, 1<<20); !slices.Equal(got, slices.Concat(b)) {
		t.Fatalf("read at removed offset 3: %d bytes, want batch 5 (%d)", len(got), len(b))
	}
	// Recovery, with the index gone so every segment is scanned, keeps
	// the gaps.
	m.Close()
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	m = newManager(t, dir, 2, fsyncNever)
	p = openReplica(t, m, topic, followerRole(1, 1, 1, 2))
	if got := readReplica(t, p, 0, 1<<20); !slices.Equal(got, slices.Concat(a, b)) {
		t.Fatalf("after recovery, segment 0 holds %d bytes, want %d", len(got), len(a)+len(b))
	}
	if got := readReplica(t, p, 10, 1<<20); !slices.Equal(got, c) {
		t.Fatalf("after recovery, segment 10 holds %d bytes, want %d", len(got), len(c))
	}
	if p.LogEndOffset() != 14 {
		t.Fatalf("log end %d after recovery, want 14", p.LogEndOffset())
	}
}
