package cli

// runnel cluster log-dirs: each broker's log directory, its file system's
// space and the partition replicas it holds (DescribeLogDirs).

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
)

func clusterLogDirs(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel cluster log-dirs", "runnel cluster log-dirs [--broker ID] [--topic T] [flags]",
		`Show each broker's log directory (DescribeLogDirs, asked of every broker, or
of one with --broker): its path and the size and free space of its file
system, then one row per partition replica it holds: its bytes on disk and
its offset lag (0 on the leader; on a follower, how far its log end is
behind the leader's high watermark).`, stderr)
	conn := ConnFlags(fs)
	broker := fs.Int("broker", -1, "only the broker with this node `ID`")
	topic := fs.String("topic", "", "only the partitions of this `TOPIC`")
	if err := ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	adm := kadm.NewClient(cl)
	set, err := partitionSet(ctx, cl, *topic, -1)
	if err != nil {
		return err
	}
	all := kadm.DescribedAllLogDirs{}
	if *broker >= 0 {
		dirs, err := adm.DescribeBrokerLogDirs(ctx, int32(*broker), set)
		if err != nil {
			return fmt.Errorf("describe the log directories of broker %d: %w", *broker, err)
		}
		all[int32(*broker)] = dirs
	} else if all, err = adm.DescribeAllLogDirs(ctx, set); err != nil {
		var se *kadm.ShardErrors
		if !errors.As(err, &se) || len(all) == 0 {
			return fmt.Errorf("describe log directories: %w", err)
		}
		// Some brokers answered: show them, and say which did not.
		for _, e := range se.Errs {
			fmt.Fprintf(stderr, "runnel: broker %d: %v\n", e.Broker.NodeID, e.Err)
		}
	}
	return printLogDirs(stdout, all.Sorted())
}

func printLogDirs(w io.Writer, dirs []kadm.DescribedLogDir) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BROKER\tDIR\tTOTAL-BYTES\tUSABLE-BYTES\tSIZE\tERROR")
	for _, d := range dirs {
		errCell := "-"
		if d.Err != nil {
			errCell = d.Err.Error()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", d.Broker, d.Dir, offsetCell(d.TotalBytes, true),
			offsetCell(d.UsableBytes, true), d.Size(), errCell)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BROKER\tTOPIC\tPARTITION\tSIZE\tOFFSET-LAG")
	for _, d := range dirs {
		for _, p := range d.Topics.Sorted() {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\n", p.Broker, p.Topic, p.Partition, p.Size, p.OffsetLag)
		}
	}
	return tw.Flush()
}
