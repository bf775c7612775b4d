package test

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestConfigsAcrossClients changes and reads topic and broker configs on
// the real binary with kadm, kafka-python (legacy AlterConfigs and
// DescribeConfigs) and the CLI, and asks for the offset of the largest
// timestamp (ListOffsets -3) with kadm and with kcat (librdkafka).
func TestConfigsAcrossClients(t *testing.T) {
	b := startBroker(t, "")
	cl := b.client()
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "cfg"); err != nil {
		t.Fatal(err)
	}

	t.Run("kadm", func(t *testing.T) {
		resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: "segment.ms", Value: kmsg.StringPtr("3600000")},
			{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kmsg.StringPtr("compact")}}, "cfg")
		if err == nil {
			err = resps[0].Err
		}
		if err != nil {
			t.Fatal(err)
		}
		rc, err := adm.DescribeTopicConfigs(ctx, "cfg")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, c := range rc[0].Configs {
			got[c.Key] = c.MaybeValue() + "/" + c.Source.String()
		}
		for k, want := range map[string]string{"segment.ms": "3600000/DYNAMIC_TOPIC_CONFIG",
			"cleanup.policy": "delete,compact/DYNAMIC_TOPIC_CONFIG", "retention.ms": "604800000/DEFAULT_CONFIG"} {
			if got[k] != want {
				t.Errorf("%s: %s, want %s", k, got[k], want)
			}
		}
		resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.ms", Value: kmsg.StringPtr("0")}}, "cfg")
		if err != nil || resps[0].Err == nil || !strings.Contains(resps[0].Err.Error(), "INVALID_CONFIG") {
			t.Errorf("segment.ms=0: %v %v, want INVALID_CONFIG", err, resps)
		}
		resps, err = adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "log.roll.ms", Value: kmsg.StringPtr("7200000")}})
		if err == nil {
			err = resps[0].Err
		}
		if err != nil {
			t.Fatal(err)
		}
		bc, err := adm.DescribeBrokerConfigs(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range bc[0].Configs {
			if c.Key == "log.roll.ms" && (c.MaybeValue() != "7200000" || c.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig) {
				t.Errorf("log.roll.ms: %s from %v", c.MaybeValue(), c.Source)
			}
		}
	})

	t.Run("kafka-python", func(t *testing.T) {
		py := offsetsPython(t)
		out, err := exec.CommandContext(ctx, py, filepath.Join("testdata", "configs.py"), b.addr, "cfg", "1").Output()
		if err != nil {
			t.Fatalf("configs.py: %v\n%s", err, out)
		}
		var got struct {
			Errors [][]any          `json:"errors"`
			Topic  map[string][]any `json:"topic"`
			Broker map[string][]any `json:"broker"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("configs.py printed %s: %v", out, err)
		}
		if len(got.Errors) > 0 {
			t.Fatalf("errors: %v", got.Errors)
		}
		// The legacy API replaces the topic's configs: segment.ms and
		// cleanup.policy, set above, are back to their defaults, segment.ms
		// the cluster-wide log.roll.ms set above.
		for k, want := range map[string]string{"retention.ms": "3600000", "segment.ms": "7200000", "cleanup.policy": "delete"} {
			if v := got.Topic[k]; len(v) == 0 || v[0] != want {
				t.Errorf("topic %s: %v, want %s", k, v, want)
			}
		}
		if v := got.Broker["log.cleaner.io.max.bytes.per.second"]; len(v) < 4 || v[0] != "1048576" || v[1] != float64(2) || v[2] != false {
			t.Errorf("broker log.cleaner.io.max.bytes.per.second: %v, want 1048576 from DYNAMIC_BROKER_CONFIG, dynamic", v)
		}
		if v := got.Broker["num.partitions"]; len(v) < 4 || v[2] != true {
			t.Errorf("broker num.partitions: %v, want read-only", v)
		}
	})

	t.Run("cli", func(t *testing.T) {
		mustCLI(t, b, "", "topic", "alter-config", "cfg", "--set", "max.message.bytes=4096", "--delete", "retention.ms")
		r := mustCLI(t, b, "", "topic", "describe", "cfg")
		for _, re := range []string{`(?m)^\s+max\.message\.bytes\s+4096\s+\(set\)$`, `(?m)^\s+retention\.ms\s+604800000\s+\(default\)$`} {
			if !regexp.MustCompile(re).MatchString(r.stdout) {
				t.Errorf("describe after alter-config does not match %s:\n%s", re, r.stdout)
			}
		}
		if r := runCLI(t, b, "", "topic", "alter-config", "cfg", "--set", "retention.ms=soon"); r.code != 1 || !strings.Contains(r.stderr, "INVALID_CONFIG") {
			t.Errorf("a bad value: exit %d, stderr %q", r.code, r.stderr)
		}
		mustCLI(t, b, "", "cluster", "config", "--broker", "1", "--set", "log.level=info")
		r = mustCLI(t, b, "", "cluster", "config", "--broker", "1")
		for _, re := range []string{`(?m)^log\.level\s+info\s+DYNAMIC_BROKER_CONFIG\s+dynamic$`,
			`(?m)^log\.roll\.ms\s+7200000\s+DYNAMIC_DEFAULT_BROKER_CONFIG\s+dynamic$`,
			`(?m)^num\.partitions\s+1\s+DEFAULT_CONFIG\s+read-only$`} {
			if !regexp.MustCompile(re).MatchString(r.stdout) {
				t.Errorf("cluster config --broker 1 does not match %s:\n%s", re, r.stdout)
			}
		}
		r = mustCLI(t, b, "", "cluster", "config", "--delete", "log.roll.ms", "--describe")
		if !strings.HasPrefix(r.stdout, "altered the cluster-wide broker configs\n") || strings.Contains(r.stdout, "log.roll.ms") {
			t.Errorf("cluster config --delete log.roll.ms --describe:\n%s", r.stdout)
		}
		if r := runCLI(t, b, "", "cluster", "config", "--set", "num.partitions=3"); r.code != 1 || !strings.Contains(r.stderr, "INVALID_REQUEST") {
			t.Errorf("a read-only config: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("max timestamp", func(t *testing.T) {
		now := time.Now().Truncate(time.Millisecond)
		for i, ts := range []time.Time{now.Add(-3 * time.Second), now, now.Add(-2 * time.Second)} {
			r := &kgo.Record{Topic: "cfg", Value: []byte{byte(i)}, Timestamp: ts}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		lo, err := adm.ListMaxTimestampOffsets(ctx, "cfg")
		if err != nil {
			t.Fatal(err)
		}
		o, ok := lo.Lookup("cfg", 0)
		if !ok || o.Err != nil || o.Offset != 1 || o.Timestamp != now.UnixMilli() {
			t.Errorf("kadm max timestamp: %+v, want offset 1 at %d", o, now.UnixMilli())
		}
		if _, err := exec.LookPath("kcat"); err != nil {
			t.Skip("kcat not installed; .ci/run installs it")
		}
		out := kcat(t, "", "-Q", "-b", b.addr, "-t", "cfg:0:-3")
		if !strings.Contains(out, "offset 1") {
			t.Errorf("kcat -Q cfg:0:-3 said %q, want offset 1", out)
		}
	})
}
