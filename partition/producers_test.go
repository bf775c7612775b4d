package partition

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/runnel-io/runnel/internal/testbatch"
)

// producerSnapshot is what producers.json holds.
type producerSnapshot struct {
	LogEndOffset int64
	Producers    map[int64]*producerState
	Open         map[int64]int64 // open transactions
}

func decodeSnapshot(t *testing.T, b []byte) producerSnapshot {
	t.Helper()
	end, table, open, err := decodeProducers(b)
	if err != nil {
		t.Fatalf("%s: %v", producerSnapshotFile, err)
	}
	return producerSnapshot{end, table, open}
}

func encodeSnapshot(t *testing.T, snap producerSnapshot) []byte {
	t.Helper()
	b, err := encodeProducers(snap.LogEndOffset, snap.Producers, snap.Open)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readProducerSnapshot(t *testing.T, p *Partition) producerSnapshot {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.log.Dir(), producerSnapshotFile))
	if err != nil {
		t.Fatal(err)
	}
	return decodeSnapshot(t, b)
}

// bigIdempotent is one 100 KiB record from producer pid at seq.
func bigIdempotent(pid int64, seq int32) []byte {
	return testbatch.Make(testbatch.Spec{Timestamp: 1000, Idempotent: true, ProducerID: pid,
		BaseSequence: seq, Values: testbatch.Values(1, 100<<10, byte(seq))})
}

// TestProducerSnapshotAtRoll: a roll snapshots the producer table as of
// the new segment's base, and a start that finds that snapshot (as after a
// kill -9) walks only the batches after it and knows every producer.
func TestProducerSnapshotAtRoll(t *testing.T) {
	dir := t.TempDir()
	topic := testTopic(nil) // 1 MiB segments
	m := newManager(t, dir, 1, fsyncNever)
	p := openReplica(t, m, topic, leaderRole(1, 1, []int32{1}, 1))
	if _, err := os.Stat(filepath.Join(p.log.Dir(), producerSnapshotFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshot of a new, empty partition: %v", err)
	}
	seq := int32(0)
	for len(p.log.Segments()) < 2 {
		produce(t, p, bigIdempotent(7, seq), -1)
		seq++
	}
	rollBase := p.log.Segments()[1].Base()
	atRoll := readProducerSnapshot(t, p)
	if atRoll.LogEndOffset != rollBase {
		t.Fatalf("snapshot at offset %d, want the roll at %d", atRoll.LogEndOffset, rollBase)
	}
	if st := atRoll.Producers[7]; st == nil || len(st.Batches) == 0 || st.Batches[len(st.Batches)-1].LastSeq != seq-2 {
		t.Fatalf("snapshot at the roll holds %+v, want producer 7 up to sequence %d", st, seq-2)
	}
	produce(t, p, bigIdempotent(8, 0), -1) // a producer the snapshot has not seen
	for range 2 {
		produce(t, p, bigIdempotent(7, seq), -1)
		seq++
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// Put back the roll's snapshot, as a kill -9 would have left it.
	if err := os.WriteFile(filepath.Join(p.log.Dir(), producerSnapshotFile), encodeSnapshot(t, atRoll), 0o644); err != nil {
		t.Fatal(err)
	}

	m = newManager(t, dir, 1, fsyncNever)
	p = openReplica(t, m, topic, leaderRole(1, 2, []int32{1}, 1))
	if got := readProducerSnapshot(t, p); got.LogEndOffset != p.LogEndOffset() {
		t.Fatalf("snapshot after the walk at %d, want the log end %d", got.LogEndOffset, p.LogEndOffset())
	}
	if r := produce(t, p, bigIdempotent(7, seq-1), -1); !r.Duplicate || r.LastOffset != p.LogEndOffset()-1 {
		t.Fatalf("retry of the last batch after the roll: %+v, want a duplicate at %d", r, p.LogEndOffset()-1)
	}
	if r := produce(t, p, bigIdempotent(8, 0), -1); !r.Duplicate {
		t.Fatalf("retry of producer 8's batch: %+v, want a duplicate", r)
	}
	if _, err := p.Append(bigIdempotent(7, seq+1), -1); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("a gap in producer 7's sequence: %v, want %v", err, ErrOutOfOrderSequence)
	}
	if r := produce(t, p, bigIdempotent(7, seq), -1); r.Duplicate {
		t.Fatalf("producer 7's next batch taken as a duplicate: %+v", r)
	}
}

// TestProducerSnapshotThatDoesNotFit: a snapshot past the log end (the
// log was cut back after it was written) or one that does not parse (torn
// by an operating-system crash) is not used, and is replaced at open, so
// it cannot be taken for the log's once the log grows past it again.
func TestProducerSnapshotThatDoesNotFit(t *testing.T) {
	for name, content := range map[string]func(t *testing.T, good []byte) []byte{
		"past the log end": func(t *testing.T, good []byte) []byte {
			snap := decodeSnapshot(t, good)
			snap.LogEndOffset += 100
			snap.Producers[7].Batches[len(snap.Producers[7].Batches)-1].LastSeq += 100
			return encodeSnapshot(t, snap)
		},
		"torn": func(_ *testing.T, good []byte) []byte { return good[:len(good)/2] },
		"of a newer version": func(t *testing.T, good []byte) []byte {
			b := bytes.Replace(good, []byte(`{"version":2,`), []byte(`{"version":3,`), 1)
			if bytes.Equal(b, good) {
				t.Fatalf("no version 2 in %s", good)
			}
			return bytes.Replace(b, []byte(`"last_seq":14`), []byte(`"last_seq":114`), 1)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			topic := testTopic(nil)
			m := newManager(t, dir, 1, fsyncNever)
			p := openReplica(t, m, topic, leaderRole(1, 1, []int32{1}, 1))
			for seq := range int32(3) {
				produce(t, p, idempotent(7, 0, seq*5, 5), -1)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(p.log.Dir(), producerSnapshotFile)
			good, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, content(t, good), 0o644); err != nil {
				t.Fatal(err)
			}

			m = newManager(t, dir, 1, fsyncNever)
			p = openReplica(t, m, topic, leaderRole(1, 2, []int32{1}, 1))
			if got := readProducerSnapshot(t, p); got.LogEndOffset != 15 {
				t.Fatalf("snapshot at %d after open, want it rebuilt at the log end 15", got.LogEndOffset)
			}
			if r := produce(t, p, idempotent(7, 0, 10, 5), -1); !r.Duplicate || r.BaseOffset != 10 {
				t.Fatalf("retry of the last batch: %+v, want a duplicate at 10", r)
			}
			if r := produce(t, p, idempotent(7, 0, 15, 5), -1); r.Duplicate || r.BaseOffset != 15 {
				t.Fatalf("next batch: %+v, want it appended at 15", r)
			}
		})
	}
}
