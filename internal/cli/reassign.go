package cli

// runnel cluster reassign, decommission and unregister: moving replicas
// between brokers, as Kafka's kafka-reassign-partitions.sh, over
// AlterPartitionReassignments and ListPartitionReassignments, with the
// replication throttles set and cleared through IncrementalAlterConfigs,
// and UnregisterBroker for a broker drained and stopped.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/brokerconfig"
)

// The topic configs naming the throttled replicas.
const (
	leaderThrottledReplicas   = "leader.replication.throttled.replicas"
	followerThrottledReplicas = "follower.replication.throttled.replicas"
)

// noThrottle is --throttle's default: set no rate.
const noThrottle = -1

// waitFlags are the flags of a command that can wait for reassignments.
type waitFlags struct {
	wait     *bool
	timeout  *time.Duration
	interval *time.Duration
}

func addWaitFlags(fs interface {
	Bool(string, bool, string) *bool
	Duration(string, time.Duration, string) *time.Duration
}, what string) waitFlags {
	return waitFlags{
		wait:     fs.Bool("wait", false, "wait until "+what),
		timeout:  fs.Duration("timeout", 0, "with --wait, give up after this `DURATION` (0: wait as long as it takes)"),
		interval: fs.Duration("interval", time.Second, "with --wait, how often to look"),
	}
}

// reassignCmd is what one run of runnel cluster reassign does.
type reassignCmd struct {
	generate, execute, verify, cancel, list *bool

	topics, brokerIDs, planFile, output *string
	rf                                  *int
	throttle                            *int64
	additional, preserveThrottles       *bool
	waitFlags
}

func clusterReassign(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel cluster reassign", "runnel cluster reassign --generate|--execute|--verify|--cancel|--list [flags]",
		`Move partition replicas between brokers, as Kafka's kafka-reassign-partitions.sh,
with plans in its reassignment file format:
  {"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2]}]}
(the first replica is the preferred leader).

  --generate --topics a,b --broker-ids 1,2,3 [--replication-factor N]
      print the topics' current assignment and a proposed plan that spreads
      replicas and preferred leaders evenly over the brokers, moving as few
      replicas as it can
  --execute --plan FILE [--throttle BYTES_PER_SEC]
      start the plan's reassignments; with --throttle, first hold the
      copying to that rate on every broker involved
  --verify --plan FILE [--wait]
      show each partition's state; once all are complete, remove the
      throttles (exit status 1 if one failed: its replicas differ from the
      plan and nothing is in progress)
  --cancel --plan FILE
      cancel the plan's reassignments in progress (the partitions go back
      to their replicas from before) and remove the throttles
  --list
      the reassignments in progress`, stderr)
	conn := ConnFlags(fs)
	c := reassignCmd{
		generate:          fs.Bool("generate", false, "propose a plan (see above)"),
		execute:           fs.Bool("execute", false, "start a plan's reassignments"),
		verify:            fs.Bool("verify", false, "show how a plan is going; clear the throttles once it is done"),
		cancel:            fs.Bool("cancel", false, "cancel a plan's reassignments in progress"),
		list:              fs.Bool("list", false, "list the reassignments in progress"),
		topics:            fs.String("topics", "", "with --generate, the comma-separated `TOPICS` to place"),
		brokerIDs:         fs.String("broker-ids", "", "with --generate, the comma-separated `IDS` of the brokers to place them on (Kafka's --broker-list)"),
		rf:                fs.Int("replication-factor", 0, "with --generate, give every partition `N` replicas (default: the number it has)"),
		planFile:          fs.String("plan", "", "the reassignment `FILE` (Kafka's --reassignment-json-file)"),
		output:            fs.String("output", "", "with --generate, also write the proposed plan to `FILE`"),
		throttle:          fs.Int64("throttle", noThrottle, "with --execute, the replication rate in `BYTES_PER_SEC` while replicas are copied; -1: no throttle"),
		additional:        fs.Bool("additional", false, "with --execute, replace reassignments already in progress of the plan's partitions"),
		preserveThrottles: fs.Bool("preserve-throttles", false, "with --verify or --cancel, leave the throttles in place"),
		waitFlags:         addWaitFlags(fs, "every partition of the plan is complete or failed"),
	}
	if err := ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	n := 0
	for _, b := range []*bool{c.generate, c.execute, c.verify, c.cancel, c.list} {
		if *b {
			n++
		}
	}
	if n != 1 {
		return errors.New("give one of --generate, --execute, --verify, --cancel or --list (see --help)")
	}
	if *c.throttle < noThrottle {
		return fmt.Errorf("--throttle %d: want a rate of 0 or more bytes per second", *c.throttle)
	}
	if *c.generate {
		return c.runGenerate(conn, stdout)
	}
	if *c.list {
		return c.runList(conn, stdout)
	}
	if *c.planFile == "" {
		return errors.New("--plan FILE is needed")
	}
	plan, err := readPlan(*c.planFile)
	if err != nil {
		return err
	}
	ctx, cl, done, err := waitingClient(conn, c.waitFlags)
	if err != nil {
		return err
	}
	defer done()
	switch {
	case *c.execute:
		return executePlan(ctx, cl, plan, *c.throttle, *c.additional, stdout)
	case *c.verify:
		return verifyPlan(ctx, cl, plan, c.waitFlags, !*c.preserveThrottles, stdout)
	}
	return cancelPlan(ctx, cl, plan, !*c.preserveThrottles, stdout)
}

