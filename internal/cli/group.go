package cli

// runnel group: list, describe and delete consumer groups and reset their
// committed offsets, through kadm, so it works against any Kafka-compatible
// broker.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const groupUsage = `Usage: runnel group COMMAND [flags]

Inspect and manage consumer groups on any Kafka-compatible broker.

Commands:
  list                  list groups with their state, protocol type and members
  describe GROUP...     show members, assignments, committed offsets and lag
  delete GROUP...       delete groups without members, and their offsets
  reset-offsets GROUP   move a group's committed offsets of a topic (dry run
                        unless --execute)

Run runnel group COMMAND --help for the flags of each.
`

// Group runs runnel group: list, describe and delete groups; reset
// their committed offsets.
func Group(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, groupUsage)
		return errors.New("group: missing command (list, describe, delete or reset-offsets)")
	}
	switch args[0] {
	case "list":
		return groupList(args[1:], stdout, stderr)
	case "describe":
		return groupDescribe(args[1:], stdout, stderr)
	case "delete":
		return groupDelete(args[1:], stdout, stderr)
	case "reset-offsets":
		return groupResetOffsets(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, groupUsage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, groupUsage)
	return fmt.Errorf("group: unknown command %q", args[0])
}

// groupStates are the states of a classic consumer group, as Kafka names
// them.
var groupStates = []string{"Empty", "Stable", "PreparingRebalance", "CompletingRebalance", "Dead"}

// parseStates turns a --state value (comma-separated, any case) into
// Kafka's state names.
func parseStates(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		i := slices.IndexFunc(groupStates, func(st string) bool { return strings.EqualFold(st, f) })
		if i < 0 {
			return nil, fmt.Errorf("--state: unknown state %q (want %s)", f, strings.Join(groupStates, ", "))
		}
		if !slices.Contains(out, groupStates[i]) {
			out = append(out, groupStates[i])
		}
	}
	return out, nil
}

// orDash returns s, or "-" when s is empty, for table cells.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// offsetCell formats an offset for a table, "-" when there is none.
func offsetCell(o int64, ok bool) string {
	if !ok || o < 0 {
		return "-"
	}
	return strconv.FormatInt(o, 10)
}

// eachFailed reports the failures of a command over several groups: one
// failure is returned as is; several are printed and summed up.
func eachFailed(stderr io.Writer, errs []error, total int, what string) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	for _, err := range errs {
		fmt.Fprintf(stderr, "runnel: %v\n", err)
	}
	return fmt.Errorf("%d of %d groups could not be %s", len(errs), total, what)
}

func groupList(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel group list", "runnel group list [flags]",
		`List consumer groups, sorted by name, with their state, protocol type
