package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The files in testdata/v0 were written by the runnel of commit 1c5e7bb
// (before the state machine's formats were versioned): a data directory
// with a snapshot and, after it, one log entry of every command; the bytes
// of each of those commands and of the snapshot; and the state they make.
// Whatever runnel writes today, it must read them to the same state.

func readV0(t *testing.T) (cmds [][]byte, snap []byte, state string, index uint64) {
	t.Helper()
	f, err := os.Open("testdata/v0/commands.hex")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		b, err := hex.DecodeString(sc.Text())
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, b)
	}
	if snap, err = os.ReadFile("testdata/v0/snapshot.json"); err != nil {
		t.Fatal(err)
	}
	st, err := os.ReadFile("testdata/v0/state.json")
	if err != nil {
		t.Fatal(err)
	}
	ix, err := os.ReadFile("testdata/v0/applied-index")
	if err != nil {
		t.Fatal(err)
	}
	if index, err = strconv.ParseUint(strings.TrimSpace(string(ix)), 10, 64); err != nil {
		t.Fatal(err)
	}
	return cmds, snap, string(st), index
}

// TestV0CommandsReplay: the v0 commands applied from an empty state, and
// the v0 snapshot restored with the commands after it applied, both give
// the v0 state.
func TestV0CommandsReplay(t *testing.T) {
	cmds, snap, want, _ := readV0(t)
	f := NewFSM()
	for i, c := range cmds {
		if res, refused := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: c}).(error); refused {
			t.Fatalf("v0 command %d (type %d) refused: %v", i+1, c[0], res)
		}
	}
	if got := describeState(f); got != want {
		t.Fatalf("v0 commands replayed:\n%s\nwant\n%s", got, want)
	}

	r := NewFSM()
	if err := r.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	// In the data directory's log, entry 1 is the quorum's configuration
	// and entry 2 the first leader's no-op: command i is entry i+2.
	at := r.AppliedIndex() - 2
	if r.AppliedIndex() < 2 || at > uint64(len(cmds)) {
		t.Fatalf("v0 snapshot at index %d", r.AppliedIndex())
	}
	for i := at; i < uint64(len(cmds)); i++ {
		if res, refused := r.Apply(&raft.Log{Index: i + 3, Type: raft.LogCommand, Data: cmds[i]}).(error); refused {
			t.Fatalf("v0 command %d after the snapshot refused: %v", i+1, res)
		}
	}
	if got := describeState(r); got != want {
		t.Fatalf("v0 snapshot and log:\n%s\nwant\n%s", got, want)
	}
}

// TestV0DataDirOpens starts a node on the v0 data directory: Raft restores
// the snapshot and replays the log after it, to the v0 state.
func TestV0DataDirOpens(t *testing.T) {
	_, _, want, index := readV0(t)
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", "testdata/v0/datadir.tar.gz", "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	n, err := StartNode(NodeOptions{ID: 1, Dir: filepath.Join(dir, "meta"), Voters: []Voter{{ID: 1, Addr: "127.0.0.1:19093"}},
		Local: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.FSM().WaitApplied(ctx, index); err != nil {
		t.Fatal(err)
	}
	if got := describeState(n.FSM()); got != want {
		t.Fatalf("v0 data directory opened to:\n%s\nwant\n%s", got, want)
	}
}
