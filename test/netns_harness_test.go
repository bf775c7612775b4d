package test

// A netLab puts each broker of a test cluster in a network namespace of
// its own, joined by a bridge in the test's namespace, so a test can cut
// the links between brokers while every broker stays reachable from the
// test's clients. It needs root and iproute2; where it cannot have them a
// test skips, or fails if RUNNEL_TEST_PRIVILEGED=require (as CI sets it
// where it can make namespaces).

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
)

// privilegedEnv names the variable that makes tests needing root fail,
// rather than skip, where they cannot have it.
const privilegedEnv = "RUNNEL_TEST_PRIVILEGED"

type netLab struct {
	t      *testing.T
	name   string // prefix of every namespace and link the lab makes
	subnet string // the first three octets of its /24, with a trailing dot
	nodes  int
}

// newNetLab makes a bridge and n namespaces, node i (from 1) at
// subnet.i; the test's own end of the bridge is subnet.254. Everything is
// removed when the test ends.
func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	if testing.Short() {
		t.Skip("network namespace tests start three brokers: skipped with -short")
	}
	l := &netLab{t: t, name: fmt.Sprintf("rn%05x", rand.IntN(1<<20)), subnet: fmt.Sprintf("10.201.%d.", rand.IntN(250)), nodes: n}
	if err := l.try("link", "add", l.bridge(), "type", "bridge"); err != nil {
		l.unavailable(err)
	}
	t.Cleanup(l.close)
	l.must("addr", "add", l.subnet+"254/24", "dev", l.bridge())
	l.must("link", "set", l.bridge(), "up")
	for i := 1; i <= n; i++ {
		ns, host, inner := l.ns(i), fmt.Sprintf("%sh%d", l.name, i), fmt.Sprintf("%sn%d", l.name, i)
		l.must("netns", "add", ns)
		l.must("link", "add", host, "type", "veth", "peer", "name", inner)
		l.must("link", "set", inner, "netns", ns)
		l.must("link", "set", host, "master", l.bridge(), "up")
		l.must("-n", ns, "addr", "add", l.ip(i)+"/24", "dev", inner)
		l.must("-n", ns, "link", "set", inner, "up")
		l.must("-n", ns, "link", "set", "lo", "up")
	}
	return l
}

func (l *netLab) unavailable(err error) {
	l.t.Helper()
	privileged(l.t, fmt.Sprintf("network namespaces are not available (root and iproute2 are needed): %v", err))
}

func (l *netLab) bridge() string  { return l.name + "br" }
func (l *netLab) ns(i int) string { return fmt.Sprintf("%s-%d", l.name, i) }
func (l *netLab) ip(i int) string { return fmt.Sprintf("%s%d", l.subnet, i) }

// wrap is the command that runs a program inside node i's namespace.
func (l *netLab) wrap(i int) []string { return []string{"ip", "netns", "exec", l.ns(i)} }

func (l *netLab) try(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (l *netLab) must(args ...string) {
	l.t.Helper()
	if err := l.try(args...); err != nil {
		l.t.Fatal(err)
	}
}

// cut drops every packet between nodes a and b, both ways, with a
// blackhole route in each one's namespace: connections between them go
// silent, as over a dead link, while both still reach the test.
func (l *netLab) cut(a, b int) {
	l.t.Helper()
	l.must("-n", l.ns(a), "route", "add", "blackhole", l.ip(b)+"/32")
	l.must("-n", l.ns(b), "route", "add", "blackhole", l.ip(a)+"/32")
}

// mend undoes cut.
func (l *netLab) mend(a, b int) {
	l.t.Helper()
	l.must("-n", l.ns(a), "route", "del", "blackhole", l.ip(b)+"/32")
	l.must("-n", l.ns(b), "route", "del", "blackhole", l.ip(a)+"/32")
}

// isolate cuts node i off from every other node.
func (l *netLab) isolate(i int) {
	l.t.Helper()
	for j := 1; j <= l.nodes; j++ {
		if j != i {
			l.cut(i, j)
		}
	}
}

// rejoin undoes isolate.
func (l *netLab) rejoin(i int) {
	l.t.Helper()
	for j := 1; j <= l.nodes; j++ {
		if j != i {
			l.mend(i, j)
		}
	}
}

// throttle makes node i's link slow, both ways: a token bucket at rate
// (tc's units, such as 2mbit) that queues up to latency before dropping.
func (l *netLab) throttle(i int, rate, latency string) error {
	host, inner := fmt.Sprintf("%sh%d", l.name, i), fmt.Sprintf("%sn%d", l.name, i)
	tbf := []string{"root", "tbf", "rate", rate, "burst", "32kbit", "latency", latency}
	if out, err := exec.Command("tc", append([]string{"qdisc", "replace", "dev", host}, tbf...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("tc on %s: %v: %s", host, err, strings.TrimSpace(string(out)))
	}
	args := append([]string{"netns", "exec", l.ns(i), "tc", "qdisc", "replace", "dev", inner}, tbf...)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("tc on %s: %v: %s", inner, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// unthrottle undoes throttle.
func (l *netLab) unthrottle(i int) {
	l.t.Helper()
	host, inner := fmt.Sprintf("%sh%d", l.name, i), fmt.Sprintf("%sn%d", l.name, i)
	for _, args := range [][]string{{"tc", "qdisc", "del", "dev", host, "root"},
		{"ip", "netns", "exec", l.ns(i), "tc", "qdisc", "del", "dev", inner, "root"}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			l.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}

// close removes the namespaces, which takes their links with them, and
// the bridge. It runs after the brokers are killed.
func (l *netLab) close() {
	for i := 1; i <= l.nodes; i++ {
		l.try("netns", "del", l.ns(i))
	}
	l.try("link", "del", l.bridge())
}

// isolate cuts broker id off from the others in lab. Until rejoin, the
// cluster's views and waits leave it out, as they do a paused broker.
func (c *testCluster) isolate(lab *netLab, id int32) {
	c.t.Helper()
	n := c.node(id)
	n.log.mark(fmt.Sprintf("test cuts broker %d off from the others", id))
	lab.isolate(int(id))
	n.mu.Lock()
	n.mu.cut = true
	n.mu.Unlock()
}

// rejoin mends what isolate cut.
func (c *testCluster) rejoin(lab *netLab, id int32) {
	c.t.Helper()
	n := c.node(id)
	n.log.mark(fmt.Sprintf("test mends broker %d's links", id))
	lab.rejoin(int(id))
	n.mu.Lock()
	n.mu.cut = false
	n.mu.Unlock()
}

// startNetnsCluster starts a three-broker cluster with each broker in its
// own namespace of lab, on its own address there.
func startNetnsCluster(t *testing.T, lab *netLab, extra ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	for i := 1; i <= clusterSize; i++ {
		ip := lab.ip(i)
		c.nodes = append(c.nodes, &clusterNode{t: t, id: int32(i), dataDir: t.TempDir(), addr: ip + ":9092",
			raftAddr: ip + ":9093", metrics: ip + ":9094", wrap: lab.wrap(i), log: &nodeLog{}})
	}
	c.start(extra)
	return c
}
