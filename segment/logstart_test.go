package segment_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/runnel-io/runnel/internal/formattest"
	"github.com/runnel-io/runnel/segment"
)

var update = flag.Bool("update", false, "rewrite testdata/log-start-offset from the code")

// TestGoldenLogStartFile: the log-start-offset file that DeleteRecords
// (AdvanceLogStart) and a follower's reset (ResetTo) write is, byte for
// byte, testdata/log-start-offset for the same offset, and a log opened on
// the golden file starts there.
func TestGoldenLogStartFile(t *testing.T) {
	const start = 4100
	golden := filepath.Join("testdata", "log-start-offset")
	for _, how := range []string{"AdvanceLogStart", "ResetTo"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t)
			l := e.open("t-0", segment.Options{})
			var err error
			if how == "AdvanceLogStart" {
				appendN(t, l, 3, 2000, 8) // 6000 records
				err = l.AdvanceLogStart(start)
			} else {
				err = l.ResetTo(start)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(e.dir, "topics", "t-0", "log-start-offset")
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := formattest.Golden(t, golden, got, *update && how == "AdvanceLogStart")
			if t.Failed() {
				t.FailNow()
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			l = e.open("t-0", segment.Options{})
			defer l.Close()
			if got := l.LogStartOffset(); got != start {
				t.Fatalf("log opened on the golden file starts at %d, want %d", got, start)
			}
		})
	}
}
