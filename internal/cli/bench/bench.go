// Package bench holds runnel bench: throughput, latency, group and
// availability measurements against any Kafka-compatible broker, through
// franz-go. It shares the client plumbing of package cli.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-io/runnel/internal/cli"
)

const benchUsage = `Usage: runnel bench produce|consume|commit|rebalance|availability|latency --topic T [flags]

Measure throughput against any Kafka-compatible broker. Progress goes to
stderr once a second; the summary goes to stdout as a table, or as one JSON
object with --json. MB means 2^20 bytes, as in Kafka's perf tools.

  produce   write --records records of --record-size bytes; reports
            records/s, MB/s and per-record acknowledgement latency
  consume   read a topic from the start; reports records/s and MB/s
  commit    commit offsets from many clients; reports commits/s and
            commit latency
  rebalance time a consumer group settling after a member leaves and
            after it joins again
  availability
            produce steadily with acks=all and report the longest time
            without an acknowledgement (kill a leader meanwhile)
  latency   produce at a fixed --rate and read the records back; reports
            end-to-end and acknowledgement latency percentiles, timed
            from when each record was due

Run runnel bench COMMAND --help for the flags of each.
`

// Run runs runnel bench and its subcommands.
func Run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return errors.New("bench: missing command (produce, consume, commit, rebalance, availability or latency)")
	}
	switch args[0] {
	case "produce":
		return benchProduce(args[1:], stdout, stderr)
	case "consume":
		return benchConsume(args[1:], stdout, stderr)
	case "commit":
		return benchCommit(args[1:], stdout, stderr)
	case "rebalance":
		return benchRebalance(args[1:], stdout, stderr)
	case "availability":
		return benchAvailability(args[1:], stdout, stderr)
	case "latency":
		return benchLatency(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, benchUsage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, benchUsage)
	return fmt.Errorf("bench: unknown command %q", args[0])
}

// benchResult is the summary of a run; --json prints it as is.
type benchResult struct {
	Mode          string   `json:"mode"`
	Topic         string   `json:"topic"`
	Partitions    int      `json:"partitions"`
	Clients       int      `json:"clients"`
	Acks          string   `json:"acks,omitempty"`
	Compression   string   `json:"compression,omitempty"`
	RecordSize    int      `json:"record_size,omitempty"`
	Records       int64    `json:"records"`
	Bytes         int64    `json:"bytes"`
	Errors        int64    `json:"errors"`
	Transactions  int64    `json:"transactions,omitempty"`
	DurationSec   float64  `json:"duration_seconds"`
	RecordsPerSec float64  `json:"records_per_second"`
	MBPerSec      float64  `json:"mb_per_second"`
	LatencyP50Ms  *float64 `json:"latency_p50_ms,omitempty"`
	LatencyP99Ms  *float64 `json:"latency_p99_ms,omitempty"`
	LatencyMaxMs  *float64 `json:"latency_max_ms,omitempty"`
}

const mb = 1 << 20

func (r *benchResult) setRates(d time.Duration) {
	r.DurationSec = d.Seconds()
	if r.DurationSec > 0 {
		r.RecordsPerSec = float64(r.Records) / r.DurationSec
		r.MBPerSec = float64(r.Bytes) / mb / r.DurationSec
	}
}

func (r *benchResult) print(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(r)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "bench %s\ttopic %s, partitions %d, clients %d", r.Mode, r.Topic, r.Partitions, r.Clients)
	if r.Mode == "produce" {
		fmt.Fprintf(tw, ", acks=%s, compression=%s, %d-byte records", r.Acks, r.Compression, r.RecordSize)
	}
	fmt.Fprintf(tw, "\nrecords\t%d\nbytes\t%d\n", r.Records, r.Bytes)
	if r.Errors > 0 {
		fmt.Fprintf(tw, "errors\t%d\n", r.Errors)
	}
	fmt.Fprintf(tw, "duration\t%s\nrecords/s\t%.0f\nMB/s\t%.2f\n",
		time.Duration(r.DurationSec*float64(time.Second)).Round(time.Millisecond), r.RecordsPerSec, r.MBPerSec)
	if r.LatencyP50Ms != nil {
		fmt.Fprintf(tw, "latency p50\t%.3f ms\nlatency p99\t%.3f ms\nlatency max\t%.3f ms\n",
			*r.LatencyP50Ms, *r.LatencyP99Ms, *r.LatencyMaxMs)
	}
	return tw.Flush()
}

