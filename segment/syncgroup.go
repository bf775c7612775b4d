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
// log's own group commit it needs no timer: a lone flush waits for nothing
// but a goroutine hand-off. A failed syncfs says only that some file on
// the file system failed its write-back; every log of that round then
// fdatasyncs its own files, which answers for each file alone (and takes
// offline only the logs whose data was lost).
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
	own   bool // set before done closes: the log syncs its files itself
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
	return &SyncGroup{vol: vol, minFiles: o.MinFiles, observe: o.ObserveSync,
		covered: o.ObserveCovered, log: o.Logger}, nil
}

// Close waits for a running round and releases the file system. Flushes
// after it sync their own files.
func (g *SyncGroup) Close() error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.idle.Wait()
	return g.vol.Close()
}

// flush makes files of the caller's log durable together with the other
// logs' flushes of the same round. The caller has stored every byte it
// wants covered before calling. It returns false when they are durable,
// true when the caller must fdatasync them itself (a small round, a
// failed syncfs, a closed group).
func (g *SyncGroup) flush(files int) (own bool) {
	req := &groupFlush{files: files, done: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return true
	}
	g.queue = append(g.queue, req)
	g.files += files
	if !g.running {
		g.running = true
		g.idle.Add(1)
		go g.run()
	}
	g.mu.Unlock()
	<-req.done
	return req.own
}

func (g *SyncGroup) run() {
	defer g.idle.Done()
	for {
		g.gather()
		g.mu.Lock()
		round, files := g.queue, g.files
		g.queue, g.files = nil, 0
		if len(round) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()

		own := files < g.minFiles
		if !own {
			// Every store of the round's logs happened before they queued,
			// and so before this syncfs starts: it covers them.
			start := time.Now()
			err := g.vol.Sync()
			if g.observe != nil {
				g.observe(time.Since(start))
			}
			if err != nil {
				g.log.Warn("syncfs failed; each partition of the round syncs its own files", "files", files, "err", err)
				own = true
			} else if g.covered != nil {
				g.covered(files)
			}
		}
		for _, r := range round {
			r.own = own
			close(r.done)
		}
	}
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
