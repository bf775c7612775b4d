package partition

// Power-loss tests of the partition's side files: the leader-epoch history
// (written and synced before the first batch of an epoch) and the producer
// snapshot (written unsynced at rolls and close, checked at open). The
// partition's folder is on vfs.MemFS, the index in Pebble on the real disk
// (it keeps every write, the harder case for recovery's checkpoints). A
// workload of idempotent produces under fsync=always, rolls, leader epochs
// and a truncation runs once to count its syncs, then again for every k
// with the machine going down at the k-th sync, strict or torn in turn
// (see vfs.MemFS.CrashTorn; RUNNEL_POWERLOSS=full: also
// the process killed there and the power cut after its restart); after the
// power cut the partition is opened again. Every acknowledged batch must be there, the
// epoch history must name the first offset of every epoch in the log, and
// the producer table, the open transactions and the aborted-transaction
// index must be what the whole log says. Two transactional producers take
// part: each aborts a transaction and leaves one open, one commits one.

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"testing"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/internal/vfs"
	"github.com/runnel-io/runnel/segment"
)

var plTopic = cluster.Topic{Name: "pl", ID: cluster.TopicID{9}, Partitions: 1, Configs: map[string]string{"segment.bytes": "2048"}}

// plAck is an acknowledged batch as the checks know it.
type plAck struct {
	pid   int64
	seq   int32
	epoch int32
}

type plPart struct {
	t     *testing.T
	fs    *vfs.MemFS
	dir   string
	m     *Manager
	p     *Partition
	acked map[int64]plAck // by base offset
	epoch int32           // the leader epoch to open at
	// did: what the dry run must show the workload did
	rolls, epochs, truncations int
	aborts, opened             int
}

func (w *plPart) stop(what string, err error) bool {
	if err == nil {
		return false
	}
	if w.fs.Down() {
		return true
	}
	w.t.Fatalf("%s: %v (the machine is up)", what, err)
	return true
}

func (w *plPart) open() bool {
	m, err := OpenManager(Options{DataDir: w.dir, Fsync: fsyncAlways, NodeID: 1, FS: w.fs, Logger: slog.New(slog.DiscardHandler)})
	if w.stop("open manager", err) {
		return false
	}
	w.m = m
	p, err := m.Open(plTopic, 0, leaderRole(1, w.epoch, []int32{1}, 1))
	if w.stop("open partition", err) {
		return false
	}
	w.p = p
	return true
}

func (w *plPart) close() {
	if w.m != nil {
		w.m.Close()
		w.m, w.p = nil, nil
	}
}

func (w *plPart) produce(pid int64, seq int32, epoch int32) bool {
	b := testbatch.Make(testbatch.Spec{Timestamp: 1000, Idempotent: true, ProducerID: pid, BaseSequence: seq,
		Values: testbatch.Values(plRecords(seq), 150+int(seq*31%200), byte(seq))})
	r, err := w.p.Append(b, 1)
	if w.stop("append", err) {
		return false
	}
	if w.stop("wait", w.p.WaitDurable(context.Background(), r.LastOffset+1)) {
		return false
	}
	w.acked[r.BaseOffset] = plAck{pid, seq, epoch}
	return true
}

// produceTxn appends a transactional batch of producer pid.
func (w *plPart) produceTxn(pid int64, seq int32) bool {
	b := testbatch.Make(testbatch.Spec{Timestamp: 1000, Idempotent: true, ProducerID: pid, BaseSequence: seq,
		Attributes: segment.AttrTransactional, Values: testbatch.Values(1, 120, byte(seq))})
	r, err := w.p.Append(b, 1)
	if w.stop("append", err) {
		return false
	}
	return !w.stop("wait", w.p.WaitDurable(context.Background(), r.LastOffset+1))
}

// marker writes a commit or abort marker for producer pid.
func (w *plPart) marker(pid int64, commit bool) bool {
	r, err := w.p.WriteMarker(pid, 0, 1, commit)
	if w.stop("marker", err) {
		return false
	}
	return !w.stop("wait", w.p.WaitDurable(context.Background(), r.LastOffset+1))
}

// plRecords is the record count of the batch at sequence seq.
func plRecords(seq int32) int { return 1 + int(seq/3%2) }