// progress prints records/s and MB/s to w once a second from the running
// totals until stop is closed.
func progress(w io.Writer, total func() (records, bytes int64), stop <-chan struct{}) {
	var last, lastBytes int64
	everySecond(stop, func(elapsed, d float64) {
		n, b := total()
		fmt.Fprintf(w, "%6.0fs  %12d records  %12.0f records/s  %9.2f MB/s\n",
			elapsed, n, float64(n-last)/d, float64(b-lastBytes)/mb/d)
		last, lastBytes = n, b
	})
}

// progressCount prints a count and its rate, named unit, once a second.
func progressCount(w io.Writer, unit string, total func() int64, stop <-chan struct{}) {
	var last int64
	everySecond(stop, func(elapsed, d float64) {
		n := total()
		fmt.Fprintf(w, "%6.0fs  %12d %s  %12.0f %s/s\n", elapsed, n, unit, float64(n-last)/d, unit)
		last = n
	})
}

// everySecond calls fn once a second, with the seconds since the start and
// since the last call, until stop is closed.
func everySecond(stop <-chan struct{}, fn func(elapsed, d float64)) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start := time.Now()
	lastAt := start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			fn(now.Sub(start).Seconds(), now.Sub(lastAt).Seconds())
			lastAt = now
		}
	}
}

// ---- bench produce ----

// benchSlot is one reusable in-flight record. Its address is the record's
// Context, which carries the send time to the promise and names the slot to
// return to the free list, so producing allocates nothing per record.
type benchSlot struct {
	context.Context
	rec  kgo.Record
	sent time.Time
}

// benchProducer is one client of bench produce. Its promise runs on the
// client's single promise goroutine (franz-go calls promises serially), so
// hist needs no lock; the counters are read by the progress printer.
type benchProducer struct {
	cl     *kgo.Client
	closed sync.Once
	n      int64
	// keys, if any, key the records in turn, starting at keys[first].
	keys   [][]byte
	first  int
	free   chan *benchSlot
	acked  atomic.Int64
	failed atomic.Int64
	errs   firstError
	hist   latencyHist
	// commitEvery, if set, makes the producer transactional: it commits a
	// transaction this often (the records of one, then Flush and
	// EndTransaction, as a transactional pipeline does).
	commitEvery time.Duration
	txns        atomic.Int64 // committed
}

// firstError keeps the first error of many goroutines.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (p *benchProducer) promise(r *kgo.Record, err error) {
	s := r.Context.(*benchSlot)
	if err != nil {
		p.failed.Add(1)
		p.errs.set(err)
	} else {
		p.hist.add(time.Since(s.sent))
		p.acked.Add(1)
	}
	p.free <- s
}

// close closes the client once; closing fails every record it still
// holds, in flight or not, so run's wait for its slots ends.
func (p *benchProducer) close() { p.closed.Do(p.cl.Close) }

// watchStall calls giveUp, once, when settled has not moved for stall; it
// returns when stop is closed.
func watchStall(stop <-chan struct{}, stall time.Duration, settled func() int64, giveUp func()) {
	t := time.NewTicker(min(time.Second, max(stall/4, time.Millisecond)))
	defer t.Stop()
	last, lastMove := settled(), time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			if n := settled(); n != last {
				last, lastMove = n, now
			} else if now.Sub(lastMove) >= stall {
				giveUp()
				return
			}
		}
	}
}

