package partition

import (
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/runnel-io/runnel/internal/formattest"
)

// sideFileNames returns the side files the code of a package names: the
// string constants whose names end in "File", by constant name.
func sideFileNames(t *testing.T, dir string) map[string]string {
	t.Helper()
	names, err := formattest.Consts(dir, func(name string) bool { return strings.HasSuffix(name, "File") })
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestFormatDocMatchesCode keeps docs/format.md's side-file section
// honest: every side file the code of partition/ and segment/ names has a
// row with its version, and every record of the JSON files (of every
// version still read) has a row with the fields the code uses, in order.
func TestFormatDocMatchesCode(t *testing.T) {
	b, err := os.ReadFile("../docs/format.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## Partition side files")
	if start < 0 {
		t.Fatal("docs: no side-file section")
	}
	doc = doc[start:]
	if end := strings.Index(doc[1:], "\n## "); end >= 0 {
		doc = doc[:end+1]
	}

	versions := map[string]int{ // of every side file there is
		producerSnapshotFile: producersFileVersion,
		epochsFile:           sideFileVersion,
		topicIDFile:          1,
		"log-start-offset":   1,
	}
	named := sideFileNames(t, ".")
	for k, v := range sideFileNames(t, "../segment") {
		named["segment."+k] = v
	}
	fileRow := regexp.MustCompile("(?m)^\\|\\s*`([^`]+)`\\s*\\|\\s*(\\d+)\\s*\\|")
	documented := map[string]int{}
	for _, m := range fileRow.FindAllStringSubmatch(doc, -1) {
		documented[m[1]], _ = strconv.Atoi(m[2])
	}
	if len(named) != len(versions) {
		t.Errorf("the code names side files %v; this test knows %v", named, versions)
	}
	for constName, file := range named {
		want, ok := versions[file]
		if !ok {
			t.Errorf("side file %s (%s) has no version in this test", file, constName)
			continue
		}
		got, ok := documented[file]
		if !ok {
			t.Errorf("docs: side file %s (%s) missing", file, constName)
			continue
		}
		if got != want {
			t.Errorf("docs: %s at version %d, code writes %d", file, got, want)
		}
	}

	records := map[string]any{
		"producers.json": producersV2{}, "producer": producerFileV2{}, "batch": batchFileV1{},
		"producers.json v1": producersV1{}, "producer v1": producerFileV1{},
		"leader-epochs.json": epochsV1{}, "epoch": epochFileV1{},
		"producers.json v0": producersV0{}, "producer v0": producerFileV0{}, "batch v0": batchFileV0{},
	}
	recRow := regexp.MustCompile(`(?m)^\|\s*([\w.\- ]+?)\s*\|\s*([A-Za-z_]+(?:,\s*[A-Za-z_]+)*)\s*\|`)
	found := map[string]bool{}
	for _, m := range recRow.FindAllStringSubmatch(doc, -1) {
		v, ok := records[m[1]]
		if !ok {
			continue
		}
		var got []string
		for _, f := range strings.Split(m[2], ",") {
			got = append(got, strings.TrimSpace(f))
		}
		if want := formattest.JSONFields(v); !reflect.DeepEqual(got, want) {
			t.Errorf("docs: record %s fields %v, code has %v", m[1], got, want)
		}
		found[m[1]] = true
	}
	for name := range records {
		if !found[name] {
			t.Errorf("docs: record %s missing", name)
		}
	}
	if !strings.Contains(doc, "Version 0 of `leader-epochs.json` is a bare list of epoch records") {
		t.Errorf("docs: version 0 of %s is not described", epochsFile)
	}
}
