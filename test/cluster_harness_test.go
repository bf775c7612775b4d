package test

// The cluster harness runs three runnel brokers on loopback as one Raft
// quorum, each its own process over its own data directory, and gives
// tests what they need to break it: SIGKILL, SIGTERM, SIGSTOP/SIGCONT and
// restarts on the same ports and data, each broker's own view of the
// metadata (asked over a connection of its own, never a client's cache),
// and the replicas' logs read back from disk for byte comparison.
//
// Ports are taken below the kernel's ephemeral range (32768–60999 on
// Linux), so a broker restarted on its old ports never finds one taken by
// an outgoing connection in the meantime.

import (
	"bytes"
	wire "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// clusterSize is the number of brokers, and voters, of a test cluster.
const clusterSize = 3

// clusterNode is one broker of a test cluster: a runnel process that can
// be killed, stopped, paused and started again on the same ports and data.
type clusterNode struct {
	t        *testing.T
	id       int32
	dataDir  string
	addr     string // Kafka API
	raftAddr string
	metrics  string
	args     []string // the whole command line after the binary
	own      []string // flags of this broker only, after the cluster's
	wrap     []string // run the binary through this command, if set

	mu struct {
		sync.Mutex
		cmd    *exec.Cmd
		exited chan struct{}
		ready  chan struct{}
		starts int
		paused bool
		cut    bool // cut off from the other brokers by a netLab
	}
	log *nodeLog
}

// nodeLog keeps everything a broker wrote to stderr, over all its runs,
// and tells when the current run logs that it is serving.
type nodeLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	ready   chan struct{} // closed at the current run's "runnel serving"
}

func (l *nodeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		if l.ready != nil && bytes.Contains(l.partial[:i], []byte("runnel serving")) {
			close(l.ready)
			l.ready = nil
		}
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// mark writes a line of the test's own into the log.
func (l *nodeLog) mark(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, "=== %s %s\n", time.Now().Format("15:04:05.000"), line)
}

// newRun starts a run's log: ready is closed when it logs that it serves.
func (l *nodeLog) newRun(line string, ready chan struct{}) {
	l.mark(line)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = l.partial[:0]
	l.ready = ready
}

func (l *nodeLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// launch starts the process and returns without waiting for it to serve.
func (n *clusterNode) launch() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.exited != nil {
		select {
		case <-n.mu.exited:
		default:
			n.t.Fatalf("broker %d: started while running", n.id)
		}
	}
	n.mu.starts++
	ready := make(chan struct{})
	n.log.newRun(fmt.Sprintf("start %d of broker %d", n.mu.starts, n.id), ready)
	cmd := exec.Command(binary, n.args...)
	if len(n.wrap) > 0 {
		cmd = exec.Command(n.wrap[0], append(append(n.wrap[1:], binary), n.args...)...)
	}
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("broker %d: %v", n.id, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		n.log.mark(fmt.Sprintf("broker %d exited: %v", n.id, cmd.ProcessState))
		close(exited)
	}()
	n.mu.cmd, n.mu.exited, n.mu.ready, n.mu.paused = cmd, exited, ready, false
}

// waitServing waits until the current run logs that it serves Kafka
// requests; a member of a cluster gets there once the quorum has
// registered it.
func (n *clusterNode) waitServing() {
	n.t.Helper()
	n.mu.Lock()
	ready, exited := n.mu.ready, n.mu.exited
	n.mu.Unlock()
	select {
	case <-ready:
	case <-exited:
		n.t.Fatalf("broker %d exited during start-up:\n%s", n.id, tail(n.log.String(), 60))
	case <-time.After(60 * time.Second):
		n.t.Fatalf("broker %d not serving after 60s:\n%s", n.id, tail(n.log.String(), 60))
	}
}

// restart starts the broker again on its ports and data, and waits until
// it serves.
func (n *clusterNode) restart() {
	n.t.Helper()
	n.launch()
	n.waitServing()
}

func (n *clusterNode) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.exited == nil {
		return false
	}
	select {
	case <-n.mu.exited:
		return false
	default:
		return true
	}
}