// run produces p.n records whose value is the shared value buffer.
func (p *benchProducer) run(ctx context.Context, value []byte, window int) {
	slots := make([]benchSlot, min(int64(window), p.n))
	p.free = make(chan *benchSlot, len(slots))
	for i := range slots {
		slots[i].Context = ctx
		p.free <- &slots[i]
	}
	promise := p.promise // one closure for every record
	var began time.Time
	inTxn := false
	commit := func() bool {
		inTxn = false
		if err := p.cl.Flush(ctx); err != nil {
			p.errs.set(err)
			return false
		}
		if err := p.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			p.errs.set(err)
			return false
		}
		p.txns.Add(1)
		return true
	}
produce:
	for i := int64(0); i < p.n; i++ {
		if p.commitEvery > 0 {
			if inTxn && time.Since(began) >= p.commitEvery && !commit() {
				break
			}
			if !inTxn {
				if err := p.cl.BeginTransaction(); err != nil {
					p.errs.set(err)
					break
				}
				inTxn, began = true, time.Now()
			}
		}
		var s *benchSlot
		select {
		case s = <-p.free:
		case <-ctx.Done():
			break produce
		}
		if p.failed.Load() > 0 {
			p.free <- s
			break // the run has failed: stop adding to it
		}
		s.rec = kgo.Record{Value: value, Context: s}
		if len(p.keys) > 0 {
			s.rec.Key = p.keys[(int64(p.first)+i)%int64(len(p.keys))]
		}
		s.sent = time.Now()
		p.cl.Produce(ctx, &s.rec, promise)
	}
	if inTxn {
		commit()
	}
	p.cl.Flush(ctx)
	// Every slot comes home once its promise has run, even when Flush
	// returned early on interrupt: after this, hist and err are settled.
	for range slots {
		<-p.free
	}
}

