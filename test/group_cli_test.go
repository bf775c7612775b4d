package test

import (
	"fmt"
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cliGroupConsumer starts a real franz-go group consumer of topic that
// commits only when told to. Close it with the returned function (also
// done at cleanup).
func cliGroupConsumer(t *testing.T, b *broker, group, topic string) (*kgo.Client, func()) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.ClientID("billing-worker"),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	closeFn := func() {
		if !closed {
			closed = true
			cl.Close() // leaves the group
		}
	}
	t.Cleanup(closeFn)
	return cl, closeFn
}

// cliPollRecords polls cl until it has n records, returned by partition.
func cliPollRecords(t *testing.T, cl *kgo.Client, n int) map[int32][]int64 {
	t.Helper()
	ctx := ctxTimeout(t, 60*time.Second)
	got := map[int32][]int64{}
	for total := 0; total < n; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", total, n, err)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], r.Offset)
			total++
		})
	}
	return got
}

// cliCommitted returns the group's committed offsets of topic, read with
// kadm, not with the CLI under test.
func cliCommitted(t *testing.T, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	offs, err := adm.FetchOffsets(ctxTimeout(t, 30*time.Second), group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for p, o := range offs[topic] {
		if o.Err != nil {
			t.Fatalf("committed offset of %s/%d: %v", topic, p, o.Err)
		}
		if o.At >= 0 {
			out[p] = o.At
		}
	}
	return out
}

// cliWaitGroupList runs `group list` until its output matches re.
func cliWaitGroupList(t *testing.T, b *broker, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := mustCLI(t, b, "", "group", "list")
		if rx.MatchString(r.stdout) {
			return r.stdout
		}
		if time.Now().After(deadline) {
			t.Fatalf("group list never matched %s; last:\n%s", re, r.stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cliMatchAll fails for every regexp out does not match.
func cliMatchAll(t *testing.T, what, out string, res ...string) {
	t.Helper()
	for _, re := range res {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("%s does not match %s:\n%s", what, re, out)
		}
	}
}

// TestCLIGroup drives runnel group list, describe, reset-offsets and delete
// against a real broker and a real franz-go group consumer.
func TestCLIGroup(t *testing.T) {
	b := startBroker(t, "", "--group-initial-rebalance-delay", "0s")
	adm := kadm.NewClient(b.client())
	mustCLI(t, b, "", "topic", "create", "events", "--partitions", "3")

	// Ten records a partition, a minute apart; partition 2 then loses its
	// first three, so its log start is 3. (Offsets 0-2 and 3-9 go in
	// separate batches, so the log start is a batch boundary.)
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	prod := b.client(kgo.DefaultProduceTopic("events"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, span := range [][2]int{{0, 3}, {3, 10}} {
		var recs []*kgo.Record
		for p := range 3 {
			for i := span[0]; i < span[1]; i++ {
				recs = append(recs, &kgo.Record{Partition: int32(p), Value: fmt.Appendf(nil, "p%d-%d", p, i),
					Timestamp: base.Add(time.Duration(i) * time.Minute)})
			}
		}
		if err := prod.ProduceSync(ctxTimeout(t, 30*time.Second), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	del, err := adm.DeleteRecords(ctxTimeout(t, 30*time.Second), kadm.Offsets{"events": {2: {Topic: "events", Partition: 2, At: 3}}})
	if err != nil || del.Error() != nil {
		t.Fatalf("delete records: %v %v", err, del.Error())
	}

	// A group consumer reads everything, then commits 4 on partition 0, 7
	// on partition 1 and nothing on partition 2.
	cons, closeCons := cliGroupConsumer(t, b, "billing", "events")
	cliPollRecords(t, cons, 27)
	committedCh := make(chan error, 1)
	cons.CommitOffsetsSync(ctxTimeout(t, 30*time.Second), map[string]map[int32]kgo.EpochOffset{
		"events": {0: {Epoch: -1, Offset: 4}, 1: {Epoch: -1, Offset: 7}},
	}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err == nil {
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					if err == nil {
						err = kerr.ErrorForCode(rp.ErrorCode)
					}
				}
			}
		}
		committedCh <- err
	})
	if err := <-committedCh; err != nil {
		t.Fatalf("group commit: %v", err)
	}
	member, _ := cons.GroupMetadata()
	if member == "" {
		t.Fatal("consumer has no member id")
	}
	m := regexp.QuoteMeta(member)

	t.Run("live", func(t *testing.T) {
		out := cliWaitGroupList(t, b, `(?m)^billing\s+Stable\s+consumer\s+1$`)
		cliMatchAll(t, "group list", out, `^GROUP\s+STATE\s+PROTOCOL-TYPE\s+MEMBERS\n`)
		if r := mustCLI(t, b, "", "group", "list", "--state", "empty,dead"); strings.Contains(r.stdout, "billing") {
			t.Errorf("group list --state empty,dead shows the live group:\n%s", r.stdout)
		}
		r := mustCLI(t, b, "", "group", "list", "--state", "Stable")
		cliMatchAll(t, "group list --state Stable", r.stdout, `(?m)^billing\s+Stable\s+consumer\s+1$`)

		r = mustCLI(t, b, "", "group", "describe", "billing")
		cliMatchAll(t, "group describe", r.stdout,
			`(?m)^Group: billing$`,
			`(?m)^State: Stable$`,
			`(?m)^Protocol type: consumer$`,
			`(?m)^Protocol: cooperative-sticky$`,
			`(?m)^Coordinator: 1 \(127\.0\.0\.1:\d+\)$`,
			`(?m)^Members: 1$`,
			`(?m)^MEMBER-ID\s+INSTANCE-ID\s+CLIENT-ID\s+HOST\s+ASSIGNMENT$`,
			`(?m)^`+m+`\s+-\s+billing-worker\s+\S*127\.0\.0\.1\S*\s+events\(0,1,2\)$`,
			`(?m)^TOPIC\s+PARTITION\s+COMMITTED\s+LOG-END\s+LAG\s+MEMBER$`,
			`(?m)^events\s+0\s+4\s+10\s+6\s+`+m+`$`,
			`(?m)^events\s+1\s+7\s+10\s+3\s+`+m+`$`,
			`(?m)^events\s+2\s+-\s+10\s+-\s+`+m+`$`,
		)

		// A live group's offsets are not reset, dry run or not.
		for _, execute := range []bool{false, true} {
			args := []string{"group", "reset-offsets", "billing", "--topic", "events", "--to-earliest"}
			if execute {
				args = append(args, "--execute")
			}
			r = runCLI(t, b, "", args...)
			if r.code != 1 || !strings.Contains(r.stderr, `group "billing" is active (state Stable, 1 member)`) ||
				!strings.Contains(r.stderr, "stop its consumers first") || r.stdout != "" {
				t.Errorf("reset of a live group (execute %v): exit %d, stdout %q, stderr %q", execute, r.code, r.stdout, r.stderr)
			}
		}
		if got := cliCommitted(t, adm, "billing", "events"); !maps.Equal(got, map[int32]int64{0: 4, 1: 7}) {
			t.Errorf("committed after refused resets = %v", got)
		}

		r = runCLI(t, b, "", "group", "delete", "billing")
		if r.code != 1 || !strings.Contains(r.stderr, `cannot delete group "billing": it has active members; stop its consumers first (NON_EMPTY_GROUP`) {
			t.Errorf("delete of a live group: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	closeCons()
	cliWaitGroupList(t, b, `(?m)^billing\s+Empty\s+\S+\s+0$`)

	t.Run("empty", func(t *testing.T) {
		r := mustCLI(t, b, "", "group", "describe", "billing")
		cliMatchAll(t, "group describe", r.stdout,
			`(?m)^State: Empty$`,
			`(?m)^Members: 0$`,
			`(?m)^events\s+0\s+4\s+10\s+6\s+-$`,
			`(?m)^events\s+1\s+7\s+10\s+3\s+-$`,
			`(?m)^events\s+2\s+-\s+10\s+-\s+-$`,
		)
		if strings.Contains(r.stdout, "MEMBER-ID") {
			t.Errorf("describe of an empty group prints a member table:\n%s", r.stdout)
		}
	})

	// reset runs reset-offsets on billing/events and checks the plan
	// printed and the offsets committed afterwards.
	reset := func(t *testing.T, plan string, want map[int32]int64, args ...string) {
		t.Helper()
		r := mustCLI(t, b, "", append([]string{"group", "reset-offsets", "billing", "--topic", "events"}, args...)...)
		if r.stdout != plan {
			t.Errorf("reset-offsets %q printed\n%s\nwant\n%s", args, r.stdout, plan)
		}
		execute := strings.Contains(strings.Join(args, " "), "--execute")
		if execute && !regexp.MustCompile(`^committed \d+ offsets? of group billing\n$`).MatchString(r.stderr) {
			t.Errorf("reset-offsets %q: stderr %q", args, r.stderr)
		}
		if !execute && !strings.Contains(r.stderr, "dry run") {
			t.Errorf("reset-offsets %q: stderr %q, want a dry-run notice", args, r.stderr)
		}
		if got := cliCommitted(t, adm, "billing", "events"); !maps.Equal(got, want) {
			t.Errorf("after reset-offsets %q: committed %v, want %v", args, got, want)
		}
	}
	const hdr = "TOPIC   PARTITION  COMMITTED  NEW\n"

	t.Run("reset", func(t *testing.T) {
		toStart := hdr + "events  0          4          0\nevents  1          7          0\nevents  2          -          3\n"
		// Without --execute nothing changes.
		reset(t, toStart, map[int32]int64{0: 4, 1: 7}, "--to-earliest")
		// With it the offsets become the log start.
		reset(t, toStart, map[int32]int64{0: 0, 1: 0, 2: 3}, "--to-earliest", "--execute")

		reset(t, hdr+"events  1          0          10\n", map[int32]int64{0: 0, 1: 10, 2: 3},
			"--to-latest", "--partitions", "1", "--execute")
		reset(t, hdr+"events  0          0          5\nevents  1          10         5\nevents  2          3          5\n",
			map[int32]int64{0: 5, 1: 5, 2: 5}, "--execute", "--to-offset", "5")
		// Clamped to the log start (partition 2) and end.
		reset(t, hdr+"events  0          5          1\nevents  2          5          3\n",
			map[int32]int64{0: 1, 1: 5, 2: 3}, "--to-offset", "1", "--partitions", "0,2", "--execute")
		reset(t, hdr+"events  1          5          10\n", map[int32]int64{0: 1, 1: 10, 2: 3},
			"--to-offset", "99", "--partitions", "1", "--execute")
		reset(t, hdr+"events  0          1          0\nevents  1          10         6\nevents  2          3          3\n",
			map[int32]int64{0: 0, 1: 6, 2: 3}, "--shift-by", "-4", "--execute")
		reset(t, hdr+"events  1          6          8\n", map[int32]int64{0: 0, 1: 8, 2: 3},
			"--shift-by", "2", "--partitions", "1", "--execute")
		// Between two records' times, the later record; after every
		// record, the end; before the log start, the log start.
		reset(t, hdr+"events  0          0          7\nevents  1          8          7\nevents  2          3          7\n",
			map[int32]int64{0: 7, 1: 7, 2: 7}, "--to-datetime", "2024-05-01T12:06:30Z", "--execute")
		reset(t, hdr+"events  0          7          10\nevents  1          7          10\nevents  2          7          10\n",
			map[int32]int64{0: 10, 1: 10, 2: 10}, "--to-datetime", "2030-01-01T00:00:00Z", "--execute")
		reset(t, hdr+"events  0          10         1\nevents  2          10         3\n",
			map[int32]int64{0: 1, 1: 10, 2: 3}, "--to-datetime", "2024-05-01T14:01:00+02:00", "--partitions", "2,0", "--execute")
	})

	t.Run("resume", func(t *testing.T) {
		// A consumer joining the group starts where the reset put it.
		reset(t, hdr+"events  0          1          8\nevents  1          10         8\nevents  2          3          8\n",
			map[int32]int64{0: 8, 1: 8, 2: 8}, "--to-offset", "8", "--execute")
		cons, closeCons := cliGroupConsumer(t, b, "billing", "events")
		got := cliPollRecords(t, cons, 6)
		closeCons()
		for p := range int32(3) {
			if fmt.Sprint(got[p]) != "[8 9]" {
				t.Errorf("resumed consumer read offsets %v of partition %d, want [8 9]", got[p], p)
			}
		}
		cliWaitGroupList(t, b, `(?m)^billing\s+Empty\s+\S+\s+0$`)
	})

	t.Run("bad-reset", func(t *testing.T) {
		cases := []struct {
			args []string
			err  string
		}{
			{[]string{"billing", "--topic", "events"}, "say where to reset to"},
			{[]string{"billing", "--topic", "events", "--to-earliest", "--to-offset", "0"}, "give only one of --to-earliest, --to-offset"},
			{[]string{"billing", "--to-earliest"}, "--topic is required"},
			{[]string{"--topic", "events", "--to-earliest"}, "missing GROUP"},
			{[]string{"billing", "--topic", "nope", "--to-earliest"}, `unknown topic "nope"`},
			{[]string{"billing", "--topic", "events", "--to-earliest", "--partitions", "0,7"}, "topic events has no partition 7"},
			{[]string{"billing", "--topic", "events", "--to-earliest", "--partitions", "x"}, "--partitions: want comma-separated partition numbers"},
			{[]string{"billing", "--topic", "events", "--to-offset", "-1"}, "--to-offset must not be negative"},
			{[]string{"billing", "--topic", "events", "--to-datetime", "yesterday"}, "--to-datetime: want an RFC 3339 time"},
			{[]string{"nobody", "--topic", "events", "--shift-by", "1"}, `group "nobody" has no committed offset for events/0`},
		}
		for _, c := range cases {
			r := runCLI(t, b, "", append([]string{"group", "reset-offsets"}, c.args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, c.err) {
				t.Errorf("reset-offsets %q: exit %d, stderr %q; want 1 and %q", c.args, r.code, r.stderr, c.err)
			}
		}
		if got := cliCommitted(t, adm, "billing", "events"); !maps.Equal(got, map[int32]int64{0: 8, 1: 8, 2: 8}) {
			t.Errorf("committed after refused resets = %v", got)
		}
	})

	t.Run("delete", func(t *testing.T) {
		// Resetting a group that does not exist yet creates it, with
		// offsets and no members.
		mustCLI(t, b, "", "group", "reset-offsets", "fresh", "--topic", "events", "--to-latest", "--execute")
		if got := cliCommitted(t, adm, "fresh", "events"); !maps.Equal(got, map[int32]int64{0: 10, 1: 10, 2: 10}) {
			t.Errorf("fresh group committed %v", got)
		}
		cliMatchAll(t, "group list", mustCLI(t, b, "", "group", "list").stdout,
			`(?m)^billing\s+Empty\s+\S+\s+0$`, `(?m)^fresh\s+Empty\s+\S+\s+0$`)

		r := mustCLI(t, b, "", "group", "delete", "billing", "fresh")
		if r.stdout != "deleted group billing\ndeleted group fresh\n" {
			t.Errorf("delete said %q", r.stdout)
		}
		if r := mustCLI(t, b, "", "group", "list"); r.stdout != "GROUP  STATE  PROTOCOL-TYPE  MEMBERS\n" {
			t.Errorf("group list after delete = %q", r.stdout)
		}
		if got := cliCommitted(t, adm, "billing", "events"); len(got) != 0 {
			t.Errorf("deleted group still has offsets %v", got)
		}
		r = runCLI(t, b, "", "group", "describe", "billing")
		if r.code != 1 || !strings.Contains(r.stderr, `group "billing" does not exist`) {
			t.Errorf("describe of a deleted group: exit %d, stderr %q", r.code, r.stderr)
		}
		r = runCLI(t, b, "", "group", "delete", "billing")
		if r.code != 1 || !strings.Contains(r.stderr, `cannot delete group "billing": it does not exist (GROUP_ID_NOT_FOUND`) {
			t.Errorf("delete of a deleted group: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("usage", func(t *testing.T) {
		r := mustCLI(t, nil, "", "group", "--help")
		if !strings.Contains(r.stdout, "reset-offsets GROUP") {
			t.Errorf("group --help = %q", r.stdout)
		}
		for _, sub := range []string{"list", "describe", "delete", "reset-offsets"} {
			r := mustCLI(t, nil, "", "group", sub, "--help")
			if !strings.HasPrefix(r.stderr, "Usage: runnel group "+sub) || !strings.Contains(r.stderr, "--brokers") {
				t.Errorf("group %s --help = %q", sub, r.stderr)
			}
		}
		if r := runCLI(t, nil, "", "group", "frob"); r.code != 1 || !strings.Contains(r.stderr, `group: unknown command "frob"`) {
			t.Errorf("group frob: exit %d, stderr %q", r.code, r.stderr)
		}
		if r := runCLI(t, b, "", "group", "list", "--state", "busy"); r.code != 1 || !strings.Contains(r.stderr, `--state: unknown state "busy"`) {
			t.Errorf("group list --state busy: exit %d, stderr %q", r.code, r.stderr)
		}
	})
}
