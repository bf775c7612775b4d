package broker

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-io/runnel/cluster"
)

// freeAddr returns a loopback address for a Raft port that every voter
// must know before any starts. The port stays bound until startQuorum
// hands the listener to the broker of that address (or the test ends):
// freeing it in between would let another test take it.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	heldMu.Lock()
	held[addr] = ln
	heldMu.Unlock()
	t.Cleanup(func() {
		if ln := takeHeld(addr); ln != nil {
			ln.Close()
		}
	})
	return addr
}

var (
	heldMu sync.Mutex
	held   = map[string]net.Listener{} // by address, bound by freeAddr
)

// takeHeld returns the listener freeAddr bound for addr, once; nil after.
func takeHeld(addr string) net.Listener {
	heldMu.Lock()
	defer heldMu.Unlock()
	ln := held[addr]
	delete(held, addr)
	return ln
}

// startQuorum starts one broker per voter in this process, all at once
// (New returns once its broker is registered, which needs a quorum), runs
// them, and returns them with a function that closes them and waits for
// their Run to end. configure, if set, adjusts each broker's Config.
func startQuorum(t *testing.T, voters []cluster.Voter, configure func(*Config, cluster.Voter)) ([]*Broker, func()) {
	t.Helper()
	type started struct {
		b   *Broker
		err error
	}
	results := make(chan started, len(voters))
	for _, v := range voters {
		cfg := testConfig(t)
		cfg.NodeID, cfg.Voters, cfg.MetricsListen = v.ID, voters, ""
		cfg.RaftElectionTimeout = 500 * time.Millisecond
		if configure != nil {
			configure(&cfg, v)
		}
		if cfg.RaftListen == "" || cfg.RaftListen == v.Addr {
			cfg.raftListener = takeHeld(v.Addr)
		}
		go func() {
			b, err := New(cfg)
			results <- started{b, err}
		}()
	}
	var brokers []*Broker
	for range voters {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		brokers = append(brokers, r.b)
	}
	ran := make(chan error, len(brokers))
	running := !t.Failed()
	if running {
		for _, b := range brokers {
			go func() { ran <- b.Run(context.Background()) }()
		}
	}
	stop := func() {
		for _, b := range brokers {
			if err := b.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
		if running {
			for range brokers {
				if err := <-ran; err != nil {
					t.Errorf("run: %v", err)
				}
			}
		}
	}
	return brokers, stop
}

// TestBrokerClusterInProcess runs three brokers in one process as a
// Raft quorum, writes to a topic replicated on all three with acks=all
// and reads it back from the cluster.
func TestBrokerClusterInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("three brokers")
	}
	before := snapshot(t)
	voters := []cluster.Voter{{ID: 1, Addr: freeAddr(t)}, {ID: 2, Addr: freeAddr(t)}, {ID: 3, Addr: freeAddr(t)}}
	brokers, stop := startQuorum(t, voters, nil)
	defer func() {
		stop()
		if !t.Failed() {
			checkReleased(t, before)
		}
	}()
	if t.Failed() {
		return
	}
	var seeds []string
	for _, b := range brokers {
		seeds = append(seeds, b.Addr())
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 3, nil, "replicated"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	const n = 50
	for i := range n {
		r := &kgo.Record{Topic: "replicated", Partition: int32(i % 2), Value: fmt.Appendf(nil, "%d", i)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{"replicated": {
		0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart()}})
	seen := map[string]bool{}
	for len(seen) < n {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	cl.Close()
}

// waitRegistered waits until the metadata lists n brokers: each registers
// as it starts. It asks afresh each time: kadm's BrokerMetadata answers
// from the client's cache, which, with no topic named, never goes stale
// (a broker list read while one broker was still registering stayed so).
func waitRegistered(t *testing.T, ctx context.Context, adm *kadm.Client, n int) {
	t.Helper()
	ctx = kadm.WithAuthorizedOps(ctx) // a direct request, not the cache
	for {
		m, err := adm.BrokerMetadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Brokers) == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d brokers registered", len(m.Brokers), n)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestFreeAddrHoldsThePort: the port freeAddr names stays bound, so no
// other test's listener can take it before the broker that needs it
// starts (the brokers of startQuorum get the bound listener itself).
func TestFreeAddrHoldsThePort(t *testing.T) {
	addr := freeAddr(t)
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatalf("%s could be bound again: freeAddr let the port go", addr)
	}
	ln := takeHeld(addr)
	if ln == nil || ln.Addr().String() != addr {
		t.Fatalf("takeHeld(%s) = %v", addr, ln)
	}
	ln.Close()
	if takeHeld(addr) != nil {
		t.Fatal("a held listener was handed out twice")
	}
}
