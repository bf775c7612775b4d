package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-io/runnel/segment"
)

// compactConfigs are the configs of the compacted topics of these tests:
// small segments so that the producers roll many, and a cleaner that
// cleans at the least dirt.
func compactConfigs() map[string]*string {
	s := func(v string) *string { return &v }
	return map[string]*string{"cleanup.policy": s("compact"), "segment.bytes": s("8192"),
		"min.cleanable.dirty.ratio": s("0.01")}
}

// cleanerFlags run each broker's cleaner every 100 ms.
var cleanerFlags = []string{"--log-cleaner-backoff", "100ms"}

// metricAt returns an unlabelled metric from the /metrics of addr.
func metricAt(addr, name string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0, fmt.Errorf("metric %s not found", name)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// diskRecord is one record of a replica's segment files.
type diskRecord struct {
	offset     int64
	key, value []byte
}

// replicaRecords decodes every record of a replica's segment files, in
// offset order; gaps (compaction) are fine, offsets going back are not.
func replicaRecords(t *testing.T, dataDir, topic string, index int32) []diskRecord {
	t.Helper()
	dir := filepath.Join(dataDir, "topics", fmt.Sprintf("%s-%d", topic, index))
	segs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(segs)
	var out []diskRecord
	last := int64(-1)
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) >= segment.HeaderSize {
			h, err := segment.Validate(b)
			if err != nil {
				if h.BatchLength == 0 {
					break // the preallocated end of the active segment
				}
				t.Fatalf("%s: %v", seg, err)
			}
			err = segment.ForEachRecord(b[:h.Size()], &h, 1<<30, func(r *segment.Record) error {
				if r.Offset <= last {
					return fmt.Errorf("offset %d after %d", r.Offset, last)
				}
				last = r.Offset
				out = append(out, diskRecord{offset: r.Offset, key: bytes.Clone(r.Key), value: bytes.Clone(r.Value)})
				return nil
			})
			if err != nil {
				t.Fatalf("%s: batch at %d: %v", seg, h.BaseOffset, err)
			}
			b = b[h.Size():]
		}
	}
	return out
}

// latestByKey is the last value of each key in recs (nil: a tombstone).
func latestByKey(recs []diskRecord) map[string]string {
	out := map[string]string{}
	for _, r := range recs {
		out[string(r.key)] = string(r.value)
	}
	return out
}

// TestCompactionCluster: keyed records produced with franz-go to a
// compacted topic on three brokers (replication factor 3, acks=all); every
// broker's cleaner cleans its own replica; consumers then read the latest
// value of every key, and after the brokers stop each replica's segment
// files hold the same latest value of every key, fewer records than were
// produced, and each key at most once in its cleaned segments.
func TestCompactionCluster(t *testing.T) {
	const topic = "compacted"
	c := startCluster(t, cleanerFlags...)
	adm := c.admin()
	ctx := ctxTimeout(t, 3*time.Minute)
	res, err := adm.CreateTopics(ctx, 1, 3, compactConfigs(), topic)
	if err != nil || res[topic].Err != nil {
		t.Fatalf("create: %v %v", err, res[topic].Err)
	}
	c.waitISR(topic, 1, 3)
	cl := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	want := map[string]string{}
	produced := 0
	for round := 0; round < 30; round++ {
		var recs []*kgo.Record
		for k := 0; k < 40; k++ {
			key := fmt.Sprintf("key-%02d", k)
			val := fmt.Sprintf("%s-round-%02d-%s", key, round, strings.Repeat("v", 40))
			recs = append(recs, &kgo.Record{Key: []byte(key), Value: []byte(val)})
			want[key] = val
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce round %d: %v", round, err)
		}
		produced += len(recs)
	}
	// A tombstone for one key, and a record without a key, refused.
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("key-00")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	want["key-00"] = ""
	err = cl.ProduceSync(ctx, &kgo.Record{Value: []byte("no key")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("a record without a key: %v, want INVALID_RECORD", err)
	}

	// Every broker's cleaner rewrites segments of its own replica.
	c.eventually(time.Minute, "every broker cleaning its replica", func() error {
		for _, n := range c.nodes {
			v, err := metricAt(n.metrics, "runnel_log_cleaner_segments_total")
			if err != nil {
				return err
			}
			if v == 0 {
				return fmt.Errorf("broker %d has rewritten no segment", n.id)
			}
		}
		return nil
	})

	// A consumer reads the latest value of every key.
	got := map[string]string{}
	cons := c.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	end := c.waitLogEndsEqual(topic, 1)[0]
	for last := int64(-1); last < end-1; {
		fs := cons.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("consume: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[string(r.Key)] = string(r.Value)
			last = r.Offset
		})
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("consumer: key %s = %q, want %q", k, head(got[k], 30), head(v, 30))
		}
	}

	c.stopAll()
	for _, n := range c.nodes {
		recs := replicaRecords(t, n.dataDir, topic, 0)
		if len(recs) >= produced {
			t.Errorf("broker %d: %d records on disk, %d produced: nothing was cleaned", n.id, len(recs), produced)
		}
		latest := latestByKey(recs)
		for k, v := range want {
			if latest[k] != v {
				t.Errorf("broker %d: key %s = %q on disk, want %q", n.id, k, head(latest[k], 30), head(v, 30))
			}
		}
		t.Logf("broker %d: %d of %d records left", n.id, len(recs), produced)
	}
}

