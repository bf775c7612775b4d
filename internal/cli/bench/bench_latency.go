package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-io/runnel/internal/cli"
)

// ---- bench latency ----
//
// One process produces records on a fixed schedule and consumes them from
// the same topic. Record i is due at start + i/rate. Both latencies are
// measured from that due time, not from when the record was handed to the
// client: when the producer is held up (by the broker's back-pressure, its
// own CPU, a pause), every record due meanwhile is late and each one counts
// the delay, instead of the stall being one slow sample among records that
// were never sent ("coordinated omission").
//
// The value of every record starts with a header, big-endian:
//
//	0   8  run id: random per run, tells this run's records from others'
//	8   8  sequence number i
//	16  8  due time: nanoseconds since the run's start, i·10⁹/rate
//	24  …  padding up to --record-size

const latencyHeader = 24

// behindLimit is how late a record may be handed to the client before the
// run counts as having fallen behind its schedule: longer than a timer
// wake-up or a garbage-collection pause of this process.
const behindLimit = 10 * time.Millisecond

// latencyResult is the summary of runnel bench latency. Latencies are in
// milliseconds and count only records due after the warm-up.
type latencyResult struct {
	Mode         string  `json:"mode"`
	Topic        string  `json:"topic"`
	Partitions   int     `json:"partitions"`
	Acks         string  `json:"acks"`
	RecordSize   int     `json:"record_size"`
	Rate         int     `json:"rate"` // offered, records/s
	DurationSec  float64 `json:"duration_seconds"`
	WarmupSec    float64 `json:"warmup_seconds"`
	Sent         int64   `json:"sent"`
	Acknowledged int64   `json:"acknowledged"`
	Received     int64   `json:"received"`
	Errors       int64   `json:"errors"`
	Duplicates   int64   `json:"duplicates"`
	// Foreign counts records in the topic that this run did not write.
	Foreign int64 `json:"foreign,omitempty"`
	// Measured is how many records due after the warm-up were received:
	// the samples of the end-to-end percentiles.
	Measured int64 `json:"measured"`
	// AchievedRate is Measured over the time from the end of the warm-up
	// to the arrival of the last of them, records/s.
	AchievedRate float64 `json:"achieved_rate"`

	E2EP50Ms   float64 `json:"e2e_p50_ms"`
	E2EP90Ms   float64 `json:"e2e_p90_ms"`
	E2EP99Ms   float64 `json:"e2e_p99_ms"`
	E2EP999Ms  float64 `json:"e2e_p99_9_ms"`
	E2EP9999Ms float64 `json:"e2e_p99_99_ms"`
	E2EMaxMs   float64 `json:"e2e_max_ms"`
	AckP50Ms   float64 `json:"ack_p50_ms"`
	AckP90Ms   float64 `json:"ack_p90_ms"`
	AckP99Ms   float64 `json:"ack_p99_ms"`
	AckP999Ms  float64 `json:"ack_p99_9_ms"`
	AckP9999Ms float64 `json:"ack_p99_99_ms"`
	AckMaxMs   float64 `json:"ack_max_ms"`

	// FellBehind says a record was handed to the client more than
	// behindLimit after it was due; MaxBehindMs is the latest one, and
	// MaxBehindAt its due time, seconds into the run.
	FellBehind  bool    `json:"fell_behind"`
	MaxBehindMs float64 `json:"max_behind_ms"`
	MaxBehindAt float64 `json:"max_behind_at_seconds"`
}

// latencyQuantiles are the quantiles reported, in the order of the fields.
var latencyQuantiles = [...]float64{0.50, 0.90, 0.99, 0.999, 0.9999}

// percentiles returns h's reported quantiles and its maximum in ms.
func percentiles(h *latencyHist) [len(latencyQuantiles) + 1]float64 {
	var p [len(latencyQuantiles) + 1]float64
	for i, q := range latencyQuantiles {
		p[i] = ms(h.quantile(q))
	}
	p[len(latencyQuantiles)] = ms(h.max)
	return p
}

// latencySlot is one reusable in-flight record with a value buffer of its
// own. Its address is the record's Context, which carries the due time to
// the promise and names the slot to return to the free list, so the
// schedule allocates nothing per record.
type latencySlot struct {
	context.Context
	rec   kgo.Record
	value []byte
	due   time.Duration
}

// latencyProducer sends records on schedule. Its promise runs on the
// client's single promise goroutine, so hist needs no lock; it is read
// once every slot is back on the free list. The counters are read by the
// progress printer.
type latencyProducer struct {
	cl     *kgo.Client
	start  time.Time
	warmup time.Duration
	free   chan *latencySlot
	hist   latencyHist
	acked  atomic.Int64
	failed atomic.Int64
	errs   firstError

	// Written by run only; behind is also read by the progress printer.
	sent     atomic.Int64
	behind   atomic.Int64 // most late a record after the warm-up was handed over, ns
	behindAt time.Duration
}

