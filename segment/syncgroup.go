package segment

import (
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/runnel-io/runnel/internal/vfs"
)

// DefaultSyncGroupMinFiles is the number of files a round of a SyncGroup
// must cover before one sync of the whole file system replaces their
// fdatasyncs. Measured on ext4 over a virtual disk (docs/benchmarks.md):
// one fdatasync 130–220 µs, one syncfs 250–700 µs; with 3 files the two
// cost the same, with 6 one syncfs did the work of six fdatasyncs in a
// fifth of their time, with 50 in a fifth as well.
const DefaultSyncGroupMinFiles = 4

// SyncGroup lets the group commits of many logs on one file system share
// a sync: the flushes that arrive together (the leader's partitions
// answering produces at the same moment, or a follower making what one
// fetch brought durable in every partition) are covered by one syncfs
// when there are at least MinFiles of them, instead of one fdatasync of
// each file with a journal commit and a disk cache flush apiece. Fewer
// than that are left to the logs, which fdatasync their own files at once,
// as without a group.
//
// A round collects the flushes queued while the one before ran, so like a
// log's own group commit it needs no timer. A flush that finds no round
// running runs one itself, so a lone flush waits for nothing at all. A
// round too small for a syncfs waits while flushes the group gave back are
// still being fdatasynced, if with them it would be big enough: the
// window in which a busy group gathers rounds worth a syncfs (round). A
// failed syncfs says only that some file on the file system failed its
// write-back; every log of that round then fdatasyncs its own files, which
// answers for each file alone (and takes offline only the logs whose data
// was lost).
//
// syncfs writes back everything dirty on the file system, whoever wrote
// it: on a file system shared with busy writers it can take longer than
// the round's own fdatasyncs. So the group keeps a moving average of what
// a round cost per file each way (a syncfs's time, or the sum of the
// logs' fdatasync times, divided by the files of the round: rounds differ
// in size) and syncs a round of MinFiles or more the way that has been
// cheaper, trying the other way now and then (probeEvery) to follow a
// change of load.
type SyncGroup struct {
	vol      vfs.Volume
	minFiles int
	observe  func(time.Duration)
	covered  func(files int)
	log      *slog.Logger

	mu      sync.Mutex
	queue   []*groupFlush
	files   int // in queue
	running bool
	closed  bool
	idle    sync.WaitGroup
	// ownFiles counts the files that logs given back their flushes are
	// fdatasyncing now; ownCond is signalled when it falls and when a
	// flush queues (see round).
	ownFiles int
	ownCond  sync.Cond

	// Under mu: moving averages of a round's time per file by syncfs and
	// by the logs' own fdatasyncs (0: not measured yet), and the rounds of
	// MinFiles or more since the way not chosen was last tried.
	volumeAvg, ownAvg time.Duration
	sinceProbe        int
}

// probeEvery is how often a round big enough for a syncfs is synced the
// way the averages do not choose, to measure it again, when the two ways
// cost about the same; when the other way has been k times slower (k up
// to maxProbeScale), k times less often: a probe of a much slower way
// holds up every flush that queues behind it.
const (
	probeEvery    = 16
	maxProbeScale = 16
)

// ownRound times a round whose logs fdatasync their own files. Its cost
// is the sum of their fdatasyncs' times, not the slowest: they run side by
// side, but each holds the disk, the journal and a CPU in the kernel for
// its time, which the next rounds wait behind (a busy group's own rounds
// overlap each other, so a round's wall time says little of what it
// cost).
type ownRound struct {
	pending, files int
	total          time.Duration
	failed         bool
}

// SyncGroupOptions configure a SyncGroup.
type SyncGroupOptions struct {
	// MinFiles is the least number of files a round syncs with one
	// syncfs. Zero: DefaultSyncGroupMinFiles.
	MinFiles int
	// ObserveSync, if set, is told how long each syncfs took.
	ObserveSync func(time.Duration)
	// ObserveCovered, if set, is told how many files each syncfs covered.
	ObserveCovered func(files int)
	// Logger gets failed syncs. Nil: slog.Default().
	Logger *slog.Logger
}

// groupFlush is one log's request in a round.
type groupFlush struct {
	files int
	done  chan struct{}
	own   bool      // set before done closes: the log syncs its files itself
	timed *ownRound // with own: report the time the log's syncs took (ownDone)
}

