package consumer_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runnel-io/runnel/mmap"
)

// The bare loops: a file that is already in the page cache is sent again and
// again to a loopback TCP connection whose reader discards what it reads,
// in each of the three ways the fetch paths use, without the broker, Kafka
// framing or Go's poller. They give the machine's ceiling for each way, to
// set beside runnel's fetch paths (scripts/bench-fetch.sh).
//
//	go test -run '^$' -bench 'BareSendfile|BareReadWrite|BareMmapWrite' ./consumer/
//
// Both sockets are made with plain system calls and left blocking: a sender
// that fills the socket buffer sleeps in the kernel until the reader drains
// it. One op sends the whole file once (bareFileBytes).
//
// Besides MB/s, each reports two CPU figures, in CPU seconds (user+system)
// per 10^9 bytes sent:
//
//	sender-cpu-s/GB   the sending thread alone (getrusage RUSAGE_THREAD; the
//	                  benchmark goroutine is locked to its thread). This is
//	                  the figure to set beside the broker's CPU per GB
//	                  fetched: the broker is the sender there, its readers
//	                  other processes. On loopback the receiving side's TCP
//	                  processing runs in softirq context on whichever thread
//	                  transmitted, so part of it is in this figure; the
//	                  reader's copy into its own buffer is not.
//	process-cpu-s/GB  the whole process (RUSAGE_SELF): sender, reader and the
//	                  Go runtime, that is both ends of the connection, read
//	                  up to the last byte.
//
// Softirq work that the kernel defers to its ksoftirqd threads is in neither.
const bareFileBytes = 64 << 20

// BenchmarkBareSendfileLoopback sends the file with sendfile(2): page cache
// to socket inside the kernel.
func BenchmarkBareSendfileLoopback(b *testing.B) {
	benchmarkBare(b, func(sock int, f *os.File, size int64) error {
		var off int64
		for off < size {
			// sendfile advances off by what it sent.
			if _, err := unix.Sendfile(sock, int(f.Fd()), &off, int(size-off)); err != nil && err != unix.EINTR {
				return err
			}
		}
		return nil
	})
}

// BenchmarkBareReadWriteLoopback sends the file with pread(2) into a buffer
// of the copy path's size and write(2) from it: two copies per byte.
func BenchmarkBareReadWriteLoopback(b *testing.B) {
	buf := make([]byte, 256<<10)
	benchmarkBare(b, func(sock int, f *os.File, size int64) error {
		for off := int64(0); off < size; {
			n, err := unix.Pread(int(f.Fd()), buf, off)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			if n == 0 {
				return unix.EIO // the file is shorter than it was made
			}
			if err := writeFull(sock, buf[:n]); err != nil {
				return err
			}
			off += int64(n)
		}
		return nil
	})
}

// BenchmarkBareMmapWriteLoopback maps the file read-only, sends it with
// write(2) from the mapping and unmaps it, once per op, as the mmap fetch
// path does once per region: one copy per byte, plus the page faults that
// fill the mapping and the unmapping.
func BenchmarkBareMmapWriteLoopback(b *testing.B) {
	benchmarkBare(b, func(sock int, f *os.File, size int64) error {
		m, err := mmap.Map(f, int(size), mmap.ReadOnly)
		if err != nil {
			return err
		}
		err = writeFull(sock, m.Bytes()[:size])
		if uerr := m.Unmap(); err == nil {
			err = uerr
		}
		return err
	})
}

// benchmarkBare runs send b.N times over a fresh file and connection and
// reports throughput and CPU per GB.
func benchmarkBare(b *testing.B, send func(sock int, f *os.File, size int64) error) {
	f := pageCachedFile(b, bareFileBytes)
	sender, receiver := loopbackSockets(b)
	drained := make(chan int64, 1)
	go func() {
		// Blocking reads: this goroutine keeps a thread of its own while
		// it waits, as a reader in another process would.
		buf := make([]byte, 256<<10)
		var total int64
		for {
			n, err := unix.Read(receiver, buf)
			if err == unix.EINTR {
				continue
			}
			if n <= 0 {
				drained <- total
				return
			}
			total += int64(n)
		}
	}()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(bareFileBytes)
	thread0, process0 := cpuTime(b, unix.RUSAGE_THREAD), cpuTime(b, unix.RUSAGE_SELF)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := send(sender, f, bareFileBytes); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	thread1 := cpuTime(b, unix.RUSAGE_THREAD)
	if err := unix.Shutdown(sender, unix.SHUT_WR); err != nil {
		b.Fatal(err)
	}
	got := <-drained
	process1 := cpuTime(b, unix.RUSAGE_SELF)
	sent := int64(b.N) * bareFileBytes
	if got != sent {
		b.Fatalf("reader got %d bytes, %d were sent", got, sent)
	}
	gb := float64(sent) / 1e9
	b.ReportMetric((thread1-thread0).Seconds()/gb, "sender-cpu-s/GB")
	b.ReportMetric((process1-process0).Seconds()/gb, "process-cpu-s/GB")
}

// pageCachedFile writes a file of size bytes and syncs it, so that its pages
// are in the page cache and clean: no writeback runs during the benchmark.
func pageCachedFile(b *testing.B, size int) *os.File {
	b.Helper()
	f, err := os.Create(filepath.Join(b.TempDir(), "segment"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i*7 + i>>8)
	}
	for written := 0; written < size; written += len(chunk) {
		if _, err := f.Write(chunk[:min(len(chunk), size-written)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return f
}

// loopbackSockets returns both ends of a blocking loopback TCP connection.
func loopbackSockets(b *testing.B) (sender, receiver int) {
	b.Helper()
	socket := func() int {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		return fd
	}
	ln := socket()
	defer unix.Close(ln)
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		b.Fatal(err)
	}
	if err := unix.Listen(ln, 1); err != nil {
		b.Fatal(err)
	}
	addr, err := unix.Getsockname(ln)
	if err != nil {
		b.Fatal(err)
	}
	sender = socket()
	b.Cleanup(func() { unix.Close(sender) })
	if err := unix.Connect(sender, addr); err != nil {
		b.Fatal(err)
	}
	receiver, _, err = unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(receiver) })
	return sender, receiver
}

// writeFull writes all of p to a blocking socket; a signal may cut a write
// short.
func writeFull(sock int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(sock, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// cpuTime returns the user plus system time used so far by who
// (RUSAGE_THREAD or RUSAGE_SELF).
func cpuTime(b *testing.B, who int) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
