// Command fetchsessions measures what incremental fetch sessions (KIP-227)
// save: one franz-go consumer of every partition of a topic (1,000 by
// default) against a running broker, with sessions (franz-go's default)
// and without (kgo.DisableFetchSessions), taking turns within each run.
// For each it reports, per fetch request: the request and response bytes
// the client wrote and read, and the broker's CPU time (user and system,
// from /proc/PID/stat). A producer writes a trickle of records, one
// partition at a time, the sparse traffic where a consumer of many
// partitions sends most of its fetches; -rate 0 measures idle long-polls.
//
//	fetchsessions -brokers 127.0.0.1:19092 -pid PID [-partitions 1000] [-runs 5] [-duration 20s] [-rate 200]
//
// It prints one JSON object a line per measurement, then a table of the
// medians over the runs and of the ratios taken within each run.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:19092", "broker address")
	pid := flag.Int("pid", 0, "the broker's process id, for its CPU time")
	topic := flag.String("topic", "sessions", "topic, created if missing")
	partitions := flag.Int("partitions", 1000, "partitions of the topic")
	runs := flag.Int("runs", 5, "runs; each measures both modes")
	duration := flag.Duration("duration", 20*time.Second, "measured time per mode and run")
	warmup := flag.Duration("warmup", 3*time.Second, "time before measuring, for the consumer to start and catch up")
	rate := flag.Int("rate", 200, "records per second the producer writes, one partition after another (0: none)")
	maxWait := flag.Duration("max-wait", 500*time.Millisecond, "the consumer's fetch max wait")
	flag.Parse()
	if *pid == 0 {
		log.Fatal("-pid: want the broker's process id")
	}
	ctx := context.Background()
	admin, err := kgo.NewClient(kgo.SeedBrokers(*brokers))
	if err != nil {
		log.Fatal(err)
	}
	adm := kadm.NewClient(admin)
	if res, err := adm.CreateTopics(ctx, int32(*partitions), 1, nil, *topic); err != nil {
		log.Fatal(err)
	} else if e := res[*topic].Err; e != nil && !strings.Contains(e.Error(), "TOPIC_ALREADY_EXISTS") {
		log.Fatal(e)
	}

	stopProducing := produce(*brokers, *topic, *partitions, *rate)
	defer stopProducing()

	type result struct {
		Run           int     `json:"run"`
		Mode          string  `json:"mode"`
		Fetches       int64   `json:"fetches"`
		ReqBytes      float64 `json:"request_bytes_per_fetch"`
		RespBytes     float64 `json:"response_bytes_per_fetch"`
		BrokerCPUus   float64 `json:"broker_cpu_us_per_fetch"`
		BrokerCPUFrac float64 `json:"broker_cpu_cores"`
		Records       int64   `json:"records"`
	}
	byMode := map[string][]result{}
	var ratios [][3]float64 // per run: request bytes, response bytes, CPU per fetch; sessions over none
	for run := 1; run <= *runs; run++ {
		modes := []string{"sessions", "none"}
		if run%2 == 0 {
			modes[0], modes[1] = modes[1], modes[0]
		}
		// The broker's CPU with the producer alone, subtracted from each
		// mode's: what is left is the fetching's.
		c0 := cpuTicks(*pid)
		start := time.Now()
		time.Sleep(*duration)
		baseline := float64(cpuTicks(*pid)-c0) / ticksPerSecond / time.Since(start).Seconds()
		fmt.Printf("{\"run\":%d,\"mode\":\"producer alone\",\"broker_cpu_cores\":%.4f}\n", run, baseline)
		got := map[string]result{}
		for _, mode := range modes {
			var fetches, reqBytes, respBytes, records atomic.Int64
			opts := []kgo.Opt{kgo.SeedBrokers(*brokers), kgo.ConsumeTopics(*topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(*maxWait),
				kgo.WithHooks(fetchCounter{&fetches, &reqBytes, &respBytes})}
			if mode == "none" {
				opts = append(opts, kgo.DisableFetchSessions())
			}
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				log.Fatal(err)
			}
			cctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for cctx.Err() == nil {
					fs := cl.PollFetches(cctx)
					records.Add(int64(fs.NumRecords()))
				}
			}()
			time.Sleep(*warmup)
			f0, q0, r0, n0, c0 := fetches.Load(), reqBytes.Load(), respBytes.Load(), records.Load(), cpuTicks(*pid)
			start := time.Now()
			time.Sleep(*duration)
			f1, q1, r1, n1, c1 := fetches.Load(), reqBytes.Load(), respBytes.Load(), records.Load(), cpuTicks(*pid)
			elapsed := time.Since(start)
			cancel()
			<-done
			cl.Close()
			n := f1 - f0
			if n == 0 {
				log.Fatalf("run %d, %s: no fetches", run, mode)
			}
			cpu := float64(c1-c0)/ticksPerSecond - baseline*elapsed.Seconds()
			res := result{Run: run, Mode: mode, Fetches: n, ReqBytes: float64(q1-q0) / float64(n),
				RespBytes: float64(r1-r0) / float64(n), BrokerCPUus: cpu * 1e6 / float64(n),
				BrokerCPUFrac: cpu / elapsed.Seconds(), Records: n1 - n0}
			out, _ := json.Marshal(res)
			fmt.Println(string(out))
			got[mode] = res
			byMode[mode] = append(byMode[mode], res)
		}
		s, o := got["sessions"], got["none"]
		ratios = append(ratios, [3]float64{s.ReqBytes / o.ReqBytes, s.RespBytes / o.RespBytes, s.BrokerCPUus / o.BrokerCPUus})
	}

	fmt.Printf("\nmedians over %d runs (%d partitions, %d records/s, fetch max wait %v, %v measured per mode and run):\n",
		*runs, *partitions, *rate, *maxWait, *duration)
	fmt.Printf("%-9s %12s %14s %15s %17s %12s\n", "mode", "fetches/s", "request B", "response B", "broker CPU µs", "fetch cores")
	for _, mode := range []string{"none", "sessions"} {
		rs := byMode[mode]
		fmt.Printf("%-9s %12.1f %14.0f %15.0f %17.0f %12.3f\n", mode,
			median(rs, func(r result) float64 { return float64(r.Fetches) / duration.Seconds() }),
			median(rs, func(r result) float64 { return r.ReqBytes }),
			median(rs, func(r result) float64 { return r.RespBytes }),
			median(rs, func(r result) float64 { return r.BrokerCPUus }),
			median(rs, func(r result) float64 { return r.BrokerCPUFrac }))
	}
	fmt.Printf("sessions / none, median of the same-run ratios: request bytes %.4f, response bytes %.4f, broker CPU per fetch %.3f\n",
		medianOf(ratios, 0), medianOf(ratios, 1), medianOf(ratios, 2))
}

// produce writes rate records a second, each to the next partition, until
// the returned function is called.
func produce(brokers, topic string, partitions, rate int) func() {
	if rate <= 0 {
		return func() {}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		value := make([]byte, 100)
		for i := 0; ctx.Err() == nil; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: value}, nil)
		}
	}()
	return func() {
		cancel()
		<-done
		cl.Close()
	}
}

// fetchCounter counts the fetch requests a client writes and the bytes of
// them and of their responses.
type fetchCounter struct{ fetches, reqBytes, respBytes *atomic.Int64 }

func (h fetchCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		h.fetches.Add(1)
		h.reqBytes.Add(int64(n))
	}
}

func (h fetchCounter) OnBrokerRead(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		h.respBytes.Add(int64(n))
	}
}

// ticksPerSecond is USER_HZ, 100 on every Linux this runs on.
const ticksPerSecond = 100

// cpuTicks is the user plus system time of a process, in ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		log.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing one. utime and stime are fields 14 and 15.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return u + st
}

func median[T any](xs []T, f func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func medianOf(rs [][3]float64, i int) float64 {
	return median(rs, func(r [3]float64) float64 { return r[i] })
}
