// Command benchdoc rewrites the generated part of docs/benchmarks.md, the
// lines between its "make bench: begin" and "make bench: end" markers,
// from the results of one scripts/bench-all.sh run: the machine, the
// commit, and for each benchmark script the markdown report it wrote
// (report.md) or, for scripts that print their medians instead, the end of
// what it printed.
//
//	go run ./scripts/benchdoc -in $OUT -doc docs/benchmarks.md
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

const (
	beginMarker = "<!-- make bench: begin -->"
	endMarker   = "<!-- make bench: end -->"
)

// sections are the scripts of bench-all.sh in the order the page shows
// them, with a heading each.
var sections = []struct{ name, title string }{
	{"storage", "Storage engine: appends against the write ceilings, lookups, recovery (`scripts/bench-storage.sh`)"},
	{"broker", "Broker, one node: produce, consume, CPU per GB, groups (`scripts/bench-broker.sh`)"},
	{"fetch", "Fetch paths: read+write, mmap+write, sendfile; bare loops over loopback (`scripts/bench-fetch.sh`)"},
	{"latency", "End-to-end latency at fixed rates (`scripts/bench-latency.sh`)"},
	{"nats", "Peer: NATS JetStream (`scripts/bench-nats.sh`)"},
	{"produce-peer", "Peer: franz-go's kfake, produce (`scripts/bench-produce-peer.sh`)"},
	{"scale", "Partition scaling, 1 to 10,000 (`scripts/bench-scale.sh`)"},
	{"restart", "Restart after kill -9 with a large log (`scripts/bench-restart.sh`)"},
	{"cluster", "Cluster: replication throughput and failover (`scripts/bench-cluster.sh`)"},
}

func main() {
	in := flag.String("in", "", "the OUT directory of a scripts/bench-all.sh run")
	doc := flag.String("doc", "docs/benchmarks.md", "the page to rewrite")
	quick := flag.Bool("quick", false, "the run used QUICK=1: say so on the page")
	flag.Parse()
	if *in == "" {
		fmt.Fprintln(os.Stderr, "benchdoc: -in is required")
		os.Exit(2)
	}
	if err := run(*in, *doc, *quick); err != nil {
		fmt.Fprintln(os.Stderr, "benchdoc:", err)
		os.Exit(1)
	}
}

func run(in, doc string, quick bool) error {
	page, err := os.ReadFile(doc)
	if err != nil {
		return err
	}
	begin, end := bytes.Index(page, []byte(beginMarker)), bytes.Index(page, []byte(endMarker))
	if begin < 0 || end < begin {
		return fmt.Errorf("%s has no %q … %q markers", doc, beginMarker, endMarker)
	}
	var b strings.Builder
	b.WriteString(beginMarker + "\n\n")
	b.WriteString("_This part is written by `make bench` (scripts/bench-all.sh, then scripts/benchdoc); edit the scripts, not the text._\n\n")
	if quick {
		b.WriteString("**This run used `QUICK=1`: tiny counts to check the pipeline. Its numbers are not measurements.**\n\n")
	}
	machine(&b, in)
	for _, s := range sections {
		dir := filepath.Join(in, s.name)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		fmt.Fprintf(&b, "### %s\n\n", s.title)
		if secs, err := os.ReadFile(filepath.Join(dir, "seconds")); err == nil {
			fmt.Fprintf(&b, "Took %s s.", strings.TrimSpace(string(secs)))
			// A part run again later (ONLY=… into the same OUT) says so.
			if c, err := os.ReadFile(filepath.Join(dir, "code")); err == nil {
				if runCode, err := os.ReadFile(filepath.Join(in, "code")); err != nil || strings.TrimSpace(string(c)) != strings.TrimSpace(string(runCode)) {
					fmt.Fprintf(&b, " Run again on its own, at %s.", strings.TrimSpace(string(c)))
				}
			}
			if status, err := os.ReadFile(filepath.Join(dir, "status")); err == nil && strings.TrimSpace(string(status)) != "0" {
				fmt.Fprintf(&b, " **The script failed (exit status %s); see %s.stderr.txt.**", strings.TrimSpace(string(status)), s.name)
			}
			b.WriteString("\n\n")
		}
		if report, err := os.ReadFile(filepath.Join(dir, "report.md")); err == nil {
			b.WriteString(demote(strings.TrimSpace(string(report))) + "\n\n")
			continue
		}
		out, err := os.ReadFile(filepath.Join(in, s.name+".stdout.txt"))
		if err != nil {
			b.WriteString("No report and no output.\n\n")
			continue
		}
		fmt.Fprintf(&b, "```text\n%s\n```\n\n", strings.TrimSpace(summary(string(out))))
	}
	b.WriteString(endMarker)
	next := append(append(page[:begin:begin], b.String()...), page[end+len(endMarker):]...)
	return os.WriteFile(doc, next, 0o644)
}

// machine writes what the run ran on.
func machine(b *strings.Builder, in string) {
	model, cpus := "", runtime.NumCPU()
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := ""
	if m, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem, _, _ = strings.Cut(string(m), "\n")
		mem = strings.Join(strings.Fields(mem)[1:], " ")
	}
	started, _ := os.ReadFile(filepath.Join(in, "started"))
	finished, _ := os.ReadFile(filepath.Join(in, "finished"))
	fmt.Fprintf(b, "| | |\n|---|---|\n")
	fmt.Fprintf(b, "| CPU | %d × %s |\n", cpus, model)
	fmt.Fprintf(b, "| Memory | MemTotal %s |\n", mem)
	fmt.Fprintf(b, "| Kernel | %s |\n", command("uname", "-srm"))
	fmt.Fprintf(b, "| File system of the data | %s |\n", command("sh", "-c", "df -hT "+in+" | tail -1 | awk '{print $1\", \"$2\", \"$3\" total\"}'"))
	fmt.Fprintf(b, "| Go | %s |\n", command("go", "version"))
	code := command("git", "describe", "--always", "--dirty")
	if c, err := os.ReadFile(filepath.Join(in, "code")); err == nil {
		code = strings.TrimSpace(string(c)) // the code the run measured
	}
	fmt.Fprintf(b, "| Code | %s |\n", code)
	fmt.Fprintf(b, "| Run | %s to %s (UTC) |\n\n", strings.TrimSpace(string(started)), strings.TrimSpace(string(finished)))
}

func command(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// summary is the end of a script's output from its "medians" line on, or
// all of it when there is none.
func summary(out string) string {
	// The last line that starts with "medians" (other lines may say
	// "medians" further in).
	if strings.HasPrefix(out, "medians") && !strings.Contains(out, "\nmedians") {
		return out
	}
	if i := strings.LastIndex(out, "\nmedians"); i >= 0 {
		return out[i+1:]
	}
	return out
}

// demote turns a report's headings into lower levels, under the section's.
func demote(md string) string {
	lines := strings.Split(md, "\n")
	fence := false
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			fence = !fence
		}
		if !fence && strings.HasPrefix(l, "#") {
			lines[i] = "##" + l
		}
	}
	return strings.Join(lines, "\n")
}
