//go:build linux

package mmap_test

import (
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runnel-io/runnel/mmap"
)

// threadCPU is the calling thread's CPU time, user and system.
func threadCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWriteSync is the active segment's write pattern under
// --fsync always: 1 MiB stores into a fresh mapping of a fallocated file,
// an fdatasync after each, with and without releasing the written pages
// from the page tables first (Mapping.Release). A goroutine spins on a
// thread of its own meanwhile, as the broker's other goroutines keep its
// mapping live on the other CPUs: that is what makes each page's
// write-protection at write-back a TLB shootdown. It reports the rate and
// the writing thread's CPU per GiB, the fdatasync's write-back included.
//
//	go test -run '^$' -bench WriteSync -benchtime 512x -count 5 ./mmap/
func BenchmarkWriteSync(b *testing.B) {
	for _, release := range []bool{false, true} {
		name := "release=false"
		if release {
			name = "release=true"
		}
		b.Run(name, func(b *testing.B) {
			const chunk = 1 << 20
			size := b.N * chunk
			f, err := os.Create(filepath.Join(b.TempDir(), "seg"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if err := mmap.Grow(f, int64(size)); err != nil {
				b.Fatal(err)
			}
			m, err := mmap.Map(f, size, mmap.ReadWrite)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Unmap()
			data := m.Bytes()
			buf := make([]byte, chunk)
			for i := range buf {
				buf[i] = byte(i)
			}
			var stop atomic.Bool
			var spun sync.WaitGroup
			spun.Add(1)
			go func() {
				defer spun.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				for !stop.Load() {
				}
			}()
			defer func() { stop.Store(true); spun.Wait() }()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.SetBytes(chunk)
			c0 := threadCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				copy(data[i*chunk:], buf)
				if release {
					if err := m.Release(i*chunk, chunk); err != nil {
						b.Fatal(err)
					}
				}
				if err := unix.Fdatasync(int(f.Fd())); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric((threadCPU()-c0).Seconds()/(float64(size)/(1<<30)), "cpu-s/GiB")
		})
	}
}