func (p *latencyProducer) promise(r *kgo.Record, err error) {
	s := r.Context.(*latencySlot)
	if err != nil {
		p.failed.Add(1)
		p.errs.set(err)
	} else {
		if s.due >= p.warmup {
			p.hist.add(time.Since(p.start) - s.due)
		}
		p.acked.Add(1)
	}
	p.free <- s
}

// run hands record i to the client at start + due(i) for i < n, sending
// at once every record already due when it wakes. It returns when all n
// are handed over or ctx ends; the promises may still be outstanding.
func (p *latencyProducer) run(ctx context.Context, runID uint64, n int64, due func(int64) time.Duration) {
	promise := p.promise // one closure for every record
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var i int64
	defer func() { p.sent.Store(i) }()
	for i < n {
		now := time.Since(p.start)
		if d := due(i); d > now {
			timer.Reset(d - now)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
			continue
		}
		for ; i < n && due(i) <= now; i++ {
			var s *latencySlot
			select {
			case s = <-p.free:
			case <-ctx.Done():
				return
			}
			s.due = due(i)
			binary.BigEndian.PutUint64(s.value[0:], runID)
			binary.BigEndian.PutUint64(s.value[8:], uint64(i))
			binary.BigEndian.PutUint64(s.value[16:], uint64(s.due))
			s.rec = kgo.Record{Value: s.value, Context: s}
			if late := time.Since(p.start) - s.due; s.due >= p.warmup && late > time.Duration(p.behind.Load()) {
				p.behind.Store(int64(late))
				p.behindAt = s.due
			}
			p.cl.Produce(ctx, &s.rec, promise)
			p.sent.Store(i + 1)
		}
	}
}

// latencyConsumer reads the topic from where it ended before the run and
// times every record of the run. Its fields other than the atomics belong
// to the goroutine running consume until it returns.
type latencyConsumer struct {
	cl     *kgo.Client
	start  time.Time
	warmup time.Duration
	runID  uint64
	n      int64
	seen   []uint64 // bit i: record i received

	hist         latencyHist
	dups         int64
	foreign      int64
	lastMeasured time.Duration // arrival of the latest record after the warm-up

	received atomic.Int64
	lastAt   atomic.Int64 // arrival of the latest record, ns since start
	errOnce  sync.Once
	err      error
}

// consume polls until ctx ends or a fetch fails, calling failed then.
func (c *latencyConsumer) consume(ctx context.Context, failed func()) {
	for ctx.Err() == nil {
		fetches := c.cl.PollFetches(ctx)
		now := time.Since(c.start) // when this poll's records reach the application
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.errOnce.Do(func() { c.err = fmt.Errorf("fetch %s/%d: %w", t, p, err) })
				failed()
			}
		})
		var got int64
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				v := r.Value
				if len(v) < latencyHeader || binary.BigEndian.Uint64(v) != c.runID {
					c.foreign++
					continue
				}
				i := binary.BigEndian.Uint64(v[8:])
				due := time.Duration(binary.BigEndian.Uint64(v[16:]))
				if i >= uint64(c.n) {
					c.foreign++
					continue
				}
				w, bit := i/64, uint64(1)<<(i%64)
				if c.seen[w]&bit != 0 {
					c.dups++
					continue
				}
				c.seen[w] |= bit
				got++
				if due >= c.warmup {
					c.hist.add(now - due)
					c.lastMeasured = now
				}
			}
		})
		if got > 0 {
			c.lastAt.Store(int64(now))
			c.received.Add(got)
		}
	}
}