// readPlan reads and checks a reassignment file.
func readPlan(path string) (reassignPlan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return reassignPlan{}, fmt.Errorf("--plan: %w", err)
	}
	p, err := parsePlan(b)
	if err != nil {
		return p, fmt.Errorf("--plan %s: %w", path, err)
	}
	return p, nil
}

// waitingClient is adminClient for a command that may wait longer than
// one request's time: its context ends at --timeout when waiting (never,
// for 0), and each request bounds itself with request.
func waitingClient(conn *Conn, w waitFlags) (context.Context, *kgo.Client, func(), error) {
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if *w.wait && *w.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, *w.timeout)
	}
	cctx, ccancel := context.WithTimeout(ctx, RequestTimeout)
	defer ccancel()
	cl, err := conn.Client(cctx, kgo.RetryTimeout(RequestTimeout))
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, cl, func() { cl.Close(); cancel() }, nil
}

// request sends one request bounded by RequestTimeout.
func request[R kmsg.Response](ctx context.Context, to kmsg.Requestor, req kmsg.Request) (R, error) {
	rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	var zero R
	resp, err := to.Request(rctx, req)
	if err != nil {
		return zero, err
	}
	return resp.(R), nil
}

func (c *reassignCmd) runGenerate(conn *Conn, stdout io.Writer) error {
	var topics []string
	for _, t := range strings.Split(*c.topics, ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	if len(topics) == 0 {
		return errors.New("--generate needs --topics")
	}
	if *c.brokerIDs == "" {
		return errors.New("--generate needs --broker-ids")
	}
	brokers, err := parseIDs(*c.brokerIDs)
	if err != nil {
		return fmt.Errorf("--broker-ids: %w", err)
	}
	if *c.rf < 0 {
		return fmt.Errorf("--replication-factor %d: want 1 or more", *c.rf)
	}
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	st, err := fetchState(ctx, cl, topics)
	if err != nil {
		return err
	}
	for _, t := range topics {
		if !st.topics[t] {
			return fmt.Errorf("%w %q", ErrUnknownTopic, t)
		}
	}
	registered := slices.Collect(maps.Keys(st.brokers))
	for _, b := range brokers {
		if !slices.Contains(registered, b) {
			return fmt.Errorf("--broker-ids: broker %d is not registered (the brokers are %v)", b, sortedIDs(registered))
		}
	}
	current := st.targets()
	proposed, err := generatePlan(current, brokers, *c.rf)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Current partition replica assignment\n%s\n\nProposed partition reassignment configuration\n%s\n",
		current.plan().marshal(), proposed.plan().marshal())
	fmt.Fprintf(stdout, "\n%d of %d partitions change; %d replicas to copy.\n",
		changed(current, proposed), len(proposed), movement(current, proposed))
	if *c.output != "" {
		if err := os.WriteFile(*c.output, []byte(proposed.plan().marshal()+"\n"), 0o644); err != nil {
			return fmt.Errorf("--output: %w", err)
		}
		fmt.Fprintf(stdout, "Proposed plan written to %s.\n", *c.output)
	}
	return nil
}

