package server

import "testing"

func TestFramePool(t *testing.T) {
	for _, tc := range []struct {
		n, cap int // cap 0: not pooled
	}{
		{0, 4 << 10}, {1, 4 << 10}, {4 << 10, 4 << 10}, {4<<10 + 1, 8 << 10},
		{1 << 20, 1 << 20}, {1<<20 + 1, 2 << 20}, {16 << 20, 16 << 20}, {16<<20 + 1, 0},
	} {
		b, p := getFrame(tc.n)
		if len(b) != tc.n {
			t.Errorf("getFrame(%d): %d bytes", tc.n, len(b))
		}
		switch {
		case tc.cap == 0 && p != nil:
			t.Errorf("getFrame(%d) pooled a frame over the largest class", tc.n)
		case tc.cap != 0 && (p == nil || cap(*p) != tc.cap || cap(b) != tc.cap):
			t.Errorf("getFrame(%d): buffer of %d, want the class of %d", tc.n, cap(b), tc.cap)
		}
		putFrame(p)
	}
}
