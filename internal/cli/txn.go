package cli

// runnel txn: list and describe transactions, and abort a hanging one, as
// Kafka's kafka-transactions.sh does, through kadm, so it works against any
// Kafka-compatible broker.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

const txnUsage = `Usage: runnel txn COMMAND [flags]

Inspect transactions and abort hanging ones on any Kafka-compatible broker.

Commands:
  list                  list transactional ids with their producer and state
  describe ID...        show a transactional id's producer, state, timeout
                        and the partitions of its open transaction
  abort                 write an abort marker for a producer's transaction
                        on one partition (a hanging transaction the
                        coordinator no longer knows)

Run runnel txn COMMAND --help for the flags of each.
`

// Txn runs runnel txn: list, describe, abort.
func Txn(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, txnUsage)
		return errors.New("txn: missing command (list, describe or abort)")
	}
	switch args[0] {
	case "list":
		return txnList(args[1:], stdout, stderr)
	case "describe":
		return txnDescribe(args[1:], stdout, stderr)
	case "abort":
		return txnAbort(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, txnUsage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, txnUsage)
	return fmt.Errorf("txn: unknown command %q", args[0])
}

// txnStates are the states of a transaction, as Kafka names them.
var txnStates = []string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort",
	"Dead", "PrepareEpochFence"}

func parseTxnStates(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		i := slices.IndexFunc(txnStates, func(st string) bool { return strings.EqualFold(st, f) })
		if i < 0 {
			return nil, fmt.Errorf("--state: unknown state %q (want %s)", f, strings.Join(txnStates, ", "))
		}
		if !slices.Contains(out, txnStates[i]) {
			out = append(out, txnStates[i])
		}
	}
	return out, nil
}

func txnList(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel txn list", "runnel txn list [flags]",
		`List transactional ids, sorted, with the broker that coordinates each, its
producer id and its transaction's state. Every broker is asked for the ids it
coordinates.`, stderr)
	brokers := BrokersFlag(fs)
	state := fs.String("state", "", "show only ids in these comma-separated `STATES`:\n"+strings.Join(txnStates, ", ")+" (any case)")
	pid := fs.Int64("producer-id", -1, "show only the ids of this producer `ID`")
	if err := ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	states, err := parseTxnStates(*state)
	if err != nil {
		return err
	}
	var pids []int64
	if *pid >= 0 {
		pids = []int64{*pid}
	}
	ctx, cl, done, err := adminClient(*brokers)
	if err != nil {
		return err
	}
	defer done()
	listed, err := kadm.NewClient(cl).ListTransactions(ctx, pids, states)
	if err != nil {
		return fmt.Errorf("list transactions: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRANSACTIONAL-ID\tCOORDINATOR\tPRODUCER-ID\tSTATE")
	for _, t := range listed.Sorted() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", t.TxnID, t.Coordinator, t.ProducerID, t.State)
	}
	return tw.Flush()
}

func txnDescribe(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel txn describe", "runnel txn describe ID [ID...] [flags]",
		`Show transactional ids: the coordinator, producer id and epoch, state,
transaction timeout, when the open or last transaction started, and the
partitions of the open transaction.`, stderr)
	brokers := BrokersFlag(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errors.New("missing ID (see --help)")
	}
	ctx, cl, done, err := adminClient(*brokers)
	if err != nil {
		return err
	}
	defer done()
	described, err := kadm.NewClient(cl).DescribeTransactions(ctx, uniq(pos)...)
	if err != nil {
		return fmt.Errorf("describe transactions: %w", err)
	}
	var failed []string
	for i, id := range uniq(pos) {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		d, ok := described[id]
		if !ok || d.Err != nil {
			err := d.Err
			if !ok {
				err = errors.New("no answer")
			}
			fmt.Fprintf(stdout, "Transactional ID: %s\nError: %v\n", id, err)
			failed = append(failed, id)
			continue
		}
		printTxn(stdout, d)
	}
	if len(failed) > 0 {
		return fmt.Errorf("could not describe %s", strings.Join(failed, ", "))
	}
	return nil
}

