// Package test holds runnel's end-to-end tests: they build the real binary,
// start broker processes on loopback ports, and drive them with real Kafka
// clients (franz-go, kcat).
package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var binary string

func TestMain(m *testing.M) {
	if spec := os.Getenv("RUNNEL_TEST_GROUP_MEMBER"); spec != "" {
		runGroupMemberChild(spec) // a child process of TestGroupMemberKilled
		return
	}
	dir, err := os.MkdirTemp("", "runnel-e2e-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "runnel")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/runnel")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building runnel:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// broker is one runnel process.
type broker struct {
	t       *testing.T
	dataDir string
	addr    string
	metrics string
	args    []string
	cmd     *exec.Cmd
	logMu   sync.Mutex
	logBuf  strings.Builder
	exited  chan struct{}
}

// Ports for test brokers come from [testPortLow, testPortHigh), below the
// ephemeral range, so no outgoing connection can take one between the test
// choosing it and the broker binding it, and none is handed out twice in
// one run.
const (
	testPortLow  = 20000
	testPortHigh = 32000
)

var testPorts struct {
	sync.Mutex
	used map[int]bool
}

// freePort returns 127.0.0.1:PORT for a port outside the ephemeral
// range that is free now and was not given out before in this process.
func freePort(t *testing.T) string {
	t.Helper()
	testPorts.Lock()
	defer testPorts.Unlock()
	if testPorts.used == nil {
		testPorts.used = map[int]bool{}
	}
	for range 1000 {
		port := testPortLow + rand.IntN(testPortHigh-testPortLow)
		if testPorts.used[port] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		testPorts.used[port] = true
		return addr
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// startBroker starts runnel serve on fresh ports over dataDir ("" for a new
// temporary one) with extra flags.
func startBroker(t *testing.T, dataDir string, extra ...string) *broker {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	b := &broker{t: t, dataDir: dataDir, addr: freePort(t), metrics: freePort(t), args: extra}
	b.start()
	t.Cleanup(func() { b.kill() })
	return b
}

func (b *broker) start() {
	b.t.Helper()
	args := append([]string{"serve", "--data-dir", b.dataDir, "--listen", b.addr,
		"--metrics-listen", b.metrics, "--log-level", "debug"}, b.args...)
	b.cmd = exec.Command(binary, args...)
	stderr, err := b.cmd.StderrPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.exited = make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			b.logMu.Lock()
			b.logBuf.WriteString(line + "\n")
			b.logMu.Unlock()
			if strings.Contains(line, "runnel serving") {
				once.Do(func() { close(ready) })
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		b.cmd.Wait()
		close(b.exited)
	}()
	select {
	case <-ready:
	case <-b.exited:
		b.t.Fatalf("broker exited during start-up:\n%s", b.logs())
	case <-time.After(60 * time.Second):
		b.t.Fatalf("broker not ready after 60s:\n%s", b.logs())
	}
}

func (b *broker) logs() string {
	b.logMu.Lock()
	defer b.logMu.Unlock()
	return b.logBuf.String()
}

// kill sends SIGKILL and waits for the process to go.
func (b *broker) kill() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	select {
	case <-b.exited:
		return
	default:
	}
	b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.exited
}

// stop sends SIGTERM and waits for a clean exit.
func (b *broker) stop() {
	b.t.Helper()
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(60 * time.Second):
		b.t.Fatalf("broker did not stop on SIGTERM:\n%s", b.logs())
	}
	if code := b.cmd.ProcessState.ExitCode(); code != 0 {
		b.t.Fatalf("broker exit code %d:\n%s", code, b.logs())
	}
}

// restart starts the broker again on the same data and ports.
func (b *broker) restart() {
	b.t.Helper()
	b.start()
}

// client returns a franz-go client for the broker.
func (b *broker) client(opts ...kgo.Opt) *kgo.Client {
	b.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.addr)}, opts...)...)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(cl.Close)
	return cl
}

// metric returns the value of an unlabelled metric from /metrics.
func (b *broker) metric(name string) float64 {
	b.t.Helper()
	resp, err := http.Get("http://" + b.metrics + "/metrics")
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		b.t.Fatalf("metric %s not found", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// consumeAll reads a partition from the start until want records or ctx ends.
func consumeAll(t *testing.T, b *broker, topic string, want int) []*kgo.Record {
	t.Helper()
	cl := b.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := ctxTimeout(t, 60*time.Second)
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), want, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		out = append(out, fs.Records()...)
	}
	return out
}
