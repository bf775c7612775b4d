package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/segment"
)

// testConfig is a broker on loopback ports the kernel picks, over a fresh
// data directory.
func testConfig(t *testing.T) Config {
	t.Helper()
	c := DefaultConfig()
	c.DataDir = t.TempDir()
	c.Listen = "127.0.0.1:0"
	c.MetricsListen = "127.0.0.1:0"
	c.Groups.InitialRebalanceDelay = 0
	c.ShutdownTimeout = 5 * time.Second
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return c
}

// resources counts this process's goroutines and open file descriptors.
type resources struct{ goroutines, fds int }

// snapshot counts goroutines and descriptors. Goroutines whose stack holds
// one of ignore are not counted.
func snapshot(t *testing.T, ignore ...string) resources {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	g := 0
	for _, stack := range strings.Split(string(buf), "\n\n") {
		if !slices.ContainsFunc(ignore, func(s string) bool { return strings.Contains(stack, s) }) {
			g++
		}
	}
	return resources{g, len(fds)}
}

// checkReleased fails the test unless goroutines and descriptors come back
// to what before counted. Goroutines that were told to stop may still be
// on their way out, so the counts are read again until they settle.
func checkReleased(t *testing.T, before resources, ignore ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		now := snapshot(t, ignore...)
		if now.goroutines <= before.goroutines && now.fds <= before.fds {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("leaked: %d goroutines (was %d), %d fds (was %d)\n%s",
				now.goroutines, before.goroutines, now.fds, before.fds, buf)
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBrokerInProcess runs a broker in the test's process, produces and
// consumes through it with franz-go, and closes it without leaving a
// goroutine or a descriptor behind.
func TestBrokerInProcess(t *testing.T) {
	before := snapshot(t)
	b, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- b.Run(context.Background()) }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("events"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 100
	for i := range n {
		r := &kgo.Record{Topic: "events", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	for got := 0; got < n; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if want := fmt.Sprintf("v%d", r.Offset); string(r.Value) != want || r.Offset != int64(got) {
				t.Fatalf("record at %d: offset %d value %q, want %q", got, r.Offset, r.Value, want)
			}
			got++
		})
	}
	cl.Close()

	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + b.MetricsAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz while running: %s", resp.Status)
	}

	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := <-ran; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := b.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("run after close: %v, want ErrClosed", err)
	}
	checkReleased(t, before)
}

// TestBrokerRestartKeepsRecords: a broker stopped by its context leaves a
// data directory the next broker serves the same records from.
func TestBrokerRestartKeepsRecords(t *testing.T) {
	cfg := testConfig(t)
	cfg.MetricsListen = ""
	produced := func(b *Broker, produce bool) int64 {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- b.Run(ctx) }()
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.AllowAutoTopicCreation())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer rcancel()
		var end int64
		if produce {
			for range 3 {
				r, err := cl.ProduceSync(rctx, &kgo.Record{Topic: "kept", Value: []byte("x")}).First()
				if err != nil {
					t.Fatal(err)
				}
				end = r.Offset + 1
			}
		} else {
			cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{"kept": {0: kgo.NewOffset().AtStart()}})
			for end < 3 {
				fs := cl.PollFetches(rctx)
				if err := fs.Err(); err != nil {
					t.Fatal(err)
				}
				fs.EachRecord(func(r *kgo.Record) { end = r.Offset + 1 })
			}
		}
		cancel()
		if err := <-ran; err != nil {
			t.Fatalf("run: %v", err)
		}
		if err := b.Run(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("second run: %v, want ErrClosed", err)
		}
		return end
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if end := produced(b, true); end != 3 {
		t.Fatalf("produced up to %d", end)
	}
	if b, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if end := produced(b, false); end != 3 {
		t.Fatalf("consumed up to %d after a restart", end)
	}
}

