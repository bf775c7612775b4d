package txnlogfmt

import (
	"encoding/binary"
	"os"
	"regexp"
	"strings"
	"testing"
)

// docSection returns docs/format.md's __transaction_state section.
func docSection(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../../docs/format.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## `__transaction_state` records")
	if start < 0 {
		t.Fatal("docs/format.md has no __transaction_state section")
	}
	doc = doc[start:]
	if end := strings.Index(doc[1:], "\n## "); end >= 0 {
		doc = doc[:end+1]
	}
	return doc
}

// docRows returns the rows (field, type, versions) of the table under
// heading.
func docRows(t *testing.T, doc, heading string) [][3]string {
	t.Helper()
	i := strings.Index(doc, heading)
	if i < 0 {
		t.Fatalf("no table %q", heading)
	}
	var rows [][3]string
	for _, line := range strings.Split(doc[i:], "\n")[1:] {
		line = strings.TrimSpace(line)
		if line == "" && len(rows) > 0 {
			break
		}
		if !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "|--") || strings.HasPrefix(line, "| field") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		rows = append(rows, [3]string{strings.TrimSpace(cells[0]), strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])})
	}
	return rows
}

// TestFormatDocMatchesCode: the tables of docs/format.md, read as a
// decoder would, walk the golden version 0 key and value to their last
// byte, and the states listed are the package's.
func TestFormatDocMatchesCode(t *testing.T) {
	doc := docSection(t)
	walk := func(name string, rows [][3]string, b []byte) {
		t.Helper()
		take := func(n int) []byte {
			if n > len(b) {
				t.Fatalf("%s: the doc's fields run past the record", name)
			}
			out := b[:n]
			b = b[n:]
			return out
		}
		for _, r := range rows {
			if strings.HasPrefix(r[2], "tag") {
				continue // tagged fields: version 1 only
			}
			switch typ := r[1]; {
			case typ == "int8":
				take(1)
			case typ == "int16":
				take(2)
			case typ == "int32":
				take(4)
			case typ == "int64":
				take(8)
			case typ == "string":
				take(int(binary.BigEndian.Uint16(take(2))))
			case strings.HasPrefix(typ, "nullable array of partitions"):
				n := int(int32(binary.BigEndian.Uint32(take(4))))
				for ; n > 0; n-- {
					take(int(binary.BigEndian.Uint16(take(2)))) // topic
					take(4 * int(binary.BigEndian.Uint32(take(4))))
				}
			default:
				t.Fatalf("%s: field %s has type %q the test does not know", name, r[0], typ)
			}
		}
		if len(b) != 0 {
			t.Fatalf("%s: %d bytes left after the doc's fields", name, len(b))
		}
	}
	walk("key", docRows(t, doc, "### TransactionLogKey"), goldenKey(t))
	walk("value v0", docRows(t, doc, "### TransactionLogValue"), goldenV0(t))

	var listed []string
	for _, m := range regexp.MustCompile(`(\d) ([A-Za-z]+)`).FindAllStringSubmatch(doc[strings.Index(doc, "`transactionStatus` is Kafka's"):], -1) {
		listed = append(listed, m[1]+" "+m[2])
	}
	var want []string
	for s := Empty; s <= PrepareEpochFence; s++ {
		want = append(want, string(rune('0'+s))+" "+s.String())
	}
	if strings.Join(listed[:len(want)], ", ") != strings.Join(want, ", ") {
		t.Fatalf("docs list states %v, the package %v", listed, want)
	}
}
