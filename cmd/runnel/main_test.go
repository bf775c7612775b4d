package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestDispatch: every command of the table is listed by the usage and
// reached by its name; anything else is refused with the usage.
func TestDispatch(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"help"}, nil, &out, io.Discard); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, c := range commands {
		if !strings.Contains(out.String(), "  runnel "+c.synopsis+" ") || !strings.Contains(out.String(), c.summary+"\n") {
			t.Errorf("usage does not list %s:\n%s", c.name, out.String())
		}
		// --help reaches the command's own flag set or usage, which
		// succeeds without doing anything.
		var stdout, stderr bytes.Buffer
		if code := run([]string{c.name, "--help"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Errorf("%s --help: exit %d, stderr %q", c.name, code, stderr.String())
		}
		if !strings.Contains(stdout.String()+stderr.String(), "Usage: runnel "+c.name) {
			t.Errorf("%s --help printed %q", c.name, stdout.String()+stderr.String())
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"frob"}, nil, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown command "frob"`) ||
		!strings.Contains(stderr.String(), "Usage:") {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr.String())
	}
	if code := run(nil, nil, io.Discard, io.Discard); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
}
