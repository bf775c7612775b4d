package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// namesFlag collects a repeated flag's values.
type namesFlag []string

func (n *namesFlag) String() string { return strings.Join(*n, ",") }

func (n *namesFlag) Set(s string) error {
	if s == "" {
		return errors.New("want a config name")
	}
	*n = append(*n, s)
	return nil
}

// configChanges are the --set and --delete flags of a config command.
type configChanges struct {
	set          ConfigFlag
	del          namesFlag
	validateOnly *bool
}

func (c *configChanges) empty() bool { return len(c.set.names) == 0 && len(c.del) == 0 }

// ops returns the changes as IncrementalAlterConfigs entries: each --set a
// SET, each --delete a DELETE. A config named by both is refused here, as
// the broker would refuse it.
func (c *configChanges) ops() ([]kmsg.IncrementalAlterConfigsRequestResourceConfig, error) {
	var out []kmsg.IncrementalAlterConfigsRequestResourceConfig
	for _, n := range c.set.names {
		e := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		e.Name, e.Op, e.Value = n, kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(c.set.vals[n])
		out = append(out, e)
	}
	for _, n := range c.del {
		if _, both := c.set.vals[n]; both {
			return nil, fmt.Errorf("%s is both --set and --delete", n)
		}
		e := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		e.Name, e.Op = n, kmsg.IncrementalAlterConfigOpDelete
		out = append(out, e)
	}
	return out, nil
}

// alterConfigs sends one IncrementalAlterConfigs for a resource.
func alterConfigs(ctx context.Context, cl *kgo.Client, typ kmsg.ConfigResourceType, name string, ch *configChanges) error {
	ops, err := ch.ops()
	if err != nil {
		return err
	}
	return alterConfigOps(ctx, cl, typ, name, ops, *ch.validateOnly)
}

// alterConfigOps sends one IncrementalAlterConfigs of ops for a resource.
func alterConfigOps(ctx context.Context, cl *kgo.Client, typ kmsg.ConfigResourceType, name string,
	ops []kmsg.IncrementalAlterConfigsRequestResourceConfig, validateOnly bool) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = validateOnly
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.Configs = typ, name, ops
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, r := range resp.Resources {
		if r.ResourceType == typ && r.ResourceName == name {
			return codeErr(r.ErrorCode, r.ErrorMessage)
		}
	}
	return errors.New("broker did not answer for the resource")
}

func topicAlterConfig(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel topic alter-config", "runnel topic alter-config NAME --set name=value --delete name [flags]",
		"Change a topic's configs (IncrementalAlterConfigs): --set sets one, --delete returns one to its default; "+
			"the others stay. The topic's partitions take the change at once.", stderr)
	conn := ConnFlags(fs)
	var ch configChanges
	fs.Var(&ch.set, "set", "config to set, as `name=value`; repeat for several (e.g. retention.ms=3600000)")
	fs.Var(&ch.del, "delete", "config to return to its default, by `name`; repeat for several")
	ch.validateOnly = fs.Bool("validate-only", false, "check the change without making it")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, "topic NAME"); err != nil {
		return err
	}
	if ch.empty() {
		return errors.New("nothing to change: give --set name=value or --delete name")
	}
	name := pos[0]
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	if err := alterConfigs(ctx, cl, kmsg.ConfigResourceTypeTopic, name, &ch); err != nil {
		return fmt.Errorf("alter configs of topic %s: %w", name, err)
	}
	verb := "altered"
	if *ch.validateOnly {
		verb = "validated the change of"
	}
	fmt.Fprintf(stdout, "%s configs of topic %s\n", verb, name)
	return nil
}

func clusterConfig(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel cluster config", "runnel cluster config [--broker N] [--set name=value] [--delete name] [--describe] [flags]",
		"Show or change broker configs (DescribeConfigs, IncrementalAlterConfigs). With --broker, one broker's: "+
			"its dynamic configs, and described, every setting with where its value comes from. Without, the "+
			"cluster-wide dynamic defaults every broker takes unless it has its own. With neither --set nor "+
			"--delete the configs are described.", stderr)
	conn := ConnFlags(fs)
	broker := fs.Int("broker", -1, "the broker's node id (default: the cluster-wide defaults)")
	describe := fs.Bool("describe", false, "describe the configs (after the change, if any)")
	var ch configChanges
	fs.Var(&ch.set, "set", "dynamic config to set, as `name=value`; repeat for several (e.g. log.retention.ms=86400000)")
	fs.Var(&ch.del, "delete", "dynamic config to remove, by `name`; repeat for several")
	ch.validateOnly = fs.Bool("validate-only", false, "check the change without making it")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos); err != nil {
		return err
	}
	resource, what := "", "the cluster-wide broker configs"
	if *broker >= 0 {
		resource, what = strconv.Itoa(*broker), fmt.Sprintf("broker %d's configs", *broker)
	}
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	if !ch.empty() {
		if err := alterConfigs(ctx, cl, kmsg.ConfigResourceTypeBroker, resource, &ch); err != nil {
			return fmt.Errorf("alter %s: %w", what, err)
		}
		verb := "altered"
		if *ch.validateOnly {
			verb = "validated the change of"
		}
		fmt.Fprintf(stdout, "%s %s\n", verb, what)
		if !*describe {
			return nil
		}
	}
	configs, err := describeBrokerConfigs(ctx, cl, resource)
	if err != nil {
		return fmt.Errorf("describe %s: %w", what, err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVALUE\tSOURCE\tMODE")
	for _, c := range configs {
		v := "(hidden)"
		if !c.IsSensitive {
			v = "null"
			if c.Value != nil {
				v = *c.Value
			}
		}
		mode := "dynamic"
		if c.ReadOnly {
			mode = "read-only"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, v, configSourceName(c.Source), mode)
	}
	return tw.Flush()
}

// describeBrokerConfigs returns a broker resource's configs, sorted by
// name. A broker's own are answered by that broker (the client sends the
// request there).
func describeBrokerConfigs(ctx context.Context, cl *kgo.Client, resource string) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, resource
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	for _, r := range resp.Resources {
		if r.ResourceName != resource {
			continue
		}
		if err := codeErr(r.ErrorCode, r.ErrorMessage); err != nil {
			return nil, err
		}
		slices.SortFunc(r.Configs, func(a, b kmsg.DescribeConfigsResponseResourceConfig) int { return strings.Compare(a.Name, b.Name) })
		return r.Configs, nil
	}
	return nil, errors.New("broker did not answer for the resource")
}

// configSourceName is a config source as Kafka's tools print it.
func configSourceName(s kmsg.ConfigSource) string {
	switch s {
	case kmsg.ConfigSourceDynamicTopicConfig:
		return "DYNAMIC_TOPIC_CONFIG"
	case kmsg.ConfigSourceDynamicBrokerConfig:
		return "DYNAMIC_BROKER_CONFIG"
	case kmsg.ConfigSourceDynamicDefaultBrokerConfig:
		return "DYNAMIC_DEFAULT_BROKER_CONFIG"
	case kmsg.ConfigSourceStaticBrokerConfig:
		return "STATIC_BROKER_CONFIG"
	case kmsg.ConfigSourceDefaultConfig:
		return "DEFAULT_CONFIG"
	}
	return fmt.Sprintf("source %d", s)
}