func benchLatency(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("runnel bench latency", "runnel bench latency --topic T [flags]",
		`Produce --rate records per second for --duration on a fixed schedule and
read them back from the same topic, in one process. Record i is due at
start + i/rate and carries its due time in its value. End-to-end latency is
when the consumer receives a record minus its due time; acknowledgement
latency is when its acknowledgement arrives minus its due time. Timing
from the due time, not from the send, keeps the latency honest when the
producer falls behind (no coordinated omission): a stall delays every
record due during it, and each of them counts it. At most a second's worth
of records (1,000 to 200,000) is in flight; with none free the producer
waits. The summary says whether the producer fell more than 10 ms behind
its schedule, and how far.

Records due in the first --warmup are sent and checked but not timed.
Percentiles come from a log-linear histogram and are within 1/64 of the
true value; max is exact. The consumer starts at the end of the topic; the
topic is created with --partitions partitions if it does not exist.`, stderr)
	conn := cli.ConnFlags(fs)
	topic := fs.String("topic", "", "topic to produce to and read (required)")
	partitions := fs.Int("partitions", 1, "partitions of the topic if it is created")
	rate := fs.Int("rate", 10_000, "records per second to offer")
	duration := fs.Duration("duration", 30*time.Second, "how long to produce")
	warmup := fs.Duration("warmup", 5*time.Second, "first part of --duration whose records are not timed")
	size := fs.Int("record-size", 100, "value size of each record in `bytes` (at least 24)")
	acks := fs.String("acks", "all", "acknowledgements to wait for: all, 1 or 0")
	linger := fs.Duration("linger", 0, "how long a batch may wait to fill (0: send when the connection is free)")
	idle := fs.Duration("timeout", 10*time.Second, "after producing, give up when no record arrives for this long")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	if err := cli.ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	n := int64(float64(*rate) * duration.Seconds())
	switch {
	case *topic == "":
		return errors.New("--topic is required")
	case *partitions <= 0:
		return errors.New("--partitions must be positive")
	case *rate <= 0:
		return errors.New("--rate must be positive")
	case *duration <= 0:
		return errors.New("--duration must be positive")
	case *warmup < 0 || *warmup >= *duration:
		return errors.New("--warmup must be at least 0 and shorter than --duration")
	case n <= 0:
		return errors.New("--rate × --duration is less than one record")
	case n > 1<<34:
		return errors.New("--rate × --duration is more than 2^34 records")
	case *size < latencyHeader || *size > 1<<20:
		return fmt.Errorf("--record-size must be between %d bytes and 1 MiB", latencyHeader)
	case *linger < 0:
		return errors.New("--linger must not be negative")
	case *idle <= 0:
		return errors.New("--timeout must be positive")
	}
	popts, err := cli.ProducerOpts(*acks, "none")
	if err != nil {
		return err
	}
	ctx, stop := untilSecondInterrupt()
	defer stop()
	nparts, err := ensureTopic(ctx, conn, *topic, *partitions, flagGiven(fs, "partitions"), stderr)
	if err != nil {
		return err
	}
	// The consumer starts where each partition ends now.
	actx, cancel := context.WithTimeout(ctx, cli.RequestTimeout)
	defer cancel()
	admin, err := conn.Client(actx)
	if err != nil {
		return err
	}
	md, err := cli.TopicMetadata(actx, admin, *topic)
	var ends map[int32]int64
	if err == nil {
		parts, _ := cli.PartitionIDs(md, -1)
		ends, err = cli.ListOffsets(actx, admin, *topic, parts, cli.ListLatest)
	}
	admin.Close()
	if err != nil {
		return err
	}
	from := make(map[int32]kgo.Offset, len(ends))
	for p, o := range ends {
		from[p] = kgo.NewOffset().At(o)
	}

	// window is how many records may be in flight: a second's worth,
	// bounded. With none free the producer waits, and falls behind.
	window := min(max(*rate, 1000), 200_000)
	pcl, err := conn.Client(ctx, append(popts, kgo.DefaultProduceTopic(*topic),
		kgo.ProducerLinger(*linger), kgo.MaxBufferedRecords(window),
		kgo.RecordDeliveryTimeout(2*cli.RequestTimeout))...)
	if err != nil {
		return err
	}
	defer pcl.Close()
	ccl, err := conn.Client(ctx)
	if err != nil {
		return err
	}
	defer ccl.Close()
	ccl.AddConsumePartitions(map[string]map[int32]kgo.Offset{*topic: from})

	runID := rand.Uint64()
	slots := make([]latencySlot, min(int64(window), n))
	values := make([]byte, len(slots)**size)
	for i := range values {
		values[i] = 'A' + byte(rand.IntN(26))
	}
	prod := &latencyProducer{cl: pcl, warmup: *warmup, free: make(chan *latencySlot, len(slots))}
	for i := range slots {
		slots[i].Context = ctx
		slots[i].value = values[i**size : (i+1)**size : (i+1)**size]
		prod.free <- &slots[i]
	}
	cons := &latencyConsumer{cl: ccl, warmup: *warmup, runID: runID, n: n, seen: make([]uint64, (n+63)/64)}

	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	start := time.Now()
	prod.start, cons.start = start, start
	var wg sync.WaitGroup
	wg.Go(func() { cons.consume(rctx, rcancel) })
	done := make(chan struct{})
	go everySecond(done, func(elapsed, _ float64) {
		fmt.Fprintf(stderr, "%5.0fs  sent %d  acknowledged %d  received %d  most behind %.1f ms\n", elapsed,
			prod.sent.Load(), prod.acked.Load(), cons.received.Load(), ms(time.Duration(prod.behind.Load())))
	})

	due := func(i int64) time.Duration { return time.Duration(i * int64(time.Second) / int64(*rate)) }
	prod.run(rctx, runID, n, due)
	fctx, fcancel := context.WithTimeout(context.Background(), 2*cli.RequestTimeout)
	pcl.Flush(fctx)
	fcancel()
	// Every slot comes home once its promise has run: after this the
	// producer's histogram and counters are settled.
	for range slots {
		<-prod.free
	}

	// Wait for every acknowledged record to come back.
	target := prod.acked.Load()
	waitFrom := time.Since(start)
	tick := time.NewTicker(20 * time.Millisecond)
	var idleErr error
wait:
	for cons.received.Load() < target {
		select {
		case <-rctx.Done():
			break wait
		case <-tick.C:
			last := max(time.Duration(cons.lastAt.Load()), waitFrom)
			if time.Since(start)-last >= *idle {
				idleErr = fmt.Errorf("no record for %s: received %d of the %d acknowledged", *idle, cons.received.Load(), target)
				break wait
			}
		}
	}
	tick.Stop()
	rcancel()
	wg.Wait()
	close(done)

	res := latencyResult{Mode: "latency", Topic: *topic, Partitions: nparts, Acks: *acks, RecordSize: *size,
		Rate: *rate, DurationSec: duration.Seconds(), WarmupSec: warmup.Seconds(),
		Sent: prod.sent.Load(), Acknowledged: prod.acked.Load(), Received: cons.received.Load(),
		Errors: prod.failed.Load(), Duplicates: cons.dups, Foreign: cons.foreign, Measured: int64(cons.hist.n)}
	if span := cons.lastMeasured - *warmup; span > 0 {
		res.AchievedRate = float64(res.Measured) / span.Seconds()
	}
	e, a := percentiles(&cons.hist), percentiles(&prod.hist)
	res.E2EP50Ms, res.E2EP90Ms, res.E2EP99Ms, res.E2EP999Ms, res.E2EP9999Ms, res.E2EMaxMs = e[0], e[1], e[2], e[3], e[4], e[5]
	res.AckP50Ms, res.AckP90Ms, res.AckP99Ms, res.AckP999Ms, res.AckP9999Ms, res.AckMaxMs = a[0], a[1], a[2], a[3], a[4], a[5]
	behind := time.Duration(prod.behind.Load())
	res.FellBehind, res.MaxBehindMs, res.MaxBehindAt = behind > behindLimit, ms(behind), prod.behindAt.Seconds()
	if err := res.print(stdout, *asJSON); err != nil {
		return err
	}
	switch {
	case cons.err != nil:
		return cons.err
	case ctx.Err() != nil:
		return errors.New("interrupted")
	case prod.errs.get() != nil:
		return fmt.Errorf("%d records failed; first error: %w", res.Errors, prod.errs.get())
	case idleErr != nil:
		return idleErr
	}
	return nil
}

