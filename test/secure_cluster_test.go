package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadmeSecureCluster runs scripts/secure-cluster.sh, what `make
// secure-cluster` runs, on free ports, then the README's client lines
// with bash: a topic of three replicas made, written and read whole over
// SASL_SSL while the brokers replicate over SSL and run Raft over TLS.
func TestReadmeSecureCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three brokers")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	port := func() int {
		_, p, _ := net.SplitHostPort(freePort(t))
		n, _ := strconv.Atoi(p)
		return n
	}
	// Three consecutive free ports each: the script takes a base port.
	base := func() int {
		for range 50 {
			p := port()
			ok := true
			for i := 1; i < 3 && ok; i++ {
				ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+i))
				if err != nil {
					ok = false
					continue
				}
				ln.Close()
			}
			if ok {
				return p
			}
		}
		t.Fatal("no three consecutive free ports")
		return 0
	}
	kafka, brokers, raft, metrics := base(), base(), base(), base()
	dir := t.TempDir()
	data := filepath.Join(dir, "data", "secure-cluster")
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, filepath.Join(dir, "bin", "runnel")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "../scripts/secure-cluster.sh", "--broker-session-timeout", "2s", "--broker-heartbeat-interval", "200ms")
	cmd.Env = append(os.Environ(), "BIN="+binary, "DATA_DIR="+data, "KAFKA_PORT="+strconv.Itoa(kafka),
		"BROKER_PORT="+strconv.Itoa(brokers), "RAFT_PORT="+strconv.Itoa(raft), "METRICS_PORT="+strconv.Itoa(metrics))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out nodeLog
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("secure-cluster.sh output:\n%s", out.String())
		}
	}()

	ports := strings.NewReplacer("127.0.0.1:9092", fmt.Sprintf("127.0.0.1:%d", kafka),
		"127.0.0.1:9093", fmt.Sprintf("127.0.0.1:%d", kafka+1), "127.0.0.1:9094", fmt.Sprintf("127.0.0.1:%d", kafka+2))
	script := ports.Replace(readmeBlock(t, "<!-- secure cluster example: clients -->"))
	// The brokers register one by one: ask until a topic of three
	// replicas can be made, then run the README's lines.
	deadline := time.Now().Add(90 * time.Second)
	for {
		probe := exec.Command("bash", "-c", ports.Replace(`export RUNNEL_SASL_PASSWORD=admin-secret; bin/runnel cluster status --brokers 127.0.0.1:9092 --tls-ca-file data/secure-cluster/tls/ca.pem --sasl-mechanism SCRAM-SHA-512 --sasl-user admin`))
		probe.Dir = dir
		probe.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
		if b, err := probe.CombinedOutput(); err == nil && strings.Count(string(b), "alive") == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the secure cluster did not come up with three live brokers")
		}
		time.Sleep(500 * time.Millisecond)
	}
	run := exec.Command("bash", "-euo", "pipefail", "-c", script)
	run.Dir = dir
	run.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	got, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("README secure cluster clients: %v\n%s", err, got)
	}
	for _, want := range []string{`(?m)^\s*1000$`, `alive`} {
		if !regexp.MustCompile(want).Match(got) {
			t.Errorf("README secure cluster clients' output lacks %s:\n%s", want, got)
		}
	}
	if !strings.Contains(out.String(), "runnel serving") {
		t.Errorf("no broker said it was serving:\n%s", out.String())
	}
}
