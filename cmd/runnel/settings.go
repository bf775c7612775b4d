package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// setting is one broker setting, settable as a flag, a RUNNEL_* environment
// variable or a line of the config file (precedence in that order).
type setting struct {
	name string
	def  string
	help string
}

var serveSettings = []setting{
	{"data-dir", "./data", "directory for segments, index and metadata"},
	{"listen", "127.0.0.1:9092", "address of the Kafka API"},
	{"advertise", "", "host:port clients are told to connect to (default: the listen address)"},
	{"metrics-listen", "127.0.0.1:9644", "address of /metrics, /healthz and /readyz (empty: off)"},
	{"node-id", "1", "this broker's id"},
	{"raft-listen", "", "address to listen on for Raft and forwarded proposals (default: this node's address in --voters)"},
	{"voters", "", "Raft voters as 1@host:port,2@host:port,...; empty: this broker alone, without a Raft listener"},
	{"fsync", "always", "durability: always (ack after fdatasync, group commit), interval:DURATION, or never"},
	{"fetch-path", "sendfile", "how fetches send record bytes: sendfile (zero-copy), or for comparison mmap (write from a mapping of the segment) or copy (pread into a buffer, then write)"},
	{"auto-create-topics", "true", "create unknown topics when clients ask for their metadata"},
	{"default-partitions", "1", "partitions of auto-created topics"},
	{"default-replication-factor", "1", "replicas of auto-created topics and of topics created with replication factor -1"},
	{"broker-session-timeout", "6s", "the controller fences a broker that sends no heartbeat for this long, and moves its leaderships"},
	{"broker-heartbeat-interval", "1s", "how often a broker sends the controller a heartbeat"},
	{"raft-election-timeout", "1s", "a Raft follower that hears nothing from the leader for this long starts an election (with other voters)"},
	{"replica-lag-time-max", "30s", "a follower that has not caught up with the leader for this long leaves the ISR"},
	{"leader-rebalance-interval", "30s", "how often the controller gives leadership back to preferred replicas that are in sync (0s: never)"},
	{"max-request-bytes", "104857600", "largest request frame accepted"},
	{"max-connections", "10000", "most open client connections"},
	{"idle-timeout", "10m", "close connections idle this long"},
	{"retention-check-interval", "5m", "how often retention runs"},
	{"group-initial-rebalance-delay", "3s", "how long a new group's first rebalance waits for more members (0s: none)"},
	{"group-min-session-timeout", "6s", "shortest session timeout a group member may ask for"},
	{"group-max-session-timeout", "30m", "longest session timeout a group member may ask for"},
	{"offsets-retention", "168h", "committed offsets of a group without members expire this long after the later of their commit and the group emptying"},
	{"offsets-retention-check-interval", "10m", "how often expired committed offsets are removed"},
	{"shutdown-timeout", "30s", "how long SIGTERM waits for in-flight requests"},
	{"log-level", "info", "debug, info, warn or error"},
	{"log-format", "text", "text or json"},
	{"config", "", "config file of name = value lines (names as the flags)"},
}

func envName(name string) string {
	return "RUNNEL_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// values resolves every setting.
type values map[string]string

func parseSettings(args []string, defs []setting, stderr io.Writer) (values, error) {
	fs := flag.NewFlagSet("runnel serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	set := map[string]*string{}
	for _, d := range defs {
		set[d.name] = fs.String(d.name, d.def, fmt.Sprintf("%s (env %s)", d.help, envName(d.name)))
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: runnel serve [flags]\n\nEvery setting can also be given as an environment variable or in the\nconfig file; flags win over the environment, which wins over the file.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	v := values{}
	for _, d := range defs {
		v[d.name] = d.def
	}
	cfgPath := *set["config"]
	if !given["config"] {
		if e, ok := os.LookupEnv(envName("config")); ok {
			cfgPath = e
		}
	}
	if cfgPath != "" {
		file, err := readConfigFile(cfgPath, defs)
		if err != nil {
			return nil, err
		}
		for k, val := range file {
			v[k] = val
		}
	}
	for _, d := range defs {
		if e, ok := os.LookupEnv(envName(d.name)); ok {
			v[d.name] = e
		}
		if given[d.name] {
			v[d.name] = *set[d.name]
		}
	}
	v["config"] = cfgPath
	return v, nil
}

func readConfigFile(path string, defs []setting) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	known := map[string]bool{}
	for _, d := range defs {
		known[d.name] = true
	}
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		k, val, ok := strings.Cut(t, "=")
		if !ok {
			return nil, fmt.Errorf("config file %s:%d: want name = value", path, line)
		}
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !known[k] || k == "config" {
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("config file %s:%d: unknown setting %q (known: %s)", path, line, k, strings.Join(names, ", "))
		}
		out[k] = strings.Trim(val, `"`)
	}
	return out, sc.Err()
}
