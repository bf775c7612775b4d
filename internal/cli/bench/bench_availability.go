package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-io/runnel/internal/cli"
)

// ---- bench availability ----

// availabilityResult is the summary of runnel bench availability.
type availabilityResult struct {
	Mode         string  `json:"mode"`
	Topic        string  `json:"topic"`
	Sent         int64   `json:"sent"`
	Acknowledged int64   `json:"acknowledged"`
	Errors       int64   `json:"errors"`
	DurationSec  float64 `json:"duration_seconds"`
	MaxGapMs     float64 `json:"max_gap_ms"`
	// MaxGapAt is when the longest gap started, seconds into the run.
	MaxGapAt float64 `json:"max_gap_at_seconds"`
}

func benchAvailability(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("runnel bench availability", "runnel bench availability --topic T [flags]",
		`Produce one record every --interval with acks=all and an idempotent
producer for --duration, and report the longest time between two
consecutive acknowledgements: kill a partition leader during the run and
this is the time from the failure to clients producing again (plus at most
one interval). The topic is created if it does not exist.`, stderr)
	conn := cli.ConnFlags(fs)
	topic := fs.String("topic", "", "topic to produce to (required)")
	interval := fs.Duration("interval", 10*time.Millisecond, "time between records")
	duration := fs.Duration("duration", 30*time.Second, "how long to produce")
	metadataAge := fs.Duration("metadata-min-age", 0, "client's shortest time between metadata refreshes (0: the client's default)")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	if err := cli.ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	switch {
	case *topic == "":
		return errors.New("--topic is required")
	case *interval <= 0 || *duration <= 0:
		return errors.New("--interval and --duration must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := ensureTopic(ctx, conn, *topic, 1, false, stderr); err != nil {
		return err
	}
	opts := []kgo.Opt{kgo.DefaultProduceTopic(*topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(2 * cli.RequestTimeout), kgo.RecordPartitioner(kgo.ManualPartitioner())}
	if *metadataAge > 0 {
		opts = append(opts, kgo.MetadataMinAge(*metadataAge))
	}
	cl, err := conn.Client(ctx, opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	res := availabilityResult{Mode: "availability", Topic: *topic}
	var mu sync.Mutex
	start := time.Now()
	last := start
	ack := func(r *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Errors++
			return
		}
		now := time.Now()
		if gap := now.Sub(last); ms(gap) > res.MaxGapMs {
			res.MaxGapMs, res.MaxGapAt = ms(gap), last.Sub(start).Seconds()
		}
		last = now
		res.Acknowledged++
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	end := time.After(*duration)
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-end:
			break loop
		case <-progress.C:
			mu.Lock()
			fmt.Fprintf(stderr, "%5.0fs  sent %d  acknowledged %d  longest gap %.0f ms\n",
				time.Since(start).Seconds(), res.Sent, res.Acknowledged, res.MaxGapMs)
			mu.Unlock()
		case <-t.C:
			mu.Lock()
			res.Sent++
			mu.Unlock()
			cl.Produce(ctx, &kgo.Record{Value: []byte(time.Now().Format(time.RFC3339Nano)), Partition: 0}, ack)
		}
	}
	fctx, cancel := context.WithTimeout(context.Background(), cli.RequestTimeout)
	defer cancel()
	cl.Flush(fctx)
	mu.Lock()
	defer mu.Unlock()
	res.DurationSec = time.Since(start).Seconds()
	if *asJSON {
		return json.NewEncoder(stdout).Encode(&res)
	}
	fmt.Fprintf(stdout, "bench availability  topic %s\nsent          %d\nacknowledged  %d\nerrors        %d\nlongest gap   %.0f ms (from %.1f s into the run)\n",
		res.Topic, res.Sent, res.Acknowledged, res.Errors, res.MaxGapMs, res.MaxGapAt)
	return nil
}
