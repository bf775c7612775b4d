package test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// kcat runs kcat (librdkafka) with args and stdin, and returns its stdout.
// librdkafka reports failed deliveries on stderr without always failing the
// exit status, so an ERROR there fails the test too.
func kcat(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if strings.Contains(stderr.String(), "ERROR") {
		t.Fatalf("kcat %s reported errors:\n%s", strings.Join(args, " "), stderr.String())
	}
	return stdout.String()
}

// TestKcat drives the broker with kcat, a librdkafka client: keyed
// production, consumption with offsets, the metadata listing, and
// production with every compression codec.
func TestKcat(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed; .ci/run installs it")
	}
	b := startBroker(t, "")

	t.Run("produce and consume keyed records", func(t *testing.T) {
		const topic = "kcat-keyed"
		var in, want strings.Builder
		for i := 0; i < 50; i++ {
			fmt.Fprintf(&in, "key-%d:value %d with spaces\n", i, i)
			fmt.Fprintf(&want, "%d key-%d value %d with spaces\n", i, i, i)
		}
		kcat(t, in.String(), "-P", "-b", b.addr, "-t", topic, "-K:")
		got := kcat(t, "", "-C", "-b", b.addr, "-t", topic, "-o", "beginning", "-e", "-f", `%o %k %s\n`)
		if got != want.String() {
			t.Fatalf("kcat consumed:\n%s\nwant:\n%s", got, want.String())
		}
		// A second production appends after the first.
		kcat(t, "late:arrival\n", "-P", "-b", b.addr, "-t", topic, "-K:")
		got = kcat(t, "", "-C", "-b", b.addr, "-t", topic, "-o", "50", "-e", "-f", `%o %k %s\n`)
		if got != "50 late arrival\n" {
			t.Fatalf("kcat consumed from offset 50: %q", got)
		}
	})

	t.Run("metadata listing", func(t *testing.T) {
		const topic = "kcat-listed"
		kcat(t, "a:b\n", "-P", "-b", b.addr, "-t", topic, "-K:")
		all := kcat(t, "", "-L", "-b", b.addr)
		for _, want := range []string{
			"1 brokers:",
			"broker 1 at " + b.addr,
			fmt.Sprintf("topic %q with 1 partitions:", topic),
			"partition 0, leader 1, replicas: 1, isrs: 1",
		} {
			if !strings.Contains(all, want) {
				t.Errorf("kcat -L lacks %q:\n%s", want, all)
			}
		}
		one := kcat(t, "", "-L", "-b", b.addr, "-t", topic)
		if !strings.Contains(one, fmt.Sprintf("topic %q with 1 partitions:", topic)) || strings.Contains(one, "kcat-keyed") {
			t.Errorf("kcat -L -t %s:\n%s", topic, one)
		}
	})

	// kgo.RecordAttrs.CompressionType numbers the codecs as the batch
	// attributes do.
	codecs := []struct {
		name string
		attr uint8
	}{{"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}}
	for _, c := range codecs {
		t.Run("compression "+c.name, func(t *testing.T) {
			topic := "kcat-" + c.name
			const n = 200
			// librdkafka sends a batch uncompressed when compression
			// does not make it smaller: make every value compressible.
			value := func(i int) string { return fmt.Sprintf("%s %d", strings.Repeat(c.name+" ", 40), i) }
			var in strings.Builder
			for i := 0; i < n; i++ {
				fmt.Fprintf(&in, "k%d:%s\n", i, value(i))
			}
			kcat(t, in.String(), "-P", "-b", b.addr, "-t", topic, "-K:", "-z", c.name, "-X", "linger.ms=50")
			recs := consumeN(t, b.addr, topic, n)
			for i, r := range recs {
				if string(r.Key) != fmt.Sprintf("k%d", i) || string(r.Value) != value(i) || r.Offset != int64(i) {
					t.Fatalf("record %d: offset %d key %q value %q", i, r.Offset, r.Key, r.Value)
				}
				got := r.Attrs.CompressionType()
				if got == 0 && c.name == "lz4" {
					// librdkafka enables lz4 only for brokers that answer
					// FindCoordinator v0, which runnel (no consumer
					// groups) does not; it then sends lz4 batches
					// uncompressed.
					continue
				}
				if got != c.attr {
					t.Fatalf("record %d came in a batch with codec %d, want %d (%s)", i, got, c.attr, c.name)
				}
			}
			// kcat (librdkafka) decompresses what it wrote.
			got := kcat(t, "", "-C", "-b", b.addr, "-t", topic, "-o", "beginning", "-e", "-f", `%k=%s\n`)
			if lines := strings.Count(got, "\n"); lines != n || !strings.HasPrefix(got, "k0="+c.name) {
				t.Fatalf("kcat consumed %d lines:\n%s", lines, got)
			}
		})
	}
}
