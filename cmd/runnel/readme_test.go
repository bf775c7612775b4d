package main

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/server"
)

// readmeTable returns the rows of the README table that follows marker.
func readmeTable(t *testing.T, readme, marker string) []string {
	t.Helper()
	i := strings.Index(readme, marker)
	if i < 0 {
		t.Fatalf("README has no %q table", marker)
	}
	var rows []string
	for _, line := range strings.Split(readme[i:], "\n") {
		if !strings.HasPrefix(line, "|") {
			if len(rows) > 0 {
				break
			}
			continue
		}
		rows = append(rows, line)
	}
	return rows[2:] // header and separator
}

// TestReadmeTablesMatchCode keeps the README's settings, topic configs and
// API versions in step with the code.
func TestReadmeTablesMatchCode(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)

	var want []string
	for _, s := range serveSettings {
		def := "`" + s.def() + "`"
		if s.def() == "" {
			def = "—"
		}
		want = append(want, fmt.Sprintf("| `--%s` | `%s` | %s | %s |", s.name, envName(s.name), def, s.help))
	}
	if got := readmeTable(t, readme, "| flag |"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("README settings table differs from cmd/runnel/settings.go; want:\n%s", strings.Join(want, "\n"))
	}

	want = want[:0]
	for _, d := range partition.ConfigDefs {
		want = append(want, fmt.Sprintf("| `%s` | `%s` | %s |", d.Name, d.Default, d.Doc))
	}
	if got := readmeTable(t, readme, "| config |"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("README topic config table differs from partition.ConfigDefs; want:\n%s", strings.Join(want, "\n"))
	}

	want = want[:0]
	versions := server.SupportedVersions()
	keys := make([]int, 0, len(versions))
	for k := range versions {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	for _, k := range keys {
		v := versions[int16(k)]
		want = append(want, fmt.Sprintf("| %s | %d | %d–%d |", kmsg.NameForKey(int16(k)), k, v[0], v[1]))
	}
	if got := readmeTable(t, readme, "| API |"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("README API table differs from server's supported versions; want:\n%s", strings.Join(want, "\n"))
	}
	if regexp.MustCompile(`@@\w+@@`).MatchString(readme) {
		t.Error("README has an unfilled placeholder")
	}
}
