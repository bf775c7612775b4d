package segment_test

// Storage engine benchmarks. Results and how to read them: docs/benchmarks.md;
// scripts/bench-storage.sh runs them. Benchmarks measure and report; they
// never assert on speed.
//
//	BenchmarkAppend               Log.Append (+ WaitDurable under fsync=always),
//	                              1 or 8 goroutines appending to one partition log
//	BenchmarkAppendRolling        the same with segment rolls paid for
//	BenchmarkBaseline*            the same batches written without the log: plain
//	                              write(2), copy into a mapping, write(2) + fdatasync
//	BenchmarkReadRandomOffset     Log.Read position lookup, p50/p99
//	BenchmarkRecoveryLarge        Open of a 1 GiB active segment scanned whole
//	BenchmarkOpenPartitionsLarge  Open of 10,000 partition logs, time and memory
//
// The last two write a lot (GiBs, 10,000 folders) and run only with
// RUNNEL_BENCH_LARGE=1.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runnel-io/runnel/index"
	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/mmap"
	"github.com/runnel-io/runnel/segment"
)

// benchEnv is newEnv for any testing.TB: one index database and partition
// folders under dir.
type benchEnv struct {
	tb  testing.TB
	dir string
	db  *index.DB
}

func newBenchEnv(tb testing.TB) *benchEnv {
	tb.Helper()
	e := &benchEnv{tb: tb, dir: tb.TempDir()}
	e.openDB()
	tb.Cleanup(func() {
		if e.db != nil {
			e.db.Close()
		}
	})
	return e
}

func (e *benchEnv) openDB() {
	e.tb.Helper()
	db, err := index.Open(filepath.Join(e.dir, "index"), index.Options{})
	if err != nil {
		e.tb.Fatal(err)
	}
	e.db = db
}

func (e *benchEnv) closeDB() {
	e.tb.Helper()
	if err := e.db.Close(); err != nil {
		e.tb.Fatal(err)
	}
	e.db = nil
}

func (e *benchEnv) logDir(name string) string { return filepath.Join(e.dir, "topics", name) }

func (e *benchEnv) tryOpen(name string, o segment.Options) (*segment.Log, error) {
	o.Index = e.db.Partition(name)
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	return segment.Open(e.logDir(name), o)
}

func (e *benchEnv) open(name string, o segment.Options) *segment.Log {
	e.tb.Helper()
	l, err := e.tryOpen(name, o)
	if err != nil {
		e.tb.Fatal(err)
	}
	return l
}

// batchShape is one kind of produce batch.
type batchShape struct {
	name    string
	records int // records per batch
	recSize int // value bytes per record
}

// appendShapes: small batches of 100 B records, ~16 KiB batches of 100 B
// records, and ~16 KiB batches of one record. The log never parses records,
// so the last two cost the same per byte; records/s differs.
var appendShapes = []batchShape{
	{name: "1KiB-10x100B", records: 10, recSize: 100},
	{name: "16KiB-150x100B", records: 150, recSize: 100},
	{name: "16KiB-1x16KiB", records: 1, recSize: 16<<10 - 61 - 12},
}

func (s batchShape) batch(seed byte) []byte {
	return testbatch.Make(testbatch.Spec{Timestamp: 1_700_000_000_000, Values: testbatch.Values(s.records, s.recSize, seed)})
}

// reportRecords reports records/s over the timed part of the benchmark.
func reportRecords(b *testing.B, records int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)*float64(records)/s, "records/s")
	}
}

// BenchmarkAppend measures Log.Append to one partition log from 1 or 8
// goroutines. Under fsync=always each appender calls WaitDurable after its
// Append, so concurrent appenders share fdatasyncs (group commit).
//
// The active segment is made big enough (at least the default 1 GiB) that
// the timed run never rolls: this is the append path alone. A roll seals the
// segment and has the syncer fdatasync it in the background whatever the
// policy; BenchmarkAppendRolling measures appends with that cost included.
func BenchmarkAppend(b *testing.B) {
	for _, shape := range appendShapes {
		for _, policy := range []string{"never", "always"} {
			for _, appenders := range []int{1, 8} {
				name := fmt.Sprintf("batch=%s/fsync=%s/appenders=%d", shape.name, policy, appenders)
				b.Run(name, func(b *testing.B) {
					batch := shape.batch(1)
					segBytes := max(segment.DefaultSegmentBytes, int64(b.N)*int64(len(batch))+64<<20)
					benchAppend(b, shape, policy, appenders, segBytes)
				})
			}
		}
	}
}