// run is the workload; it returns with the Manager closed.
func (w *plPart) run() {
	defer w.close()
	if !w.open() {
		return
	}
	seqs := map[int64]int32{}
	epoch := w.epoch
	segs := 1
	for i := 0; i < 30; i++ {
		pid := int64(1 + i%2)
		if i >= 18 {
			pid += 2 // producers after the truncation start afresh
		}
		if !w.produce(pid, seqs[pid], epoch) {
			return
		}
		seqs[pid] += int32(plRecords(seqs[pid]))
		ok := true
		switch i {
		case 2, 4, 7, 12: // producer 5: aborts, commits, leaves one open
			ok = w.produceTxn(5, seqs[5])
			seqs[5]++
		case 5:
			ok = w.marker(5, false)
		case 22:
			ok = w.marker(6, false)
		case 10:
			ok = w.marker(5, true)
		case 20, 26: // producer 6, after the truncation
			ok = w.produceTxn(6, seqs[6])
			seqs[6]++
		}
		if !ok {
			return
		}
		if n := len(w.p.Log().Segments()); n > segs {
			w.rolls, segs = w.rolls+n-segs, n
		}
		switch i {
		case 8, 24: // a new leader epoch
			epoch++
			w.epochs++
			if w.stop("set role", w.p.SetRole(leaderRole(1, epoch, []int32{1}, 1))) {
				return
			}
		case 17: // a leader change cut this replica back three batches
			var cut int64 = -1
			n := 0
			for off := w.p.LogEndOffset() - 1; off >= 0 && n < 3; off-- {
				if _, ok := w.acked[off]; ok {
					cut, n = off, n+1
				}
			}
			for off := range w.acked {
				if off >= cut {
					delete(w.acked, off)
				}
			}
			if w.stop("set role", w.p.SetRole(followerRole(2, epoch+1, 1, 2))) {
				return
			}
			if w.stop("truncate", w.p.TruncateTo(cut)) {
				return
			}
			epoch += 2
			w.truncations++
			if w.stop("set role", w.p.SetRole(leaderRole(1, epoch, []int32{1}, 1))) {
				return
			}
		}
	}
	if list, err := w.p.AbortedTransactions(nil, 0, w.p.LogEndOffset()); err == nil {
		w.aborts = len(list)
	}
	w.p.txn.mu.Lock()
	w.opened = len(w.p.txn.open)
	w.p.txn.mu.Unlock()
	w.close()
	epoch++ // a restarted broker leads at a new epoch
	w.epoch = epoch
	if !w.open() {
		return
	}
	w.produce(9, 0, epoch)
}

