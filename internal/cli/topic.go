package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const topicUsage = `Usage: runnel topic COMMAND [flags]

Manage topics on any Kafka-compatible broker.

Commands:
  create NAME     create a topic
  list            list topic names
  describe NAME   show partitions (leader, replicas, ISR, offsets) and configs
  alter-config NAME
                  change a topic's configs (--set name=value, --delete name)
  delete NAME     delete a topic and its data

Run runnel topic COMMAND --help for the flags of each.
`

// Topic runs runnel topic: create, list, describe and delete topics.
func Topic(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, topicUsage)
		return errors.New("topic: missing command (create, list, describe, alter-config or delete)")
	}
	switch args[0] {
	case "create":
		return topicCreate(args[1:], stdout, stderr)
	case "list":
		return topicList(args[1:], stdout, stderr)
	case "describe":
		return topicDescribe(args[1:], stdout, stderr)
	case "delete":
		return topicDelete(args[1:], stdout, stderr)
	case "alter-config":
		return topicAlterConfig(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, topicUsage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, topicUsage)
	return fmt.Errorf("topic: unknown command %q", args[0])
}

// ConfigFlag collects repeated --config name=value flags.
type ConfigFlag struct {
	names []string
	vals  map[string]string
}

func (c *ConfigFlag) String() string {
	if c == nil || len(c.names) == 0 {
		return ""
	}
	kv := make([]string, len(c.names))
	for i, n := range c.names {
		kv[i] = n + "=" + c.vals[n]
	}
	return strings.Join(kv, ",")
}

func (c *ConfigFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want name=value, got %q", s)
	}
	if c.vals == nil {
		c.vals = map[string]string{}
	}
	if _, dup := c.vals[k]; !dup {
		c.names = append(c.names, k)
	}
	c.vals[k] = v
	return nil
}

func topicCreate(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel topic create", "runnel topic create NAME [flags]",
		"Create a topic. Without --partitions or --replication-factor the broker's defaults apply.", stderr)
	conn := ConnFlags(fs)
	partitions := fs.Int("partitions", -1, "number of partitions (-1: broker default)")
	replication := fs.Int("replication-factor", -1, "copies of each partition (-1: broker default)")
	var configs ConfigFlag
	fs.Var(&configs, "config", "topic config as `name=value`; repeat for several (e.g. retention.ms=3600000)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, "topic NAME"); err != nil {
		return err
	}
	if *partitions == 0 || *partitions < -1 || *replication == 0 || *replication < -1 || *replication > 1<<15-1 {
		return errors.New("--partitions and --replication-factor must be positive (or -1 for the broker default)")
	}
	name := pos[0]
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	t, err := CreateTopic(ctx, cl, name, int32(*partitions), int16(*replication), configs)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created topic %s (%d partitions, replication factor %d)\n", name, t.NumPartitions, t.ReplicationFactor)
	return nil
}

// CreateTopic sends CreateTopics for one topic and returns the broker's
// answer for it.
func CreateTopic(ctx context.Context, cl *kgo.Client, name string, partitions int32, replication int16, configs ConfigFlag) (kmsg.CreateTopicsResponseTopic, error) {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = int32(RequestTimeout.Milliseconds())
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = name
	rt.NumPartitions = partitions
	rt.ReplicationFactor = replication
	for _, k := range configs.names {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name = k
		c.Value = kmsg.StringPtr(configs.vals[k])
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return kmsg.CreateTopicsResponseTopic{}, fmt.Errorf("create topic %s: %w", name, err)
	}
	for _, t := range resp.Topics {
		if t.Topic != name {
			continue
		}
		if err := codeErr(t.ErrorCode, t.ErrorMessage); err != nil {
			return t, fmt.Errorf("create topic %s: %w", name, err)
		}
		return t, nil
	}
	return kmsg.CreateTopicsResponseTopic{}, fmt.Errorf("create topic %s: broker did not answer for the topic", name)
}