func benchProduce(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("runnel bench produce", "runnel bench produce --topic T [flags]",
		`Produce --records records of --record-size bytes as fast as the broker
acknowledges them, from --producers clients producing asynchronously. The
topic is created with --partitions partitions if it does not exist. Latency
is measured per record from send to acknowledgement.`, stderr)
	conn := cli.ConnFlags(fs)
	topic := fs.String("topic", "", "topic to produce to (required)")
	records := fs.Int64("records", 1_000_000, "records to produce")
	size := fs.Int("record-size", 100, "value size of each record in `bytes`")
	partitions := fs.Int("partitions", 1, "partitions of the topic if it is created")
	acks := fs.String("acks", "all", "acknowledgements to wait for: all, 1 or 0")
	producers := fs.Int("producers", 1, "concurrent producer clients")
	nkeys := fs.Int("keys", 0, "key the records with this many distinct keys in turn, k0, k1, ... (0: no keys), to fill compacted topics")
	linger := fs.Duration("linger", 0, "how long a batch may wait to fill (0: send when the connection is free)")
	batchBytes := fs.Int("batch-bytes", 1_000_000, "largest record batch in bytes")
	compression := fs.String("compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	txnID := fs.String("transactional-id", "", "produce in transactions, producer N with the transactional id `ID`-N, committing every --commit-interval")
	commitEvery := fs.Duration("commit-interval", 100*time.Millisecond, "with --transactional-id: how long each transaction collects records before it commits")
	stall := fs.Duration("stall-timeout", time.Minute, "give up when no record is acknowledged or failed for this long (an idempotent producer waits for a broker that went away until then)")
	if err := cli.ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	switch {
	case *topic == "":
		return errors.New("--topic is required")
	case *stall <= 0:
		return errors.New("--stall-timeout must be positive")
	case *records <= 0:
		return errors.New("--records must be positive")
	case *size < 0 || *size > 1<<30:
		return errors.New("--record-size must be between 0 and 1 GiB")
	case *partitions <= 0:
		return errors.New("--partitions must be positive")
	case *producers <= 0:
		return errors.New("--producers must be positive")
	case *linger < 0:
		return errors.New("--linger must not be negative")
	case *batchBytes <= 0 || *batchBytes > math.MaxInt32:
		return errors.New("--batch-bytes must be positive")
	case *nkeys < 0 || *nkeys > 100_000_000:
		return errors.New("--keys must be between 0 and 100000000")
	case *txnID != "" && *commitEvery <= 0:
		return errors.New("--commit-interval must be positive")
	case *txnID != "" && *acks != "all":
		return errors.New("--transactional-id needs --acks all")
	}
	popts, err := cli.ProducerOpts(*acks, *compression)
	if err != nil {
		return err
	}
	ctx, stop := untilSecondInterrupt()
	defer stop()
	nparts, err := ensureTopic(ctx, conn, *topic, *partitions, flagGiven(fs, "partitions"), stderr)
	if err != nil {
		return err
	}

	// Every record shares one value buffer of random letters (as Kafka's
	// producer perf test does): no per-record payload allocation.
	value := make([]byte, *size)
	for i := range value {
		value[i] = 'A' + byte(rand.IntN(26))
	}
	keys := make([][]byte, *nkeys)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "k%d", i)
	}
	// window is how many records each producer keeps in flight: enough for
	// several full batches, bounded to keep memory modest.
	window := min(max(8*(*batchBytes)/max(*size, 1), 10_000), 200_000)
	opts := append(popts, kgo.DefaultProduceTopic(*topic), kgo.ProducerLinger(*linger),
		kgo.ProducerBatchMaxBytes(int32(*batchBytes)), kgo.MaxBufferedRecords(window),
		kgo.RecordDeliveryTimeout(2*cli.RequestTimeout))
	ps := make([]*benchProducer, *producers)
	for i := range ps {
		copts := opts
		if *txnID != "" {
			copts = append(slices.Clip(opts), kgo.TransactionalID(fmt.Sprintf("%s-%d", *txnID, i)))
		}
		cl, err := conn.Client(ctx, copts...)
		if err != nil {
			for _, p := range ps[:i] {
				p.cl.Close()
			}
			return err
		}
		ps[i] = &benchProducer{cl: cl, n: *records / int64(*producers), keys: keys, first: i * max(len(keys)/(*producers), 1)}
		if *txnID != "" {
			ps[i].commitEvery = *commitEvery
		}
		if int64(i) < *records%int64(*producers) {
			ps[i].n++
		}
	}
	defer func() {
		for _, p := range ps {
			p.close()
		}
	}()

	total := func() (int64, int64) {
		var n int64
		for _, p := range ps {
			n += p.acked.Load()
		}
		return n, n * int64(*size)
	}
	done := make(chan struct{})
	go progress(stderr, total, done)
	var stalled atomic.Bool
	go watchStall(done, *stall, func() int64 {
		var n int64
		for _, p := range ps {
			n += p.acked.Load() + p.failed.Load()
		}
		return n
	}, func() {
		stalled.Store(true)
		for _, p := range ps {
			p.close()
		}
	})
	start := time.Now()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { p.run(ctx, value, window) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(done)

	res := benchResult{Mode: "produce", Topic: *topic, Partitions: nparts, Clients: *producers,
		Acks: *acks, Compression: *compression, RecordSize: *size}
	var hist latencyHist
	var firstErr error
	for _, p := range ps {
		res.Records += p.acked.Load()
		res.Errors += p.failed.Load()
		res.Transactions += p.txns.Load()
		hist.merge(&p.hist)
		if firstErr == nil {
			firstErr = p.errs.get()
		}
	}
	res.Bytes = res.Records * int64(*size)
	res.setRates(elapsed)
	p50, p99, pmax := ms(hist.quantile(0.50)), ms(hist.quantile(0.99)), ms(hist.max)
	res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs = &p50, &p99, &pmax
	if err := res.print(stdout, *asJSON); err != nil {
		return err
	}
	switch {
	case ctx.Err() != nil:
		return errors.New("interrupted")
	case stalled.Load():
		return fmt.Errorf("gave up: no record acknowledged or failed for %v (--stall-timeout); %d acknowledged", *stall, res.Records)
	case firstErr != nil:
		return fmt.Errorf("%d records failed; first error: %w", res.Errors, firstErr)
	}
	return nil
}