func (n *clusterNode) signal(sig syscall.Signal) (exited chan struct{}, cmd *exec.Cmd) {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.cmd == nil {
		n.t.Fatalf("broker %d was never started", n.id)
	}
	n.log.mark(fmt.Sprintf("test sends %v to broker %d", sig, n.id))
	n.mu.cmd.Process.Signal(sig)
	switch sig {
	case syscall.SIGSTOP:
		n.mu.paused = true
	case syscall.SIGCONT, syscall.SIGKILL:
		n.mu.paused = false
	}
	return n.mu.exited, n.mu.cmd
}

// kill sends SIGKILL and waits for the process to go.
func (n *clusterNode) kill() {
	n.t.Helper()
	if !n.running() {
		return
	}
	exited, _ := n.signal(syscall.SIGKILL)
	<-exited
}

// stop sends SIGTERM and waits for a clean exit (status 0).
func (n *clusterNode) stop() {
	n.t.Helper()
	exited, cmd := n.signal(syscall.SIGTERM)
	n.waitStopped(exited, cmd)
}

func (n *clusterNode) waitStopped(exited chan struct{}, cmd *exec.Cmd) {
	n.t.Helper()
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		// SIGQUIT makes the Go runtime write every goroutine's stack to
		// the broker's log before it exits: what it was stuck on.
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		n.t.Fatalf("broker %d did not stop within 60s of SIGTERM (goroutine stacks in its log after SIGQUIT):\n%s", n.id, tail(n.log.String(), 60))
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		n.t.Fatalf("broker %d exited with status %d after SIGTERM:\n%s", n.id, code, tail(n.log.String(), 60))
	}
}

// pause freezes the process with SIGSTOP: its sockets stay open but it
// answers nothing, as a broker cut off from the network.
func (n *clusterNode) pause() { n.signal(syscall.SIGSTOP) }

// resume undoes pause with SIGCONT.
func (n *clusterNode) resume() { n.signal(syscall.SIGCONT) }

// metadata returns this broker's own view of the cluster, asked over a
// connection of its own.
func (n *clusterNode) metadata() (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(9)
	req.Topics = nil // every topic
	resp, err := clusterRequest(n.addr, req, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.MetadataResponse), nil
}

// logEndOffsets scrapes runnel_log_end_offset from /metrics: partition
// (topic-index) to this replica's log end.
func (n *clusterNode) logEndOffsets() (map[string]int64, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + n.metrics + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, m := range logEndMetric.FindAllSubmatch(body, -1) {
		v, err := strconv.ParseFloat(string(m[3]), 64)
		if err != nil {
			return nil, fmt.Errorf("runnel_log_end_offset %q: %w", m[3], err)
		}
		out[string(m[2])+"-"+string(m[1])] = int64(v)
	}
	return out, nil
}

var logEndMetric = regexp.MustCompile(`(?m)^runnel_log_end_offset\{partition="(\d+)",topic="([^"]+)"\} (\S+)$`)

// testCluster is three brokers forming one quorum.
type testCluster struct {
	t     *testing.T
	nodes []*clusterNode // nodes[i] has node id i+1
}

// startCluster starts three brokers with extra flags added to each command
// line, and waits until the quorum has a controller and every broker is
// registered and live. The brokers are SIGKILLed when the test ends, and
// it fails if one crashed or raced; a failed test's broker logs are saved
// to files and their tails printed.
func startCluster(t *testing.T, extra ...string) *testCluster {
	t.Helper()
	return startClusterEach(t, nil, extra...)
}

// startClusterEach is startCluster where each broker also gets flags of
// its own, own(its node id), after extra.
func startClusterEach(t *testing.T, own func(id int32) []string, extra ...string) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("cluster tests start three brokers: skipped with -short")
	}
	c := &testCluster{t: t}
	for i := range clusterSize {
		n := &clusterNode{t: t, id: int32(i + 1), dataDir: t.TempDir(), addr: freePort(t),
			raftAddr: freePort(t), metrics: freePort(t), log: &nodeLog{}}
		if own != nil {
			n.own = own(n.id)
		}
		c.nodes = append(c.nodes, n)
	}
	c.start(extra)
	return c
}

