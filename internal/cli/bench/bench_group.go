package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/cli"
)

// ---- bench commit ----

// commitResult is bench commit's summary.
type commitResult struct {
	Mode          string  `json:"mode"`
	Clients       int     `json:"clients"`
	Partitions    int     `json:"partitions_per_commit"`
	Commits       int64   `json:"commits"`
	Errors        int64   `json:"errors"`
	DurationSec   float64 `json:"duration_seconds"`
	CommitsPerSec float64 `json:"commits_per_second"`
	LatencyP50Ms  float64 `json:"latency_p50_ms"`
	LatencyP99Ms  float64 `json:"latency_p99_ms"`
	LatencyMaxMs  float64 `json:"latency_max_ms"`
}

func benchCommit(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("runnel bench commit", "runnel bench commit --topic T [flags]",
		`Commit offsets as fast as the group coordinator acknowledges them:
--clients clients, each committing for a group of its own, one
OffsetCommit at a time, each naming --partitions partitions of the topic.
Reports OffsetCommit requests per second and their latency.`, stderr)
	conn := cli.ConnFlags(fs)
	topic := fs.String("topic", "", "topic whose partitions are committed (created with --partitions partitions if missing)")
	clients := fs.Int("clients", 16, "concurrent committing clients, one group each")
	partitions := fs.Int("partitions", 1, "partitions named in each commit")
	duration := fs.Duration("duration", 10*time.Second, "how long to commit")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	if err := cli.ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	switch {
	case *topic == "":
		return errors.New("--topic is required")
	case *clients <= 0 || *partitions <= 0 || *duration <= 0:
		return errors.New("--clients, --partitions and --duration must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := ensureTopic(ctx, conn, *topic, *partitions, false, stderr); err != nil {
		return err
	}
	var (
		commits, failed atomic.Int64
		hists           = make([]latencyHist, *clients)
		wg              sync.WaitGroup
		firstErr        error
		errOnce         sync.Once
	)
	runCtx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	var cls []*kgo.Client
	for i := 0; i < *clients; i++ {
		cl, err := conn.Client(ctx)
		if err != nil {
			return err
		}
		defer cl.Close()
		cls = append(cls, cl)
	}
	stopProgress := make(chan struct{})
	go progressCount(stderr, "commits", commits.Load, stopProgress)
	start := time.Now()
	for i, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := kmsg.NewPtrOffsetCommitRequest()
			req.Group, req.Generation = fmt.Sprintf("bench-commit-%d", i), -1
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = *topic
			for p := 0; p < *partitions; p++ {
				rp := kmsg.NewOffsetCommitRequestTopicPartition()
				rp.Partition, rp.LeaderEpoch = int32(p), -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = []kmsg.OffsetCommitRequestTopic{rt}
			for n := int64(1); runCtx.Err() == nil; n++ {
				for j := range rt.Partitions {
					rt.Partitions[j].Offset = n
				}
				sent := time.Now()
				resp, err := req.RequestWith(runCtx, cl)
				if err == nil {
					for _, t := range resp.Topics {
						for _, p := range t.Partitions {
							if err == nil {
								err = kerr.ErrorForCode(p.ErrorCode)
							}
						}
					}
				}
				if err != nil {
					if runCtx.Err() != nil {
						return
					}
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				hists[i].add(time.Since(sent))
				commits.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProgress)
	var all latencyHist
	for i := range hists {
		all.merge(&hists[i])
	}
	r := commitResult{Mode: "commit", Clients: *clients, Partitions: *partitions, Commits: commits.Load(),
		Errors: failed.Load(), DurationSec: elapsed.Seconds(),
		CommitsPerSec: float64(commits.Load()) / elapsed.Seconds(),
		LatencyP50Ms:  ms(all.quantile(0.5)), LatencyP99Ms: ms(all.quantile(0.99)), LatencyMaxMs: ms(all.quantile(1))}
	if err := printSummary(stdout, *asJSON, r, [][2]string{
		{"commits", fmt.Sprint(r.Commits)}, {"errors", fmt.Sprint(r.Errors)},
		{"duration", elapsed.Round(time.Millisecond).String()},
		{"commits/s", fmt.Sprintf("%.0f", r.CommitsPerSec)},
		{"latency p50", fmt.Sprintf("%.3f ms", r.LatencyP50Ms)},
		{"latency p99", fmt.Sprintf("%.3f ms", r.LatencyP99Ms)},
		{"latency max", fmt.Sprintf("%.3f ms", r.LatencyMaxMs)},
	}); err != nil {
		return err
	}
	if firstErr != nil {
		return fmt.Errorf("%d commits failed; first: %w", failed.Load(), firstErr)
	}
	return nil
}

func printSummary(w io.Writer, asJSON bool, v any, rows [][2]string) error {
	if asJSON {
		return json.NewEncoder(w).Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	return tw.Flush()
}

// ---- bench rebalance ----

// rebalanceResult is bench rebalance's summary; times in milliseconds.
type rebalanceResult struct {
	Mode       string    `json:"mode"`
	Members    int       `json:"members"`
	Partitions int       `json:"partitions"`
	Balancer   string    `json:"balancer"`
	Heartbeat  string    `json:"heartbeat_interval"`
	Idle       string    `json:"idle"`
	LeaveMs    []float64 `json:"settle_after_leave_ms"`
	JoinMs     []float64 `json:"settle_after_join_ms"`
}

// benchMember is one group member of bench rebalance; it tracks the
// partitions it owns.
type benchMember struct {
	cl    *kgo.Client
	mu    sync.Mutex
	owned map[int32]bool
	moved chan struct{}
}

func (m *benchMember) set(ps []int32, own bool) {
	m.mu.Lock()
	for _, p := range ps {
		if own {
			m.owned[p] = true
		} else {
			delete(m.owned, p)
		}
	}
	m.mu.Unlock()
	select {
	case m.moved <- struct{}{}:
	default:
	}
}

func benchRebalance(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("runnel bench rebalance", "runnel bench rebalance --topic T [flags]",
		`Measure how long a consumer group takes to settle after a member leaves
cleanly (LeaveGroup) and after it joins again: from the leave or join to
the moment the members own every partition of the topic between them, each
exactly once. Repeated --rounds times. Members learn of a rebalance from
their next heartbeat, so the result depends on --heartbeat-interval.`, stderr)
	conn := cli.ConnFlags(fs)
	topic := fs.String("topic", "", "topic the group consumes (created with --partitions partitions if missing)")
	members := fs.Int("members", 3, "group members")
	partitions := fs.Int("partitions", 12, "partitions of the topic if it is created")
	rounds := fs.Int("rounds", 5, "leave-and-rejoin rounds")
	heartbeat := fs.Duration("heartbeat-interval", 3*time.Second, "members' heartbeat interval (members learn of a rebalance on their next heartbeat)")
	session := fs.Duration("session-timeout", 45*time.Second, "members' session timeout")
	balancer := fs.String("balancer", "cooperative-sticky", "assignor: cooperative-sticky, range, roundrobin or sticky")
	idle := fs.Duration("idle", 5*time.Second, "how long the group stays settled before each leave and join, so members are in their steady heartbeat rhythm; a random part of one heartbeat interval is added, so rounds sample every phase of it")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	if err := cli.ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *topic == "" {
		return errors.New("--topic is required")
	}
	if *members < 2 || *rounds <= 0 {
		return errors.New("--members must be at least 2 and --rounds positive")
	}
	var bal kgo.GroupBalancer
	switch *balancer {
	case "cooperative-sticky":
		bal = kgo.CooperativeStickyBalancer()
	case "range":
		bal = kgo.RangeBalancer()
	case "roundrobin":
		bal = kgo.RoundRobinBalancer()
	case "sticky":
		bal = kgo.StickyBalancer()
	default:
		return fmt.Errorf("--balancer %q: want cooperative-sticky, range, roundrobin or sticky", *balancer)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nparts, err := ensureTopic(ctx, conn, *topic, *partitions, true, stderr)
	if err != nil {
		return err
	}
	group := fmt.Sprintf("bench-rebalance-%d", time.Now().UnixNano())
	start := func() (*benchMember, error) {
		m := &benchMember{owned: map[int32]bool{}, moved: make(chan struct{}, 1)}
		cl, err := conn.Client(ctx, kgo.ConsumerGroup(group), kgo.ConsumeTopics(*topic),
			kgo.Balancers(bal), kgo.HeartbeatInterval(*heartbeat), kgo.SessionTimeout(*session),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { m.set(a[*topic], true) }),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { m.set(r[*topic], false) }),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { m.set(r[*topic], false) }))
		if err != nil {
			return nil, err
		}
		m.cl = cl
		go func() { // poll so the client keeps its group session going
			for ctx.Err() == nil {
				if cl.PollFetches(ctx).IsClientClosed() {
					return
				}
			}
		}()
		return m, nil
	}
	var live []*benchMember
	defer func() {
		for _, m := range live {
			m.cl.Close()
		}
	}()
	// settled waits until the members own every partition once between
	// them, each member at least one, and returns when that happened.
	settled := func(live []*benchMember) (time.Time, error) {
		deadline := time.After(2 * time.Minute)
		for {
			owners := map[int32]int{}
			ok := true
			for _, m := range live {
				m.mu.Lock()
				if len(m.owned) == 0 {
					ok = false
				}
				for p := range m.owned {
					owners[p]++
				}
				m.mu.Unlock()
			}
			if ok && len(owners) == nparts {
				for _, n := range owners {
					if n != 1 {
						ok = false
					}
				}
				if ok {
					return time.Now(), nil
				}
			}
			select {
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			case <-deadline:
				return time.Time{}, errors.New("the group did not settle within 2 minutes")
			case <-time.After(time.Millisecond):
			}
		}
	}
	for i := 0; i < *members; i++ {
		m, err := start()
		if err != nil {
			return err
		}
		live = append(live, m)
	}
	if _, err := settled(live); err != nil {
		return err
	}
	r := rebalanceResult{Mode: "rebalance", Members: *members, Partitions: nparts, Balancer: *balancer,
		Heartbeat: heartbeat.String(), Idle: idle.String()}
	pause := func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(*idle + time.Duration(rand.Int64N(int64(*heartbeat)))):
			return nil
		}
	}
	for round := 1; round <= *rounds; round++ {
		if err := pause(); err != nil {
			return err
		}
		last := live[len(live)-1]
		t0 := time.Now()
		last.cl.Close() // LeaveGroup
		live = live[:len(live)-1]
		at, err := settled(live)
		if err != nil {
			return err
		}
		r.LeaveMs = append(r.LeaveMs, ms(at.Sub(t0)))
		if err := pause(); err != nil {
			return err
		}
		t0 = time.Now()
		m, err := start()
		if err != nil {
			return err
		}
		live = append(live, m)
		if at, err = settled(live); err != nil {
			return err
		}
		r.JoinMs = append(r.JoinMs, ms(at.Sub(t0)))
		fmt.Fprintf(stderr, "round %d: settled %.0f ms after a leave, %.0f ms after a join\n", round, r.LeaveMs[round-1], r.JoinMs[round-1])
	}
	return printSummary(stdout, *asJSON, r, [][2]string{
		{"members", fmt.Sprint(*members)}, {"partitions", fmt.Sprint(nparts)}, {"balancer", *balancer},
		{"heartbeat interval", heartbeat.String()},
		{"settle after leave, median", fmt.Sprintf("%.0f ms", median(r.LeaveMs))},
		{"settle after leave, max", fmt.Sprintf("%.0f ms", maxOf(r.LeaveMs))},
		{"settle after join, median", fmt.Sprintf("%.0f ms", median(r.JoinMs))},
		{"settle after join, max", fmt.Sprintf("%.0f ms", maxOf(r.JoinMs))},
	})
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
