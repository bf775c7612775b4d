package main

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// reader counts what one ordered consumer has read. Its handler runs on
// the consumer's own goroutine, so counting needs no lock and no shared
// cache line; the progress printer and the idle check read the counters.
type reader struct {
	target  int64 // messages in the stream at start-up
	records atomic.Int64
	bytes   atomic.Int64
	done    func()
	_       [64]byte // keep readers' counters on separate cache lines
}

func (r *reader) handle(m jetstream.Msg) {
	r.bytes.Add(int64(len(m.Data())))
	if r.records.Add(1) == r.target {
		r.done()
	}
}

func consume(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("consume", `Read every message the streams NAME-0 … NAME-(P-1) hold at start-up, from
their first message, with one ordered consumer per stream on one
connection. The streams are found by name, from NAME-0 up.`, stderr)
	server := fs.String("server", nats.DefaultURL, "NATS server URL")
	name := fs.String("stream", "", "topic name: streams NAME-0, NAME-1, … (required)")
	pullMaxBytes := fs.Int("pull-max-bytes", 8<<20, "bytes each consumer may have pulled and not yet handled")
	idle := fs.Duration("timeout", 10*time.Second, "give up when no message arrives for this long")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *name == "":
		return errors.New("--stream is required")
	case *pullMaxBytes <= 0:
		return errors.New("--pull-max-bytes must be positive")
	case *idle <= 0:
		return errors.New("--timeout must be positive")
	}

	ctx, stop := interruptible()
	defer stop()
	nc, err := nats.Connect(*server, nats.Name("natspeer consume"))
	if err != nil {
		return fmt.Errorf("connect %s: %w", *server, err)
	}
	defer nc.Close()
	// Setting up eight consumers while the first ones read can take the
	// server longer than the client's 5 s default on two busy CPUs.
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(30*time.Second))
	if err != nil {
		return err
	}

	var (
		readers  []*reader
		streams  []jetstream.Stream
		target   int64
		finished sync.WaitGroup
	)
	for i := 0; ; i++ {
		s, err := js.Stream(ctx, streamName(*name, i))
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("stream %s: %w", streamName(*name, i), err)
		}
		n := int64(s.CachedInfo().State.Msgs)
		target += n
		streams = append(streams, s)
		r := &reader{target: n}
		if n > 0 {
			finished.Add(1)
			r.done = finished.Done
		}
		readers = append(readers, r)
	}
	switch {
	case len(streams) == 0:
		return fmt.Errorf("no stream %s (try natspeer produce --stream %s first)", streamName(*name, 0), *name)
	case target == 0:
		return fmt.Errorf("streams %s-0…%d are empty", *name, len(streams)-1)
	}

	total := func() (int64, int64) {
		var n, b int64
		for _, r := range readers {
			n += r.records.Load()
			b += r.bytes.Load()
		}
		return n, b
	}
	reached := make(chan struct{})
	go func() {
		finished.Wait()
		close(reached)
	}()
	progressDone := make(chan struct{})
	go progress(stderr, total, progressDone)

	start := time.Now()
	var (
		retried  atomic.Int64
		errOnce  sync.Once
		readErr  error
		failed   = make(chan struct{})
		contexts []jetstream.ConsumeContext
	)
	fail := func(err error) {
		errOnce.Do(func() {
			readErr = err
			close(failed)
		})
	}
	defer func() {
		for _, cc := range contexts {
			cc.Stop()
		}
	}()
	for i, s := range streams {
		if readers[i].target == 0 {
			continue
		}
		c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
		if err != nil {
			return fmt.Errorf("ordered consumer on %s: %w", streamName(*name, i), err)
		}
		cc, err := c.Consume(readers[i].handle, jetstream.PullMaxBytes(*pullMaxBytes),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				if consumeErrIsFatal(err) {
					fail(fmt.Errorf("consume %s: %w", streamName(*name, i), err))
					return
				}
				// The ordered consumer recreates itself after a missed
				// heartbeat or a timed-out request; --timeout catches a
				// stall that does not end.
				retried.Add(1)
				fmt.Fprintf(stderr, "natspeer: consume %s: %v (the client retries)\n", streamName(*name, i), err)
			}))
		if err != nil {
			return fmt.Errorf("consume %s: %w", streamName(*name, i), err)
		}
		contexts = append(contexts, cc)
	}

	// Wait for every message, an error, an interrupt, or --timeout without
	// progress.
	tick := time.NewTicker(100 * time.Millisecond)
	var (
		lastN, _   = total()
		lastChange = start
		idleErr    error
	)
wait:
	for {
		select {
		case <-reached:
			break wait
		case <-failed:
			break wait
		case <-ctx.Done():
			break wait
		case now := <-tick.C:
			if n, _ := total(); n != lastN {
				lastN, lastChange = n, now
			} else if now.Sub(lastChange) >= *idle {
				idleErr = fmt.Errorf("no message for %s: read %d of %d", *idle, n, target)
				break wait
			}
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	if idleErr != nil {
		elapsed = lastChange.Sub(start)
	}
	close(progressDone)

	res := result{Mode: "consume", Stream: *name, Partitions: len(streams), Clients: 1,
		PullMaxBytes: *pullMaxBytes}
	res.Records, res.Bytes = total()
	res.Errors = retried.Load()
	res.setRates(elapsed)
	if err := res.print(stdout, *asJSON); err != nil {
		return err
	}
	select {
	case <-failed:
		return readErr
	default:
	}
	switch {
	case idleErr != nil:
		return idleErr
	case ctx.Err() != nil:
		return errors.New("interrupted")
	}
	return nil
}

// consumeErrIsFatal tells the errors an ordered consumer does not recover
// from by itself from those it retries (missed heartbeats, timeouts).
func consumeErrIsFatal(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrStreamNotFound)
}