("consumer" for Kafka consumers, "-" for a group that only holds committed
offsets) and number of members.`, stderr)
	conn := ConnFlags(fs)
	state := fs.String("state", "", "show only groups in these comma-separated `STATES`:\n"+strings.Join(groupStates, ", ")+" (any case)")
	if err := ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	states, err := parseStates(*state)
	if err != nil {
		return err
	}
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	adm := kadm.NewClient(cl)
	listed, err := adm.ListGroups(ctx, states...)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	// Member counts come from one DescribeGroups per coordinator; if that
	// fails the list is still worth printing.
	var described kadm.DescribedGroups
	if names := listed.Groups(); len(names) > 0 {
		described, _ = adm.DescribeGroups(ctx, names...)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tPROTOCOL-TYPE\tMEMBERS")
	for _, g := range listed.Sorted() {
		members := "-"
		if d, ok := described[g.Group]; ok && d.Err == nil {
			members = strconv.Itoa(len(d.Members))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Group, orDash(g.State), orDash(g.ProtocolType), members)
	}
	return tw.Flush()
}

func groupDescribe(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel group describe", "runnel group describe GROUP [GROUP...] [flags]",
		`Show a consumer group: its state, protocol, coordinator and members (member
id, instance id, client id, host and assigned partitions), then one row per
partition of every topic the group subscribes to, is assigned or has
committed offsets for: the committed offset ("-" if none), the log end offset,
the lag (log end minus committed) and the member the partition is assigned to.`, stderr)
	conn := ConnFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errors.New("missing GROUP (see --help)")
	}
	groups := uniq(pos)
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	adm := kadm.NewClient(cl)
	described, err := adm.DescribeGroups(ctx, groups...)
	if err != nil && len(described) == 0 {
		return fmt.Errorf("describe groups: %w", err)
	}
	var errs []error
	printed := 0
	for _, name := range groups {
		d, ok := described[name]
		if !ok {
			errs = append(errs, fmt.Errorf("describe group %q: no answer from its coordinator", name))
			continue
		}
		if d.Err != nil {
			errs = append(errs, fmt.Errorf("describe group %q: %w", name, withMessage(d.Err, d.ErrMessage)))
			continue
		}
		if printed > 0 {
			fmt.Fprintln(stdout)
		}
		if err := describeOne(ctx, adm, d, stdout); err != nil {
			errs = append(errs, err)
			continue
		}
		printed++
	}
	return eachFailed(stderr, errs, len(groups), "described")
}

// errNoGroup is a group the coordinator does not know.
var errNoGroup = errors.New("does not exist")

// describeOne prints one described group with its offsets and lag.
func describeOne(ctx context.Context, adm *kadm.Client, d kadm.DescribedGroup, w io.Writer) error {
	commits, err := adm.FetchOffsets(ctx, d.Group)
	if err != nil {
		return fmt.Errorf("fetch committed offsets of group %q: %w", d.Group, err)
	}
	if d.State == "Dead" && len(d.Members) == 0 && len(commits) == 0 {
		return fmt.Errorf("group %q %w", d.Group, errNoGroup)
	}

	// owner maps each assigned partition to its member.
	type tp struct {
		topic string
		part  int32
	}
	owner := map[tp]string{}
	topics := map[string]bool{}
	for _, t := range d.JoinTopics() {
		topics[t] = true
	}
	for _, m := range d.Members {
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				topics[t.Topic] = true
				for _, p := range t.Partitions {
					owner[tp{t.Topic, p}] = m.MemberID
				}
			}
		}
	}
	for t := range commits {
		topics[t] = true
	}
	var ends kadm.ListedOffsets
	if len(topics) > 0 {
		names := make([]string, 0, len(topics))
		for t := range topics {
			names = append(names, t)
		}
		slices.Sort(names)
		ends, err = adm.ListEndOffsets(ctx, names...)
		if err != nil && len(ends) == 0 {
			return fmt.Errorf("list end offsets of %s: %w", strings.Join(names, ","), err)
		}
	}
	rows := map[tp]bool{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Partition >= 0 {
			rows[tp{o.Topic, o.Partition}] = true
		}
	})
	for p := range owner {
		rows[p] = true
	}
	commits.Each(func(o kadm.OffsetResponse) { rows[tp{o.Topic, o.Partition}] = true })
	order := make([]tp, 0, len(rows))
	for p := range rows {
		order = append(order, p)
	}
	slices.SortFunc(order, func(a, b tp) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.part - b.part)
	})

	c := d.Coordinator
	fmt.Fprintf(w, "Group: %s\nState: %s\nProtocol type: %s\nProtocol: %s\nCoordinator: %d (%s)\nMembers: %d\n",
		d.Group, d.State, orDash(d.ProtocolType), orDash(d.Protocol), c.NodeID, net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port))), len(d.Members))
	if len(d.Members) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER-ID\tINSTANCE-ID\tCLIENT-ID\tHOST\tASSIGNMENT")
		for _, m := range d.Members {
			inst := "-"
			if m.InstanceID != nil {
				inst = *m.InstanceID
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.MemberID, inst, orDash(m.ClientID), orDash(m.ClientHost), assignmentCell(m))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if len(order) == 0 {
		fmt.Fprintln(w, "No committed offsets and no subscribed topics.")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tLOG-END\tLAG\tMEMBER")
	for _, p := range order {
		committed, hasCommit := int64(-1), false
		if o, ok := commits.Lookup(p.topic, p.part); ok && o.Err == nil && o.At >= 0 {
			committed, hasCommit = o.At, true
		}
		end, hasEnd := int64(-1), false
		if o, ok := ends.Lookup(p.topic, p.part); ok && o.Err == nil && o.Offset >= 0 {
			end, hasEnd = o.Offset, true
		}
		lag := "-"
		if hasCommit && hasEnd {
			lag = strconv.FormatInt(max(end-committed, 0), 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", p.topic, p.part, offsetCell(committed, hasCommit),
			offsetCell(end, hasEnd), lag, orDash(owner[p]))
	}
	return tw.Flush()
}

// assignmentCell formats a member's assigned partitions as
// topic(0,1,2) topic2(0), or "-".
func assignmentCell(m kadm.DescribedGroupMember) string {
	a, ok := m.Assigned.AsConsumer()
	if !ok || a == nil || len(a.Topics) == 0 {
		return "-"
	}
	ts := slices.Clone(a.Topics)
	slices.SortFunc(ts, func(x, y kmsg.ConsumerMemberAssignmentTopic) int { return strings.Compare(x.Topic, y.Topic) })
	var parts []string
	for _, t := range ts {
		ps := slices.Clone(t.Partitions)
		slices.Sort(ps)
		parts = append(parts, t.Topic+"("+joinInts(ps)+")")
	}
	return strings.Join(parts, " ")
}

// withMessage adds a broker's error message to a Kafka error.
func withMessage(err error, msg string) error {
	if msg == "" {
		return err
	}
	return fmt.Errorf("%w (%s)", err, msg)
}

func uniq(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func groupDelete(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel group delete", "runnel group delete GROUP [GROUP...] [flags]",
		`Delete consumer groups and their committed offsets. Only a group without
