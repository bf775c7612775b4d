package segment_test

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/runnel-io/runnel/segment"
)

// TestFormatDocMatchesCode keeps docs/format.md honest: every row of its
// batch header table must name the offset and size the code uses.
func TestFormatDocMatchesCode(t *testing.T) {
	doc, err := os.ReadFile("../docs/format.md")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int{
		"baseOffset":           {segment.BaseOffsetOffset, 8},
		"batchLength":          {segment.BatchLengthOffset, 4},
		"partitionLeaderEpoch": {segment.PartitionLeaderEpochOffset, 4},
		"magic":                {segment.MagicOffset, 1},
		"crc":                  {segment.CRCOffset, 4},
		"attributes":           {segment.AttributesOffset, 2},
		"lastOffsetDelta":      {segment.LastOffsetDeltaOffset, 4},
		"baseTimestamp":        {segment.BaseTimestampOffset, 8},
		"maxTimestamp":         {segment.MaxTimestampOffset, 8},
		"producerId":           {segment.ProducerIDOffset, 8},
		"producerEpoch":        {segment.ProducerEpochOffset, 2},
		"baseSequence":         {segment.BaseSequenceOffset, 4},
		"recordCount":          {segment.RecordCountOffset, 4},
	}
	row := regexp.MustCompile(`(?m)^\|\s*(\d+)\s*\|\s*(\d+|…)\s*\|\s*(\w+)\s*\|`)
	seen := map[string]bool{}
	end := 0
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		off, _ := strconv.Atoi(m[1])
		name := m[3]
		if name == "records" {
			if off != segment.HeaderSize {
				t.Errorf("docs: records start at %d, code HeaderSize is %d", off, segment.HeaderSize)
			}
			continue
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("docs: unknown header field %q", name)
			continue
		}
		size, _ := strconv.Atoi(m[2])
		if off != w[0] || size != w[1] {
			t.Errorf("docs: %s at %d size %d, code has %d size %d", name, off, size, w[0], w[1])
		}
		if off != end {
			t.Errorf("docs: %s starts at %d, previous field ends at %d", name, off, end)
		}
		end = off + size
		seen[name] = true
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("docs: header field %s missing from the table", name)
		}
	}
	if end != segment.HeaderSize {
		t.Errorf("docs: header fields end at %d, HeaderSize is %d", end, segment.HeaderSize)
	}
	if got := segment.FileName(1048576); !regexp.MustCompile(regexp.QuoteMeta(got)).Match(doc) {
		t.Errorf("docs: example segment name %s not shown", got)
	}
}
