package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runnel-io/runnel/server"
)

func TestSettingsPrecedence(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "runnel.conf")
	os.WriteFile(cfg, []byte("# comment\nlisten = 127.0.0.1:1111\nfsync = never\nnode-id = 7\n"), 0o644)
	t.Setenv("RUNNEL_FSYNC", "interval:5ms")
	t.Setenv("RUNNEL_LOG_LEVEL", "debug")
	v, err := parseSettings([]string{"--config", cfg, "--log-level", "warn"}, serveSettings, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"listen":    "127.0.0.1:1111", // file
		"fsync":     "interval:5ms",   // env beats file
		"log-level": "warn",           // flag beats env
		"node-id":   "7",              // file
		"data-dir":  "./data",         // default
	} {
		if v[k] != want {
			t.Errorf("%s = %q, want %q", k, v[k], want)
		}
	}
}

func TestSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("no-such-setting = 1\n"), 0o644)
	noEq := filepath.Join(dir, "noeq.conf")
	os.WriteFile(noEq, []byte("listen 1.2.3.4:5\n"), 0o644)
	for name, args := range map[string][]string{
		"unknown flag":    {"--no-such-flag"},
		"unknown setting": {"--config", bad},
		"missing equals":  {"--config", noEq},
		"missing file":    {"--config", filepath.Join(dir, "absent.conf")},
		"stray argument":  {"extra"},
	} {
		if _, err := parseSettings(args, serveSettings, &bytes.Buffer{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestServeHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	_, err := parseSettings([]string{"--help"}, serveSettings, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, s := range serveSettings {
		if !strings.Contains(out.String(), "-"+s.name) || !strings.Contains(out.String(), envName(s.name)) {
			t.Errorf("--help does not document %s", s.name)
		}
	}
}

func TestServeRejectsBadValues(t *testing.T) {
	for _, args := range [][]string{
		{"--fsync", "sometimes"},
		{"--fetch-path", "teleport"},
		{"--replica-selector", "nearest"},
		{"--node-id", "-3"},
		{"--idle-timeout", "soon"},
		{"--auto-create-topics", "maybe"},
		{"--log-level", "loud"},
	} {
		args = append(args, "--data-dir", t.TempDir(), "--metrics-listen", "", "--listen", "127.0.0.1:0")
		if err := serve(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: no error", args[:2])
		}
	}
}

// TestSettingsRoundTrip: every setting's default, parsed back, gives the
// default again, so --help and the README show values serve accepts.
func TestSettingsRoundTrip(t *testing.T) {
	for _, s := range serveSettings {
		o := defaultOptions()
		def := s.def()
		if err := s.field(&o).Set(def); err != nil {
			t.Errorf("%s: default %q does not parse: %v", s.name, def, err)
		}
		if got := s.field(&o).String(); got != def {
			t.Errorf("%s: default %q parses and prints as %q", s.name, def, got)
		}
	}
	var d int64
	if err := int64Var(&d).Set("9000000000"); err != nil || d != 9000000000 {
		t.Errorf("int64 setting: %d, %v", d, err)
	}
}

// TestServeOptions: resolved settings land in their fields of the
// broker's Config, and bad syntax names the setting.
func TestServeOptions(t *testing.T) {
	v, err := parseSettings([]string{"--node-id", "3", "--fsync", "interval:5ms", "--voters", "3@127.0.0.1:9193,4@127.0.0.1:9194",
		"--group-initial-rebalance-delay", "0s", "--default-replication-factor", "3", "--offsets-retention", "1h",
		"--rack", "eu-west-1b", "--replica-selector", "leader"}, serveSettings, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	o, err := v.options(serveSettings)
	if err != nil {
		t.Fatal(err)
	}
	c := o.broker
	if c.NodeID != 3 || c.Partitions.Fsync.String() != "interval:5ms" || len(c.Voters) != 2 || c.Voters[1].Addr != "127.0.0.1:9194" ||
		c.Groups.InitialRebalanceDelay != 0 || c.Server.DefaultReplicationFactor != 3 || c.Groups.OffsetsRetention != time.Hour ||
		c.Rack != "eu-west-1b" || c.Server.ReplicaSelector != server.LeaderSelector {
		t.Fatalf("config %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for args, want := range map[string]string{
		"--default-replication-factor 40000": "--default-replication-factor: 40000 is too large",
		"--idle-timeout soon":                "--idle-timeout: want a positive duration such as 30s, got \"soon\"",
		"--leader-rebalance-interval x":      "--leader-rebalance-interval: want a duration of 0s or more",
		"--voters 1@nowhere":                 "--voters: cluster: voter",
		"--auto-create-topics maybe":         "--auto-create-topics: want true or false",
		"--replica-selector nearest":         "--replica-selector: server: replica selector \"nearest\": want leader or rack-aware",
	} {
		v, err := parseSettings(strings.Fields(args), serveSettings, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.options(serveSettings); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
	}
}

// TestRepeatedScramUser: --scram-user may be given more than once, on the
// command line or in the config file, and each one counts.
func TestRepeatedScramUser(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "runnel.conf")
	os.WriteFile(cfg, []byte("scram-user = a:SCRAM-SHA-256:x\nscram-user = b:SCRAM-SHA-512:y\n"), 0o644)
	for _, args := range [][]string{
		{"--scram-user", "a:SCRAM-SHA-256:x", "--scram-user", "b:SCRAM-SHA-512:y"},
		{"--config", cfg},
	} {
		v, err := parseSettings(args, serveSettings, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		o, err := v.options(serveSettings)
		if err != nil {
			t.Fatal(err)
		}
		if u := o.broker.SASL.Users; len(u) != 2 || u[0].Name != "a" || u[1].Password != "y" {
			t.Errorf("%v: users %+v", args, u)
		}
	}
}

// TestAuthorizerFlags: --authorizer is named alone, as Kafka's operators
// type it, and --authorizer=false turns it off.
func TestAuthorizerFlags(t *testing.T) {
	v, err := parseSettings([]string{"--authorizer", "--super-users", "User:a;User:b", "--allow-everyone-if-no-acl-found"},
		serveSettings, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	o, err := v.options(serveSettings)
	if err != nil {
		t.Fatal(err)
	}
	if a := o.broker.Authorizer; !a.Enabled || a.SuperUsers != "User:a;User:b" || !a.AllowEveryoneIfNoACL {
		t.Errorf("authorizer settings %+v", a)
	}
	v, err = parseSettings([]string{"--authorizer=false"}, serveSettings, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := v.options(serveSettings); o.broker.Authorizer.Enabled {
		t.Error("--authorizer=false left it on")
	}
}