// changed counts the partitions of target whose replicas (or their order)
// differ from current.
func changed(current, target assignment) int {
	n := 0
	for k, rs := range target {
		if !slices.Equal(current[k], rs) {
			n++
		}
	}
	return n
}

func sortedIDs(ids []int32) []int32 {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

// inProgress is one partition's reassignment in progress.
type inProgress struct {
	replicas, adding, removing []int32
}

// target is where the partition is going: its replicas less the removing.
func (p inProgress) target() []int32 {
	return slices.DeleteFunc(slices.Clone(p.replicas), func(r int32) bool { return slices.Contains(p.removing, r) })
}

// clusterState is what the reassignment commands read of the cluster.
type clusterState struct {
	brokers  map[int32]bool // registered brokers: fenced (stopped)?
	topics   map[string]bool
	replicas assignment // every replica, those being removed too
	moving   map[tp]inProgress
}

// targets returns each partition's replicas as they will be once the
// reassignments in progress are done.
func (st *clusterState) targets() assignment {
	out := assignment{}
	for k, rs := range st.replicas {
		if m, ok := st.moving[k]; ok {
			rs = m.target()
		}
		out[k] = slices.Clone(rs)
	}
	return out
}

// alive returns the ids of the brokers that are not fenced, sorted.
func (st *clusterState) alive() []int32 {
	var out []int32
	for id, fenced := range st.brokers {
		if !fenced {
			out = append(out, id)
		}
	}
	return sortedIDs(out)
}

// fetchState reads the brokers (DescribeCluster), the partitions of topics
// (Metadata; nil: every topic) and the reassignments in progress
// (ListPartitionReassignments).
//
// Metadata and the reassignments are asked of one broker, the controller,
// since another broker may be a little behind it, and as the list, the
// metadata, then the list again: a reassignment that completed in
// between would otherwise show as replicas that differ from the plan with
// nothing in progress. Where the two lists differ, or the metadata does
// not match them, it asks again.
func fetchState(ctx context.Context, cl *kgo.Client, topics []string) (*clusterState, error) {
	dreq := kmsg.NewPtrDescribeClusterRequest()
	dreq.IncludeFencedBrokers = true
	dresp, err := request[*kmsg.DescribeClusterResponse](ctx, cl, dreq)
	if err == nil {
		err = codeErr(dresp.ErrorCode, dresp.ErrorMessage)
	}
	if err != nil {
		return nil, fmt.Errorf("describe cluster: %w", err)
	}
	brokers := map[int32]bool{}
	for _, b := range dresp.Brokers {
		brokers[b.NodeID] = b.IsFenced
	}
	var to kmsg.Requestor = cl
	if fenced, ok := brokers[dresp.ControllerID]; ok && !fenced {
		to = cl.Broker(int(dresp.ControllerID))
	}
	for attempt := 1; ; attempt++ {
		before, err := listReassignments(ctx, to)
		if err != nil {
			return nil, err
		}
		st := &clusterState{brokers: brokers, topics: map[string]bool{}, replicas: assignment{}, moving: before}
		if err := readReplicas(ctx, to, topics, st); err != nil {
			return nil, err
		}
		after, err := listReassignments(ctx, to)
		if err != nil {
			return nil, err
		}
		consistent := len(before) == len(after)
		for k, m := range after {
			b, ok := before[k]
			consistent = consistent && ok && slices.Equal(b.replicas, m.replicas)
			if rs, known := st.replicas[k]; known {
				consistent = consistent && slices.Equal(rs, m.replicas)
			}
		}
		if consistent || attempt == 10 {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readReplicas fills st.topics and st.replicas from a Metadata of topics
// (nil: every topic).
func readReplicas(ctx context.Context, to kmsg.Requestor, topics []string, st *clusterState) error {
	mreq := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		mreq.Topics = append(mreq.Topics, rt)
	}
	mresp, err := request[*kmsg.MetadataResponse](ctx, to, mreq)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	for _, t := range mresp.Topics {
		if t.Topic == nil || t.ErrorCode == kerr.UnknownTopicOrPartition.Code {
			continue
		}
		if err := codeErr(t.ErrorCode, nil); err != nil {
			return fmt.Errorf("metadata for %s: %w", *t.Topic, err)
		}
		st.topics[*t.Topic] = true
		for _, p := range t.Partitions {
			st.replicas[tp{*t.Topic, p.Partition}] = slices.Clone(p.Replicas)
		}
	}
	return nil
}

// listReassignments returns every reassignment in progress.
func listReassignments(ctx context.Context, to kmsg.Requestor) (map[tp]inProgress, error) {
	req := kmsg.NewPtrListPartitionReassignmentsRequest()
	req.Topics = nil // every partition
	resp, err := request[*kmsg.ListPartitionReassignmentsResponse](ctx, to, req)
	if err == nil {
		err = codeErr(resp.ErrorCode, resp.ErrorMessage)
	}
	if err != nil {
		return nil, fmt.Errorf("list partition reassignments: %w", err)
	}
	out := map[tp]inProgress{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[tp{t.Topic, p.Partition}] = inProgress{replicas: p.Replicas, adding: p.AddingReplicas, removing: p.RemovingReplicas}
		}
	}
	return out, nil
}

func (c *reassignCmd) runList(conn *Conn, stdout io.Writer) error {
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	byTP, err := listReassignments(ctx, cl)
	if err != nil {
		return err
	}
	moving := assignment{}
	for k, p := range byTP {
		moving[k] = p.replicas
	}
	if len(moving) == 0 {
		fmt.Fprintln(stdout, "No partition reassignment is in progress.")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tREPLICAS\tADDING\tREMOVING")
	for _, k := range moving.sortedTPs() {
		p := byTP[k]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", k.topic, k.partition, joinInts(p.replicas),
			orDash(joinInts(p.adding)), orDash(joinInts(p.removing)))
	}
	return tw.Flush()
}

// executePlan starts the reassignments of plan. Partitions already where
// the plan puts them are left alone. With throttle (not noThrottle), the
// replication rates are set first on each broker involved (a replica of
// a moving partition now or after), and the throttled-replicas lists of
// each topic moving: the leader list names the current replicas of its
// moving partitions, the follower list the replicas being added. A
// partition in a reassignment already is refused unless additional.
func executePlan(ctx context.Context, cl *kgo.Client, plan reassignPlan, throttle int64, additional bool, stdout io.Writer) error {
	st, err := fetchState(ctx, cl, plan.topics())
	if err != nil {
		return err
	}
	targets := st.targets()
	current := assignment{}
	moves := assignment{}
	for _, pp := range plan.Partitions {
		k := pp.tp()
		rs, ok := st.replicas[k]
		if !ok {
			return fmt.Errorf("%s: %w", k, kerr.UnknownTopicOrPartition)
		}
		if _, busy := st.moving[k]; busy && !additional {
			return fmt.Errorf("%s is being reassigned already: cancel that first, or give --additional to replace it", k)
		}
		current[k] = targets[k]
		for _, r := range pp.Replicas {
			if _, ok := st.brokers[r]; !ok {
				return fmt.Errorf("%s: replica %d: %w (the brokers are %v)", k, r, kerr.BrokerIDNotRegistered, sortedIDs(slices.Collect(maps.Keys(st.brokers))))
			}
		}
		if !slices.Equal(rs, pp.Replicas) {
			moves[k] = slices.Clone(pp.Replicas)
		}
	}
	fmt.Fprintf(stdout, "Current partition replica assignment\n%s\n\nSave this to use as the --plan of --execute to roll back.\n\n",
		current.plan().marshal())
	if len(moves) == 0 {
		fmt.Fprintln(stdout, "Every partition of the plan is where the plan puts it: nothing to do.")
		return nil
	}
	if throttle != noThrottle {
		if err := setThrottles(ctx, cl, st, moves, throttle, stdout); err != nil {
			return err
		}
	}

	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	req.AllowReplicationFactorChange = true
	for _, k := range moves.sortedTPs() {
		if len(req.Topics) == 0 || req.Topics[len(req.Topics)-1].Topic != k.topic {
			rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
			rt.Topic = k.topic
			req.Topics = append(req.Topics, rt)
		}
		rt := &req.Topics[len(req.Topics)-1]
		rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		rp.Partition, rp.Replicas = k.partition, moves[k]
		rt.Partitions = append(rt.Partitions, rp)
	}
	failed, err := alterAssignments(ctx, cl, req, func(k tp, err error) {
		if err != nil {
			fmt.Fprintf(stdout, "%s: failed: %v\n", k, err)
		} else {
			fmt.Fprintf(stdout, "%s: reassignment to %s started\n", k, joinInts(moves[k]))
		}
	})
	if err != nil {
		return err
	}
	for _, pp := range plan.Partitions {
		if _, ok := moves[pp.tp()]; !ok {
			fmt.Fprintf(stdout, "%s: unchanged (already on %s)\n", pp.tp(), joinInts(pp.Replicas))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d reassignments refused", failed, len(moves))
	}
	return nil
}

// alterAssignments sends an AlterPartitionReassignments and reports each
// partition's answer to each; it returns how many were refused.
func alterAssignments(ctx context.Context, cl *kgo.Client, req *kmsg.AlterPartitionAssignmentsRequest,
	each func(tp, error)) (int, error) {
	resp, err := request[*kmsg.AlterPartitionAssignmentsResponse](ctx, cl, req)
	if err == nil {
		err = codeErr(resp.ErrorCode, resp.ErrorMessage)
	}
	if err != nil {
		return 0, fmt.Errorf("alter partition reassignments: %w", err)
	}
	answered := map[tp]bool{}
	failed := 0
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			k := tp{t.Topic, p.Partition}
			answered[k] = true
			err := codeErr(p.ErrorCode, p.ErrorMessage)
			if err != nil {
				failed++
			}
			each(k, err)
		}
	}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			if k := (tp{t.Topic, p.Partition}); !answered[k] {
				failed++
				each(k, errors.New("no answer from the broker"))
			}
		}
	}
	return failed, nil
}

