package segment_test

// Crash tests with real processes and real file systems: a child process
// killed with SIGKILL while it appends, paths the log cannot open, and a
// file system that fills up. The recovery tests built on copied images are
// in recovery_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runnel-io/runnel/index"
	"github.com/runnel-io/runnel/segment"
)

// kill9DirEnv names the data folder of the child process TestKill9 starts.
const kill9DirEnv = "RUNNEL_SEGMENT_KILL9_DIR"

// kill9Batch is the batch the child appends at offset base: the parent
// rebuilds it from the offset alone.
func kill9Batch(base int64) []byte { return batchAt(base, 1+int(base%4), 20+int(base%61)) }

func kill9Options(idx segment.Index) segment.Options {
	return segment.Options{
		Index:         idx,
		SegmentBytes:  16 << 10, // several rolls per cycle, so kills land in them too
		IndexInterval: 1 << 10,
		Fsync:         segment.FsyncPolicy{Mode: segment.FsyncAlways},
		Logger:        quietLogger(),
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// TestKill9Child is the process TestKill9 kills, not a test of its own: it
// runs only when the test binary is started again with kill9DirEnv set.
func TestKill9Child(t *testing.T) {
	dir := os.Getenv(kill9DirEnv)
	if dir == "" {
		return
	}
	err := kill9Child(dir)
	fmt.Printf("error %v\n", err)
	os.Exit(2)
}

// kill9Child opens the log in dir and appends until it is killed. One
// goroutine appends; another waits for durability in append order and only
// then prints "ack BASE LAST CRC" (CRC-32C of the batch as stored), so every
// printed batch was acknowledged under fsync=always.
func kill9Child(dir string) error {
	db, err := index.Open(filepath.Join(dir, "index"), index.Options{Logger: quietLogger()})
	if err != nil {
		return err
	}
	l, err := segment.Open(filepath.Join(dir, "topics", "p"), kill9Options(db.Partition("p")))
	if err != nil {
		return err
	}
	fmt.Printf("open %d\n", l.LogEndOffset())
	type ack struct {
		base, last int64
		sum        uint32
	}
	acks := make(chan ack, 64)
	failed := make(chan error, 1)
	go func() {
		for a := range acks {
			if err := l.WaitDurable(context.Background(), a.last+1); err != nil {
				failed <- err
				return
			}
			fmt.Printf("ack %d %d %08x\n", a.base, a.last, a.sum)
		}
	}()
	for {
		base := l.LogEndOffset()
		b := kill9Batch(base)
		r, err := l.Append(b, testEpoch)
		if err != nil {
			return err
		}
		select {
		case acks <- ack{r.BaseOffset, r.LastOffset, crc32.Checksum(stamped(b, base), castagnoli)}:
		case err := <-failed:
			return err
		}
	}
}

type kill9Ack struct {
	base, last int64
	sum        uint32
}

// runAndKill starts the child on dir, checks it recovered to log end from,
// reads acknowledgements until it has n, kills it with SIGKILL and returns
// every acknowledgement it printed, the ones still in the pipe included.
func runAndKill(t *testing.T, dir string, from int64, n int) []kill9Ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$")
	cmd.Env = append(os.Environ(), kill9DirEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// A child that stops acknowledging is hung (a cycle takes well under a
	// second): kill it so the test fails instead of hanging.
	var hung atomic.Bool
	watchdog := time.AfterFunc(30*time.Second, func() {
		hung.Store(true)
		cmd.Process.Kill()
	})
	defer watchdog.Stop()
	killed := false
	kill := func() {
		if !killed {
			killed = true
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Errorf("kill %d: %v", pid, err)
			}
		}
	}
	var acks []kill9Ack
	var other []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		var a kill9Ack
		var open int64
		switch {
		case strings.HasPrefix(line, "ack "):
			if _, err := fmt.Sscanf(line, "ack %d %d %x", &a.base, &a.last, &a.sum); err != nil {
				t.Errorf("child line %q: %v", line, err)
				continue
			}
			acks = append(acks, a)
			if len(acks) == n {
				kill()
			}
		case strings.HasPrefix(line, "open "):
			if _, err := fmt.Sscanf(line, "open %d", &open); err != nil || open != from {
				t.Errorf("child recovered to log end %d (%v), want %d", open, err, from)
			}
		default:
			other = append(other, line)
		}
	}
	kill()
	io.Copy(io.Discard, out)
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !exit.Sys().(syscall.WaitStatus).Signaled() || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v\nstdout: %q\nstderr: %s", err, other, stderr.Bytes())
	}
	if hung.Load() {
		t.Fatalf("child stopped acknowledging after %d batches (WaitDurable hung?)\nstdout: %q\nstderr: %s", len(acks), other, stderr.Bytes())
	}
	if len(acks) < n {
		t.Fatalf("child acknowledged %d batches before it died, want %d\nstdout: %q\nstderr: %s", len(acks), n, other, stderr.Bytes())
	}
	return acks
}

