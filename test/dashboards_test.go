package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const (
	dashboardFile = "../ops/grafana/runnel.json"
	alertsFile    = "../ops/prometheus/alerts.yml"
)

// dashboardQueries returns every query of every panel of the Grafana
// dashboard, by panel title, with its variables replaced: $instance by
// every instance, $__rate_interval by 1m.
func dashboardQueries(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
			Panels []json.RawMessage `json:"panels"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*")
	left := regexp.MustCompile(`\$\{?[A-Za-z_]+`)
	out := map[string][]string{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			if len(p.Panels) > 0 {
				t.Errorf("row %q holds collapsed panels, which this test does not read", p.Title)
			}
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			q := vars.Replace(tg.Expr)
			if v := left.FindString(q); v != "" {
				t.Errorf("panel %q: query %q uses variable %s, which this test does not replace", p.Title, tg.Expr, v)
			}
			out[p.Title] = append(out[p.Title], q)
		}
	}
	if len(out) == 0 {
		t.Fatal("the dashboard has no panels")
	}
	return out
}

// promQuery runs an instant query and returns the number of series in its
// result, or the error Prometheus answered with.
func promQuery(base, q string) (int, error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s", r.Error)
	}
	return len(r.Data.Result), nil
}

// promRule is one rule as Prometheus reports it in /api/v1/rules.
type promRule struct {
	Name      string `json:"name"`
	Query     string `json:"query"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
	Type      string `json:"type"`
}

func promRules(base string) ([]promRule, error) {
	resp, err := http.Get(base + "/api/v1/rules")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Groups []struct {
				Rules []promRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	var out []promRule
	for _, g := range r.Data.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

// TestDashboardsAndAlerts checks ops/: promtool accepts the alert rules; a
// real Prometheus scraping a real broker, after some produce, consume,
// commit, a failed login and a denied produce, has at least one series for
// every query of every panel of the Grafana dashboard, and evaluates every
// alert rule without an error.
func TestDashboardsAndAlerts(t *testing.T) {
	promtool, err1 := exec.LookPath("promtool")
	prometheus, err2 := exec.LookPath("prometheus")
	if err1 != nil || err2 != nil {
		t.Skip("promtool and prometheus are not installed (Debian: apt-get install prometheus); skipping the check of ops/")
	}
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	queries := dashboardQueries(t)

	saslAddr := freePort(t)
	b := &broker{t: t, dataDir: t.TempDir(), addr: freePort(t), metrics: freePort(t)}
	b.args = append([]string{"--listeners", "PLAINTEXT://" + b.addr + ",SASL_PLAINTEXT://" + saslAddr,
		"--scram-user", "admin:SCRAM-SHA-512:admin-pw", "--scram-user", "app:SCRAM-SHA-512:app-pw",
		"--authorizer", "--super-users", "User:admin", "--offsets-topic-partitions", "1"}, cleanerFlags...)
	b.start()
	t.Cleanup(func() { b.kill() })

	dir := t.TempDir()
	promAddr := freePort(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: runnel
    static_configs:
      - targets: [%q]
`, rules, b.metrics)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := exec.Command(prometheus, "--config.file", filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path", filepath.Join(dir, "tsdb"), "--web.listen-address", promAddr, "--log.level", "warn")
	var promLog strings.Builder
	prom.Stdout, prom.Stderr = &promLog, &promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	promDone := make(chan struct{})
	go func() { prom.Wait(); close(promDone) }()
	t.Cleanup(func() {
		prom.Process.Kill()
		<-promDone
		if t.Failed() {
			t.Logf("prometheus:\n%s", promLog.String())
		}
	})
	base := "http://" + promAddr

	ctx := ctxTimeout(t, 2*time.Minute)
	admin := saslClient(t, saslAddr, "admin")
	adm := kadm.NewClient(admin)
	if _, err := adm.CreateTopics(ctx, 2, 1, nil, "events"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopics(ctx, 1, 1, compactConfigs(), "compacted"); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		for _, r := range []*kgo.Record{
			{Topic: "events", Value: fmt.Appendf(nil, "event-%d", i)},
			{Topic: "compacted", Key: fmt.Appendf(nil, "k%d", i%4), Value: make([]byte, 512)},
		} {
			if err := admin.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	consumer := saslClient(t, saslAddr, "admin", kgo.ConsumerGroup("dashboards"), kgo.ConsumeTopics("events"),
		kgo.DisableAutoCommit())
	for n := 0; n < 40; {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	consumer.Close()
	for i := range 10 { // lag
		if err := admin.ProduceSync(ctx, &kgo.Record{Topic: "events", Value: fmt.Appendf(nil, "late-%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// A produce the authorizer denies, and a login with a wrong password.
	if err := saslClient(t, saslAddr, "app").ProduceSync(ctx, &kgo.Record{Topic: "events", Value: []byte("no")}).FirstErr(); err == nil {
		t.Fatal("a produce without an ACL was accepted")
	}
	wrong, err := kgo.NewClient(kgo.SeedBrokers(saslAddr), kgo.RetryTimeout(time.Second),
		kgo.SASL(scram.Auth{User: "app", Pass: "wrong"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	if err := wrong.Ping(ctx); err == nil {
		t.Fatal("a login with a wrong password succeeded")
	}
	wrong.Close()

	// Every panel query returns a series once Prometheus has scraped the
	// broker a few times after the traffic above.
	missing := map[string]string{}
	for title, qs := range queries {
		for _, q := range qs {
			missing[q] = title
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(missing) > 0 && time.Now().Before(deadline) {
		for q, title := range missing {
			n, err := promQuery(base, q)
			if err != nil && !strings.Contains(err.Error(), "connection refused") {
				t.Fatalf("panel %q: query %s: %v", title, q, err)
			}
			if n > 0 {
				delete(missing, q)
			}
		}
		if len(missing) > 0 {
			select {
			case <-promDone:
				t.Fatal("prometheus exited")
			case <-time.After(time.Second): // the next scrape
			}
		}
	}
	for q, title := range missing {
		t.Errorf("panel %q: query %s returns no series", title, q)
	}

	// Every alert rule was loaded, evaluates without an error, and its
	// expression runs as an instant query.
	var loaded []promRule
	for time.Now().Before(deadline.Add(30 * time.Second)) {
		if loaded, err = promRules(base); err != nil {
			t.Fatal(err)
		}
		ok := len(loaded) > 0
		for _, r := range loaded {
			ok = ok && r.Health == "ok"
		}
		if ok {
			break
		}
		time.Sleep(time.Second) // the next evaluation
	}
	raw, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Count(string(raw), "- alert:"); len(loaded) != want {
		t.Fatalf("prometheus loaded %d rules of the %d in %s", len(loaded), want, alertsFile)
	}
	for _, r := range loaded {
		if r.Health != "ok" {
			t.Errorf("alert %s: health %q, %s", r.Name, r.Health, r.LastError)
		}
		if _, err := promQuery(base, r.Query); err != nil {
			t.Errorf("alert %s: %s: %v", r.Name, r.Query, err)
		}
	}
	t.Logf("%d panels, %d alert rules checked", len(queries), len(loaded))
}
