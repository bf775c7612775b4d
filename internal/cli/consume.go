package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Consume runs runnel consume: print a topic's records.
func Consume(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel consume", "runnel consume TOPIC [flags]",
		`Print records of a topic, from every partition or one (--partition), each
through --format. Stops after --count records, when --timeout passes without
a new record, at the end of the log with --exit-at-end, or on interrupt.

--from picks where each partition starts:
  beginning          the log start (the default)
  end                only records produced from now on
  OFFSET             an absolute offset (clamped to the log)
  -N                 N records before the end
  TIME               an RFC 3339 time such as 2024-05-01T12:00:00Z: the first
                     record with a timestamp at or after it (ListOffsets)

--format placeholders (kcat style):
  %t topic  %p partition  %o offset  %k key  %s value  %T timestamp (ms)
  %h headers as k=v,k=v  %K key length  %S value length  %% a percent sign
  and the escapes \n \t \r \\.`, stderr)
	conn := ConnFlags(fs)
	from := fs.String("from", "beginning", "where to start: beginning, end, OFFSET, -N or an RFC 3339 TIME")
	partition := fs.Int("partition", -1, "consume only this partition (-1: all)")
	count := fs.Int64("count", 0, "stop after this many records (0: no limit)")
	format := fs.String("format", `%s\n`, "output format of each record (see above)")
	timeout := fs.Duration("timeout", 0, "stop when no record arrives for this long, e.g. 5s (0: wait forever)")
	rack := fs.String("rack", "", "the client's rack (client.rack): a leader may send it to read from a replica in this rack (KIP-392)")
	var exitAtEnd bool
	fs.BoolVar(&exitAtEnd, "exit-at-end", false, "exit once every partition's end, as of start-up, is reached")
	fs.BoolVar(&exitAtEnd, "e", false, "short for --exit-at-end")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, "TOPIC"); err != nil {
		return err
	}
	topic := pos[0]
	if *count < 0 {
		return errors.New("--count must not be negative")
	}
	if *timeout < 0 {
		return errors.New("--timeout must not be negative")
	}
	ops, err := compileFormat(*format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	start, err := parseFrom(*from)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	actx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	// With a rack, ask the leader again every minute (franz-go's default
	// is 30): a preferred replica that died is left within a minute even
	// where the partition kept its leader.
	cl, err := conn.Client(actx, kgo.FetchMaxWait(500*time.Millisecond), kgo.Rack(*rack),
		kgo.RecheckPreferredReplicaInterval(time.Minute))
	if err != nil {
		return err
	}
	defer cl.Close()
	md, err := TopicMetadata(actx, cl, topic)
	if err != nil {
		return err
	}
	parts, err := PartitionIDs(md, *partition)
	if err != nil {
		return err
	}
	offsets, ends, err := start.resolve(actx, cl, topic, parts)
	if err != nil {
		return err
	}

	// done marks partitions read up to their end as of start-up; it is
	// only consulted with --exit-at-end.
	done := make(map[int32]bool, len(parts))
	assign := make(map[int32]kgo.Offset, len(parts))
	for _, p := range parts {
		assign[p] = kgo.NewOffset().At(offsets[p])
		done[p] = offsets[p] >= ends[p]
	}
	allDone := func() bool {
		for _, d := range done {
			if !d {
				return false
			}
		}
		return true
	}

	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	var n int64
	began := time.Now()
	finish := func(err error) error {
		if ferr := out.Flush(); err == nil && ferr != nil {
			err = ferr
		}
		fmt.Fprintf(stderr, "consumed %d records from %s in %s\n", n, topic, time.Since(began).Round(time.Millisecond))
		return err
	}
	if exitAtEnd && allDone() {
		return finish(nil)
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign})

	var scratch []byte
	last := time.Now()
	for {
		pctx, pcancel := ctx, context.CancelFunc(func() {})
		if *timeout > 0 {
			pctx, pcancel = context.WithDeadline(ctx, last.Add(*timeout))
		}
		fetches := cl.PollFetches(pctx)
		pcancel()
		if ctx.Err() != nil {
			return finish(nil) // interrupted
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return finish(ferr)
		}
		got := false
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				if *count > 0 && n >= *count {
					return
				}
				if exitAtEnd && r.Offset >= ends[r.Partition] {
					done[r.Partition] = true
					return
				}
				scratch = writeRecord(out, ops, r, scratch)
				n++
				got = true
				if exitAtEnd && r.Offset+1 >= ends[r.Partition] {
					done[r.Partition] = true
				}
			}
		})
		if got {
			last = time.Now()
			if err := out.Flush(); err != nil {
				return finish(err)
			}
		}
		if *count > 0 && n >= *count || exitAtEnd && allDone() {
			return finish(nil)
		}
		if *timeout > 0 && !time.Now().Before(last.Add(*timeout)) {
			if *count > 0 {
				return finish(fmt.Errorf("no record for %s: got %d of the %d records asked for", *timeout, n, *count))
			}
			return finish(nil)
		}
	}
}

