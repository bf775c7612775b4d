package cli

// runnel cluster elect-leaders: leader elections an operator asks for
// (ElectLeaders), preferred or unclean.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func clusterElectLeaders(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel cluster elect-leaders", "runnel cluster elect-leaders [--unclean] [--topic T [--partition P]] [flags]",
		`Hold leader elections (ElectLeaders). By default a preferred election: each
partition's leadership goes back to its preferred replica (the first of its
replicas) where that broker is live and in sync. With --unclean, partitions
that have no leader get one: a live in-sync replica if there is one, else
any live replica outside the ISR, which becomes the whole ISR. Records only
the lost in-sync replicas had are then gone; fenced brokers are never
elected.

Without --topic every partition of every topic is asked for, and only the
partitions that needed an election are listed. One row per partition: its
leader after the election and the outcome. The command fails if an
election that was needed could not be held.`, stderr)
	conn := ConnFlags(fs)
	unclean := fs.Bool("unclean", false, "elect a leader outside the ISR for partitions left without one")
	topic := fs.String("topic", "", "the `TOPIC` whose partitions to elect leaders of (default: every partition)")
	part := fs.Int("partition", -1, "with --topic, only this `PARTITION`")
	if err := ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *part >= 0 && *topic == "" {
		return errors.New("--partition needs --topic")
	}
	how := kadm.ElectPreferredReplica
	if *unclean {
		how = kadm.ElectLiveReplica
	}
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	set, err := partitionSet(ctx, cl, *topic, *part)
	if err != nil {
		return err
	}
	results, err := kadm.NewClient(cl).ElectLeaders(ctx, how, set)
	if err != nil {
		return fmt.Errorf("elect leaders: %w", err)
	}
	leaders, err := partitionLeaders(ctx, cl, results)
	if err != nil {
		return err
	}
	rows := electionRows(results, leaders)
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "no partition needed an election")
		return nil
	}
	if err := printElections(stdout, rows); err != nil {
		return err
	}
	failed := 0
	for _, r := range rows {
		if r.err != nil && !errors.Is(r.err, kerr.ElectionNotNeeded) {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("elect leaders: %d of %d partitions could not be elected", failed, len(rows))
	}
	return nil
}

// partitionSet returns the partitions of topic (or only partition part,
// if >= 0) as a set for kadm, or nil, every partition, without a topic.
func partitionSet(ctx context.Context, cl *kgo.Client, topic string, part int) (kadm.TopicsSet, error) {
	if topic == "" {
		return nil, nil
	}
	t, err := TopicMetadata(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	ids, err := PartitionIDs(t, part)
	if err != nil {
		return nil, err
	}
	set := kadm.TopicsSet{}
	set.Add(topic, ids...)
	return set, nil
}

// electionRow is one partition's election as printed.
type electionRow struct {
	topic     string
	partition int32
	leader    int32 // -1: none, or unknown
	err       error
	msg       string
}

func electionRows(results kadm.ElectLeadersResults, leaders map[string]map[int32]int32) []electionRow {
	var rows []electionRow
	for topic, ps := range results {
		for p, r := range ps {
			leader, ok := leaders[topic][p]
			if !ok {
				leader = -1
			}
			rows = append(rows, electionRow{topic: topic, partition: p, leader: leader, err: r.Err, msg: r.ErrMessage})
		}
	}
	slices.SortFunc(rows, func(a, b electionRow) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.partition - b.partition)
	})
	return rows
}

// partitionLeaders returns the leader of each partition of the results'
// topics as the controller sees it: the broker that answered the
// elections, whose metadata shows them (another broker's may not yet).
func partitionLeaders(ctx context.Context, cl *kgo.Client, results kadm.ElectLeadersResults) (map[string]map[int32]int32, error) {
	out := map[string]map[int32]int32{}
	req := kmsg.NewPtrMetadataRequest()
	for t := range results {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	if len(req.Topics) == 0 {
		return out, nil
	}
	ctrl, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return nil, fmt.Errorf("metadata after the elections: %w", err)
	}
	resp, err := req.RequestWith(ctx, cl.Broker(int(ctrl.Controller)))
	if err != nil {
		return nil, fmt.Errorf("metadata after the elections: %w", err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		out[*t.Topic] = map[int32]int32{}
		for _, p := range t.Partitions {
			out[*t.Topic][p.Partition] = p.Leader
		}
	}
	return out, nil
}

func printElections(w io.Writer, rows []electionRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tRESULT")
	for _, r := range rows {
		result := "elected"
		var ke *kerr.Error
		switch {
		case r.err == nil:
		case errors.As(r.err, &ke) && r.msg != "":
			result = ke.Message + ": " + r.msg
		default:
			result = r.err.Error()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.topic, r.partition, offsetCell(int64(r.leader), true), result)
	}
	return tw.Flush()
}
