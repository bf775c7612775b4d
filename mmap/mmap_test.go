//go:build linux

package mmap_test

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/runnel-io/runnel/mmap"
)

// tempFile creates a file of size bytes filled with a pattern.
func tempFile(t *testing.T, dir string, size int) (*os.File, []byte) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i%251) + 1 // never zero
	}
	if _, err := f.WriteAt(content, 0); err != nil {
		t.Fatal(err)
	}
	return f, content
}

func mapFile(t *testing.T, f *os.File, n int, mode mmap.Mode) *mmap.Mapping {
	t.Helper()
	m, err := mmap.Map(f, n, mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Unmap() })
	return m
}

// pread reads n bytes at off with pread(2), bypassing the mapping.
func pread(t *testing.T, f *os.File, off int64, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("pread %d bytes at %d: %v", n, off, err)
	}
	return b
}

func fileSize(t *testing.T, f *os.File) int64 {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// reserved returns the bytes of disk blocks the file holds.
func reserved(t *testing.T, f *os.File) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// mountTmpfs mounts a tmpfs of size bytes on a temporary folder and
// unmounts it in Cleanup. It skips the test when that is not possible.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; run the tests as root to cover it")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func TestMapReadWrite(t *testing.T) {
	ps := mmap.PageSize()
	f, content := tempFile(t, t.TempDir(), 3*ps+100)
	m := mapFile(t, f, len(content), mmap.ReadWrite)
	if m.Len() != len(content) || !bytes.Equal(m.Bytes(), content) {
		t.Fatalf("mapping of %d bytes does not show the file", m.Len())
	}
	// Stores through the mapping reach the file at once.
	msg := []byte("stored through the mapping")
	for _, off := range []int{0, ps - 5, 2*ps + 17, len(content) - len(msg)} {
		copy(m.Bytes()[off:], msg)
		if got := pread(t, f, int64(off), len(msg)); !bytes.Equal(got, msg) {
			t.Fatalf("pread at %d: %q, want %q", off, got, msg)
		}
	}
	// And writes to the file show in the mapping.
	if _, err := f.WriteAt([]byte("pwrite"), 100); err != nil {
		t.Fatal(err)
	}
	if got := m.Bytes()[100:106]; string(got) != "pwrite" {
		t.Fatalf("mapping shows %q after pwrite", got)
	}
	if err := m.Sync(0, len(content)); err != nil {
		t.Fatal(err)
	}
}

func TestMapReadOnly(t *testing.T) {
	f, content := tempFile(t, t.TempDir(), 5000)
	m := mapFile(t, f, len(content), mmap.ReadOnly)
	if !bytes.Equal(m.Bytes(), content) {
		t.Fatal("read-only mapping does not show the file")
	}
	if _, err := f.WriteAt([]byte{0xAA}, 4999); err != nil {
		t.Fatal(err)
	}
	if m.Bytes()[4999] != 0xAA {
		t.Fatal("read-only mapping does not see a later pwrite")
	}
}