// untilSecondInterrupt returns a context that ends at the first SIGINT or
// SIGTERM, so a run can stop and report; a second one kills the process
// at once.
func untilSecondInterrupt() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// flagGiven reports whether the command line set flag name.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ensureTopic creates topic with partitions partitions unless it exists,
// and returns how many partitions it has.
func ensureTopic(ctx context.Context, conn *cli.Conn, topic string, partitions int, warnIfDifferent bool, stderr io.Writer) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, cli.RequestTimeout)
	defer cancel()
	cl, err := conn.Client(ctx)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	md, err := cli.TopicMetadata(ctx, cl, topic)
	if errors.Is(err, cli.ErrUnknownTopic) {
		_, err = cli.CreateTopic(ctx, cl, topic, int32(partitions), -1, cli.ConfigFlag{})
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			fmt.Fprintf(stderr, "created topic %s with %d partitions\n", topic, partitions)
			// In a cluster, the broker asked next may learn of the topic
			// a moment after the one that created it.
			for md, err = cli.TopicMetadata(ctx, cl, topic); errors.Is(err, cli.ErrUnknownTopic) && ctx.Err() == nil; md, err = cli.TopicMetadata(ctx, cl, topic) {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	if err != nil {
		return 0, err
	}
	if n := len(md.Partitions); n != partitions && warnIfDifferent {
		fmt.Fprintf(stderr, "topic %s already exists with %d partitions; --partitions %d ignored\n", topic, n, partitions)
	}
	return len(md.Partitions), nil
}

// ---- bench consume ----

func benchConsume(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("runnel bench consume", "runnel bench consume --topic T [flags]",
		`Read a topic from the start of every partition as fast as the broker
serves it. The partitions are shared among --consumers clients.`, stderr)
	conn := cli.ConnFlags(fs)
	topic := fs.String("topic", "", "topic to read (required)")
	records := fs.Int64("records", 0, "records to read (0: every record in the topic at start-up)")
	consumers := fs.Int("consumers", 1, "concurrent consumer clients (at most one per partition)")
	idle := fs.Duration("timeout", 10*time.Second, "give up when no record arrives for this long")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	if err := cli.ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	switch {
	case *topic == "":
		return errors.New("--topic is required")
	case *records < 0:
		return errors.New("--records must not be negative")
	case *consumers <= 0:
		return errors.New("--consumers must be positive")
	case *idle <= 0:
		return errors.New("--timeout must be positive")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	actx, cancel := context.WithTimeout(ctx, cli.RequestTimeout)
	defer cancel()
	admin, err := conn.Client(actx)
	if err != nil {
		return err
	}
	md, err := cli.TopicMetadata(actx, admin, *topic)
	if err != nil {
		admin.Close()
		return err
	}
	parts, _ := cli.PartitionIDs(md, -1)
	starts, err := cli.ListOffsets(actx, admin, *topic, parts, cli.ListEarliest)
	var ends map[int32]int64
	if err == nil {
		ends, err = cli.ListOffsets(actx, admin, *topic, parts, cli.ListLatest)
	}
	admin.Close()
	if err != nil {
		return err
	}
	target := *records
	if target == 0 {
		for _, p := range parts {
			target += ends[p] - starts[p]
		}
		if target == 0 {
			return fmt.Errorf("topic %s is empty (try runnel bench produce --topic %s first)", *topic, *topic)
		}
	}

	// Partitions are dealt round-robin to at most one consumer each.
	k := min(*consumers, len(parts))
	if k < *consumers {
		fmt.Fprintf(stderr, "topic %s has %d partitions: using %d consumers\n", *topic, len(parts), k)
	}
	assign := make([]map[int32]kgo.Offset, k)
	for i, p := range parts {
		if assign[i%k] == nil {
			assign[i%k] = map[int32]kgo.Offset{}
		}
		assign[i%k][p] = kgo.NewOffset().At(starts[p])
	}
	cls := make([]*kgo.Client, k)
	for i := range cls {
		cl, err := conn.Client(ctx, kgo.FetchMaxPartitionBytes(8<<20), kgo.FetchMaxBytes(64<<20))
		if err != nil {
			for _, c := range cls[:i] {
				c.Close()
			}
			return err
		}
		cls[i] = cl
	}
	defer func() {
		for _, c := range cls {
			c.Close()
		}
	}()

	var (
		consumed, nbytes atomic.Int64
		reached          = make(chan struct{})
		reachedOnce      sync.Once
		fetchErr         error
		errOnce          sync.Once
	)
	total := func() (int64, int64) { return min(consumed.Load(), target), nbytes.Load() }
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	done := make(chan struct{})
	go progress(stderr, total, done)
	start := time.Now()
	var last atomic.Int64 // time of the latest record, Unix ns
	last.Store(start.UnixNano())
	var wg sync.WaitGroup
	for i, cl := range cls {
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{*topic: assign[i]})
		wg.Go(func() {
			for rctx.Err() == nil {
				fetches := cl.PollFetches(rctx)
				fetches.EachError(func(t string, p int32, err error) {
					if !errors.Is(err, context.Canceled) {
						errOnce.Do(func() { fetchErr = fmt.Errorf("fetch %s/%d: %w", t, p, err) })
						rcancel()
					}
				})
				fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
					recs := fp.Records
					if len(recs) == 0 {
						return
					}
					got := consumed.Add(int64(len(recs)))
					if over := got - target; over > 0 {
						recs = recs[:max(0, int64(len(recs))-over)]
						reachedOnce.Do(func() { close(reached) })
					}
					var b int64
					for _, r := range recs {
						b += int64(len(r.Key) + len(r.Value))
					}
					nbytes.Add(b)
					last.Store(time.Now().UnixNano())
					if got == target {
						reachedOnce.Do(func() { close(reached) })
					}
				})
			}
		})
	}
	tick := time.NewTicker(100 * time.Millisecond)
	var idleErr error
