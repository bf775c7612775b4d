package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// maxLineBytes is the longest input line produce accepts.
const maxLineBytes = 64 << 20

// Produce runs runnel produce: each line of stdin becomes a record.
func Produce(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel produce", "runnel produce TOPIC [flags] < records",
		`Produce one record per input line (stdin, or --file). With --key-separator,
the part of a line before the first separator is the record key and the rest
its value; a line without the separator has no key. A summary (records,
bytes, time) goes to stderr.`, stderr)
	conn := ConnFlags(fs)
	file := fs.String("file", "", "read records from `path` instead of stdin")
	sep := fs.String("key-separator", "", "split each line into key and value at the first `SEP`")
	partition := fs.Int("partition", -1, "produce every record to this partition (-1: partition by key, or spread keyless records)")
	acks := fs.String("acks", "all", "acknowledgements to wait for: all, 1 or 0")
	compression := fs.String("compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, "TOPIC"); err != nil {
		return err
	}
	topic := pos[0]
	popts, err := ProducerOpts(*acks, *compression)
	if err != nil {
		return err
	}
	in := stdin
	if *file != "" && *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	opts := append(popts, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
		kgo.RecordDeliveryTimeout(RequestTimeout))
	if *partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	ctx := context.Background()
	cl, err := conn.Client(ctx, opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	var (
		mu       sync.Mutex
		firstErr error
		failed   int64
		acked    int64 // records
		ackedB   int64 // key and value bytes
	)
	promise := func(r *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			failed++
			return
		}
		acked++
		ackedB += int64(len(r.Key) + len(r.Value))
	}
	start := time.Now()
	var records int64
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	for sc.Scan() {
		// The scanner reuses its buffer and kgo holds records until they
		// are acknowledged, so each line is copied once; key and value
		// share that copy.
		line := bytes.Clone(sc.Bytes())
		r := &kgo.Record{Value: line}
		if *sep != "" {
			if k, v, ok := bytes.Cut(line, []byte(*sep)); ok {
				r.Key, r.Value = k, v
			}
		}
		if *partition >= 0 {
			r.Partition = int32(*partition)
		}
		records++
		cl.Produce(ctx, r, promise)
	}
	readErr := sc.Err()
	if errors.Is(readErr, bufio.ErrTooLong) {
		readErr = fmt.Errorf("line %d is longer than %d bytes", records+1, maxLineBytes)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	elapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(stderr, "produced %d records (%d bytes) to %s in %s\n", acked, ackedB, topic, elapsed.Round(time.Microsecond))
	if readErr != nil {
		return fmt.Errorf("reading input: %w", readErr)
	}
	if firstErr != nil {
		return fmt.Errorf("%d of %d records failed; first error: %w", failed, records, firstErr)
	}
	return nil
}