func printTxn(w io.Writer, d kadm.DescribedTransaction) {
	started := "-"
	if d.StartTimestamp >= 0 {
		started = time.UnixMilli(d.StartTimestamp).UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(w, "Transactional ID: %s\nCoordinator: %d\nProducer ID: %d\nProducer epoch: %d\nState: %s\nTimeout: %s\nStarted: %s\n",
		d.TxnID, d.Coordinator, d.ProducerID, d.ProducerEpoch, d.State,
		time.Duration(d.TimeoutMillis)*time.Millisecond, started)
	var parts []string
	for topic, ps := range d.Topics {
		for p := range ps {
			parts = append(parts, topic+"-"+strconv.Itoa(int(p)))
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		fmt.Fprintln(w, "Partitions: -")
		return
	}
	fmt.Fprintf(w, "Partitions: %s\n", strings.Join(parts, " "))
}

func txnAbort(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel txn abort", "runnel txn abort --topic TOPIC --partition N (--start-offset N | --producer-id N --producer-epoch N) [flags]",
		`Abort a hanging transaction on one partition: write an abort marker for
its producer there, as the coordinator would (the WriteTxnMarkers request
needs CLUSTER_ACTION under an authorizer). Name the producer with
--producer-id and --producer-epoch, or give the first offset of its open
transaction with --start-offset and the partition's leader is asked which
producer that is (DescribeProducers).`, stderr)
	brokers := BrokersFlag(fs)
	topic := fs.String("topic", "", "the `TOPIC` of the hanging transaction")
	part := fs.Int("partition", -1, "its partition `N`")
	start := fs.Int64("start-offset", -1, "the first `OFFSET` of the open transaction")
	pid := fs.Int64("producer-id", -1, "the producer `ID`")
	epoch := fs.Int("producer-epoch", -1, "the producer's `EPOCH`")
	coord := fs.Int("coordinator-epoch", 0, "the coordinator `EPOCH` of the marker")
	if err := ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	switch {
	case *topic == "" || *part < 0:
		return errors.New("--topic and --partition are required (see --help)")
	case (*start >= 0) == (*pid >= 0):
		return errors.New("give either --start-offset or --producer-id with --producer-epoch (see --help)")
	case *pid >= 0 && (*epoch < 0 || *epoch > 32767):
		return errors.New("--producer-epoch: want 0 to 32767 with --producer-id")
	}
	ctx, cl, done, err := adminClient(*brokers)
	if err != nil {
		return err
	}
	defer done()
	adm := kadm.NewClient(cl)
	m := kadm.TxnMarkers{ProducerID: *pid, ProducerEpoch: int16(*epoch), CoordinatorEpoch: int32(*coord),
		Topics: kadm.TopicsSet{*topic: {int32(*part): {}}}}
	if *start >= 0 {
		found, err := adm.DescribeProducers(ctx, kadm.TopicsSet{*topic: {int32(*part): {}}})
		if err != nil {
			return fmt.Errorf("describe producers: %w", err)
		}
		dp, ok := found[*topic].Partitions[int32(*part)]
		if !ok || dp.Err != nil {
			return fmt.Errorf("describe producers of %s-%d: %v", *topic, *part, dp.Err)
		}
		var match []kadm.DescribedProducer
		for _, p := range dp.ActiveProducers {
			if p.CurrentTxnStartOffset == *start {
				match = append(match, p)
			}
		}
		if len(match) != 1 {
			return fmt.Errorf("%d producers have an open transaction starting at offset %d of %s-%d", len(match), *start, *topic, *part)
		}
		m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch = match[0].ProducerID, match[0].ProducerEpoch, match[0].CoordinatorEpoch
	}
	resp, err := adm.WriteTxnMarkers(ctx, m)
	if err != nil {
		return fmt.Errorf("write the abort marker: %w", err)
	}
	for _, r := range resp {
		for _, rt := range r.Topics {
			for _, p := range rt.Partitions {
				if p.Err != nil {
					return fmt.Errorf("abort marker on %s-%d: %w", p.Topic, p.Partition, p.Err)
				}
			}
		}
	}
	fmt.Fprintf(stdout, "Aborted the transaction of producer %d (epoch %d) on %s-%d\n", m.ProducerID, m.ProducerEpoch, *topic, *part)
	return nil
}
