package segment_test

import (
	"fmt"
	"testing"

	"github.com/runnel-io/runnel/internal/testbatch"
	"github.com/runnel-io/runnel/segment"
)

// TestMaxTimestamp: the batch holding the log's largest timestamp is found
// across segments, the first of two that hold it, from the per-segment
// maximums kept while appending and, after a reopen, recorded in the
// index; batches below the log start do not count; a changed segment size
// applies from the next segment.
func TestMaxTimestamp(t *testing.T) {
	e := newEnv(t)
	o := segment.Options{SegmentBytes: 300, RetentionAge: -1}
	l := e.open("t-0", o)
	// Two batches a segment, three records a batch, 1 ms apart.
	for i, ts := range []int64{1000, 9000, 4000, 3000, 9000, 2000, 100} {
		b := testbatch.Make(testbatch.Spec{Timestamp: ts, Values: testbatch.Values(3, 10, byte(i))})
		if _, err := l.Append(b, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(l.Segments()); n < 3 {
		t.Fatalf("%d segments", n)
	}
	check := func(what string, l *segment.Log, wantBase, wantTS int64) {
		t.Helper()
		base, ts, found, err := l.MaxTimestamp()
		if got, want := fmt.Sprint(base, ts, found, err), fmt.Sprint(wantBase, wantTS, true, nil); got != want {
			t.Errorf("%s: %s, want %s", what, got, want)
		}
	}
	check("as appended", l, 3, 9002) // the batch at 3 ties the one at 12, which comes later
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = e.open("t-0", o)
	check("reopened", l, 3, 9002)

	// The log start past the first batch at 9002: the next one.
	if err := l.AdvanceLogStart(6); err != nil {
		t.Fatal(err)
	}
	check("log start at 6", l, 12, 9002)

	// A new segment size applies to the segments after the active one.
	if err := l.SetLimits(segment.Limits{SegmentBytes: 1 << 20, RetentionAge: -1}); err != nil {
		t.Fatal(err)
	}
	before := len(l.Segments())
	for i := range 6 {
		b := testbatch.Make(testbatch.Spec{Timestamp: 50, Values: testbatch.Values(3, 10, byte(i))})
		if _, err := l.Append(b, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(l.Segments()); n > before+1 {
		t.Errorf("%d segments after 6 batches at 1 MiB, from %d", n, before)
	}
	check("after more, older batches", l, 12, 9002)
	l.Close()
}