// TestNewReleasesOnFailure makes New fail at each step that can fail after
// earlier ones opened something, and checks nothing stays open.
func TestNewReleasesOnFailure(t *testing.T) {
	taken := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln.Addr().String()
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, c *Config)
		want  string
		// ignore names goroutines the test does not count: Pebble
		// (v1.1.5) leaves its disk-health ticker running when Open
		// fails on a held lock.
		ignore []string
	}{
		{"kafka port taken", func(t *testing.T, c *Config) {
			c.Listen = taken(t)
		}, "kafka listener", nil},
		{"metrics port taken", func(t *testing.T, c *Config) {
			c.MetricsListen = taken(t)
		}, "metrics listener", nil},
		{"partitions cannot open", func(t *testing.T, c *Config) {
			if err := os.WriteFile(filepath.Join(c.DataDir, "topics"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "topics", nil},
		{"data dir in use", func(t *testing.T, c *Config) {
			// Another broker's Raft store holds the directory's lock.
			st, err := cluster.OpenRaftStore(filepath.Join(c.DataDir, "meta", "raft"), c.Logger)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
		}, "lock", []string{"pebble/vfs.(*diskHealthCheckingFS).startTickerLocked"}},
		{"meta cannot open", func(t *testing.T, c *Config) {
			if err := os.WriteFile(filepath.Join(c.DataDir, "meta"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "meta", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.setup(t, &cfg)
			before := snapshot(t, tc.ignore...)
			b, err := New(cfg)
			if err == nil {
				b.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			checkReleased(t, before, tc.ignore...)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		edit func(c *Config)
		want string
	}{
		{func(c *Config) { c.NodeID = -3 }, "--node-id: want a positive integer, got -3"},
		{func(c *Config) { c.DataDir = "" }, "--data-dir"},
		{func(c *Config) { c.Listen = "" }, "--listen"},
		{func(c *Config) { c.Listen = "127.0.0.1" }, `--listen: want host:port such as 127.0.0.1:9092, got "127.0.0.1"`},
		{func(c *Config) { c.Advertise = "broker-1" }, `--advertise: want host:port`},
		{func(c *Config) { c.Advertise = "broker-1:kafka" }, `--advertise: want host:port`},
		{func(c *Config) { c.MetricsListen = "127.0.0.1:99999" }, `--metrics-listen: want host:port`},
		{func(c *Config) { c.RaftListen = "nowhere" }, `--raft-listen: want host:port`},
		{func(c *Config) { c.RaftTLS = true }, "--raft-tls: needs --tls-cert-file, --tls-key-file and --tls-ca-file"},
		{func(c *Config) { c.RaftTLS = true }, "--raft-tls: needs --voters"},
		{func(c *Config) { c.Server.MaxConnections = 0 }, "--max-connections: want a positive integer"},
		{func(c *Config) { c.Server.DefaultReplicationFactor = -1 }, "--default-replication-factor: want a positive integer"},
		{func(c *Config) { c.RaftElectionTimeout = 0 }, "--raft-election-timeout: want a positive duration"},
		{func(c *Config) { c.Controller.SessionTimeout = -time.Second }, "--broker-session-timeout: want a positive duration"},
		{func(c *Config) { c.Controller.HeartbeatInterval = 6 * time.Second },
			"--broker-heartbeat-interval 6s must be below --broker-session-timeout 6s"},
		{func(c *Config) { c.Groups.MinSessionTimeout = time.Hour },
			"--group-min-session-timeout 1h0m0s is above --group-max-session-timeout 30m0s"},
		{func(c *Config) { c.Groups.InitialRebalanceDelay = -time.Second }, "--group-initial-rebalance-delay: want a duration of 0s or more"},
		{func(c *Config) { c.Controller.LeaderRebalanceInterval = -time.Second }, "--leader-rebalance-interval: want a duration of 0s or more"},
		{func(c *Config) { c.ConsumerLag.Interval = 0 }, "--consumer-lag-refresh-interval: want a positive duration"},
		{func(c *Config) { c.ConsumerLag.MaxSeries = -1 }, "--consumer-lag-max-series: want a positive integer"},
		{func(c *Config) { c.Partitions.Fsync = segment.FsyncPolicy{Mode: segment.FsyncInterval} }, "--fsync"},
		{func(c *Config) { c.Voters = []cluster.Voter{{ID: 2, Addr: "127.0.0.1:1"}} }, "--node-id 1 is not one of the voters, so it joins them as an observer: it needs --raft-listen"},
		{func(c *Config) {
			c.Voters = []cluster.Voter{{ID: 1, Addr: "127.0.0.1:1"}, {ID: 1, Addr: "127.0.0.1:2"}}
		}, "node 1 is listed twice"},
	} {
		c := DefaultConfig()
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate: %v, want an error saying %q", err, tc.want)
		}
		if _, nerr := New(c); nerr == nil || nerr.Error() != err.Error() {
			t.Errorf("New: %v, want Validate's error", nerr)
		}
	}
	var zero Config
	if err := zero.Validate(); err == nil {
		t.Error("the zero Config is valid")
	}
}

// TestRaiseFileLimit: a broker started with a lowered soft limit on open
// files runs with the hard limit.
func TestRaiseFileLimit(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &orig) })
	if orig.Max < 512 {
		t.Skipf("hard limit %d is too low to lower", orig.Max)
	}
	low := unix.Rlimit{Cur: 256, Max: orig.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	b, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var now unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if now.Cur != orig.Max {
		t.Fatalf("soft limit %d after New, want the hard limit %d", now.Cur, orig.Max)
	}
}