// startPoint is a parsed --from.
type startPoint struct {
	kind   string // "earliest", "latest", "offset", "relative" or "time"
	offset int64  // absolute offset, records before the end, or Unix ms
}

func parseFrom(s string) (startPoint, error) {
	switch s {
	case "beginning", "earliest", "start":
		return startPoint{kind: "earliest"}, nil
	case "end", "latest":
		return startPoint{kind: "latest"}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return startPoint{kind: "relative", offset: -n}, nil
		}
		return startPoint{kind: "offset", offset: n}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		// Timestamps are whole milliseconds: a time inside a millisecond
		// starts at the next one, so no earlier record is included.
		ms := t.UnixMilli()
		if t.After(time.UnixMilli(ms)) {
			ms++
		}
		return startPoint{kind: "time", offset: ms}, nil
	}
	return startPoint{}, fmt.Errorf("--from: want beginning, end, an offset, -N or an RFC 3339 time such as 2024-05-01T12:00:00Z; got %q", s)
}

// resolve returns the offset each partition starts at, and each partition's
// end (high watermark) now.
func (sp startPoint) resolve(ctx context.Context, cl *kgo.Client, topic string, parts []int32) (starts, ends map[int32]int64, err error) {
	earliest, err := ListOffsets(ctx, cl, topic, parts, ListEarliest)
	if err != nil {
		return nil, nil, err
	}
	ends, err = ListOffsets(ctx, cl, topic, parts, ListLatest)
	if err != nil {
		return nil, nil, err
	}
	var at map[int32]int64
	if sp.kind == "time" {
		if at, err = ListOffsets(ctx, cl, topic, parts, sp.offset); err != nil {
			return nil, nil, err
		}
	}
	starts = make(map[int32]int64, len(parts))
	for _, p := range parts {
		var o int64
		switch sp.kind {
		case "earliest":
			o = earliest[p]
		case "latest":
			o = ends[p]
		case "offset":
			o = sp.offset
		case "relative":
			o = ends[p] - sp.offset
		case "time":
			o = at[p]
			if o < 0 { // no record at or after the time
				o = ends[p]
			}
		}
		starts[p] = min(max(o, earliest[p]), ends[p])
	}
	return starts, ends, nil
}

// fmtOp is one piece of a compiled --format: literal bytes or, when lit is
// nil, the placeholder field.
type fmtOp struct {
	lit   []byte
	field byte
}

func compileFormat(s string) ([]fmtOp, error) {
	var ops []fmtOp
	var lit []byte
	flushLit := func() {
		if len(lit) > 0 {
			ops = append(ops, fmtOp{lit: lit})
			lit = nil
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '%', '\\':
			if i+1 == len(s) {
				return nil, fmt.Errorf("%q ends in a lone %c", s, c)
			}
			i++
			d := s[i]
			if c == '\\' {
				e := strings.IndexByte(`nt\r0`, d) // the escapes, in the order of the bytes below
				if e < 0 {
					return nil, fmt.Errorf("unknown escape \\%c (known: \\n \\t \\r \\\\ \\0)", d)
				}
				lit = append(lit, "\n\t\\\r\x00"[e])
				continue
			}
			if d == '%' {
				lit = append(lit, '%')
				continue
			}
			if !strings.ContainsRune("tpokshTKS", rune(d)) {
				return nil, fmt.Errorf("unknown placeholder %%%c (known: %%t %%p %%o %%k %%s %%h %%T %%K %%S %%%%)", d)
			}
			flushLit()
			ops = append(ops, fmtOp{field: d})
		default:
			lit = append(lit, c)
		}
	}
	flushLit()
	return ops, nil
}

// writeRecord writes r through ops; scratch is reused for number
// formatting and returned for the next call.
func writeRecord(w *bufio.Writer, ops []fmtOp, r *kgo.Record, scratch []byte) []byte {
	for _, op := range ops {
		if op.lit != nil {
			w.Write(op.lit)
			continue
		}
		switch op.field {
		case 't':
			w.WriteString(r.Topic)
		case 'p':
			scratch = strconv.AppendInt(scratch[:0], int64(r.Partition), 10)
			w.Write(scratch)
		case 'o':
			scratch = strconv.AppendInt(scratch[:0], r.Offset, 10)
			w.Write(scratch)
		case 'k':
			w.Write(r.Key)
		case 's':
			w.Write(r.Value)
		case 'K':
			scratch = strconv.AppendInt(scratch[:0], int64(len(r.Key)), 10)
			w.Write(scratch)
		case 'S':
			scratch = strconv.AppendInt(scratch[:0], int64(len(r.Value)), 10)
			w.Write(scratch)
		case 'T':
			scratch = strconv.AppendInt(scratch[:0], r.Timestamp.UnixMilli(), 10)
			w.Write(scratch)
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					w.WriteByte(',')
				}
				w.WriteString(h.Key)
				w.WriteByte('=')
				w.Write(h.Value)
			}
		}
	}
	return scratch
}
