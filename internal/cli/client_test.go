package cli

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestCLIParseInterleaved(t *testing.T) {
	cases := []struct {
		args    []string
		pos     []string
		n       int
		partArg string
	}{
		{[]string{"t"}, []string{"t"}, 0, ""},
		{[]string{"--n", "3", "t"}, []string{"t"}, 3, ""},
		{[]string{"t", "--n", "3"}, []string{"t"}, 3, ""},
		{[]string{"a", "--n=2", "b", "--s", "x"}, []string{"a", "b"}, 2, "x"},
		{[]string{"--n", "1", "--", "--n", "-x"}, []string{"--n", "-x"}, 1, ""},
		{[]string{"t", "--s", "--"}, []string{"t"}, 0, "--"}, // "--" as a flag value
	}
	for _, c := range cases {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		n := fs.Int("n", 0, "")
		s := fs.String("s", "", "")
		pos, err := parseInterleaved(fs, c.args)
		if err != nil || !slices.Equal(pos, c.pos) || *n != c.n || *s != c.partArg {
			t.Errorf("%q: pos %q n %d s %q err %v; want %q %d %q", c.args, pos, *n, *s, err, c.pos, c.n, c.partArg)
		}
	}
}

func TestCLIFormat(t *testing.T) {
	r := &kgo.Record{Topic: "tp", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte("value"),
		Timestamp: time.UnixMilli(1234), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
	cases := []struct{ format, want, err string }{
		{`%s\n`, "value\n", ""},
		{`%t/%p/%o %k=%s @%T [%h] %K %S`, "tp/2/41 k=value @1234 [h=v] 1 5", ""},
		{`100%% \t\\\r\0`, "100% \t\\\r\x00", ""},
		{`plain`, "plain", ""},
		{`%x`, "", "unknown placeholder %x"},
		{`\q`, "", `unknown escape \q`},
		{`abc%`, "", "lone %"},
	}
	for _, c := range cases {
		ops, err := compileFormat(c.format)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.format, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.format, err)
		}
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		writeRecord(w, ops, r, nil)
		w.Flush()
		if buf.String() != c.want {
			t.Errorf("%q: got %q, want %q", c.format, buf.String(), c.want)
		}
	}
}

func TestCLIParseFrom(t *testing.T) {
	cases := []struct {
		in   string
		want startPoint
		err  bool
	}{
		{"beginning", startPoint{kind: "earliest"}, false},
		{"end", startPoint{kind: "latest"}, false},
		{"0", startPoint{kind: "offset"}, false},
		{"42", startPoint{kind: "offset", offset: 42}, false},
		{"-3", startPoint{kind: "relative", offset: 3}, false},
		{"2024-05-01T12:00:00Z", startPoint{kind: "time", offset: 1714564800000}, false},
		{"2024-05-01T14:00:00.5+02:00", startPoint{kind: "time", offset: 1714564800500}, false},
		{"2024-05-01T12:00:00.0001Z", startPoint{kind: "time", offset: 1714564800001}, false}, // rounds up
		{"yesterday", startPoint{}, true},
		{"2024-05-01", startPoint{}, true},
	}
	for _, c := range cases {
		got, err := parseFrom(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("parseFrom(%q) = %+v, %v; want %+v, err %v", c.in, got, err, c.want, c.err)
		}
	}
}
