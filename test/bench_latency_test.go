package test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestCLIBenchLatency runs bench latency briefly against a broker and checks
// its summary: every record sent comes back once, the warm-up is left out of
// the timed records, and the percentiles are in order.
func TestCLIBenchLatency(t *testing.T) {
	b := startBroker(t, "")
	var res struct {
		Mode         string   `json:"mode"`
		Partitions   int      `json:"partitions"`
		Acks         string   `json:"acks"`
		RecordSize   int      `json:"record_size"`
		Rate         int      `json:"rate"`
		Sent         int64    `json:"sent"`
		Acknowledged int64    `json:"acknowledged"`
		Received     int64    `json:"received"`
		Errors       int64    `json:"errors"`
		Duplicates   int64    `json:"duplicates"`
		Measured     int64    `json:"measured"`
		AchievedRate *float64 `json:"achieved_rate"`
		FellBehind   *bool    `json:"fell_behind"`
		MaxBehindMs  *float64 `json:"max_behind_ms"`
	}
	// 400 records/s for 1.5 s: 600 records, the 200 due in the first
	// half second not timed.
	r := mustCLI(t, b, "", "bench", "latency", "--topic", "latency", "--partitions", "3",
		"--rate", "400", "--duration", "1500ms", "--warmup", "500ms", "--record-size", "64", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("bench latency output is not JSON: %v\n%s", err, r.stdout)
	}
	if !strings.Contains(r.stderr, "created topic latency with 3 partitions") {
		t.Errorf("bench latency did not report creating the topic: %q", r.stderr)
	}
	if res.Mode != "latency" || res.Partitions != 3 || res.Acks != "all" || res.RecordSize != 64 || res.Rate != 400 {
		t.Fatalf("bench latency settings = %+v", res)
	}
	if res.Sent != 600 || res.Acknowledged != res.Sent || res.Received != res.Sent ||
		res.Errors != 0 || res.Duplicates != 0 || res.Measured != 400 {
		t.Fatalf("bench latency counts = %+v", res)
	}
	if res.AchievedRate == nil || *res.AchievedRate <= 0 || res.FellBehind == nil ||
		res.MaxBehindMs == nil || *res.MaxBehindMs < 0 {
		t.Fatalf("bench latency rate or schedule missing: %s", r.stdout)
	}

	var fields map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &fields); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"e2e", "ack"} {
		prev := 0.0
		for _, p := range []string{"p50", "p90", "p99", "p99_9", "p99_99", "max"} {
			name := kind + "_" + p + "_ms"
			v, ok := fields[name].(float64)
			if !ok {
				t.Fatalf("bench latency has no number %s: %s", name, r.stdout)
			}
			if v < prev {
				t.Errorf("%s = %v, below the percentile before it (%v)", name, v, prev)
			}
			prev = v
		}
		if prev <= 0 {
			t.Errorf("%s_max_ms = %v, want > 0", kind, prev)
		}
	}

	// The same topic again, as a table: records left by the first run are
	// not read, and acks=1 is passed on.
	r = mustCLI(t, b, "", "bench", "latency", "--topic", "latency", "--rate", "200",
		"--duration", "500ms", "--warmup", "0s", "--acks", "1")
	for _, re := range []string{
		`(?m)^bench latency  topic latency, partitions 3, acks=1, 100-byte records$`,
		`(?m)^sent 100, acknowledged 100, received 100, errors 0, duplicates 0$`,
		`(?m)^timed 100 records, received at \d+ records/s$`,
		`(?m)^\s*end to end(\s+[\d.]+){6}$`,
		`(?m)^\s*acknowledgement(\s+[\d.]+){6}$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("bench latency table does not match %s:\n%s", re, r.stdout)
		}
	}

	// Bad flags are refused before anything is sent.
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--record-size", "10"}, "--record-size must be between 24 bytes and 1 MiB"},
		{[]string{"--warmup", "2s", "--duration", "1s"}, "--warmup must be at least 0 and shorter than --duration"},
		{[]string{"--rate", "0"}, "--rate must be positive"},
	} {
		args := append([]string{"bench", "latency", "--topic", "latency"}, c.args...)
		if r := runCLI(t, b, "", args...); r.code == 0 || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("runnel %v: exit %d, stderr %q; want an error saying %q", args, r.code, r.stderr, c.msg)
		}
	}
}