// replicaList is a throttled-replicas config value: partition:broker
// pairs.
func replicaList(pairs map[tp][]int32) string {
	var items []string
	for _, k := range assignment(pairs).sortedTPs() {
		for _, b := range pairs[k] {
			items = append(items, fmt.Sprintf("%d:%d", k.partition, b))
		}
	}
	return strings.Join(items, ",")
}

// setThrottles sets the replication rates on the brokers involved in
// moves and the throttled-replicas lists of the topics moving.
//
// The rates are per-broker dynamic configs, as Kafka's tool sets them,
// rather than the cluster-wide default: a broker that takes no part keeps
// whatever rate it has, and verify removes exactly these.
func setThrottles(ctx context.Context, cl *kgo.Client, st *clusterState, moves assignment, rate int64, stdout io.Writer) error {
	var involved []int32
	leaders, followers := map[string]map[tp][]int32{}, map[string]map[tp][]int32{}
	for k, target := range moves {
		cur := st.replicas[k]
		for _, b := range append(slices.Clone(cur), target...) {
			if !slices.Contains(involved, b) {
				involved = append(involved, b)
			}
		}
		if leaders[k.topic] == nil {
			leaders[k.topic], followers[k.topic] = map[tp][]int32{}, map[tp][]int32{}
		}
		leaders[k.topic][k] = slices.Clone(cur)
		for _, b := range target {
			if !slices.Contains(cur, b) {
				followers[k.topic][k] = append(followers[k.topic][k], b)
			}
		}
	}
	v := strconv.FormatInt(rate, 10)
	for _, b := range sortedIDs(involved) {
		ops := []kmsg.IncrementalAlterConfigsRequestResourceConfig{
			setOp(brokerconfig.LeaderReplicationRate, v), setOp(brokerconfig.FollowerReplicationRate, v)}
		if err := alterConfigOps(ctx, cl, kmsg.ConfigResourceTypeBroker, strconv.Itoa(int(b)), ops, false); err != nil {
			return fmt.Errorf("throttle of broker %d: %w", b, err)
		}
	}
	fmt.Fprintf(stdout, "Replication throttled to %d bytes/s on brokers %s (%s, %s).\n", rate, joinInts(sortedIDs(involved)),
		brokerconfig.LeaderReplicationRate, brokerconfig.FollowerReplicationRate)
	topics := slices.Sorted(maps.Keys(leaders))
	for _, t := range topics {
		ops := []kmsg.IncrementalAlterConfigsRequestResourceConfig{
			setOp(leaderThrottledReplicas, replicaList(leaders[t])), setOp(followerThrottledReplicas, replicaList(followers[t]))}
		if err := alterConfigOps(ctx, cl, kmsg.ConfigResourceTypeTopic, t, ops, false); err != nil {
			return fmt.Errorf("throttled replicas of topic %s: %w", t, err)
		}
	}
	fmt.Fprintf(stdout, "Throttled replicas set on topics %s.\n", strings.Join(topics, ","))
	return nil
}

