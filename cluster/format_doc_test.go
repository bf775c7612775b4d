package cluster

import (
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/runnel-io/runnel/internal/formattest"
)

func splitFields(cell string) []string {
	var out []string
	for _, f := range strings.Split(cell, ",") {
		out = append(out, strings.TrimSpace(f))
	}
	return out
}

// TestFormatDocMatchesCode keeps docs/format.md's Raft section honest:
// the command header, every command type with its number and JSON fields,
// every record of commands and snapshots, and the refusal codes.
func TestFormatDocMatchesCode(t *testing.T) {
	b, err := os.ReadFile("../docs/format.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## Raft log")
	if start < 0 {
		t.Fatal("docs: no Raft section")
	}
	doc = doc[start:]
	if end := strings.Index(doc[1:], "\n## "); end >= 0 {
		doc = doc[:end+1]
	}

	header := map[string][2]int{"format": {0, 1}, "type": {1, 1}, "proposal": {2, len(ProposalID{})}, "payload": {commandHeader, -1}}
	headerRow := regexp.MustCompile(`(?m)^\|\s*(format|type|proposal|payload)\s*\|\s*(\d+)\s*\|\s*(\d+|…)\s*\|`)
	rows := headerRow.FindAllStringSubmatch(doc, -1)
	if len(rows) != len(header) {
		t.Errorf("docs: %d command header rows, want %d", len(rows), len(header))
	}
	for _, m := range rows {
		off, _ := strconv.Atoi(m[2])
		size, err := strconv.Atoi(m[3])
		if err != nil {
			size = -1
		}
		if w := header[m[1]]; off != w[0] || size != w[1] {
			t.Errorf("docs: header field %s at %d size %d, code has %d size %d", m[1], off, size, w[0], w[1])
		}
	}
	if !strings.Contains(doc, "`0x81`") || commandV1 != 0x81 {
		t.Errorf("docs: the version-1 format byte is not 0x81")
	}
	if !strings.Contains(doc, strconv.Itoa(proposalWindow/1000)+","+strconv.Itoa(proposalWindow%1000)) {
		t.Errorf("docs: the proposal window (%d) is not named", proposalWindow)
	}

	cmdRow := regexp.MustCompile(`(?m)^\|\s*(\d+)\s*\|\s*(\w+)\s*\|\s*([^|]*?)\s*\|`)
	seen := map[CommandType]bool{}
	for _, m := range cmdRow.FindAllStringSubmatch(doc, -1) {
		n, _ := strconv.Atoi(m[1])
		ct := CommandType(n)
		if commandNames[ct] != m[2] {
			t.Errorf("docs: command %d is %s, code has %s", n, m[2], ct)
			continue
		}
		if got, want := splitFields(m[3]), formattest.JSONFields(commandPayload(ct)); !reflect.DeepEqual(got, want) {
			t.Errorf("docs: %s fields %v, code has %v", ct, got, want)
		}
		seen[ct] = true
	}
	for ct := range commandNames {
		if !seen[ct] {
			t.Errorf("docs: command %s missing", ct)
		}
	}

	records := map[string]any{
		"TP": TP{}, "OffsetCommit": OffsetCommit{}, "listener": BrokerListener{}, "snapshot": snapshotV1{}, "broker": snapBroker{},
		"topic": snapTopic{}, "partition": snapPartition{}, "group": snapGroup{}, "proposal": proposalEntry{},
		"ScramUser": ScramUser{}, "ScramCredential": ScramCredential{}, "AclBinding": AclBinding{},
		"QuotaEntityPart": QuotaEntityPart{}, "ClientQuotaAlteration": ClientQuotaAlteration{}, "ClientQuota": ClientQuota{},
	}
	recRow := regexp.MustCompile(`(?m)^\|\s*(\w+)\s*\|\s*([a-z_]+(?:,\s*[a-z_]+)*)\s*\|`)
	found := map[string]bool{}
	for _, m := range recRow.FindAllStringSubmatch(doc, -1) {
		v, ok := records[m[1]]
		if !ok {
			continue
		}
		if got, want := splitFields(m[2]), formattest.JSONFields(v); !reflect.DeepEqual(got, want) {
			t.Errorf("docs: record %s fields %v, code has %v", m[1], got, want)
		}
		found[m[1]] = true
	}
	for name := range records {
		if !found[name] {
			t.Errorf("docs: record %s missing", name)
		}
	}
	for _, r := range refusals {
		if !strings.Contains(doc, "`"+r.code+"`") {
			t.Errorf("docs: refusal code %s missing", r.code)
		}
	}
}
