package test

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe to write from the process's pipe
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSignalDuringStartup: a broker that cannot finish starting (its
// quorum's other voters never come) takes SIGTERM: it says it will stop
// once started and, when start-up outlasts --shutdown-timeout, exits
// non-zero saying why; a second SIGTERM ends it at once. Before, the
// signal arrived before any handler and killed the process unannounced.
func TestSignalDuringStartup(t *testing.T) {
	for _, second := range []bool{false, true} {
		raft, others := freePort(t), []string{freePort(t), freePort(t)}
		voters := "1@" + raft + ",2@" + others[0] + ",3@" + others[1]
		cmd := exec.Command(binary, "serve", "--node-id", "1", "--voters", voters, "--data-dir", t.TempDir(),
			"--listen", freePort(t), "--metrics-listen", freePort(t), "--shutdown-timeout", "3s")
		var out lockedBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		waitFor := func(what string) {
			t.Helper()
			for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), what); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("no %q in the broker's log:\n%s", what, out.String())
				}
			}
		}
		waitFor("raft: initial configuration") // past flag parsing, starting
		cmd.Process.Signal(syscall.SIGTERM)
		waitFor("shutting down once started")
		want := "start-up did not finish within the shutdown timeout"
		if second {
			cmd.Process.Signal(syscall.SIGTERM)
			want = "a second signal during start-up"
		}
		var err error
		select {
		case err = <-exited:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("second %v: the broker did not exit:\n%s", second, out.String())
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out.String(), want) {
			t.Fatalf("second %v: exit %v, want status 1 and %q in:\n%s", second, err, want, out.String())
		}
	}
}