members can be deleted: stop its consumers first. Exits 1 if any group
could not be deleted.`, stderr)
	conn := ConnFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errors.New("missing GROUP (see --help)")
	}
	groups := uniq(pos)
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	adm := kadm.NewClient(cl)
	res, err := adm.DeleteGroups(ctx, groups...)
	if err != nil && len(res) == 0 {
		return fmt.Errorf("delete groups: %w", err)
	}
	var errs []error
	for _, g := range groups {
		r, ok := res[g]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("cannot delete group %q: no answer from its coordinator", g))
		case errors.Is(r.Err, kerr.NonEmptyGroup):
			errs = append(errs, fmt.Errorf("cannot delete group %q: it has active members; stop its consumers first (%w)",
				g, withMessage(r.Err, r.ErrMessage)))
		case errors.Is(r.Err, kerr.GroupIDNotFound):
			errs = append(errs, fmt.Errorf("cannot delete group %q: it %w (%w)", g, errNoGroup, r.Err))
		case r.Err != nil:
			errs = append(errs, fmt.Errorf("cannot delete group %q: %w", g, withMessage(r.Err, r.ErrMessage)))
		default:
			fmt.Fprintf(stdout, "deleted group %s\n", g)
		}
	}
	return eachFailed(stderr, errs, len(groups), "deleted")
}

// splitIDs reads a comma-separated list of numbers of 0 or more that
// fit an int32, in order, duplicates kept; bad is the first that is not
// one.
func splitIDs(s string) (ids []int32, bad string) {
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseInt(f, 10, 32)
		if err != nil || n < 0 {
			return nil, f
		}
		ids = append(ids, int32(n))
	}
	return ids, ""
}

// parsePartitions parses --partitions: comma-separated partition numbers.
func parsePartitions(s string) ([]int32, error) {
	var out []int32
	all, bad := splitIDs(s)
	if bad != "" {
		return nil, fmt.Errorf("--partitions: want comma-separated partition numbers, got %q", s)
	}
	for _, n := range all {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--partitions: no partition given")
	}
	slices.Sort(out)
	return out, nil
}

// offsetsOf returns the offsets kadm listed for parts of topic, or the
// first error among them.
func offsetsOf(l kadm.ListedOffsets, err error, what, topic string, parts []int32) (map[int32]int64, error) {
	if err != nil && len(l) == 0 {
		return nil, fmt.Errorf("list %s offsets of %s: %w", what, topic, err)
	}
	out := make(map[int32]int64, len(parts))
	for _, p := range parts {
		o, ok := l.Lookup(topic, p)
		if !ok {
			if err == nil {
				err = errors.New("no answer from the broker")
			}
			return nil, fmt.Errorf("list %s offsets of %s/%d: %w", what, topic, p, err)
		}
		if o.Err != nil {
			return nil, fmt.Errorf("list %s offsets of %s/%d: %w", what, topic, p, o.Err)
		}
		out[p] = o.Offset
	}
	return out, nil
}

func groupResetOffsets(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel group reset-offsets",
		"runnel group reset-offsets GROUP --topic TOPIC (--to-earliest | --to-latest |\n         --to-offset N | --to-datetime TIME | --shift-by N) [--partitions LIST] [--execute] [flags]",
		`Move a consumer group's committed offsets of a topic, as