wait:
	for {
		select {
		case <-reached:
			break wait
		case <-rctx.Done():
			break wait
		case now := <-tick.C:
			if now.Sub(time.Unix(0, last.Load())) >= *idle {
				idleErr = fmt.Errorf("no record for %s: read %d of %d records", *idle, consumed.Load(), target)
				break wait
			}
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	if idleErr != nil {
		elapsed = time.Unix(0, last.Load()).Sub(start)
	}
	rcancel()
	wg.Wait()
	close(done)

	res := benchResult{Mode: "consume", Topic: *topic, Partitions: len(parts), Clients: k}
	res.Records, res.Bytes = total()
	res.setRates(elapsed)
	if err := res.print(stdout, *asJSON); err != nil {
		return err
	}
	switch {
	case fetchErr != nil:
		return fetchErr
	case idleErr != nil:
		return idleErr
	case ctx.Err() != nil:
		return errors.New("interrupted")
	}
	return nil
}

// ---- latency histogram ----

// latencyHist is a log-linear histogram of durations in nanoseconds: exact
// below 128ns, then 64 buckets per power of two, so a quantile is within
// 1/64 of the true value. It is not safe for concurrent use.
type latencyHist struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // values below this have a bucket each
	histHalf    = histSub / 2
	histBuckets = (64-histSubBits)*histHalf + histSub
)

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits
	return e*histHalf + int(v>>e)
}

// histValue returns the middle of bucket i.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := i/histHalf - 1
	m := uint64(i - e*histHalf)
	return m<<e + (1<<e)/2
}

func (h *latencyHist) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))]++
	h.n++
	h.max = max(h.max, d)
}

func (h *latencyHist) merge(o *latencyHist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the duration at or below which a fraction q of the
// samples fall (0 with no samples).
func (h *latencyHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(histValue(i)), h.max)
		}
	}
	return h.max
}