func (r *latencyResult) print(w io.Writer, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "bench latency  topic %s, partitions %d, acks=%s, %d-byte records\n", r.Topic, r.Partitions, r.Acks, r.RecordSize)
	fmt.Fprintf(w, "offered %d records/s for %s, the first %s not timed\n", r.Rate,
		time.Duration(r.DurationSec*float64(time.Second)), time.Duration(r.WarmupSec*float64(time.Second)))
	fmt.Fprintf(w, "sent %d, acknowledged %d, received %d, errors %d, duplicates %d\n",
		r.Sent, r.Acknowledged, r.Received, r.Errors, r.Duplicates)
	fmt.Fprintf(w, "timed %d records, received at %.0f records/s\n", r.Measured, r.AchievedRate)
	if r.FellBehind {
		fmt.Fprintf(w, "the producer fell behind its schedule, by up to %.1f ms (%.1f s into the run)\n", r.MaxBehindMs, r.MaxBehindAt)
	} else {
		fmt.Fprintf(w, "the producer kept its schedule (at most %.2f ms late)\n", r.MaxBehindMs)
	}
	fmt.Fprintf(tw, "%-16s\tp50\tp90\tp99\tp99.9\tp99.99\tmax\t\n", "latency, ms")
	fmt.Fprintf(tw, "%-16s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", "end to end",
		r.E2EP50Ms, r.E2EP90Ms, r.E2EP99Ms, r.E2EP999Ms, r.E2EP9999Ms, r.E2EMaxMs)
	fmt.Fprintf(tw, "%-16s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", "acknowledgement",
		r.AckP50Ms, r.AckP90Ms, r.AckP99Ms, r.AckP999Ms, r.AckP9999Ms, r.AckMaxMs)
	return tw.Flush()
}
