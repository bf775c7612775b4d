package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