// BenchmarkAppendRolling is BenchmarkAppend for ~16 KiB batches under
// fsync=never with 128 MiB segments, so that rolls, each sealing a segment
// full of dirty pages that the syncer then fdatasyncs, happen at a steady
// rate and are paid for in the result: the sustained rate, where
// BenchmarkAppend is the burst rate into the page cache. Its ceiling is
// BenchmarkBaselineWriteRolling. max-append-µs is the longest single
// Append: what a roll costs the appender that triggers it.
func BenchmarkAppendRolling(b *testing.B) {
	shape := appendShapes[1]
	for _, appenders := range []int{1, 8} {
		name := fmt.Sprintf("batch=%s/fsync=never/segment=128MiB/appenders=%d", shape.name, appenders)
		b.Run(name, func(b *testing.B) { benchAppend(b, shape, "never", appenders, rollingSegment) })
	}
}

func benchAppend(b *testing.B, shape batchShape, policy string, appenders int, segBytes int64) {
	pol, err := segment.ParseFsyncPolicy(policy)
	if err != nil {
		b.Fatal(err)
	}
	e := newBenchEnv(b)
	l := e.open("bench-0", segment.Options{Fsync: pol, SegmentBytes: segBytes})
	b.Cleanup(func() { l.Close() })
	batch := shape.batch(1)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()

	var claimed atomic.Int64
	var longest atomic.Int64 // ns, the slowest Append (rolling runs only)
	timed := segBytes == rollingSegment
	var wg sync.WaitGroup
	errs := make(chan error, appenders)
	batches := make([][]byte, appenders)
	for i := range batches {
		batches[i] = bytes.Clone(batch)
	}
	ctx := context.Background()
	b.ResetTimer()
	for g := range appenders {
		wg.Add(1)
		go func(mine []byte) {
			defer wg.Done()
			var slowest time.Duration
			defer func() {
				for old := longest.Load(); int64(slowest) > old && !longest.CompareAndSwap(old, int64(slowest)); old = longest.Load() {
				}
			}()
			for claimed.Add(1) <= int64(b.N) {
				var start time.Time
				if timed {
					start = time.Now()
				}
				r, err := l.Append(mine, 1)
				if timed {
					slowest = max(slowest, time.Since(start))
				}
				if err == nil && pol.Mode == segment.FsyncAlways {
					err = l.WaitDurable(ctx, r.LastOffset+1)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(batches[g])
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	reportRecords(b, shape.records)
	if timed {
		b.ReportMetric(float64(longest.Load())/1e3, "max-append-µs")
	}
}

// rollingSegment is the segment size of the rolling benchmarks.
const rollingSegment = 128 << 20

// BenchmarkBaselineWriteRolling is the ceiling of BenchmarkAppendRolling:
// write(2) of the same batches into files of 128 MiB, each fdatasynced
// when full, either in the writer's way (seal=inline) or by a goroutine
// while the writer goes on to the next file (seal=background, what the
// log does). It is the sustained write rate of this disk through the page
// cache, where BenchmarkBaselineWrite is the burst rate.
func BenchmarkBaselineWriteRolling(b *testing.B) {
	shape := appendShapes[1]
	for _, seal := range []string{"inline", "background"} {
		b.Run(fmt.Sprintf("batch=%s/segment=128MiB/seal=%s", shape.name, seal), func(b *testing.B) {
			dir := b.TempDir()
			batch := shape.batch(1)
			b.SetBytes(int64(len(batch)))
			full := make(chan *os.File, 1024)
			done := make(chan error, 1)
			go func() {
				var first error
				for f := range full {
					if err := unix.Fdatasync(int(f.Fd())); err != nil && first == nil {
						first = err
					}
					f.Close()
				}
				done <- first
			}()
			var f *os.File
			var size int64
			files := 0
			b.ResetTimer()
			for range b.N {
				if f == nil || size+int64(len(batch)) > rollingSegment {
					if f != nil {
						if seal == "inline" {
							if err := unix.Fdatasync(int(f.Fd())); err != nil {
								b.Fatal(err)
							}
							f.Close()
						} else {
							full <- f
						}
					}
					var err error
					if f, err = os.Create(filepath.Join(dir, fmt.Sprintf("%020d.log", files))); err != nil {
						b.Fatal(err)
					}
					files++
					size = 0
				}
				if _, err := f.Write(batch); err != nil {
					b.Fatal(err)
				}
				size += int64(len(batch))
			}
			b.StopTimer()
			close(full)
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			if f != nil {
				f.Close()
			}
			reportRecords(b, shape.records)
		})
	}
}

// BenchmarkBaselineWrite appends the same batches to a plain file with
// write(2), no sync: the page-cache write ceiling for the append path.
func BenchmarkBaselineWrite(b *testing.B) {
	for _, shape := range appendShapes {
		b.Run("batch="+shape.name, func(b *testing.B) {
			f := benchFile(b)
			batch := shape.batch(1)
			b.SetBytes(int64(len(batch)))
			b.ResetTimer()
			for range b.N {
				if _, err := f.Write(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reportRecords(b, shape.records)
		})
	}
}

// BenchmarkBaselineMmapCopy appends the same batches by copying them into a
// shared read-write mapping of the file, grown ahead of the writer with
// fallocate in the chunks a segment uses (64 KiB doubling to 16 MiB): the
// log's own append mechanism without the log. prefault=none is what the log
// does (each new page faults on its first store); prefault=populate asks the
// kernel to map each newly grown chunk writable in one call
// (MADV_POPULATE_WRITE, Linux 5.14), an experiment the log does not use.
func BenchmarkBaselineMmapCopy(b *testing.B) {
	for _, shape := range appendShapes {
		for _, prefault := range []string{"none", "populate"} {
			b.Run("batch="+shape.name+"/prefault="+prefault, func(b *testing.B) {
				benchMmapCopy(b, shape, prefault == "populate")
			})
		}
	}
}

func benchMmapCopy(b *testing.B, shape batchShape, populate bool) {
	f := benchFile(b)
	batch := shape.batch(1)
	total := int64(b.N) * int64(len(batch))
	m, err := mmap.Map(f, int(max(total, 1<<20)), mmap.ReadWrite)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Unmap()
	data := m.Bytes()
	b.SetBytes(int64(len(batch)))
	b.ResetTimer()
	var pos, allocated, chunk int64 = 0, 0, 64 << 10
	for range b.N {
		if need := pos + int64(len(batch)); need > allocated {
			from := allocated
			allocated = min(max(allocated+chunk, need), int64(len(data)))
			chunk = min(chunk*2, 16<<20)
			if err := mmap.Grow(f, allocated); err != nil {
				b.Fatal(err)
			}
			if populate {
				// Page-aligned: chunks are multiples of 64 KiB. The last one
				// may end mid-page at len(data); round it down.
				end := allocated &^ int64(mmap.PageSize()-1)
				if end > from {
					if err := unix.Madvise(data[from:end], unix.MADV_POPULATE_WRITE); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		copy(data[pos:], batch)
		pos += int64(len(batch))
	}
	b.StopTimer()
	reportRecords(b, shape.records)
}

// BenchmarkBaselineWriteSync is the fdatasync'd sequential write ceiling:
// one writer doing write(2) of K batches, then one fdatasync. K=8 puts as
// many bytes behind each sync as 8 group-committed appenders can. One op is
// one batch, so MB/s compares directly with BenchmarkAppend.
func BenchmarkBaselineWriteSync(b *testing.B) {
	for _, shape := range appendShapes {
		for _, k := range []int{1, 8} {
			b.Run(fmt.Sprintf("batch=%s/batches-per-sync=%d", shape.name, k), func(b *testing.B) {
				f := benchFile(b)
				batch := shape.batch(1)
				b.SetBytes(int64(len(batch)))
				fd := int(f.Fd())
				syncs := 0
				b.ResetTimer()
				for i := range b.N {
					if _, err := f.Write(batch); err != nil {
						b.Fatal(err)
					}
					if (i+1)%k == 0 || i == b.N-1 {
						if err := unix.Fdatasync(fd); err != nil {
							b.Fatal(err)
						}
						syncs++
					}
				}
				b.StopTimer()
				reportRecords(b, shape.records)
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(syncs), "µs/sync")
			})
		}
	}
}

func benchFile(b *testing.B) *os.File {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "baseline"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// BenchmarkReadRandomOffset measures the position lookup of Log.Read (index
// floor in Pebble, then a header walk from the entry found) for random
// offsets of a ~200 MB log of 1 KiB batches in 16 MiB segments, with the
// default 4 KiB index interval. The log stays open, as on a running broker:
// sealed segments are read with pread, the active one through its mapping;
// all of it is in the page cache. Reports p50 and p99 per lookup.
func BenchmarkReadRandomOffset(b *testing.B) {
	const logBytes = 200 << 20
	e := newBenchEnv(b)
	l := e.open("bench-0", segment.Options{SegmentBytes: 16 << 20, Fsync: segment.FsyncPolicy{Mode: segment.FsyncNever}})
	b.Cleanup(func() { l.Close() })
	batch := appendShapes[0].batch(1)
	for l.Size() < logBytes {
		if _, err := l.Append(batch, 1); err != nil {
			b.Fatal(err)
		}
	}
	leo := l.LogEndOffset()
	b.Logf("log: %d MB, %d segments, %d records", l.Size()>>20, len(l.Segments()), leo)

	rng := rand.New(rand.NewPCG(1, 2))
	durs := make([]time.Duration, 0, 1<<22)
	b.ReportAllocs()
	for b.Loop() {
		off := rng.Int64N(leo)
		t0 := time.Now()
		r, err := l.Read(off, 1, leo)
		r.Release()
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if len(durs) < cap(durs) {
			durs = append(durs, d)
		}
	}
	slices.Sort(durs)
	b.ReportMetric(quantileMicros(durs, 0.50), "p50-µs")
	b.ReportMetric(quantileMicros(durs, 0.99), "p99-µs")
}

func quantileMicros(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(q*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i].Nanoseconds()) / 1e3
}

func skipUnlessLarge(b *testing.B) {
	if os.Getenv("RUNNEL_BENCH_LARGE") != "1" {
		b.Skip("writes GiBs or 10,000 folders; set RUNNEL_BENCH_LARGE=1 to run")
	}
}

// BenchmarkRecoveryLarge measures Open of a log whose 1 GiB active segment
// must be scanned whole (length, magic, CRC-32C and offsets of every 16 KiB
// batch; an index entry per batch), as after an unclean stop right after the
// log's first checkpoint. To make that state, the log is written and closed,
// then its checkpoint is moved back to position 0 and the file is given a
// 16 MiB zero tail, which is what a crash leaves (space reserved ahead of the
// writer); each iteration restores it untimed.
//
// cache=warm: the segment is in the page cache (a process restart); one log
// serves every iteration. cache=cold: every iteration writes a new log and
// drops its pages (FADV_DONTNEED) before the timed part, as after a reboot.
// A new file each time matters on a VM: once read, a file's blocks stay in
// the host's cache, and later "cold" reads of it run at memory speed.
//
// op=read-baseline reads the same file with read(2) in 1 MiB pieces from the
// same cache state: the I/O ceiling for the scan.
func BenchmarkRecoveryLarge(b *testing.B) {
	skipUnlessLarge(b)
	const target = 1 << 30
	e := newBenchEnv(b)
	opts := segment.Options{SegmentBytes: target + 64<<20, Fsync: segment.FsyncPolicy{Mode: segment.FsyncNever}}
	batch := appendShapes[1].batch(1)

	type builtLog struct {
		name, path string
		size, leo  int64
	}
	build := func(name string) builtLog {
		l := e.open(name, opts)
		for l.Size()+int64(len(batch)) <= target {
			if _, err := l.Append(batch, 1); err != nil {
				b.Fatal(err)
			}
		}
		r := builtLog{name: name, path: filepath.Join(e.logDir(name), segment.FileName(0)), size: l.Size(), leo: l.LogEndOffset()}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		return r
	}
	crash := func(r builtLog) {
		ck := segment.Checkpoint{Segment: 0, Position: 0, NextOffset: 0, MaxTimestamp: -1}
		if err := e.db.Partition(r.name).SetCheckpoint(ck, true); err != nil {
			b.Fatal(err)
		}
		f, err := os.OpenFile(r.path, os.O_RDWR, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := unix.Fallocate(int(f.Fd()), 0, r.size, 16<<20); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	dropCache := func(r builtLog) {
		f, err := os.Open(r.path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			b.Fatal(err)
		}
	}
	remove := func(r builtLog) {
		if err := os.RemoveAll(e.logDir(r.name)); err != nil {
			b.Fatal(err)
		}
		if err := e.db.Partition(r.name).Reset(); err != nil {
			b.Fatal(err)
		}
	}
	recoverLog := func(r builtLog) {
		l, err := e.tryOpen(r.name, opts)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if got := l.LogEndOffset(); got != r.leo {
			b.Fatalf("recovered log end %d, want %d", got, r.leo)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	readFile := func(r builtLog) {
		f, err := os.Open(r.path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 1<<20)
		for n := int64(0); n < r.size; {
			k, err := f.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			n += int64(k)
		}
	}

	warm := build("warm")
	fresh := 0
	for _, op := range []string{"open", "read-baseline"} {
		for _, cache := range []string{"warm", "cold"} {
			b.Run("segment=1GiB/cache="+cache+"/op="+op, func(b *testing.B) {
				b.SetBytes(warm.size)
				for b.Loop() {
					b.StopTimer()
					r := warm
					if cache == "cold" {
						fresh++
						r = build(fmt.Sprintf("cold-%d", fresh))
					}
					crash(r)
					if cache == "cold" {
						dropCache(r)
					}
					b.StartTimer()
					if op == "open" {
						recoverLog(r)
					} else {
						readFile(r)
					}
					if cache == "cold" {
						b.StopTimer()
						remove(r)
						b.StartTimer()
					}
				}
				perGiB := b.Elapsed().Seconds() / float64(b.N) / (float64(warm.size) / (1 << 30))
				b.ReportMetric(perGiB, "s/GiB")
			})
		}
	}
}

// BenchmarkOpenPartitionsLarge measures opening 10,000 partition logs, each
// one small segment of a few batches closed cleanly, with one shared index
// database, one after the other in one goroutine. Timed: opening the index
// database and the 10,000 logs. Reported with it: the process's VmRSS and
// VmSize afterwards (each active segment maps its full SegmentBytes, 1 GiB,
// of address space: virtual, not resident) and the live Go heap.
//
// logstart=0: new partitions, whose one segment starts at offset 0.
// logstart=retained: partitions where retention already removed a first
// segment, so the log starts past 0, as on a broker that has run a while
// (Open then asks the index to drop entries below the log start).
func BenchmarkOpenPartitionsLarge(b *testing.B) {
	skipUnlessLarge(b)
	for _, retained := range []bool{false, true} {
		name := "logstart=0"
		if retained {
			name = "logstart=retained"
		}
		b.Run("partitions=10000/"+name, func(b *testing.B) { benchOpenPartitions(b, 10_000, retained) })
	}
}

func benchOpenPartitions(b *testing.B, n int, retained bool) {
	e := newBenchEnv(b)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("topic%03d-%d", i/100, i%100)
	}
	create := func(name string) error {
		opts := segment.Options{Fsync: segment.FsyncPolicy{Mode: segment.FsyncNever}, RetentionBytes: 1, RetentionAge: -1}
		l, err := e.tryOpen(name, opts)
		if err != nil {
			return err
		}
		defer l.Close()
		if retained {
			if _, err := l.Append(appendShapes[0].batch(9), 1); err != nil {
				return err
			}
			if err := l.Roll(); err != nil {
				return err
			}
		}
		for j := range 3 {
			if _, err := l.Append(appendShapes[0].batch(byte(j)), 1); err != nil {
				return err
			}
		}
		if retained {
			if n, err := l.ApplyRetention(); err != nil || n != 1 || l.LogStartOffset() == 0 {
				return fmt.Errorf("retention removed %d segments (log start %d): %v", n, l.LogStartOffset(), err)
			}
		}
		return l.Close()
	}
	// Build in parallel: each new log costs a few fsyncs.
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if err := create(names[i]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	e.closeDB()

	var rss, vmSize, heap float64
	logs := make([]*segment.Log, n)
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		debug.FreeOSMemory()
		b.StartTimer()
		e.openDB()
		for i, name := range names {
			l, err := e.tryOpen(name, segment.Options{})
			if err != nil {
				b.Fatal(err)
			}
			logs[i] = l
		}
		b.StopTimer()
		status := procStatus(b)
		rss, vmSize = status["VmRSS"], status["VmSize"]
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = float64(ms.HeapAlloc)
		for i, l := range logs {
			if retained && l.LogStartOffset() == 0 {
				b.Fatalf("%s: log start 0 after reopen", names[i])
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			logs[i] = nil
		}
		e.closeDB()
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/open-all")
	b.ReportMetric(rss/(1<<20), "RSS-MiB")
	b.ReportMetric(vmSize/(1<<30), "VmSize-GiB")
	b.ReportMetric(heap/(1<<20), "heap-MiB")
}

// procStatus returns the byte-valued fields of /proc/self/status.
func procStatus(tb testing.TB) map[string]float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	out := make(map[string]float64)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(v)
		if !ok || len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		if kb, err := strconv.ParseFloat(fields[0], 64); err == nil {
			out[k] = kb * 1024
		}
	}
	return out
}