func setOp(name, value string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
	e := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	e.Name, e.Op, e.Value = name, kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(value)
	return e
}

func deleteOp(name string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
	e := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	e.Name, e.Op = name, kmsg.IncrementalAlterConfigOpDelete
	return e
}

// clearThrottles removes the replication rates from every live broker
// that has them as its own dynamic configs, and the throttled-replicas
// lists from topics where they are set. As Kafka's tool, it does not know
// who set them: an operator's own are removed too.
func clearThrottles(ctx context.Context, cl *kgo.Client, st *clusterState, topics []string, stdout io.Writer) error {
	var cleared []string
	for _, b := range st.alive() {
		name := strconv.Itoa(int(b))
		configs, err := describeBrokerConfigs(ctx, cl, name)
		if err != nil {
			return fmt.Errorf("configs of broker %d: %w", b, err)
		}
		ops := dynamicOps(configs, kmsg.ConfigSourceDynamicBrokerConfig, brokerconfig.LeaderReplicationRate, brokerconfig.FollowerReplicationRate)
		if len(ops) == 0 {
			continue
		}
		if err := alterConfigOps(ctx, cl, kmsg.ConfigResourceTypeBroker, name, ops, false); err != nil {
			return fmt.Errorf("removing the throttle of broker %d: %w", b, err)
		}
		cleared = append(cleared, "broker "+name)
	}
	for _, t := range topics {
		configs, err := describeTopicConfigs(ctx, cl, t)
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			continue
		}
		if err != nil {
			return err
		}
		ops := dynamicOps(configs, kmsg.ConfigSourceDynamicTopicConfig, leaderThrottledReplicas, followerThrottledReplicas)
		if len(ops) == 0 {
			continue
		}
		if err := alterConfigOps(ctx, cl, kmsg.ConfigResourceTypeTopic, t, ops, false); err != nil {
			return fmt.Errorf("removing the throttled replicas of topic %s: %w", t, err)
		}
		cleared = append(cleared, "topic "+t)
	}
	if len(cleared) > 0 {
		fmt.Fprintf(stdout, "Throttles removed: %s.\n", strings.Join(cleared, ", "))
	}
	return nil
}

