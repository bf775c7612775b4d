package offsetsfmt

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// docField is one row of a table of docs/format.md's __consumer_offsets
// section.
type docField struct {
	name, typ string
	from, to  int16 // the versions that have the field
}

func (f docField) in(version int16) bool { return version >= f.from && version <= f.to }

// docTables reads the five tables of the section, in order: the two keys,
// the two values, the member of a group value.
func docTables(t *testing.T) [][]docField {
	b, err := os.ReadFile("../../docs/format.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## `__consumer_offsets` records")
	if start < 0 {
		t.Fatal("docs: no __consumer_offsets section")
	}
	doc = doc[start:]
	if end := strings.Index(doc[1:], "\n## "); end >= 0 {
		doc = doc[:end+1]
	}
	headings := []string{"### OffsetCommitKey", "### GroupMetadataKey", "### OffsetCommitValue", "### GroupMetadataValue", "A member of `members`:"}
	row := regexp.MustCompile(`^\|\s*(\w+)\s*\|\s*([a-z0-9 ]+?)\s*\|\s*(\d+)(\+?)\s*\|`)
	var tables [][]docField
	for i, h := range headings {
		at := strings.Index(doc, h)
		if at < 0 {
			t.Fatalf("docs: no %q", h)
		}
		part := doc[at+len(h):]
		if i+1 < len(headings) {
			part = part[:max(strings.Index(part, headings[i+1]), 0)]
		}
		var fields []docField
		for _, line := range strings.Split(part, "\n") {
			m := row.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			from, _ := strconv.Atoi(m[3])
			f := docField{name: m[1], typ: m[2], from: int16(from), to: int16(from)}
			if m[4] == "+" {
				f.to = 1 << 14
			}
			fields = append(fields, f)
		}
		if len(fields) == 0 {
			t.Fatalf("docs: %q has no table", h)
		}
		tables = append(tables, fields)
	}
	return tables
}

// docReader reads the bytes of a record as the section describes them.
type docReader struct {
	b        []byte
	flexible bool
}

func (r *docReader) next(n int) ([]byte, error) {
	if n < 0 || n > len(r.b) {
		return nil, fmt.Errorf("%d bytes with %d left", n, len(r.b))
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out, nil
}

func (r *docReader) uvarint() (int, error) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, fmt.Errorf("no varint")
	}
	r.b = r.b[n:]
	return int(v), nil
}

// length reads a length of a string (int16) or of bytes and arrays
// (int32), or in the flexible form an unsigned varint of length + 1.
func (r *docReader) length(wide bool) (int, error) {
	if r.flexible {
		n, err := r.uvarint()
		return n - 1, err
	}
	if wide {
		b, err := r.next(4)
		if err != nil {
			return 0, err
		}
		return int(int32(binary.BigEndian.Uint32(b))), nil
	}
	b, err := r.next(2)
	if err != nil {
		return 0, err
	}
	return int(int16(binary.BigEndian.Uint16(b))), nil
}

func (r *docReader) tags() error {
	if !r.flexible {
		return nil
	}
	n, err := r.uvarint()
	for i := 0; i < n && err == nil; i++ {
		var size int
		if _, err = r.uvarint(); err == nil {
			if size, err = r.uvarint(); err == nil {
				_, err = r.next(size)
			}
		}
	}
	return err
}

// fields reads the fields of a table that a version has, into a map from
// field name to int64, string, *string, []byte or, for an array, a slice
// of such maps.
func (r *docReader) fields(table, member []docField, version int16) (map[string]any, error) {
	out := map[string]any{}
	for _, f := range table {
		if !f.in(version) {
			continue
		}
		var v any
		var err error
		switch f.typ {
		case "int16", "int32", "int64":
			size := map[string]int{"int16": 2, "int32": 4, "int64": 8}[f.typ]
			var b []byte
			if b, err = r.next(size); err == nil {
				u := uint64(0)
				for _, c := range b {
					u = u<<8 | uint64(c)
				}
				v = int64(u<<(64-8*size)) >> (64 - 8*size)
			}
		case "string", "nullable string":
			var n int
			if n, err = r.length(false); err == nil {
				if n < 0 && f.typ == "nullable string" {
					v = (*string)(nil)
				} else {
					var b []byte
					b, err = r.next(n)
					s := string(b)
					v = s
					if f.typ == "nullable string" {
						v = &s
					}
				}
			}
		case "bytes":
			var n int
			if n, err = r.length(true); err == nil {
				var b []byte
				b, err = r.next(n)
				v = append([]byte{}, b...)
			}
		case "array of member":
			var n int
			if n, err = r.length(true); err == nil {
				var elems []map[string]any
				for i := 0; i < n && err == nil; i++ {
					var e map[string]any
					if e, err = r.fields(member, nil, version); err == nil {
						err = r.tags()
					}
					elems = append(elems, e)
				}
				v = elems
			}
		default:
			return nil, fmt.Errorf("field %s: unknown type %q", f.name, f.typ)
		}
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.name, err)
		}
		out[f.name] = v
	}
	return out, nil
}

