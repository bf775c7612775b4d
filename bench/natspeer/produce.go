package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// producer counts the acknowledgements of one connection's async
// publishes. Every publish takes a slot of window before it is sent and
// gives it back when its PubAck or its error arrives, so at most
// cap(window) acks are outstanding. The handlers run on the client's
// single ack goroutine; the counters are also read by the progress printer.
type producer struct {
	window chan struct{}
	acked  atomic.Int64
	failed atomic.Int64
	errMu  sync.Mutex
	err    error
}

func (p *producer) onAck(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) {
	p.acked.Add(1)
	<-p.window
}

func (p *producer) onErr(_ jetstream.JetStream, _ *nats.Msg, err error) {
	p.fail(err)
	<-p.window
}

func (p *producer) fail(err error) {
	p.failed.Add(1)
	p.errMu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.errMu.Unlock()
}

// defaultWindow is how many records runnel bench produce keeps in flight
// per client with its default 1 MB batches: enough for 8 full batches,
// at least 10,000 and at most 200,000.
func defaultWindow(size int) int {
	return min(max(8*1_000_000/max(size, 1), 10_000), 200_000)
}

func produce(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("produce", `Publish --records messages of --record-size bytes round-robin over the
streams NAME-0 … NAME-(P-1) (created if missing, file storage, one
replica) from one connection, and await every PubAck.`, stderr)
	server := fs.String("server", nats.DefaultURL, "NATS server URL")
	name := fs.String("stream", "", "topic name: streams NAME-i hold subjects NAME.i (required)")
	records := fs.Int64("records", 1_000_000, "messages to publish")
	size := fs.Int("record-size", 100, "payload size of each message in bytes")
	partitions := fs.Int("partitions", 1, "streams to spread the messages over")
	window := fs.Int("window", 0, "most PubAcks outstanding (0: runnel bench produce's in-flight records for --record-size)")
	ackTimeout := fs.Duration("ack-timeout", 30*time.Second, "count a publish as failed when its PubAck takes longer")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *name == "":
		return errors.New("--stream is required")
	case *records <= 0:
		return errors.New("--records must be positive")
	case *size < 0 || *size > 1<<20:
		return errors.New("--record-size must be between 0 and 1 MiB")
	case *partitions <= 0:
		return errors.New("--partitions must be positive")
	case *window < 0:
		return errors.New("--window must not be negative")
	case *ackTimeout <= 0:
		return errors.New("--ack-timeout must be positive")
	}
	if *window == 0 {
		*window = defaultWindow(*size)
	}

	ctx, stop := interruptible()
	defer stop()
	nc, err := nats.Connect(*server, nats.Name("natspeer produce"))
	if err != nil {
		return fmt.Errorf("connect %s: %w", *server, err)
	}
	defer nc.Close()
	p := &producer{window: make(chan struct{}, *window)}
	// The client's own cap is the window too; it never binds, because
	// a slot is taken before every publish and the client forgets an ack
	// before its handler gives the slot back.
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(*window),
		jetstream.WithPublishAsyncTimeout(*ackTimeout),
		jetstream.WithPublishAsyncAckHandler(p.onAck),
		jetstream.WithPublishAsyncErrHandler(p.onErr))
	if err != nil {
		return err
	}
	subjects := make([]string, *partitions)
	for i := range subjects {
		subjects[i] = subject(*name, i)
		cfg := jetstream.StreamConfig{
			Name:      streamName(*name, i),
			Subjects:  []string{subjects[i]},
			Storage:   jetstream.FileStorage,
			Replicas:  1,
			Retention: jetstream.LimitsPolicy,
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("create stream %s: %w", cfg.Name, err)
		}
	}
	fmt.Fprintf(stderr, "streams %s-0…%d ready; publishing with at most %d acks outstanding\n",
		*name, *partitions-1, *window)

	// Every message shares one payload of random letters, as runnel bench
	// produce's records share one value.
	value := make([]byte, *size)
	for i := range value {
		value[i] = 'A' + byte(rand.IntN(26))
	}

	total := func() (int64, int64) {
		n := p.acked.Load()
		return n, n * int64(*size)
	}
	done := make(chan struct{})
	go progress(stderr, total, done)
	start := time.Now()
publish:
	for i := int64(0); i < *records; i++ {
		select {
		case p.window <- struct{}{}:
		case <-ctx.Done():
			break publish
		}
		if _, err := js.PublishAsync(subjects[i%int64(len(subjects))], value); err != nil {
			p.fail(err)
			<-p.window
		}
	}
	// Every slot comes home once its ack, error or ack timeout has been
	// handled: after this the counters are settled. An interrupt does not
	// wait for them.
settle:
	for range *window {
		select {
		case p.window <- struct{}{}:
		case <-ctx.Done():
			break settle
		}
	}
	elapsed := time.Since(start)
	close(done)

	res := result{Mode: "produce", Stream: *name, Partitions: *partitions, Clients: 1,
		Acks: "all", RecordSize: *size, Window: *window,
		Records: p.acked.Load(), Errors: p.failed.Load()}
	res.Bytes = res.Records * int64(*size)
	res.setRates(elapsed)
	if err := res.print(stdout, *asJSON); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err != nil {
		return fmt.Errorf("%d messages failed; first error: %w", res.Errors, p.err)
	}
	return nil
}