// dynamicOps returns a DELETE for each of names that configs has from
// source.
func dynamicOps(configs []kmsg.DescribeConfigsResponseResourceConfig, source kmsg.ConfigSource, names ...string) []kmsg.IncrementalAlterConfigsRequestResourceConfig {
	var ops []kmsg.IncrementalAlterConfigsRequestResourceConfig
	for _, c := range configs {
		if slices.Contains(names, c.Name) && c.Source == source {
			ops = append(ops, deleteOp(c.Name))
		}
	}
	return ops
}

// partitionState is how one partition of a plan stands.
type partitionState struct {
	complete, failed bool
	text             string
}

// planStates tells, for each partition of plan: complete (its replicas
// are the plan's and none is moving), in progress, or failed (its
// replicas differ from the plan's and no reassignment is in progress).
func planStates(st *clusterState, plan reassignPlan) map[tp]partitionState {
	out := map[tp]partitionState{}
	for _, pp := range plan.Partitions {
		k := pp.tp()
		rs, known := st.replicas[k]
		m, moving := st.moving[k]
		switch {
		case !known:
			out[k] = partitionState{failed: true, text: "failed: no such partition"}
		case moving && slices.Equal(m.target(), pp.Replicas):
			out[k] = partitionState{text: fmt.Sprintf("in progress (adding %s; removing %s)", orDash(joinInts(m.adding)), orDash(joinInts(m.removing)))}
		case moving:
			out[k] = partitionState{failed: true, text: fmt.Sprintf("failed: a reassignment to %s, not the plan's %s, is in progress", joinInts(m.target()), joinInts(pp.Replicas))}
		case slices.Equal(rs, pp.Replicas):
			out[k] = partitionState{complete: true, text: "complete"}
		default:
			out[k] = partitionState{failed: true, text: fmt.Sprintf("failed: replicas %s differ from the plan's %s and no reassignment is in progress", joinInts(rs), joinInts(pp.Replicas))}
		}
	}
	return out
}