// TestKill9 kills a process appending under fsync=always with SIGKILL, five
// times on one data folder, each run continuing the log. After every kill,
// the log (opened on a copy, so the next child recovers the crash itself)
// must hold every acknowledged batch, byte for byte, exactly once, in offset
// order, hold nothing but whole expected batches, and end where the next
// child says its recovery ended.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	dir := t.TempDir()
	var acked []kill9Ack // every acknowledgement so far, in order
	end := int64(0)      // log end found after the last kill
	for cycle := 0; cycle < 5; cycle++ {
		acks := runAndKill(t, dir, end, 200+40*cycle)
		next := end
		for _, a := range acks {
			if a.base != next {
				t.Fatalf("cycle %d: acknowledgement at %d, want %d (acknowledged out of order)", cycle, a.base, next)
			}
			next = a.last + 1
		}
		acked = append(acked, acks...)

		img := &env{t: t, dir: t.TempDir()}
		copyTree(t, dir, img.dir)
		img.openDB()
		l := img.open("p", kill9Options(nil))
		end = l.LogEndOffset()
		// Rebuild the log from offsets alone: whatever survived must be
		// whole batches as the child wrote them.
		var want [][]byte
		at := map[int64]int{}
		for base := int64(0); base < end; {
			at[base] = len(want)
			b := stamped(kill9Batch(base), base)
			want = append(want, b)
			h := header(t, b)
			base = h.NextOffset()
		}
		checkLog(t, l, 0, want)
		for _, a := range acked {
			i, ok := at[a.base]
			if !ok {
				t.Fatalf("cycle %d: acknowledged batch at %d is not in the log that ends at %d", cycle, a.base, end)
			}
			if h := header(t, want[i]); h.LastOffset() != a.last || crc32.Checksum(want[i], castagnoli) != a.sum {
				t.Fatalf("cycle %d: acknowledged batch %d..%d (crc %08x) differs from the one in the log", cycle, a.base, a.last, a.sum)
			}
		}
		segs := l.Segments()
		active := segs[len(segs)-1]
		checkCutDurable(t, active.Path(), int(active.Size()))
		t.Logf("cycle %d: %d acknowledged, log end %d, %d segments", cycle, len(acks), end, len(segs))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		img.closeDB()
	}
}