// start launches the brokers c.nodes describes, and waits until they form
// a healthy cluster.
func (c *testCluster) start(extra []string) {
	t := c.t
	t.Helper()
	var voters []string
	for _, n := range c.nodes {
		voters = append(voters, fmt.Sprintf("%d@%s", n.id, n.raftAddr))
	}
	t.Cleanup(c.checkLogs) // runs after the kills below
	for _, n := range c.nodes {
		n.args = append([]string{"serve", "--node-id", strconv.Itoa(int(n.id)), "--data-dir", n.dataDir,
			"--listen", n.addr, "--raft-listen", n.raftAddr, "--voters", strings.Join(voters, ","),
			"--metrics-listen", n.metrics, "--log-level", "debug", "--auto-create-topics", "false"}, append(slices.Clone(extra), n.own...)...)
		t.Cleanup(n.kill)
	}
	// A broker serves only once the quorum has registered it, so they
	// must all start before any is waited for.
	for _, n := range c.nodes {
		n.launch()
	}
	for _, n := range c.nodes {
		n.waitServing()
	}
	c.waitHealthy()
}

// node returns the broker with node id id.
func (c *testCluster) node(id int32) *clusterNode {
	c.t.Helper()
	if id < 1 || int(id) > len(c.nodes) {
		c.t.Fatalf("no broker %d in the cluster", id)
	}
	return c.nodes[id-1]
}

func (c *testCluster) running() []*clusterNode {
	var out []*clusterNode
	for _, n := range c.nodes {
		n.mu.Lock()
		away := n.mu.paused || n.mu.cut
		n.mu.Unlock()
		if n.running() && !away {
			out = append(out, n)
		}
	}
	return out
}

func (c *testCluster) addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.addr)
	}
	return out
}

// client returns a franz-go client seeded with every broker, owned by the
// test. Metadata may be refreshed often: leaders move in these tests.
func (c *testCluster) client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.addrs()...),
		kgo.MetadataMinAge(100 * time.Millisecond), kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
	}, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

func (c *testCluster) admin() *kadm.Client { return kadm.NewClient(c.client()) }

// eventually polls cond every 50 ms until it returns nil, and fails the
// test with cond's last error after d.
func (c *testCluster) eventually(d time.Duration, what string, cond func() error) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// views returns each running broker's metadata, by node id.
func (c *testCluster) views() (map[int32]*kmsg.MetadataResponse, error) {
	out := map[int32]*kmsg.MetadataResponse{}
	for _, n := range c.running() {
		m, err := n.metadata()
		if err != nil {
			return nil, fmt.Errorf("broker %d: %w", n.id, err)
		}
		out[n.id] = m
	}
	if len(out) == 0 {
		return nil, errors.New("no broker is running")
	}
	return out, nil
}

// controllerNow returns the controller every running broker names, if they
// agree on one that is running, and that every running broker is live in
// all their views.
func (c *testCluster) controllerNow() (int32, error) {
	views, err := c.views()
	if err != nil {
		return -1, err
	}
	var want []int32
	for _, n := range c.running() {
		want = append(want, n.id)
	}
	ctrl := int32(-1)
	for id, m := range views {
		var live []int32
		for _, b := range m.Brokers {
			live = append(live, b.NodeID)
		}
		slices.Sort(live)
		for _, w := range want {
			if !slices.Contains(live, w) {
				return -1, fmt.Errorf("broker %d lists live brokers %v, want %v among them", id, live, want)
			}
		}
		switch {
		case ctrl == -1:
			ctrl = m.ControllerID
		case m.ControllerID != ctrl:
			return -1, fmt.Errorf("brokers name different controllers: %s", controllers(views))
		}
	}
	if !slices.Contains(want, ctrl) {
		return -1, fmt.Errorf("controller %d is not a running broker (%s)", ctrl, controllers(views))
	}
	return ctrl, nil
}