// verifyPlan prints each partition's state; with w.wait, once every one is
// complete or one failed. Once all are complete the throttles are cleared
// (with clear). A failed partition is an error (exit status 1); one in
// progress is not, as with Kafka's tool: --wait is for scripts.
func verifyPlan(ctx context.Context, cl *kgo.Client, plan reassignPlan, w waitFlags, clear bool, stdout io.Writer) error {
	st, states, err := waitPlan(ctx, cl, plan, w, stdout)
	if err != nil {
		return err
	}
	complete, failed := 0, 0
	for _, pp := range plan.Partitions {
		s := states[pp.tp()]
		fmt.Fprintf(stdout, "%s: %s\n", pp.tp(), s.text)
		switch {
		case s.complete:
			complete++
		case s.failed:
			failed++
		}
	}
	n := len(plan.Partitions)
	switch {
	case failed > 0:
		return fmt.Errorf("%d of %d partitions failed", failed, n)
	case complete < n:
		fmt.Fprintf(stdout, "%d of %d partitions are still moving; the throttles stay until all are done.\n", n-complete, n)
		return nil
	}
	fmt.Fprintf(stdout, "All %d partitions are complete.\n", n)
	if clear {
		return clearThrottles(ctx, cl, st, plan.topics(), stdout)
	}
	return nil
}

// waitPlan returns the plan's partition states: at once, or with w.wait
// once none is in progress, looking every w.interval and telling when the
// count moving changes.
func waitPlan(ctx context.Context, cl *kgo.Client, plan reassignPlan, w waitFlags, stdout io.Writer) (*clusterState, map[tp]partitionState, error) {
	last := -1
	for {
		st, err := fetchState(ctx, cl, plan.topics())
		if err != nil {
			return nil, nil, err
		}
		states := planStates(st, plan)
		moving := 0
		for _, s := range states {
			if !s.complete && !s.failed {
				moving++
			}
		}
		if !*w.wait || moving == 0 {
			return st, states, nil
		}
		if moving != last {
			fmt.Fprintf(stdout, "Waiting: %d of %d partitions in progress.\n", moving, len(plan.Partitions))
			last = moving
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("--timeout: %d of %d partitions still in progress", moving, len(plan.Partitions))
		case <-time.After(*w.interval):
		}
	}
}

// cancelPlan cancels the reassignments in progress of the plan's
// partitions, then (with clear) clears the throttles.
func cancelPlan(ctx context.Context, cl *kgo.Client, plan reassignPlan, clear bool, stdout io.Writer) error {
	st, err := fetchState(ctx, cl, plan.topics())
	if err != nil {
		return err
	}
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	for _, pp := range plan.Partitions {
		if _, ok := st.moving[pp.tp()]; !ok {
			fmt.Fprintf(stdout, "%s: no reassignment in progress\n", pp.tp())
			continue
		}
		i := slices.IndexFunc(req.Topics, func(t kmsg.AlterPartitionAssignmentsRequestTopic) bool { return t.Topic == pp.Topic })
		if i < 0 {
			rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
			rt.Topic = pp.Topic
			req.Topics = append(req.Topics, rt)
			i = len(req.Topics) - 1
		}
		rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		rp.Partition, rp.Replicas = pp.Partition, nil // null: cancel
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	failed := 0
	if len(req.Topics) > 0 {
		failed, err = alterAssignments(ctx, cl, req, func(k tp, err error) {
			if err != nil {
				fmt.Fprintf(stdout, "%s: cancel failed: %v\n", k, err)
			} else {
				fmt.Fprintf(stdout, "%s: reassignment cancelled; back on %s\n", k, joinInts(slices.DeleteFunc(slices.Clone(st.replicas[k]), func(r int32) bool { return slices.Contains(st.moving[k].adding, r) })))
			}
		})
		if err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d cancels refused", failed)
	}
	if clear {
		return clearThrottles(ctx, cl, st, plan.topics(), stdout)
	}
	return nil
}
