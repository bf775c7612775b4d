package server

import (
	"math/bits"
	"sync"
)

// Request frames are read into buffers kept by size class (powers of two
// from 4 KiB to 16 MiB), so that a producer's stream of large frames does
// not allocate, zero and collect a fresh buffer for each. A buffer goes
// back once the request's handler has returned: the handlers of produce
// requests copy the record bytes into the log and keep nothing else of the
// frame, which is what lets their frame be reused. Other requests' decoded
// fields may point into the frame and live on (parked group joins, fetch
// long-polls), so conn.handle gives those a copy of their own.
const (
	minFrameClass = 12 // 4 KiB
	maxFrameClass = 24 // 16 MiB; larger frames are allocated as they come
)

var framePools [maxFrameClass + 1]sync.Pool

// frameClass returns the size class of an n-byte frame, or -1 when frames
// of that size are not pooled.
func frameClass(n int) int {
	c := max(bits.Len(uint(max(n, 1)-1)), minFrameClass)
	if c > maxFrameClass {
		return -1
	}
	return c
}

// getFrame returns a buffer of n bytes, not zeroed, and the pooled buffer
// to give back with putFrame (nil when n is not pooled).
func getFrame(n int) ([]byte, *[]byte) {
	c := frameClass(n)
	if c < 0 {
		return make([]byte, n), nil
	}
	if p, ok := framePools[c].Get().(*[]byte); ok {
		return (*p)[:n], p
	}
	b := make([]byte, 1<<c)
	return b[:n], &b
}

// putFrame gives a buffer from getFrame back; nothing may refer to its
// bytes afterwards.
func putFrame(p *[]byte) {
	if p == nil {
		return
	}
	framePools[frameClass(cap(*p))].Put(p)
}
