//go:build linux

package mmap_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/runnel-io/runnel/mmap"
)

// mappedKiB returns the resident size the kernel counts for the mapping
// that starts at b's first byte (its Rss line in /proc/self/smaps).
func mappedKiB(t *testing.T, b []byte) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(&b[0])))
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, start) {
			in = true
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			kb, err := strconv.Atoi(strings.Fields(line)[1])
			if err != nil {
				t.Fatalf("smaps: %q: %v", line, err)
			}
			return kb
		}
	}
	t.Fatalf("mapping at %s not in /proc/self/smaps", start)
	return 0
}

// Release takes whole pages out of the page tables and loses none of their
// bytes: stores made before it reach the disk at the next sync, stores
// after it land too.
func TestRelease(t *testing.T) {
	ps := mmap.PageSize()
	size := 8*ps + 123
	f, content := tempFile(t, t.TempDir(), size)
	m := mapFile(t, f, size, mmap.ReadWrite)
	b := m.Bytes()
	want := bytes.Clone(content)
	for i := range b { // every page mapped and dirty
		b[i] = ^content[i]
		want[i] = ^content[i]
	}
	before := mappedKiB(t, b)
	if before*1024 < 9*ps {
		t.Fatalf("%d KiB mapped before release, want the 9 pages stored into", before)
	}
	// [ps/2, 5ps+ps/2) holds the whole pages 1 to 4; pages 0 and 5 are
	// only partly inside and stay mapped.
	if err := m.Release(ps/2, 5*ps); err != nil {
		t.Fatal(err)
	}
	if after := mappedKiB(t, b); (before-after)*1024 != 4*ps {
		t.Fatalf("mapped %d KiB before release, %d after: want 4 pages less", before, after)
	}
	// The released pages' stores reach the file: sync, drop the now
	// unmapped pages from the page cache, and read the disk's bytes.
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, int64(size), unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if got := pread(t, f, 0, size); !bytes.Equal(got, want) {
		t.Fatal("file content differs from the stores made before the release")
	}
	if !bytes.Equal(b, want) {
		t.Fatal("mapping content differs after the release")
	}
	// A store into a released page maps it again and lands.
	b[2*ps+7] = 0
	want[2*ps+7] = 0
	if got := pread(t, f, int64(2*ps), ps); !bytes.Equal(got, want[2*ps:3*ps]) {
		t.Fatal("store into a released page did not reach the file")
	}

	ok, bad := rangeCases(size)
	for _, r := range ok {
		if err := m.Release(r.off, r.n); err != nil {
			t.Errorf("Release(%d, %d): %v", r.off, r.n, err)
		}
	}
	for _, r := range bad {
		if err := m.Release(r.off, r.n); !errors.Is(err, mmap.ErrRange) {
			t.Errorf("Release(%d, %d): %v, want ErrRange", r.off, r.n, err)
		}
	}
	if !bytes.Equal(b, want) {
		t.Fatal("mapping content changed by releases")
	}
	if err := m.Unmap(); err != nil {
		t.Fatal(err)
	}
	if err := m.Release(0, ps); !errors.Is(err, mmap.ErrClosed) {
		t.Fatalf("Release after Unmap: %v, want ErrClosed", err)
	}
}
