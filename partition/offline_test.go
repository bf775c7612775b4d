package partition

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/segment"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func offlineBatch() []byte {
	return testbatch.Make(testbatch.Spec{Timestamp: 1_000, Values: testbatch.Values(2, 30, 5)})
}

// produceDurable appends one batch as a produce does and waits for it.
func produceDurable(p *Partition) error {
	r, err := p.Append(offlineBatch(), 1)
	if err != nil {
		return err
	}
	return p.WaitDurable(context.Background(), r.LastOffset+1)
}

// A failed sync takes its partition offline and no other: produces, waits,
// fetches and leader checks of it answer ErrOffline (KAFKA_STORAGE_ERROR),
// the log line names it, and the other partition keeps working. The
// failure comes from the log's fdatasync or from the leader-epoch file's.
func TestSyncFailureTakesPartitionOffline(t *testing.T) {
	cases := []struct {
		name, path string
	}{
		{"segment fdatasync", ".log"},
		{"leader-epoch file fsync", epochsFile},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := vfs.NewMemFS()
			var logs lockedBuffer
			m, err := OpenManager(Options{DataDir: t.TempDir(), Fsync: fsyncAlways, NodeID: 1, FS: fs,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			topic := func(name string, id byte) cluster.Topic {
				return cluster.Topic{Name: name, ID: cluster.TopicID{id}, Partitions: 1, Configs: map[string]string{"segment.bytes": "1048576"}}
			}
			a := openReplica(t, m, topic("a", 1), leaderRole(1, 1, []int32{1}, 1))
			b := openReplica(t, m, topic("b", 2), leaderRole(1, 1, []int32{1}, 1))
			if c.path == epochsFile {
				// The epoch file is written with the first batch of an epoch.
				if err := a.SetRole(leaderRole(1, 2, []int32{1}, 1)); err != nil {
					t.Fatal(err)
				}
			} else if err := produceDurable(a); err != nil {
				t.Fatal(err)
			}
			fs.Inject(func(op vfs.Op, path string) error {
				if op == vfs.OpSync && strings.Contains(path, "/a-0/") && strings.Contains(path, c.path) {
					return syscall.EIO
				}
				return nil
			})
			if err := produceDurable(a); !errors.Is(err, segment.ErrOffline) {
				t.Fatalf("produce when the sync fails: %v, want ErrOffline", err)
			}
			fs.Inject(nil) // the partition must not try again anyway
			if err := produceDurable(a); !errors.Is(err, segment.ErrOffline) {
				t.Fatalf("produce to the offline partition: %v, want ErrOffline", err)
			}
			if _, err := a.Read(0, 1<<20); !errors.Is(err, segment.ErrOffline) {
				t.Fatalf("fetch from the offline partition: %v, want ErrOffline", err)
			}
			if err := a.CheckLeader(-1); !errors.Is(err, segment.ErrOffline) {
				t.Fatalf("leader check of the offline partition: %v, want ErrOffline", err)
			}
			if a.Log().Offline() == nil {
				t.Fatal("the offline partition's log does not say so")
			}
			if !strings.Contains(logs.String(), "partition offline") || !strings.Contains(logs.String(), "partition=a-0") {
				t.Fatalf("no log line names the offline partition:\n%s", logs.String())
			}
			for range 3 {
				if err := produceDurable(b); err != nil {
					t.Fatalf("the other partition: %v", err)
				}
			}
			if r, err := b.Read(0, 1<<20); err != nil || r.Length == 0 {
				t.Fatalf("fetch from the other partition: %+v %v", r, err)
			} else {
				r.Release()
			}
			if b.Log().Offline() != nil {
				t.Fatal("the other partition went offline")
			}
		})
	}
}