func topicList(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel topic list", "runnel topic list [flags]",
		"Print the name of every topic, one a line, sorted.", stderr)
	conn := ConnFlags(fs)
	if err := ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	req := kmsg.NewPtrMetadataRequest() // nil Topics: all topics
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var names []string
	for _, t := range resp.Topics {
		if t.Topic != nil && t.ErrorCode == 0 {
			names = append(names, *t.Topic)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintln(stdout, n)
	}
	return nil
}

func topicDescribe(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel topic describe", "runnel topic describe NAME [flags]",
		"Show a topic's partitions (leader, replicas, ISR, log start and end offsets)\nand its configs.", stderr)
	conn := ConnFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, "topic NAME"); err != nil {
		return err
	}
	name := pos[0]
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	t, err := TopicMetadata(ctx, cl, name)
	if err != nil {
		return err
	}
	parts, _ := PartitionIDs(t, -1)
	starts, err := ListOffsets(ctx, cl, name, parts, ListEarliest)
	if err != nil {
		return err
	}
	ends, err := ListOffsets(ctx, cl, name, parts, ListLatest)
	if err != nil {
		return err
	}
	configs, err := describeTopicConfigs(ctx, cl, name)
	if err != nil {
		return err
	}

	rf := 0
	if len(t.Partitions) > 0 {
		rf = len(t.Partitions[0].Replicas)
	}
	fmt.Fprintf(stdout, "Topic: %s\nID: %x\nPartitions: %d\nReplication factor: %d\n\n", name, t.TopicID, len(t.Partitions), rf)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tREPLICAS\tISR\tLOG-START\tLOG-END\tRECORDS")
	slices.SortFunc(t.Partitions, func(a, b kmsg.MetadataResponseTopicPartition) int { return int(a.Partition - b.Partition) })
	for _, p := range t.Partitions {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\t%d\t%d\n", p.Partition, p.Leader, joinInts(p.Replicas), joinInts(p.ISR),
			starts[p.Partition], ends[p.Partition], ends[p.Partition]-starts[p.Partition])
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\nConfigs:")
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, c := range configs {
		v := "<sensitive>"
		if c.Value != nil && !c.IsSensitive {
			v = *c.Value
		}
		src := "set"
		if c.IsDefault || c.Source == kmsg.ConfigSourceDefaultConfig || c.Source == kmsg.ConfigSourceStaticBrokerConfig {
			src = "default"
		}
		fmt.Fprintf(tw, "  %s\t%s\t(%s)\n", c.Name, v, src)
	}
	return tw.Flush()
}

// describeTopicConfigs returns every config of a topic, sorted by name.
func describeTopicConfigs(ctx context.Context, cl *kgo.Client, name string) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	rr.ResourceName = name
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("describe configs of %s: %w", name, err)
	}
	for _, r := range resp.Resources {
		if r.ResourceName != name {
			continue
		}
		if err := codeErr(r.ErrorCode, r.ErrorMessage); err != nil {
			return nil, fmt.Errorf("describe configs of %s: %w", name, err)
		}
		slices.SortFunc(r.Configs, func(a, b kmsg.DescribeConfigsResponseResourceConfig) int { return strings.Compare(a.Name, b.Name) })
		return r.Configs, nil
	}
	return nil, fmt.Errorf("describe configs of %s: broker did not answer for the topic", name)
}

func joinInts(ns []int32) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

func topicDelete(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel topic delete", "runnel topic delete NAME [flags]",
		"Delete a topic and all its records.", stderr)
	conn := ConnFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, "topic NAME"); err != nil {
		return err
	}
	name := pos[0]
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = int32(RequestTimeout.Milliseconds())
	req.TopicNames = []string{name}
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr(name)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("delete topic %s: %w", name, err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != name {
			continue
		}
		if err := codeErr(t.ErrorCode, t.ErrorMessage); err != nil {
			return fmt.Errorf("delete topic %s: %w", name, err)
		}
		fmt.Fprintf(stdout, "deleted topic %s\n", name)
		return nil
	}
	return fmt.Errorf("delete topic %s: broker did not answer for the topic", name)
}
