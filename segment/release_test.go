package segment_test

import (
	"context"
	"testing"

	"github.com/runnel-io/runnel/mmap"
	"github.com/runnel-io/runnel/segment"
)

// The written pages of the active segment leave the page tables before
// their write-back: at each flush under FsyncAlways, every few MiB under
// FsyncNever. Reads see every byte afterwards, appends go on, and a
// truncation moves the released end back with the log.
func TestReleaseWrittenPages(t *testing.T) {
	page := int64(mmap.PageSize())
	for _, policy := range []string{"always", "never"} {
		t.Run(policy, func(t *testing.T) {
			p, err := segment.ParseFsyncPolicy(policy)
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t)
			l := e.open("p", segment.Options{Fsync: p, SegmentBytes: 64 << 20})
			defer l.Close()
			// 5 MiB in batches of 64 KiB: past the FsyncNever release step.
			res := appendN(t, l, 80, 64, 1000)
			released, size := l.ActiveReleased()
			switch policy {
			case "always":
				if want := size &^ (page - 1); released != want {
					t.Fatalf("released up to %d after a flush of %d bytes, want %d", released, size, want)
				}
			case "never":
				if released < 4<<20 || released > size || released%page != 0 {
					t.Fatalf("released up to %d of %d bytes: want whole pages past 4 MiB", released, size)
				}
			}
			hs := readAll(t, l, 0)
			if len(hs) != len(res) {
				t.Fatalf("read %d batches back, appended %d", len(hs), len(res))
			}
			for i, h := range hs {
				if h.BaseOffset != res[i].BaseOffset {
					t.Fatalf("batch %d at offset %d, appended at %d", i, h.BaseOffset, res[i].BaseOffset)
				}
			}
			// Cut the log back into the released pages, then append over
			// them: the released end follows the cut, and the new bytes
			// are read back.
			cutAt := res[10].BaseOffset
			if err := l.TruncateTo(cutAt); err != nil {
				t.Fatal(err)
			}
			if r, s := l.ActiveReleased(); r > s {
				t.Fatalf("after truncation released up to %d past the size %d", r, s)
			}
			more := appendN(t, l, 20, 64, 1000)
			if more[0].BaseOffset != cutAt {
				t.Fatalf("append after the truncation at %d, want %d", more[0].BaseOffset, cutAt)
			}
			if err := l.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if hs := readAll(t, l, 0); len(hs) != 30 {
				t.Fatalf("read %d batches after the truncation and 20 appends, want 30", len(hs))
			}
		})
	}
}
