// Command natspeer is the NATS JetStream side of runnel's peer benchmarks
// (scripts/bench-nats.sh). It produces and consumes the way
// `runnel bench produce` and `runnel bench consume` do, and prints the same
// summary, so the two can be set side by side.
//
// # Partitions
//
// A Kafka partition is an ordered log of its own: its own files, its own
// offsets, its own fsyncs, and (in a cluster) its own replication. The
// JetStream unit with those properties is the stream; subjects inside one
// stream share a single log and a single store. So a topic NAME of P
// partitions is modelled as P streams NAME-0 … NAME-(P-1), stream NAME-i
// holding the one subject NAME.i, all file-backed with one replica. One
// stream with P subjects would be one log, the analogue of one partition
// whatever P is.
//
// # Produce
//
// One connection publishes asynchronously, message i to NAME.(i mod P),
// and awaits a PubAck for every message. JetStream acknowledges each message
// on its own (there are no client-side batches), so the analogue of
// franz-go's buffered, in-flight batches is a window of messages whose acks
// are outstanding: publishing waits while the window is full. The default
// window is the one `runnel bench produce` keeps in flight per client:
// 8 MB of 1 MB batches in records, at least 10,000 and at most 200,000
// (80,000 records of 100 B).
//
// # Consume
//
// One connection reads every stream from its first message with an ordered
// consumer each (ephemeral, no acks, as a Kafka client reading by offset),
// pulling up to --pull-max-bytes per stream at a time (runnel bench consume
// fetches up to 8 MB per partition), until it has every message the
// streams held when it started.
//
// The summary goes to stdout as a table, or as one JSON object with --json,
// with the field names of runnel bench. MB means 2^20 bytes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"
)

const usage = `Usage: natspeer produce|consume --stream NAME [flags]

Measure NATS JetStream as runnel bench measures a Kafka broker. A topic
NAME of P partitions is P file-backed streams NAME-0 … NAME-(P-1) with one
replica, stream NAME-i holding subject NAME.i.

  produce   publish --records messages of --record-size bytes round-robin
            over the streams, awaiting every PubAck, with at most --window
            acks outstanding
  consume   read every message of the streams with one ordered consumer
            per stream

Run natspeer COMMAND --help for the flags of each.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "natspeer:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("missing command (produce or consume)")
	}
	switch args[0] {
	case "produce":
		return produce(args[1:], stdout, stderr)
	case "consume":
		return consume(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// newFlagSet returns a flag set whose usage names the command and says
// what it does.
func newFlagSet(name, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: natspeer %s --stream NAME [flags]\n\n%s\n\nFlags:\n", name, about)
		fs.PrintDefaults()
	}
	return fs
}

// interruptible returns a context cancelled by SIGINT or SIGTERM; a second
// signal kills at once.
func interruptible() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// streamName and subject name partition i of the topic name.
func streamName(name string, i int) string { return fmt.Sprintf("%s-%d", name, i) }
func subject(name string, i int) string    { return fmt.Sprintf("%s.%d", name, i) }

// result is the summary of a run, with runnel bench's JSON field names
// where the two share a meaning.
type result struct {
	Mode          string  `json:"mode"`
	Stream        string  `json:"stream"`
	Partitions    int     `json:"partitions"`
	Clients       int     `json:"clients"`
	Acks          string  `json:"acks,omitempty"`
	RecordSize    int     `json:"record_size,omitempty"`
	Window        int     `json:"window,omitempty"`
	PullMaxBytes  int     `json:"pull_max_bytes,omitempty"`
	Records       int64   `json:"records"`
	Bytes         int64   `json:"bytes"`
	Errors        int64   `json:"errors"`
	DurationSec   float64 `json:"duration_seconds"`
	RecordsPerSec float64 `json:"records_per_second"`
	MBPerSec      float64 `json:"mb_per_second"`
}

const mb = 1 << 20

func (r *result) setRates(d time.Duration) {
	r.DurationSec = d.Seconds()
	if r.DurationSec > 0 {
		r.RecordsPerSec = float64(r.Records) / r.DurationSec
		r.MBPerSec = float64(r.Bytes) / mb / r.DurationSec
	}
}

func (r *result) print(w io.Writer, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "natspeer %s\tstreams %s-0…%d, clients %d", r.Mode, r.Stream, r.Partitions-1, r.Clients)
	switch r.Mode {
	case "produce":
		fmt.Fprintf(tw, ", acks=%s, %d-byte records, window %d", r.Acks, r.RecordSize, r.Window)
	case "consume":
		fmt.Fprintf(tw, ", pull max %d bytes per stream", r.PullMaxBytes)
	}
	fmt.Fprintf(tw, "\nrecords\t%d\nbytes\t%d\n", r.Records, r.Bytes)
	if r.Errors > 0 {
		fmt.Fprintf(tw, "errors\t%d\n", r.Errors)
	}
	fmt.Fprintf(tw, "duration\t%s\nrecords/s\t%.0f\nMB/s\t%.2f\n",
		time.Duration(r.DurationSec*float64(time.Second)).Round(time.Millisecond), r.RecordsPerSec, r.MBPerSec)
	return tw.Flush()
}

// progress prints records/s and MB/s to w once a second from the running
// totals until stop is closed.
func progress(w io.Writer, total func() (records, bytes int64), stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start := time.Now()
	lastAt := start
	var last, lastBytes int64
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n, b := total()
			d := now.Sub(lastAt).Seconds()
			fmt.Fprintf(w, "%6.0fs  %12d records  %12.0f records/s  %9.2f MB/s\n",
				now.Sub(start).Seconds(), n, float64(n-last)/d, float64(b-lastBytes)/mb/d)
			last, lastBytes, lastAt = n, b, now
		}
	}
}