func controllers(views map[int32]*kmsg.MetadataResponse) string {
	var parts []string
	for id, m := range views {
		parts = append(parts, fmt.Sprintf("broker %d says %d", id, m.ControllerID))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// waitHealthy waits until the running brokers agree on a controller among
// them and each lists every running broker as live.
func (c *testCluster) waitHealthy() int32 {
	c.t.Helper()
	var ctrl int32
	c.eventually(30*time.Second, "cluster healthy", func() (err error) {
		ctrl, err = c.controllerNow()
		return err
	})
	return ctrl
}

// controller returns the controller (the Raft leader), once the running
// brokers agree on it.
func (c *testCluster) controller() int32 {
	c.t.Helper()
	return c.waitHealthy()
}

// createTopic creates a topic with replication factor rf and configs, and
// waits until every running broker knows each partition with a leader and
// a full ISR.
func (c *testCluster) createTopic(topic string, partitions int32, rf int16, configs map[string]string) {
	c.t.Helper()
	cfg := map[string]*string{}
	for k, v := range configs {
		cfg[k] = &v
	}
	resp, err := c.admin().CreateTopic(ctxTimeout(c.t, 30*time.Second), partitions, rf, cfg, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		c.t.Fatalf("creating topic %s: %v", topic, err)
	}
	c.waitISR(topic, partitions, int(rf))
}

// partitionView is one broker's view of one partition.
type partitionView struct {
	leader      int32
	leaderEpoch int32
	replicas    []int32
	isr         []int32
}

func (p partitionView) String() string {
	return fmt.Sprintf("leader %d epoch %d replicas %v isr %v", p.leader, p.leaderEpoch, p.replicas, p.isr)
}

// partitionViews returns every running broker's view of topic's
// partitions: broker id → partition index → view.
func (c *testCluster) partitionViews(topic string) (map[int32]map[int32]partitionView, error) {
	views, err := c.views()
	if err != nil {
		return nil, err
	}
	out := map[int32]map[int32]partitionView{}
	for id, m := range views {
		out[id] = map[int32]partitionView{}
		for _, mt := range m.Topics {
			if mt.Topic == nil || *mt.Topic != topic {
				continue
			}
			for _, mp := range mt.Partitions {
				isr := slices.Clone(mp.ISR)
				slices.Sort(isr)
				out[id][mp.Partition] = partitionView{leader: mp.Leader, leaderEpoch: mp.LeaderEpoch,
					replicas: mp.Replicas, isr: isr}
			}
		}
	}
	return out, nil
}

// agreedPartitions returns topic's partitions as every running broker sees
// them, once all agree.
func (c *testCluster) agreedPartitions(topic string, partitions int32) (map[int32]partitionView, error) {
	views, err := c.partitionViews(topic)
	if err != nil {
		return nil, err
	}
	var agreed map[int32]partitionView
	var first int32
	for id, v := range views {
		if int32(len(v)) != partitions {
			return nil, fmt.Errorf("broker %d knows %d partitions of %s, want %d", id, len(v), topic, partitions)
		}
		if agreed == nil {
			agreed, first = v, id
			continue
		}
		for p, pv := range v {
			if a := agreed[p]; a.leader != pv.leader || a.leaderEpoch != pv.leaderEpoch || !slices.Equal(a.isr, pv.isr) {
				return nil, fmt.Errorf("%s-%d: broker %d sees %v, broker %d sees %v", topic, p, first, a, id, pv)
			}
		}
	}
	return agreed, nil
}

// leader returns the leader of topic-index once the running brokers agree
// on one that is running.
func (c *testCluster) leader(topic string, index int32) int32 {
	c.t.Helper()
	return c.waitLeader(topic, index, func(int32) bool { return true })
}

// waitLeader waits until the running brokers agree that a running broker
// for which ok returns true leads topic-index, and returns it.
func (c *testCluster) waitLeader(topic string, index int32, ok func(int32) bool) int32 {
	c.t.Helper()
	var leader int32
	c.eventually(30*time.Second, fmt.Sprintf("a new leader of %s-%d", topic, index), func() error {
		views, err := c.partitionViews(topic)
		if err != nil {
			return err
		}
		leader = -1
		for id, v := range views {
			pv, found := v[index]
			if !found {
				return fmt.Errorf("broker %d does not know %s-%d", id, topic, index)
			}
			if leader != -1 && pv.leader != leader {
				return fmt.Errorf("brokers disagree on the leader of %s-%d: %v", topic, index, views)
			}
			leader = pv.leader
		}
		if leader < 0 || !c.node(leader).running() || !ok(leader) {
			return fmt.Errorf("%s-%d is led by %d", topic, index, leader)
		}
		return nil
	})
	return leader
}

// waitISR waits until every running broker sees each partition of topic
// with a leader and an ISR of size n.
func (c *testCluster) waitISR(topic string, partitions int32, n int) map[int32]partitionView {
	c.t.Helper()
	var parts map[int32]partitionView
	c.eventually(45*time.Second, fmt.Sprintf("ISRs of %s at %d replicas", topic, n), func() (err error) {
		if parts, err = c.agreedPartitions(topic, partitions); err != nil {
			return err
		}
		for p, pv := range parts {
			if pv.leader < 0 || len(pv.isr) != n {
				return fmt.Errorf("%s-%d: %v", topic, p, pv)
			}
		}
		return nil
	})
	return parts
}

// waitLogEndsEqual waits until every replica of each partition of topic
// reports the same log end: followers hold what the leader holds.
func (c *testCluster) waitLogEndsEqual(topic string, partitions int32) map[int32]int64 {
	c.t.Helper()
	ends := map[int32]int64{}
	c.eventually(30*time.Second, fmt.Sprintf("equal log ends of the replicas of %s", topic), func() error {
		byNode := map[int32]map[string]int64{}
		for _, n := range c.nodes {
			m, err := n.logEndOffsets()
			if err != nil {
				return fmt.Errorf("broker %d: %w", n.id, err)
			}
			byNode[n.id] = m
		}
		for p := range partitions {
			name := fmt.Sprintf("%s-%d", topic, p)
			var seen []string
			for id := range int32(clusterSize) {
				leo, ok := byNode[id+1][name]
				if !ok {
					return fmt.Errorf("broker %d has no replica of %s", id+1, name)
				}
				seen = append(seen, fmt.Sprintf("broker %d: %d", id+1, leo))
				if id == 0 {
					ends[p] = leo
				} else if leo != ends[p] {
					return fmt.Errorf("%s log ends differ: %s", name, strings.Join(seen, ", "))
				}
			}
		}
		return nil
	})
	return ends
}

// stopAll stops every running broker with SIGTERM, all at once, and
// checks each exits cleanly.
func (c *testCluster) stopAll() {
	c.t.Helper()
	type stopping struct {
		n      *clusterNode
		exited chan struct{}
		cmd    *exec.Cmd
	}
	var all []stopping
	for _, n := range c.nodes {
		if n.running() {
			exited, cmd := n.signal(syscall.SIGTERM)
			all = append(all, stopping{n, exited, cmd})
		}
	}
	for _, s := range all {
		s.n.waitStopped(s.exited, s.cmd)
	}
}

// brokerFault matches what a broker prints when it crashes or the race
// detector (the test binary is built with -race) finds a data race.
var brokerFault = regexp.MustCompile(`(?m)^(WARNING: DATA RACE|panic: |fatal error: )`)

// checkLogs fails the test if a broker crashed or raced, then, if the test
// failed, writes each broker's whole log to a file that outlives the test
// and prints the tails.
func (c *testCluster) checkLogs() {
	for _, n := range c.nodes {
		l := n.log.String()
		if loc := brokerFault.FindStringIndex(l); loc != nil {
			report := l[loc[0]:]
			if end := strings.Index(report[1:], "\n=================="); end >= 0 {
				report = report[:end+1]
			}
			c.t.Errorf("broker %d: %s", n.id, head(report, 40))
		}
	}
	if !c.t.Failed() {
		return
	}
	dir, err := os.MkdirTemp("", "runnel-"+strings.ReplaceAll(c.t.Name(), "/", "_")+"-")
	if err != nil {
		c.t.Logf("saving broker logs: %v", err)
		return
	}
	for _, n := range c.nodes {
		path := filepath.Join(dir, fmt.Sprintf("broker-%d.log", n.id))
		if err := os.WriteFile(path, []byte(n.log.String()), 0o644); err != nil {
			c.t.Logf("saving broker logs: %v", err)
		}
		c.t.Logf("broker %d: whole log in %s; last lines:\n%s", n.id, path, tail(n.log.String(), 25))
	}
}

// head returns the first n lines of s.
func head(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// tail returns the last n lines of a broker's log, leaving out the debug
// line logged for every request.
func tail(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if !strings.Contains(l, "level=DEBUG msg=request ") {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// clusterRequest sends one request to addr on a new connection and
// returns the decoded response.
func clusterRequest(addr string, req kmsg.Request, timeout time.Duration) (kmsg.Response, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	const corr = 1
	b := make([]byte, 4, 128)
	b = wire.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = wire.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = wire.BigEndian.AppendUint32(b, corr)
	b = wire.BigEndian.AppendUint16(b, uint16(len("cluster-test")))
	b = append(b, "cluster-test"...)
	if req.IsFlexible() {
		b = append(b, 0) // no header tags
	}
	b = req.AppendTo(b)
	wire.BigEndian.PutUint32(b, uint32(len(b)-4))
	if _, err := conn.Write(b); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return nil, err
	}
	frame := make([]byte, wire.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, frame); err != nil {
		return nil, err
	}
	if len(frame) < 4 || wire.BigEndian.Uint32(frame) != corr {
		return nil, fmt.Errorf("response with a bad correlation id: % x", frame[:min(len(frame), 8)])
	}
	body := frame[4:]
	if req.IsFlexible() && req.Key() != 18 { // ApiVersions answers with a v0 header
		if len(body) == 0 {
			return nil, errors.New("response without its header tags")
		}
		body = body[1:]
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decoding %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// storedBatch is one record batch as a replica's segment files hold it.
type storedBatch struct {
	baseOffset  int64
	leaderEpoch int32
	bytes       []byte
}

// replicaBatches reads a replica's log of topic-index from its data
// directory: its segment files in offset order, each up to its last
// complete batch (the active segment is preallocated, zeros after the
// data). It fails the test where a batch header is cut off or offsets do
// not follow on.
func replicaBatches(t *testing.T, dataDir, topic string, index int32) []storedBatch {
	t.Helper()
	dir := filepath.Join(dataDir, "topics", fmt.Sprintf("%s-%d", topic, index))
	segs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(segs) // fixed-width names: name order is offset order
	var out []storedBatch
	next := int64(-1)
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		for pos := 0; pos+12 <= len(b); {
			base := int64(wire.BigEndian.Uint64(b[pos:]))
			length := int32(wire.BigEndian.Uint32(b[pos+8:]))
			if length == 0 {
				break // the end of the data in a preallocated segment
			}
			size := 12 + int(length)
			if length < 49 || pos+size > len(b) {
				t.Fatalf("%s: batch at byte %d: length %d, %d bytes left", seg, pos, length, len(b)-pos)
			}
			if next >= 0 && base != next {
				t.Fatalf("%s: batch at byte %d has base offset %d, want %d", seg, pos, base, next)
			}
			lastDelta := int64(wire.BigEndian.Uint32(b[pos+23:]))
			next = base + lastDelta + 1
			out = append(out, storedBatch{baseOffset: base, leaderEpoch: int32(wire.BigEndian.Uint32(b[pos+12:])),
				bytes: b[pos : pos+size]})
			pos += size
		}
	}
	return out
}

// replicaLog returns a replica's log bytes: its batches concatenated.
func replicaLog(t *testing.T, dataDir, topic string, index int32) []byte {
	t.Helper()
	var out []byte
	for _, b := range replicaBatches(t, dataDir, topic, index) {
		out = append(out, b.bytes...)
	}
	return out
}

// compareReplicas checks that every replica of each partition of topic
// holds the same log bytes, and says where they first differ if not. The
// brokers must be stopped.
func (c *testCluster) compareReplicas(topic string, partitions int32) {
	c.t.Helper()
	for p := range partitions {
		logs := make([][]storedBatch, len(c.nodes))
		for i, n := range c.nodes {
			logs[i] = replicaBatches(c.t, n.dataDir, topic, p)
		}
		ref := replicaLog(c.t, c.nodes[0].dataDir, topic, p)
		for i := 1; i < len(c.nodes); i++ {
			got := replicaLog(c.t, c.nodes[i].dataDir, topic, p)
			if bytes.Equal(ref, got) {
				continue
			}
			c.t.Errorf("%s-%d: broker 1 holds %d bytes in %d batches, broker %d %d bytes in %d batches; %s",
				topic, p, len(ref), len(logs[0]), c.nodes[i].id, len(got), len(logs[i]), firstDifference(logs[0], logs[i]))
		}
		c.t.Logf("%s-%d: %d bytes in %d batches on each replica", topic, p, len(ref), len(logs[0]))
	}
}

func firstDifference(a, b []storedBatch) string {
	for i := range min(len(a), len(b)) {
		if !bytes.Equal(a[i].bytes, b[i].bytes) {
			return fmt.Sprintf("batch %d differs: offset %d epoch %d (%d bytes) against offset %d epoch %d (%d bytes)",
				i, a[i].baseOffset, a[i].leaderEpoch, len(a[i].bytes), b[i].baseOffset, b[i].leaderEpoch, len(b[i].bytes))
		}
	}
	return fmt.Sprintf("one log is a prefix of the other: %d against %d batches", len(a), len(b))
}
