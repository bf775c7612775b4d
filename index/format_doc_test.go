package index

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/runnel-io/runnel/internal/formattest"
	"github.com/runnel-io/runnel/segment"
)

// codeKinds returns every key kind the package's code declares (the
// constants named kind… in its files), by name.
func codeKinds(t *testing.T) map[string]byte {
	t.Helper()
	consts, err := formattest.Consts(".", func(name string) bool { return strings.HasPrefix(name, "kind") })
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]byte{}
	for name, v := range consts {
		if len(v) != 1 {
			t.Fatalf("kind constant %s = %q is not one byte", name, v)
		}
		kinds[name] = v[0]
	}
	return kinds
}

// sizesIn sums the "(N)" sizes of a table cell.
func sizesIn(cell string) int {
	n := 0
	for _, m := range regexp.MustCompile(`\((\d+)\)`).FindAllStringSubmatch(cell, -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

// TestFormatDocMatchesCode keeps docs/format.md's index section honest:
// every key kind in the code has a row whose key and value sizes are the
// encoders', and the format version is named.
func TestFormatDocMatchesCode(t *testing.T) {
	b, err := os.ReadFile("../docs/format.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## Index database")
	if start < 0 {
		t.Fatal("docs: no index section")
	}
	doc = doc[start:]
	if end := strings.Index(doc[1:], "\n## "); end >= 0 {
		doc = doc[:end+1]
	}

	name := []byte("t-0")
	after := func(key []byte) int { return len(key) - len(name) - 2 } // kind byte, name, 0x00
	off := offsetValue(segment.IndexEntry{})
	// The bytes each kind's key has after the name, and its value's size,
	// from the encoders.
	sizes := map[byte][2]int{
		kindOffset:     {after(offsetKey(name, 0)), len(off)},
		kindTime:       {after(timeKey(name, 0, 0)), len(off[:timeValueSize])},
		kindCheckpoint: {after(checkpointKey(name)), len(checkpointValue(segment.Checkpoint{}))},
		kindSegment:    {after(segmentKey(name, 0)), len(segmentValue(segment.SegmentInfo{}))},
		kindVersion:    {len(versionKey) - 1, len(versionValue(1))},
		kindAborted:    {after(abortedKey(name, 0)), len(abortedValue(AbortedTxn{}))},
		kindTxnEnd:     {after(txnEndKey(name)), len(txnEndValue(0))},
	}
	row := regexp.MustCompile("(?m)^\\|\\s*`(.)`\\s*\\|([^|]*)\\|([^|]*)\\|")
	rows := map[byte][]string{}
	for _, m := range row.FindAllStringSubmatch(doc, -1) {
		rows[m[1][0]] = m[2:]
	}
	for constName, kind := range codeKinds(t) {
		want, ok := sizes[kind]
		if !ok {
			t.Errorf("kind %s (%q) has no encoder in this test", constName, kind)
			continue
		}
		r, ok := rows[kind]
		if !ok {
			t.Errorf("docs: kind %q (%s) missing from the index table", kind, constName)
			continue
		}
		if got := sizesIn(r[0]); got != want[0] {
			t.Errorf("docs: kind %q key has %d bytes after the name, code has %d", kind, got, want[0])
		}
		if got := sizesIn(r[1]); got != want[1] {
			t.Errorf("docs: kind %q value has %d bytes, code has %d", kind, got, want[1])
		}
		delete(rows, kind)
	}
	for kind := range rows {
		t.Errorf("docs: kind %q is not in the code", kind)
	}
	if !strings.Contains(doc, "**format version**, "+strconv.Itoa(FormatVersion)+".") {
		t.Errorf("docs: the format version %d is not named", FormatVersion)
	}
	if !strings.Contains(doc, "`index.ErrVersion`") {
		t.Errorf("docs: what a newer version does is not said")
	}
}