// TestCompactionConfigsDescribed: a compacted topic's configs, given and
// default, are shown by DescribeConfigs, and a topic that is not compacted
// takes records without keys.
func TestCompactionConfigsDescribed(t *testing.T) {
	b := startBroker(t, "")
	adm := kadm.NewClient(b.client())
	ctx := ctxTimeout(t, time.Minute)
	cfg := compactConfigs()
	policy := "compact,delete"
	cfg["cleanup.policy"] = &policy
	if res, err := adm.CreateTopics(ctx, 1, 1, cfg, "both"); err != nil || res["both"].Err != nil {
		t.Fatalf("create: %v %v", err, res["both"].Err)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, "both")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range rc[0].Configs {
		got[c.Key] = c.MaybeValue()
	}
	for k, v := range map[string]string{"cleanup.policy": "compact,delete", "min.cleanable.dirty.ratio": "0.01",
		"delete.retention.ms": "86400000", "min.compaction.lag.ms": "0", "max.compaction.lag.ms": "9223372036854775807"} {
		if got[k] != v {
			t.Errorf("DescribeConfigs %s = %q, want %q", k, got[k], v)
		}
	}
	cl := b.client(kgo.DefaultProduceTopic("plain"), kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("no key")}).FirstErr(); err != nil {
		t.Fatalf("a record without a key to a topic that is not compacted: %v", err)
	}
}

// TestChaosCompactionKill SIGKILLs a lone broker (--fsync always) while
// its cleaner compacts a topic that a keyed producer keeps overwriting,
// and restarts it, cycle after cycle. After every restart the log reads
// through, and every key holds its latest acknowledged value or a later
// one of its own: no acknowledged key is lost or goes back. Three cycles
// under make test, 40 under make chaos.
func TestChaosCompactionKill(t *testing.T) {
	const topic = "chaos-compacted"
	cycles := chaosCycles(3, 40)
	rng := chaosRand(t)
	start := time.Now()
	b := startBroker(t, "", append([]string{"--fsync", "always"}, cleanerFlags...)...)
	adm := kadm.NewClient(b.client())
	ctx := ctxTimeout(t, 20*time.Minute)
	if res, err := adm.CreateTopics(ctx, 1, 1, compactConfigs(), topic); err != nil || res[topic].Err != nil {
		t.Fatalf("create: %v %v", err, res[topic].Err)
	}
	var mu sync.Mutex
	acked := map[string]int{} // key → the latest round acknowledged
	rounds := 0               // rounds acknowledged whole
	pctx, stop := context.WithCancel(context.Background())
	produced := make(chan struct{})
	cl := b.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	go func() {
		defer close(produced)
		for round := 0; pctx.Err() == nil; round++ {
			var recs []*kgo.Record
			for k := 0; k < 30; k++ {
				recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("key-%02d", k)),
					Value: []byte(fmt.Sprintf("%d %s", round, strings.Repeat("x", 50)))})
			}
			res := cl.ProduceSync(pctx, recs...)
			mu.Lock()
			for _, r := range res {
				if r.Err == nil {
					acked[string(r.Record.Key)] = round
				}
			}
			if res.FirstErr() == nil {
				rounds++
			}
			mu.Unlock()
		}
	}()
	defer func() { stop(); <-produced }()
	progress := func(after int, what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			mu.Lock()
			n := rounds
			mu.Unlock()
			if n >= after+20 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d rounds acknowledged in 60 s", what, n-after)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	progress(0, "before the first kill")
	for cycle := 1; cycle <= cycles; cycle++ {
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond) // a random moment of the run
		b.kill()
		b.restart()
		mu.Lock()
		n := rounds
		mu.Unlock()
		progress(n, fmt.Sprintf("cycle %d: after the restart", cycle))
		mu.Lock()
		want := maps.Clone(acked)
		mu.Unlock()
		// The log reads through and each key holds its latest
		// acknowledged round or a later one.
		got := map[string]int{}
		cons := b.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		end := b.endOffset(t, topic)
		for last := int64(-1); last < end-1; {
			fs := cons.PollFetches(ctx)
			if err := fs.Err(); err != nil {
				t.Fatalf("cycle %d: consume: %v", cycle, err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				var n int
				fmt.Sscan(string(r.Value), &n)
				if n < got[string(r.Key)] {
					t.Errorf("cycle %d: key %s goes back from round %d to %d at offset %d", cycle, r.Key, got[string(r.Key)], n, r.Offset)
				}
				got[string(r.Key)] = n
				last = r.Offset
			})
		}
		cons.Close()
		for k, r := range want {
			if g, ok := got[k]; !ok || g < r {
				t.Fatalf("cycle %d: key %s holds round %d (present %v), acknowledged %d", cycle, k, g, ok, r)
			}
		}
	}
	removed, err := metricAt(b.metrics, "runnel_log_cleaner_records_removed_total")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("CHAOS %s: %d cycles in %v; %d rounds of %d keys acknowledged, %v records removed since the last start",
		t.Name(), cycles, time.Since(start).Round(time.Second), rounds, len(acked), removed)
}

// endOffset returns partition 0's end offset.
func (b *broker) endOffset(t *testing.T, topic string) int64 {
	t.Helper()
	adm := kadm.NewClient(b.client())
	ends, err := adm.ListEndOffsets(ctxTimeout(t, 30*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := ends.Lookup(topic, 0)
	if !ok || o.Err != nil {
		t.Fatalf("end offset of %s: %v", topic, o.Err)
	}
	return o.Offset
}