// matchStruct checks that the fields the doc read equal the fields of the
// same names (case aside) in the decoded struct s.
func matchStruct(t *testing.T, where string, doc map[string]any, s reflect.Value) {
	t.Helper()
	for name, v := range doc {
		if name == "version" && s.FieldByName("Version") == (reflect.Value{}) {
			continue
		}
		f := s.FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, name) })
		if !f.IsValid() {
			t.Errorf("%s: the doc's field %s is no field of %s", where, name, s.Type())
			continue
		}
		switch dv := v.(type) {
		case int64:
			if f.Int() != dv {
				t.Errorf("%s: %s is %d in the doc's reading, %d decoded", where, name, dv, f.Int())
			}
		case string:
			if f.String() != dv {
				t.Errorf("%s: %s is %q in the doc's reading, %q decoded", where, name, dv, f.String())
			}
		case *string:
			got, _ := f.Interface().(*string)
			if (got == nil) != (dv == nil) || (got != nil && *got != *dv) {
				t.Errorf("%s: %s differs from the decoded one", where, name)
			}
		case []byte:
			if !bytes.Equal(f.Bytes(), dv) {
				t.Errorf("%s: %s is %x in the doc's reading, %x decoded", where, name, dv, f.Bytes())
			}
		case []map[string]any:
			if f.Len() != len(dv) {
				t.Errorf("%s: %d %s in the doc's reading, %d decoded", where, len(dv), name, f.Len())
				continue
			}
			for i, e := range dv {
				matchStruct(t, fmt.Sprintf("%s %s[%d]", where, name, i), e, f.Index(i))
			}
		}
	}
}

// TestFormatDocMatchesCode keeps docs/format.md's __consumer_offsets section
// honest: reading every golden record with the section's tables (the
// fields a version has, in order, with the types' encodings the section
// describes) uses up exactly its bytes and gives what the decoders give,
// field by field.
func TestFormatDocMatchesCode(t *testing.T) {
	tables := docTables(t)
	for _, g := range goldenRecords() {
		want, err := os.ReadFile(filepath.Join("testdata", g.name+".hex"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := hex.DecodeString(strings.TrimSpace(string(want)))
		if err != nil || len(b) < 2 {
			t.Fatalf("%s: %v", g.name, err)
		}
		version := int16(binary.BigEndian.Uint16(b))
		var table []docField
		isValue := false
		switch {
		case strings.Contains(g.name, "key") && version <= 1:
			table = tables[0]
		case strings.Contains(g.name, "key"):
			table = tables[1]
		case strings.HasPrefix(g.name, "offset-value"):
			table, isValue = tables[2], true
		default:
			table, isValue = tables[3], true
		}
		r := docReader{b: b, flexible: isValue && version >= 4}
		fields, err := r.fields(table, tables[4], version)
		if err == nil {
			err = r.tags()
		}
		if err != nil {
			t.Errorf("%s: the doc's tables do not read it: %v", g.name, err)
			continue
		}
		if len(r.b) != 0 {
			t.Errorf("%s: %d bytes left after the doc's fields", g.name, len(r.b))
		}
		matchStruct(t, g.name, fields, reflect.ValueOf(g.decoded))
	}
	for _, tc := range []struct {
		name  string
		table []docField
		fixed int16 // a version every row of a key table must include
	}{{"OffsetCommitKey", tables[0], KeyOffsetCommit}, {"GroupMetadataKey", tables[1], KeyGroupMetadata}} {
		for _, f := range tc.table {
			if !f.in(tc.fixed) {
				t.Errorf("docs: %s field %s is not in version %d", tc.name, f.name, tc.fixed)
			}
		}
	}
}