// check opens the partition after the crash and checks its log and side
// files; it returns how many acknowledged batches it checked.
func (w *plPart) check(point string) int {
	t := w.t
	w.epoch = 100
	if !w.open() {
		t.Fatalf("%s: cannot open after the crash", point)
	}
	defer w.close()
	p := w.p
	type seen struct {
		pid   int64
		seq   int32
		epoch int32
	}
	found := map[int64]seen{}
	firstOf := map[int32]int64{}
	var order []int32
	err := p.Log().WalkHeaders(p.LogStartOffset(), func(h *segment.Header) bool {
		found[h.BaseOffset] = seen{h.ProducerID, h.BaseSequence, h.PartitionLeaderEpoch}
		if _, ok := firstOf[h.PartitionLeaderEpoch]; !ok {
			firstOf[h.PartitionLeaderEpoch] = h.BaseOffset
			order = append(order, h.PartitionLeaderEpoch)
		}
		return true
	})
	if err != nil {
		t.Fatalf("%s: walking the log: %v", point, err)
	}
	for off, a := range w.acked {
		if got, ok := found[off]; !ok || got != seen(a) {
			t.Fatalf("%s: acknowledged batch at %d (producer %d sequence %d, epoch %d) lost: found %+v %v", point, off, a.pid, a.seq, a.epoch, got, ok)
		}
	}
	p.mu.Lock()
	entries := append([]EpochEntry(nil), p.epochs.entries...)
	got := maps.Clone(p.mu.producers)
	p.mu.Unlock()
	at := map[int32]int64{}
	for i, e := range entries {
		at[e.Epoch] = e.StartOffset
		if i > 0 && (e.Epoch <= entries[i-1].Epoch || e.StartOffset < entries[i-1].StartOffset) {
			t.Fatalf("%s: epoch history out of order: %v", point, entries)
		}
		if e.StartOffset > p.LogEndOffset() {
			t.Fatalf("%s: epoch history %v past the log end %d", point, entries, p.LogEndOffset())
		}
	}
	for _, e := range order {
		if start, ok := at[e]; !ok || start != firstOf[e] {
			t.Fatalf("%s: the log's epoch %d starts at %d, the history %v says otherwise", point, e, firstOf[e], entries)
		}
	}
	// The producer table, the open transactions and the aborts must be
	// the whole log's.
	gotAborted, err := p.AbortedTransactions(nil, 0, p.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.txn.mu.Lock()
	gotOpen := maps.Clone(p.txn.open)
	p.txn.mu.Unlock()
	saved := p.mu.producers
	p.mu.producers = map[int64]*producerState{}
	p.txn.mu.Lock()
	p.txn.resetLocked()
	p.txn.mu.Unlock()
	werr := p.walkProducers(p.LogStartOffset())
	want := p.mu.producers
	p.mu.producers = saved
	wantOpen := p.txn.open
	p.mu.Unlock()
	if werr != nil {
		t.Fatal(werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: producer table after the crash differs from the log's:\n got %s\nwant %s", point, fmtProducers(got), fmtProducers(want))
	}
	if !maps.Equal(gotOpen, wantOpen) {
		t.Fatalf("%s: open transactions after the crash %v, the log's %v", point, gotOpen, wantOpen)
	}
	wantAborted, err := p.AbortedTransactions(nil, 0, p.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotAborted, wantAborted) {
		t.Fatalf("%s: aborted transactions after the crash %v, the log's %v", point, gotAborted, wantAborted)
	}
	// And it takes produces again.
	if !w.produce(77, 0, w.epoch) {
		t.Fatalf("%s: produce after the crash failed", point)
	}
	return len(w.acked) - 1
}

func fmtProducers(m map[int64]*producerState) string {
	s := ""
	for pid, st := range m {
		s += fmt.Sprintf("%d:%+v ", pid, *st)
	}
	return s
}

func TestPowerLossPartitionSideFiles(t *testing.T) {
	dry := &plPart{t: t, fs: vfs.NewMemFS(), dir: t.TempDir(), acked: map[int64]plAck{}, epoch: 1}
	dry.run()
	n := dry.fs.Syncs()
	if dry.rolls < 2 || dry.epochs < 2 || dry.truncations != 1 {
		t.Fatalf("the workload rolled %d times, began %d epochs, truncated %d times: it tests too little", dry.rolls, dry.epochs, dry.truncations)
	}
	if dry.aborts != 2 || dry.opened != 2 {
		t.Fatalf("the workload left %d aborted and %d open transactions, want 2 and 2: it tests too little", dry.aborts, dry.opened)
	}
	full := os.Getenv("RUNNEL_POWERLOSS") == "full"
	points, batches := 0, 0
	for k := 1; k <= n+1; k++ {
		// The power is cut at sync k; in the full run also the process
		// is killed at sync k, restarted on the page cache it left, and
		// the power cut once that start is done.
		for _, kill := range []bool{false, true} {
			if kill && !full {
				continue
			}
			w := &plPart{t: t, fs: vfs.NewMemFS(), dir: t.TempDir(), acked: map[int64]plAck{}, epoch: 1}
			w.fs.FreezeAtSync(k)
			w.run()
			w.fs.Freeze()
			point := fmt.Sprintf("power cut at sync %d of %d", k, n)
			if kill {
				w.fs.Restart()
				w.epoch = 50
				if w.open() {
					w.fs.Freeze()
				}
				w.close()
				point = fmt.Sprintf("killed at sync %d of %d, power cut after the restart", k, n)
			}
			if k%2 == 0 {
				w.fs.CrashTorn(rand.New(rand.NewPCG(uint64(k), 3)))
			} else {
				w.fs.Crash()
			}
			points++
			batches += w.check(point)
		}
	}
	t.Logf("POWERLOSS partition side files: crash points tried %d, acknowledged batches checked %d, lost 0", points, batches)
}