// NewSyncGroup opens the file system holding dir for shared syncs.
func NewSyncGroup(fs vfs.FS, dir string, o SyncGroupOptions) (*SyncGroup, error) {
	if fs == nil {
		fs = vfs.Default
	}
	vol, err := fs.OpenVolume(dir)
	if err != nil {
		return nil, err
	}
	if o.MinFiles <= 0 {
		o.MinFiles = DefaultSyncGroupMinFiles
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	g := &SyncGroup{vol: vol, minFiles: o.MinFiles, observe: o.ObserveSync,
		covered: o.ObserveCovered, log: o.Logger}
	g.ownCond.L = &g.mu
	return g, nil
}

// Close waits for a running round and releases the file system. Flushes
// after it sync their own files.
func (g *SyncGroup) Close() error {
	g.mu.Lock()
	g.closed = true
	g.ownCond.Broadcast()
	g.mu.Unlock()
	g.idle.Wait()
	return g.vol.Close()
}

// flush makes files of the caller's log durable together with the other
// logs' flushes of the same round. The caller has stored every byte it
// wants covered before calling. It returns own false when they are
// durable, true when the caller must fdatasync them itself (a small round,
// a round the averages give to fdatasync, a failed syncfs, a closed
// group); then done, if not nil, must be called once the syncs are over,
// with the time they took, or a negative duration if one failed.
func (g *SyncGroup) flush(files int) (own bool, done func(time.Duration)) {
	req := &groupFlush{files: files, done: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return true, nil
	}
	g.queue = append(g.queue, req)
	g.files += files
	g.ownCond.Broadcast() // a round waiting for more flushes may have enough
	if !g.running {
		// No round is running: this flush runs one itself, saving the
		// hand-off to a goroutine that a lone flush would wait for, and
		// leaves any flushes queued meanwhile to a runner of their own.
		g.running = true
		g.idle.Add(1)
		g.mu.Unlock()
		g.round()
		g.mu.Lock()
		if len(g.queue) > 0 {
			go g.run()
		} else {
			g.running = false
			g.idle.Done()
		}
	}
	g.mu.Unlock()
	<-req.done
	if req.own {
		return true, func(d time.Duration) { g.ownDone(req, d) }
	}
	return false, nil
}

// ownDone records that one log's fdatasyncs of a flush given back are
// over: its files leave ownFiles, and in a timed round the last one in
// folds the round's time into the average (unless a sync failed).
func (g *SyncGroup) ownDone(req *groupFlush, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ownFiles -= req.files
	g.ownCond.Broadcast()
	r := req.timed
	if r == nil {
		return
	}
	if d < 0 {
		r.failed = true
	}
	r.total += max(d, 0)
	if r.pending--; r.pending == 0 && !r.failed {
		g.ownAvg = average(g.ownAvg, r.total/time.Duration(r.files))
	}
}

// average folds d into a moving average that weighs the newest 1/8.
func average(avg, d time.Duration) time.Duration {
	if avg == 0 {
		return d
	}
	return avg + (d-avg)/8
}

// useVolume says whether a round of MinFiles or more is synced with one
// syncfs. Called with mu held.
func (g *SyncGroup) useVolumeLocked() bool {
	volume := g.volumeAvg <= g.ownAvg // an unmeasured way (0) is tried first
	fast, slow := g.volumeAvg, g.ownAvg
	if !volume {
		fast, slow = slow, fast
	}
	every := probeEvery
	if fast > 0 {
		every *= int(min(max(slow/fast, 1), maxProbeScale))
	}
	if g.sinceProbe++; g.sinceProbe >= every {
		g.sinceProbe = 0
		volume = !volume
	}
	return volume
}

// run runs rounds until none is queued.
func (g *SyncGroup) run() {
	defer g.idle.Done()
	for g.round() {
	}
}

// round syncs the flushes queued now, as one round; false (and the group
// no longer running) when none was.
func (g *SyncGroup) round() bool {
	g.gather()
	g.mu.Lock()
	// Flushes come in faster than fdatasyncs end: rather than give a
	// round too small for a syncfs back to its logs while others are
	// still fdatasyncing theirs, let it grow until they are done (or it
	// is big enough). This is the round's batching window: without it a
	// round given back ends at once, the next one finds nothing queued,
	// and a busy group never gathers a round worth a syncfs. Only while a
	// syncfs is the cheaper way: where the logs' own fdatasyncs are, they
	// had better run side by side than wait for each other.
	for g.files < g.minFiles && g.files+g.ownFiles >= g.minFiles && g.volumeAvg <= g.ownAvg && !g.closed {
		g.ownCond.Wait()
	}
	round, files := g.queue, g.files
	g.queue, g.files = nil, 0
	if len(round) == 0 {
		g.running = false
		g.mu.Unlock()
		return false
	}
	big := files >= g.minFiles
	own := !big || !g.useVolumeLocked()
	var timed *ownRound
	if big && own {
		timed = &ownRound{pending: len(round), files: files}
	}
	if own {
		g.ownFiles += files
	}
	g.mu.Unlock()

	if !own {
		// Every store of the round's logs happened before they queued,
		// and so before this syncfs starts: it covers them.
		start := time.Now()
		err := g.vol.Sync()
		took := time.Since(start)
		if g.observe != nil {
			g.observe(took)
		}
		if err != nil {
			g.log.Warn("syncfs failed; each partition of the round syncs its own files", "files", files, "err", err)
			own = true
			g.mu.Lock()
			g.ownFiles += files
			g.mu.Unlock()
		} else {
			g.mu.Lock()
			g.volumeAvg = average(g.volumeAvg, took/time.Duration(files))
			g.mu.Unlock()
			if g.covered != nil {
				g.covered(files)
			}
		}
	}
	for _, r := range round {
		r.own, r.timed = own, timed
		close(r.done)
	}
	return true
}

// gather lets flushes that are runnable now queue before the round
// starts, as syncer.gather does for one log's appenders.
func (g *SyncGroup) gather() {
	g.mu.Lock()
	last := len(g.queue)
	g.mu.Unlock()
	for range gatherYields {
		runtime.Gosched()
		g.mu.Lock()
		n := len(g.queue)
		g.mu.Unlock()
		if n == last {
			return
		}
		last = n
	}
}