// TestOpenErrorsNamePath opens logs whose folder or segment files cannot be
// used. The tests run as root here, where permission bits do not stop
// anything, so the faults are made with what root cannot get past: a file
// where a folder must be, a folder or link where a segment file must be, and
// a read-only bind mount. Open must fail with an error naming the path and
// must not remove anything.
func TestOpenErrorsNamePath(t *testing.T) {
	o := segment.Options{SegmentBytes: 2 << 10}
	build := func(t *testing.T) (*env, []int64) { // a closed log of several segments
		e := newEnv(t)
		l := e.open("p", o)
		appendBatches(t, l, 30, 2, 60)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return e, segmentBases(t, e.partDir("p"))
	}
	for _, tc := range []struct {
		name string
		// fault damages partition p or makes partition q, and returns the
		// partition to open and the path the error must name.
		fault func(t *testing.T, e *env, bases []int64) (name, path string)
	}{
		{"file where the partition folder should be", func(t *testing.T, e *env, _ []int64) (string, string) {
			p := e.partDir("q")
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte("not a folder"), 0o644)
			return "q", p
		}},
		{"folder where the only segment should be", func(t *testing.T, e *env, _ []int64) (string, string) {
			p := e.segPath("q", 0)
			os.MkdirAll(p, 0o755)
			return "q", p
		}},
		{"folder where a middle segment should be", func(t *testing.T, e *env, bases []int64) (string, string) {
			p := e.segPath("p", bases[1])
			os.Remove(p)
			os.Mkdir(p, 0o755)
			return "p", p
		}},
		{"symbolic link where a middle segment should be", func(t *testing.T, e *env, bases []int64) (string, string) {
			p := e.segPath("p", bases[1])
			moved := filepath.Join(t.TempDir(), filepath.Base(p))
			if err := os.Rename(p, moved); err != nil {
				t.Fatal(err)
			}
			os.Symlink(moved, p)
			return "p", p
		}},
		{"symbolic link where a middle segment should be, no index", func(t *testing.T, e *env, bases []int64) (string, string) {
			// Without a checkpoint every segment is scanned: a skipped
			// segment would be a gap, and recovery would remove the rest.
			e.dropIndex()
			p := e.segPath("p", bases[1])
			moved := filepath.Join(t.TempDir(), filepath.Base(p))
			if err := os.Rename(p, moved); err != nil {
				t.Fatal(err)
			}
			os.Symlink(moved, p)
			return "p", p
		}},
		{"read-only bind mount", func(t *testing.T, e *env, bases []int64) (string, string) {
			dir := e.partDir("p")
			if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
				t.Skipf("cannot bind-mount %s: %v", dir, err)
			}
			t.Cleanup(func() { unix.Unmount(dir, 0) })
			if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
				t.Skipf("cannot make the bind mount of %s read-only: %v", dir, err)
			}
			return "p", e.segPath("p", bases[0])
		}},
		{"segment without permission", func(t *testing.T, e *env, bases []int64) (string, string) {
			if os.Geteuid() == 0 {
				t.Skip("root ignores permission bits; the read-only mount case covers this")
			}
			p := e.segPath("p", bases[0])
			os.Chmod(p, 0)
			return "p", p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, bases := build(t)
			name, want := tc.fault(t, e, bases)
			before := segmentBases(t, e.partDir("p"))
			o := o
			o.Index = e.db.Partition(name)
			o.Logger = quietLogger()
			l, err := segment.Open(e.partDir(name), o)
			if err == nil {
				l.Close()
				t.Fatalf("Open succeeded; want an error naming %s", want)
			}
			t.Logf("Open: %v", err)
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not name %s", err, want)
			}
			if after := segmentBases(t, e.partDir("p")); len(after) != len(before) {
				t.Fatalf("segments %v before the failed Open, %v after", before, after)
			}
		})
	}
}

// mountTmpfs mounts a tmpfs of the given size (mount(8) syntax) on a new
// folder, unmounted when the test ends, or skips the test when it cannot.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestAppendFullDisk appends to a log on a 1 MiB tmpfs until the file system
// is full. The failing append must return ErrNoSpace (not fault the process
// with SIGBUS), leave the log as it was, and every acknowledged batch must
// stay readable; once space is freed, appends succeed again and survive a
// reopen.
func TestAppendFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, "1m")
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, bytes.Repeat([]byte{1}, 256<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t) // the index lives on the normal disk
	o := segment.Options{Index: e.db.Partition("p"), SegmentBytes: 256 << 10, Logger: quietLogger()}
	dir := filepath.Join(mnt, "p")
	l, err := segment.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	var want [][]byte
	var full error
	for i := 0; i < 10_000 && full == nil; i++ {
		base := l.LogEndOffset()
		b := batchAt(base, 4, 500)
		if _, full = l.Append(b, testEpoch); full == nil {
			if err := l.WaitDurable(context.Background(), l.LogEndOffset()); err != nil {
				t.Fatal(err)
			}
			want = append(want, stamped(b, base))
		}
	}
	if full == nil {
		t.Fatal("the 1 MiB file system never filled up")
	}
	if !errors.Is(full, segment.ErrNoSpace) {
		t.Fatalf("append on a full file system: %v, want ErrNoSpace", full)
	}
	if len(l.Segments()) < 2 {
		t.Fatalf("%d segments: want the log to have rolled before filling up", len(l.Segments()))
	}
	t.Logf("full after %d batches in %d segments: %v", len(want), len(l.Segments()), full)
	checkLog(t, l, 0, want)
	if _, err := l.Append(batchAt(l.LogEndOffset(), 4, 500), testEpoch); !errors.Is(err, segment.ErrNoSpace) {
		t.Fatalf("second append on a full file system: %v, want ErrNoSpace", err)
	}
	checkLog(t, l, 0, want)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	want = append(want, appendBatches(t, l, 40, 4, 500)...)
	checkLog(t, l, 0, want)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = segment.Open(dir, o); err != nil {
		t.Fatal(err)
	}
	checkLog(t, l, 0, want)
}
