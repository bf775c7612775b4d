package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMakeClusterScript runs scripts/cluster.sh, what `make cluster` runs:
// three brokers that form one cluster, give new topics three replicas, and
// all stop on SIGTERM.
func TestMakeClusterScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three brokers")
	}
	base := func() int {
		_, p, _ := net.SplitHostPort(freePort(t))
		n, _ := strconv.Atoi(p)
		return n
	}
	kafka, raft, metrics := base(), base(), base()
	cmd := exec.Command("bash", "../scripts/cluster.sh", "--broker-session-timeout", "2s", "--broker-heartbeat-interval", "200ms")
	cmd.Env = append(os.Environ(), "BIN="+binary, "DATA_DIR="+t.TempDir(), "KAFKA_PORT="+strconv.Itoa(kafka),
		"RAFT_PORT="+strconv.Itoa(raft), "METRICS_PORT="+strconv.Itoa(metrics))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out nodeLog
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("cluster.sh output:\n%s", out.String())
		}
	}()

	var seeds []string
	for i := range 3 {
		seeds = append(seeds, fmt.Sprintf("127.0.0.1:%d", kafka+i))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		md, err := adm.Metadata(ctx)
		cancel()
		if err == nil && len(md.Brokers) == 3 && md.Controller >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("three brokers did not form a cluster: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 2, -1, nil, "made"); err != nil {
		t.Fatal(err)
	}
	for {
		td, err := adm.ListTopics(ctx, "made")
		if err == nil && td["made"].Err == nil && len(td["made"].Partitions) == 2 &&
			len(td["made"].Partitions[0].Replicas) == 3 && len(td["made"].Partitions[1].ISR) == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("topic made did not get three in-sync replicas: %v %+v", err, td)
		}
		time.Sleep(100 * time.Millisecond)
	}

	cmd.Process.Signal(syscall.SIGTERM) // the script stops its brokers
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("cluster.sh did not stop on SIGTERM")
	}
	if n := strings.Count(out.String(), "stopped cleanly"); n != 3 {
		t.Fatalf("%d brokers stopped cleanly, want 3", n)
	}
}