kafka-consumer-groups --reset-offsets does. Prints the plan (topic,
partition, committed offset, new offset) and commits it only with --execute.
The group must have no members (state Empty, or no group yet): stop its
consumers first. New offsets are clamped to the partition's log start and
log end. Exactly one of:

  --to-earliest       the log start offset
  --to-latest         the log end offset
  --to-offset N       offset N
  --to-datetime TIME  the first record with a timestamp at or after an
                      RFC 3339 TIME such as 2024-05-01T12:00:00Z (the log
                      end if there is none)
  --shift-by N        the committed offset plus N (negative: back); every
                      partition reset must have a committed offset`, stderr)
	conn := ConnFlags(fs)
	topic := fs.String("topic", "", "the `TOPIC` whose offsets to reset (required)")
	partList := fs.String("partitions", "", "reset only the partitions in `LIST`, comma-separated, e.g. 0,2 (default: all)")
	toEarliest := fs.Bool("to-earliest", false, "reset to the log start offset")
	toLatest := fs.Bool("to-latest", false, "reset to the log end offset")
	toOffset := fs.Int64("to-offset", 0, "reset to offset `N`")
	toDatetime := fs.String("to-datetime", "", "reset to the first record at or after this RFC 3339 `TIME`")
	shiftBy := fs.Int64("shift-by", 0, "move the committed offset by `N` (negative: back)")
	execute := fs.Bool("execute", false, "commit the new offsets (without it: only print the plan)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, "GROUP"); err != nil {
		return err
	}
	group := pos[0]
	if *topic == "" {
		return errors.New("--topic is required (see --help)")
	}
	var strategies []string
	if *toEarliest {
		strategies = append(strategies, "--to-earliest")
	}
	if *toLatest {
		strategies = append(strategies, "--to-latest")
	}
	fs.Visit(func(f *flag.Flag) { // set, even to 0 or ""
		switch f.Name {
		case "to-offset", "to-datetime", "shift-by":
			strategies = append(strategies, "--"+f.Name)
		}
	})
	switch len(strategies) {
	case 0:
		return errors.New("say where to reset to: --to-earliest, --to-latest, --to-offset, --to-datetime or --shift-by")
	case 1:
	default:
		return fmt.Errorf("give only one of %s", strings.Join(strategies, ", "))
	}
	strategy := strategies[0]
	if strategy == "--to-offset" && *toOffset < 0 {
		return fmt.Errorf("--to-offset must not be negative, got %d", *toOffset)
	}
	var atMilli int64
	if strategy == "--to-datetime" {
		t, err := time.Parse(time.RFC3339Nano, *toDatetime)
		if err != nil {
			return fmt.Errorf("--to-datetime: want an RFC 3339 time such as 2024-05-01T12:00:00Z, got %q", *toDatetime)
		}
		// Timestamps are whole milliseconds: a time inside a millisecond
		// means the next one, so no earlier record is included.
		atMilli = t.UnixMilli()
		if t.After(time.UnixMilli(atMilli)) {
			atMilli++
		}
		if atMilli < 0 {
			return fmt.Errorf("--to-datetime: %s is before 1970", *toDatetime)
		}
	}
	var only []int32
	if *partList != "" {
		if only, err = parsePartitions(*partList); err != nil {
			return err
		}
	}

	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	adm := kadm.NewClient(cl)

	if err := checkInactive(ctx, adm, group); err != nil {
		return err
	}
	md, err := TopicMetadata(ctx, cl, *topic)
	if err != nil {
		return err
	}
	parts, _ := PartitionIDs(md, -1)
	if only != nil {
		for _, p := range only {
			if !slices.Contains(parts, p) {
				return fmt.Errorf("--partitions: topic %s has no partition %d (it has 0..%d)", *topic, p, len(parts)-1)
			}
		}
		parts = only
	}
	commits, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return fmt.Errorf("fetch committed offsets of group %q: %w", group, err)
	}
	committed := map[int32]int64{}
	for _, p := range parts {
		if o, ok := commits.Lookup(*topic, p); ok {
			if o.Err != nil {
				return fmt.Errorf("fetch committed offset of group %q for %s/%d: %w", group, *topic, p, o.Err)
			}
			if o.At >= 0 {
				committed[p] = o.At
			}
		}
	}
	l, lerr := adm.ListStartOffsets(ctx, *topic)
	starts, err := offsetsOf(l, lerr, "start", *topic, parts)
	if err != nil {
		return err
	}
	l, lerr = adm.ListEndOffsets(ctx, *topic)
	ends, err := offsetsOf(l, lerr, "end", *topic, parts)
	if err != nil {
		return err
	}
	var atTime map[int32]int64
	if strategy == "--to-datetime" {
		l, lerr = adm.ListOffsetsAfterMilli(ctx, atMilli, *topic)
		if atTime, err = offsetsOf(l, lerr, "by-time", *topic, parts); err != nil {
			return err
		}
	}

	plan := make(map[int32]int64, len(parts))
	for _, p := range parts {
		var o int64
		switch strategy {
		case "--to-earliest":
			o = starts[p]
		case "--to-latest":
			o = ends[p]
		case "--to-offset":
			o = *toOffset
		case "--to-datetime":
			o = atTime[p]
			if o < 0 { // no record at or after the time
				o = ends[p]
			}
		case "--shift-by":
			c, ok := committed[p]
			if !ok {
				return fmt.Errorf("--shift-by: group %q has no committed offset for %s/%d to shift (use --partitions, or another --to-* option)", group, *topic, p)
			}
			o = c + *shiftBy
		}
		plan[p] = min(max(o, starts[p]), ends[p])
	}

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tNEW")
	for _, p := range parts {
		c, ok := committed[p]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", *topic, p, offsetCell(c, ok), plan[p])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !*execute {
		fmt.Fprintln(stderr, "dry run: nothing committed; add --execute to commit these offsets")
		return nil
	}

	offs := kadm.Offsets{}
	for _, p := range parts {
		offs.Add(kadm.Offset{Topic: *topic, Partition: p, At: plan[p], LeaderEpoch: -1})
	}
	res, err := adm.CommitOffsets(ctx, group, offs)
	if err != nil {
		return fmt.Errorf("commit offsets of group %q: %w", group, err)
	}
	var failed []string
	for _, r := range res.Sorted() {
		if r.Err != nil {
			msg := r.Err.Error()
			if errors.Is(r.Err, kerr.UnknownMemberID) || errors.Is(r.Err, kerr.RebalanceInProgress) || errors.Is(r.Err, kerr.IllegalGeneration) {
				msg += " (a consumer joined the group meanwhile?)"
			}
			failed = append(failed, fmt.Sprintf("%s/%d: %s", r.Topic, r.Partition, msg))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("commit offsets of group %q failed for %s", group, strings.Join(failed, "; "))
	}
	noun := "offsets"
	if len(parts) == 1 {
		noun = "offset"
	}
	fmt.Fprintf(stderr, "committed %d %s of group %s\n", len(parts), noun, group)
	return nil
}

// checkInactive refuses to reset the offsets of a group with members, as
// the broker would only take a commit from them.
func checkInactive(ctx context.Context, adm *kadm.Client, group string) error {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil && len(described) == 0 {
		return fmt.Errorf("describe group %q: %w", group, err)
	}
	d, ok := described[group]
	if !ok {
		return fmt.Errorf("describe group %q: no answer from its coordinator", group)
	}
	if d.Err != nil {
		return fmt.Errorf("describe group %q: %w", group, withMessage(d.Err, d.ErrMessage))
	}
	switch d.State {
	case "Empty", "Dead", "":
		if len(d.Members) == 0 {
			return nil
		}
	}
	n := "members"
	if len(d.Members) == 1 {
		n = "member"
	}
	return fmt.Errorf("group %q is active (state %s, %d %s): offsets can only be reset while it has no members; stop its consumers first",
		group, d.State, len(d.Members), n)
}