// TestMapPastEndThenGrow maps more than the file holds, as an active
// segment is mapped, and uses only the part Grow established.
func TestMapPastEndThenGrow(t *testing.T) {
	ps := mmap.PageSize()
	f, err := os.Create(filepath.Join(t.TempDir(), "seg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := mapFile(t, f, 16*ps, mmap.ReadWrite)
	if err := mmap.Grow(f, int64(2*ps)); err != nil {
		t.Fatal(err)
	}
	b := m.Bytes()[:2*ps]
	for i := range b {
		b[i] = byte(i)
	}
	if got := pread(t, f, 0, 2*ps); !bytes.Equal(got, b) {
		t.Fatal("bytes stored below the grown size are not in the file")
	}
	if err := m.Sync(0, 2*ps); err != nil {
		t.Fatal(err)
	}
}

func TestMapBadLength(t *testing.T) {
	f, _ := tempFile(t, t.TempDir(), 10)
	for _, n := range []int{0, -1} {
		if m, err := mmap.Map(f, n, mmap.ReadWrite); !errors.Is(err, mmap.ErrRange) {
			if m != nil {
				m.Unmap()
			}
			t.Fatalf("Map length %d: %v, want ErrRange", n, err)
		}
	}
}

// rangeCases are [off, off+n) ranges of a mapping of size bytes.
func rangeCases(size int) (ok, bad []struct{ off, n int }) {
	ps := mmap.PageSize()
	ok = []struct{ off, n int }{
		{0, size},
		{0, 1},
		{1, 10},           // unaligned start
		{ps - 1, 2},       // straddles a page boundary
		{ps + 3, ps},      // unaligned, spans two pages
		{2 * ps, ps},      // aligned
		{size - 1, 1},     // last byte
		{size - 700, 700}, // unaligned tail
		{5, 0},            // empty
		{size, 0},         // empty at the end
	}
	bad = []struct{ off, n int }{
		{-1, 1},
		{-ps, ps},
		{0, size + 1},
		{size, 1},
		{size + ps, 1},
		{5, -1},
		{1, math.MaxInt},           // off+n overflows
		{math.MaxInt, math.MaxInt}, // so does this
	}
	return ok, bad
}

func TestSyncRange(t *testing.T) {
	ps := mmap.PageSize()
	f, content := tempFile(t, t.TempDir(), 4*ps+123)
	m := mapFile(t, f, len(content), mmap.ReadWrite)
	ok, bad := rangeCases(len(content))
	for _, r := range ok {
		if r.n > 0 {
			m.Bytes()[r.off] ^= 0xFF
		}
		if err := m.Sync(r.off, r.n); err != nil {
			t.Errorf("Sync(%d, %d): %v", r.off, r.n, err)
		}
	}
	for _, r := range bad {
		if err := m.Sync(r.off, r.n); !errors.Is(err, mmap.ErrRange) {
			t.Errorf("Sync(%d, %d): %v, want ErrRange", r.off, r.n, err)
		}
	}
}

func TestAdvise(t *testing.T) {
	ps := mmap.PageSize()
	f, content := tempFile(t, t.TempDir(), 4*ps+123)
	m := mapFile(t, f, len(content), mmap.ReadWrite)
	ok, bad := rangeCases(len(content))
	for _, a := range []mmap.Advice{mmap.Sequential, mmap.Random, mmap.WillNeed, mmap.DontNeed} {
		for _, r := range ok {
			if err := m.Advise(r.off, r.n, a); err != nil {
				t.Errorf("Advise(%d, %d, %d): %v", r.off, r.n, a, err)
			}
		}
		for _, r := range bad {
			if err := m.Advise(r.off, r.n, a); !errors.Is(err, mmap.ErrRange) {
				t.Errorf("Advise(%d, %d, %d): %v, want ErrRange", r.off, r.n, a, err)
			}
		}
	}
	// DontNeed on a shared file mapping drops pages, not data.
	if !bytes.Equal(m.Bytes(), content) {
		t.Fatal("mapping content changed after advice")
	}
	err := m.Advise(0, 1, mmap.Advice(99))
	if err == nil || errors.Is(err, mmap.ErrRange) || errors.Is(err, mmap.ErrClosed) {
		t.Fatalf("unknown advice: %v", err)
	}
}

func TestUnmap(t *testing.T) {
	for _, mode := range []mmap.Mode{mmap.ReadOnly, mmap.ReadWrite} {
		f, _ := tempFile(t, t.TempDir(), 3*mmap.PageSize())
		m, err := mmap.Map(f, 3*mmap.PageSize(), mode)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Unmap(); err != nil {
			t.Fatalf("mode %d: Unmap: %v", mode, err)
		}
		if err := m.Unmap(); err != nil {
			t.Fatalf("mode %d: second Unmap: %v", mode, err)
		}
		if m.Len() != 0 || m.Bytes() != nil {
			t.Fatalf("mode %d: after Unmap: Len %d, Bytes %d", mode, m.Len(), len(m.Bytes()))
		}
		if err := m.Sync(0, 1); !errors.Is(err, mmap.ErrClosed) {
			t.Fatalf("mode %d: Sync after Unmap: %v, want ErrClosed", mode, err)
		}
		for _, a := range []mmap.Advice{mmap.Sequential, mmap.Random, mmap.WillNeed, mmap.DontNeed} {
			if err := m.Advise(0, 1, a); !errors.Is(err, mmap.ErrClosed) {
				t.Fatalf("mode %d: Advise %d after Unmap: %v, want ErrClosed", mode, a, err)
			}
		}
	}
}

func TestGrow(t *testing.T) {
	ps := int64(mmap.PageSize())
	f, err := os.Create(filepath.Join(t.TempDir(), "grow"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, step := range []struct {
		grow, want int64
	}{
		{100, 100},
		{100, 100},           // same size: nothing to do
		{50, 100},            // never shrinks
		{0, 100},             // nor to zero
		{3*ps + 1, 3*ps + 1}, // unaligned
		{1 << 20, 1 << 20},
		{ps, 1 << 20},
	} {
		if err := mmap.Grow(f, step.grow); err != nil {
			t.Fatalf("Grow(%d): %v", step.grow, err)
		}
		if got := fileSize(t, f); got != step.want {
			t.Fatalf("after Grow(%d): size %d, want %d", step.grow, got, step.want)
		}
		if got := reserved(t, f); got < step.want {
			t.Fatalf("after Grow(%d): %d bytes of blocks reserved, want at least %d", step.grow, got, step.want)
		}
	}
	// Growing keeps what the file held and reads zeros after it.
	if _, err := f.WriteAt([]byte("keep"), 10); err != nil {
		t.Fatal(err)
	}
	if err := mmap.Grow(f, 2<<20); err != nil {
		t.Fatal(err)
	}
	if got := pread(t, f, 10, 4); string(got) != "keep" {
		t.Fatalf("Grow lost data: %q", got)
	}
	if got := pread(t, f, 1<<20, 1<<20); !bytes.Equal(got, make([]byte, 1<<20)) {
		t.Fatal("grown range is not zeros")
	}
}

func TestGrowNoSpace(t *testing.T) {
	dir := mountTmpfs(t, "256k")
	f, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = mmap.Grow(f, 1<<20)
	if !errors.Is(err, mmap.ErrNoSpace) {
		t.Fatalf("Grow past a full tmpfs: %v, want ErrNoSpace", err)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Grow past a full tmpfs: %v does not match ENOSPC", err)
	}
	// The file system is still usable for what fits.
	if err := mmap.Grow(f, 64<<10); err != nil {
		t.Fatalf("Grow within the tmpfs after ENOSPC: %v", err)
	}
	if got := fileSize(t, f); got != 64<<10 {
		t.Fatalf("size %d after Grow(64 KiB)", got)
	}
}

func TestZero(t *testing.T) {
	type fsCase struct {
		name string
		dir  func(t *testing.T) string
	}
	for _, fs := range []fsCase{
		{"tempdir", func(t *testing.T) string { return t.TempDir() }},       // FALLOC_FL_ZERO_RANGE where supported
		{"tmpfs", func(t *testing.T) string { return mountTmpfs(t, "4m") }}, // no ZERO_RANGE: punch hole, then fallocate
	} {
		t.Run(fs.name, func(t *testing.T) {
			ps := mmap.PageSize()
			size := 3*ps + 100
			base := fs.dir(t)
			for _, off := range []int{0, 1, 1000, ps, ps + 1, 3 * ps, size - 1, size, size + 10} {
				dir := filepath.Join(base, "z")
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				f, content := tempFile(t, dir, size)
				m := mapFile(t, f, size, mmap.ReadWrite)
				if err := mmap.Zero(f, int64(off)); err != nil {
					t.Fatalf("Zero(%d): %v", off, err)
				}
				if got := fileSize(t, f); got != int64(size) {
					t.Fatalf("Zero(%d): size %d, want %d", off, got, size)
				}
				if got := reserved(t, f); got < int64(size) {
					t.Fatalf("Zero(%d): %d bytes of blocks reserved, want at least %d", off, got, size)
				}
				cut := min(off, size)
				want := append(append([]byte(nil), content[:cut]...), make([]byte, size-cut)...)
				if !bytes.Equal(m.Bytes(), want) {
					t.Fatalf("Zero(%d): mapping does not read zeros from %d on, data before it intact", off, off)
				}
				if got := pread(t, f, 0, size); !bytes.Equal(got, want) {
					t.Fatalf("Zero(%d): file does not read zeros from %d on, data before it intact", off, off)
				}
				// The zeroed range is still safe to store into.
				copy(m.Bytes()[cut:], "again")
				if err := m.Sync(0, size); err != nil {
					t.Fatal(err)
				}
				m.Unmap()
				f.Close()
				os.RemoveAll(dir)
			}
		})
	}
}
