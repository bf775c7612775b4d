package cleaner

import (
	"errors"
	"flag"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/runnel-io/runnel/internal/formattest"
	"github.com/runnel-io/runnel/internal/vfs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenCheckpoint is the fixed state whose bytes testdata/v1 holds.
func goldenCheckpoint() checkpoint {
	return checkpoint{cleanOffset: 4100, cleaned: map[int64]cleanedSeg{2048: {1_700_000_100_000, 3311}, 0: {1_700_000_000_000, 1957}}}
}

// TestCheckpointGolden pins the bytes of version 1 and reads them back.
func TestCheckpointGolden(t *testing.T) {
	want := formattest.Golden(t, "testdata/v1/"+CheckpointFile, encodeCheckpoint(goldenCheckpoint()), *update)
	got, err := decodeCheckpoint(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, goldenCheckpoint()) {
		t.Fatalf("decoded %+v, want %+v", got, goldenCheckpoint())
	}
}

// TestCheckpointRefused: files of another version, with unknown fields or
// that do not decode are refused, and readCheckpoint then gives the empty
// state; a missing file is the empty state without an error.
func TestCheckpointRefused(t *testing.T) {
	for _, b := range []string{
		`{"clean_offset":5,"segments":[]}`,
		`{"version":2,"clean_offset":5,"segments":[]}`,
		`{"version":1,"clean_offset":5,"segments":[],"extra":1}`,
		`{"version":1,"clean_offset":-5,"segments":[]}`,
		`{"version":1,`,
	} {
		if _, err := decodeCheckpoint([]byte(b)); err == nil {
			t.Errorf("%s: taken", b)
		}
	}
	if _, err := decodeCheckpoint([]byte(`{"version":2}`)); !errors.Is(err, errCheckpointVersion) {
		t.Errorf("version 2: %v, want errCheckpointVersion", err)
	}
	fs := vfs.NewMemFS()
	if err := fs.Mkdir("/p", 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := readCheckpoint(fs, "/p")
	if err != nil || c.cleanOffset != 0 || len(c.cleaned) != 0 {
		t.Fatalf("no file: %+v, %v", c, err)
	}
	if err := writeCheckpoint(fs, "/p", goldenCheckpoint()); err != nil {
		t.Fatal(err)
	}
	if c, err := readCheckpoint(fs, "/p"); err != nil || !reflect.DeepEqual(c, goldenCheckpoint()) {
		t.Fatalf("written and read: %+v, %v", c, err)
	}
}

// TestCheckpointDocMatchesCode keeps docs/format.md honest about the
// checkpoint: its row names the file and version, and its records' fields
// are the code's, in order.
func TestCheckpointDocMatchesCode(t *testing.T) {
	b, err := os.ReadFile("../docs/format.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if !regexp.MustCompile("(?m)^\\|\\s*`" + regexp.QuoteMeta(CheckpointFile) + "`\\s*\\|\\s*1\\s*\\|").MatchString(doc) {
		t.Errorf("docs: no row for %s at version %d", CheckpointFile, checkpointVersion)
	}
	for name, v := range map[string]any{CheckpointFile: checkpointV1{}, "cleaned segment": cleanedSegmentV1{}} {
		m := regexp.MustCompile(`(?m)^\|\s*` + regexp.QuoteMeta(name) + `\s*\|\s*([a-z_, ]+)\s*\|`).FindStringSubmatch(doc)
		if m == nil {
			t.Errorf("docs: record %s missing", name)
			continue
		}
		var got []string
		for _, f := range strings.Split(m[1], ",") {
			got = append(got, strings.TrimSpace(f))
		}
		if want := formattest.JSONFields(v); !reflect.DeepEqual(got, want) {
			t.Errorf("docs: record %s fields %v, code has %v", name, got, want)
		}
	}
}
