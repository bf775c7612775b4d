package broker

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBrokerDoesNotImportTheClientTools: the broker and everything it
// imports stay free of the client and bench commands (internal/cli/...),
// which are clients of the broker, not parts of it.
func TestBrokerDoesNotImportTheClientTools(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !strings.Contains(string(out), "github.com/runnel-io/runnel/server\n") {
		t.Fatalf("go list -deps gave an implausible list:\n%s", out)
	}
	for _, d := range deps {
		if d == "github.com/runnel-io/runnel/internal/cli" || strings.HasPrefix(d, "github.com/runnel-io/runnel/internal/cli/") {
			t.Errorf("the broker depends on %s", d)
		}
	}
}
