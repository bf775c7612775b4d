package cli

// Shared plumbing of the client subcommands, here and in package bench:
// the --brokers flag, flag parsing that lets flags follow positional
// arguments, client construction, and the few Kafka requests several
// subcommands make.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	defaultBrokers = "127.0.0.1:9092"
	brokersEnv     = "RUNNEL_BROKERS"
	// RequestTimeout bounds every administrative request (metadata, topic
	// creation, offsets) so a dead broker gives an error, not a hang.
	RequestTimeout = 30 * time.Second
)

// ErrUnknownTopic is returned when a topic the command needs does not exist.
var ErrUnknownTopic = errors.New("unknown topic")

// NewFlagSet returns a flag set whose --help prints synopsis, then about,
// then the flags (written with two dashes).
func NewFlagSet(name, synopsis, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\n%s\n\nFlags:\n", synopsis, strings.TrimSpace(about))
		printFlags(fs, stderr)
	}
	return fs
}

// printFlags is flag.PrintDefaults with GNU-style double dashes. A
// one-letter flag whose usage is "short for --NAME" is listed with NAME.
func printFlags(fs *flag.FlagSet, w io.Writer) {
	short := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if long, ok := strings.CutPrefix(f.Usage, "short for --"); ok && len(f.Name) == 1 {
			short[long] = f.Name
		}
	})
	fs.VisitAll(func(f *flag.Flag) {
		if short[strings.TrimPrefix(f.Usage, "short for --")] == f.Name {
			return
		}
		arg, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if s, ok := short[f.Name]; ok {
			line = "  -" + s + ", --" + f.Name
		}
		if arg != "" {
			line += " " + arg
		}
		switch f.DefValue {
		case "", "0", "0s", "false", "[]":
		default:
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
}

// parseInterleaved parses args with fs, allowing flags before, between and
// after positional arguments, which it returns in order. Everything after a
// bare "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// ParseFlagsOnly parses args for a command that takes flags and no
// positional arguments.
func ParseFlagsOnly(fs *flag.FlagSet, args []string) error {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	return wantArgs(pos)
}

// wantArgs checks the number of positional arguments.
func wantArgs(pos []string, names ...string) error {
	switch {
	case len(pos) < len(names):
		return fmt.Errorf("missing %s (see --help)", names[len(pos)])
	case len(pos) > len(names):
		return fmt.Errorf("unexpected arguments %q (see --help)", pos[len(names):])
	}
	return nil
}

// BrokersFlag registers --brokers, defaulting to $RUNNEL_BROKERS.
func BrokersFlag(fs *flag.FlagSet) *string {
	def := defaultBrokers
	if e := os.Getenv(brokersEnv); e != "" {
		def = e
	}
	return fs.String("brokers", def, "comma-separated `host:port` list of seed brokers (env "+brokersEnv+")")
}

// NewClient connects to the brokers and checks one answers, so that a wrong
// address is reported at once instead of as a timeout later.
func NewClient(ctx context.Context, brokers string, opts ...kgo.Opt) (*kgo.Client, error) {
	var seeds []string
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			seeds = append(seeds, b)
		}
	}
	if len(seeds) == 0 {
		return nil, errors.New("--brokers: no broker addresses given")
	}
	all := append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ClientID("runnel-cli")}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("cannot reach brokers %s: %w", strings.Join(seeds, ","), err)
	}
	return cl, nil
}

// brokerError is a Kafka error code with the broker's own message. It
// unwraps to the *kerr.Error, so errors.Is(err, kerr.X) works.
type brokerError struct {
	code *kerr.Error
	msg  string
}

func (e *brokerError) Error() string { return e.code.Message + ": " + e.msg }
func (e *brokerError) Unwrap() error { return e.code }

// codeErr turns a Kafka error code and optional message into an error.
func codeErr(code int16, msg *string) error {
	err := kerr.ErrorForCode(code)
	if err == nil {
		return nil
	}
	var ke *kerr.Error
	if msg != nil && *msg != "" && errors.As(err, &ke) {
		return &brokerError{code: ke, msg: *msg}
	}
	return err
}

// TopicMetadata returns a topic's metadata without asking the broker to
// create it. A missing topic is ErrUnknownTopic.
func TopicMetadata(ctx context.Context, cl *kgo.Client, topic string) (kmsg.MetadataResponseTopic, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return kmsg.MetadataResponseTopic{}, fmt.Errorf("metadata for %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if t.ErrorCode == kerr.UnknownTopicOrPartition.Code {
			return t, fmt.Errorf("%w %q", ErrUnknownTopic, topic)
		}
		if err := codeErr(t.ErrorCode, nil); err != nil {
			return t, fmt.Errorf("metadata for %s: %w", topic, err)
		}
		return t, nil
	}
	return kmsg.MetadataResponseTopic{}, fmt.Errorf("metadata for %s: broker did not answer for the topic", topic)
}

// PartitionIDs returns the partition numbers of a topic in order, or just
// the one asked for (only >= 0) after checking it exists.
func PartitionIDs(t kmsg.MetadataResponseTopic, only int) ([]int32, error) {
	n := int32(len(t.Partitions))
	if only >= 0 {
		if int32(only) >= n {
			return nil, fmt.Errorf("--partition %d: topic %s has partitions 0..%d", only, *t.Topic, n-1)
		}
		return []int32{int32(only)}, nil
	}
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(i)
	}
	return ids, nil
}

// Special timestamps of ListOffsets.
const (
	ListLatest   = -1 // the high watermark
	ListEarliest = -2 // the log start offset
)

// ListOffsets asks for the offset of each partition at timestamp (a time in
// Unix milliseconds, or ListLatest/ListEarliest). For a time after every
// record the broker answers -1, which is returned as is.
func ListOffsets(ctx context.Context, cl *kgo.Client, topic string, parts []int32, timestamp int64) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range parts {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = timestamp
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	out := make(map[int32]int64, len(parts))
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := codeErr(p.ErrorCode, nil); err != nil {
				return nil, fmt.Errorf("list offsets of %s/%d: %w", topic, p.Partition, err)
			}
			out[p.Partition] = p.Offset
		}
	}
	for _, p := range parts {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("list offsets of %s/%d: no answer from the broker", topic, p)
		}
	}
	return out, nil
}

// ProducerOpts turns --acks and --compression into franz-go options.
// Idempotent writes need acks=all, so other settings turn them off.
func ProducerOpts(acks, compression string) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	switch acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	default:
		return nil, fmt.Errorf("--acks: want all, 1 or 0, got %q", acks)
	}
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	c, ok := codecs[compression]
	if !ok {
		return nil, fmt.Errorf("--compression: want none, gzip, snappy, lz4 or zstd, got %q", compression)
	}
	return append(opts, kgo.ProducerBatchCompression(c)), nil
}

// adminClient connects for one short administrative exchange: the context
// ends after RequestTimeout. Call done when finished.
func adminClient(conn *Conn, opts ...kgo.Opt) (context.Context, *kgo.Client, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), RequestTimeout)
	cl, err := conn.Client(ctx, opts...)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, cl, func() { cl.Close(); cancel() }, nil
}
