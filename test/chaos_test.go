package test

// Chaos: faults in a loop while an idempotent acks=all producer writes
// sequenced records, and the checker (checker_test.go) over the log at the
// end. Under make test each runs a few cycles; make chaos sets
// RUNNEL_CHAOS=full for the long campaign and collects the "CHAOS" lines
// each test logs into the results of docs/reliability.md.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	wire "encoding/binary"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"
)

// chaosCycles is how many fault cycles a chaos test runs: short under make
// test, full under make chaos.
func chaosCycles(short, full int) int {
	if os.Getenv("RUNNEL_CHAOS") == "full" {
		return full
	}
	return short
}

// chaosRand is a test's random source, seeded from RUNNEL_CHAOS_SEED or
// the clock, and logged so a run can be repeated.
func chaosRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("RUNNEL_CHAOS_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("RUNNEL_CHAOS_SEED=%d", seed)
	return rand.New(rand.NewPCG(seed, seed>>1))
}

// chaosResult logs the line make chaos collects.
func chaosResult(t *testing.T, cycles int, a logAudit, took time.Duration, extra string) {
	t.Logf("CHAOS %s: %d cycles in %v; %v%s", t.Name(), cycles, took.Round(time.Second), a, extra)
}

// TestChaosSingleNodeKill SIGKILLs a lone broker (--fsync always) at
// random moments of acks=all production and restarts it on the same data,
// cycle after cycle, with one producer throughout.
func TestChaosSingleNodeKill(t *testing.T) {
	const (
		topic      = "chaos"
		partitions = 4
	)
	cycles := chaosCycles(5, 150)
	rng := chaosRand(t)
	b := startBroker(t, "", "--fsync", "always")
	createTopic(t, b, topic, partitions)
	cl := b.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(2*time.Millisecond), kgo.MaxBufferedRecords(2000), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	sp := startSequenceProducer(t, cl, partitions, 2*time.Millisecond, 3)
	sp.acks.waitMore(t, -1, 200, 30*time.Second, "before the first kill")
	start := time.Now()
	for cycle := 1; cycle <= cycles; cycle++ {
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		b.kill()
		b.restart()
		sp.acks.waitMore(t, -1, 50, 60*time.Second, fmt.Sprintf("cycle %d: after the restart", cycle))
	}
	sp.finish(t)
	requireNoProduceErrors(t, sp.acks)
	a := checkSequenceLog(t, readTopic(t, b.client, topic, partitions), partitions, sp.acks.records())
	chaosResult(t, cycles, a, time.Since(start), "")
}

// TestChaosClusterKill SIGKILLs a broker of three each cycle — most often
// the leader of a partition, else any — while the others carry on, then
// restarts it and waits for the ISRs to fill again. The replicas must end
// byte-identical.
func TestChaosClusterKill(t *testing.T) {
	const (
		topic      = "chaos"
		partitions = 3
	)
	cycles := chaosCycles(2, 100)
	rng := chaosRand(t)
	c := startCluster(t, fastFailover...)
	c.createTopic(topic, partitions, 3, map[string]string{"min.insync.replicas": "2"})
	sp := startSequenceProducer(t, c.sequenceClient(topic), partitions, 2*time.Millisecond, 3)
	sp.acks.waitMore(t, -1, 300, 30*time.Second, "before the first kill")
	start := time.Now()
	kills := map[string]int{}
	for cycle := 1; cycle <= cycles; cycle++ {
		var victim int32
		if rng.IntN(10) < 7 {
			victim = c.leader(topic, int32(rng.IntN(partitions)))
			kills["leader"]++
		} else {
			victim = int32(1 + rng.IntN(clusterSize))
			kills["any"]++
		}
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
		c.node(victim).kill()
		for p := range int32(partitions) {
			sp.acks.waitMore(t, p, 20, 60*time.Second, fmt.Sprintf("cycle %d: partition %d with broker %d down", cycle, p, victim))
		}
		c.node(victim).restart()
		c.waitISR(topic, partitions, 3)
	}
	a := c.finishAndCheck(sp, topic, partitions)
	c.stopAndCompare(partitions, topic)
	chaosResult(t, cycles, a, time.Since(start), fmt.Sprintf("; killed a leader %d times, any broker %d times; replicas byte-identical",
		kills["leader"], kills["any"]))
}

// TestChaosClusterNetwork runs the brokers in network namespaces and, each
// cycle, either cuts one off from the others for a few seconds or throttles
// its link to a slow one, while production goes on. The replicas must end
// byte-identical.
func TestChaosClusterNetwork(t *testing.T) {
	const (
		topic      = "chaos"
		partitions = 3
	)
	cycles := chaosCycles(2, 30)
	rng := chaosRand(t)
	lab := newNetLab(t, clusterSize)
	c := startNetnsCluster(t, lab, append(slices.Clone(fastFailover), "--replica-lag-time-max", "2s")...)
	c.createTopic(topic, partitions, 3, map[string]string{"min.insync.replicas": "2"})
	sp := startSequenceProducer(t, c.sequenceClient(topic, kgo.ProduceRequestTimeout(2*time.Second)), partitions, 2*time.Millisecond, 3)
	sp.acks.waitMore(t, -1, 300, 30*time.Second, "before the first fault")
	start := time.Now()
	faults := map[string]int{}
	canThrottle := true
	for cycle := 1; cycle <= cycles; cycle++ {
		victim := int32(1 + rng.IntN(clusterSize))
		hold := time.Duration(2000+rng.IntN(4000)) * time.Millisecond
		if canThrottle && rng.IntN(2) == 0 {
			if err := lab.throttle(int(victim), "1mbit", "200ms"); err != nil {
				t.Logf("slow links are not available here, cutting links only: %v", err)
				canThrottle = false
			} else {
				faults["slow"]++
				time.Sleep(hold)
				lab.unthrottle(int(victim))
				c.waitISR(topic, partitions, 3)
				sp.acks.waitMore(t, -1, 50, 60*time.Second, fmt.Sprintf("cycle %d: after a slow link to broker %d", cycle, victim))
				continue
			}
		}
		faults["cut"]++
		c.isolate(lab, victim)
		time.Sleep(hold)
		c.rejoin(lab, victim)
		c.waitHealthy()
		c.waitISR(topic, partitions, 3)
		sp.acks.waitMore(t, -1, 50, 60*time.Second, fmt.Sprintf("cycle %d: after broker %d was cut off", cycle, victim))
	}
	a := c.finishAndCheck(sp, topic, partitions)
	c.stopAndCompare(partitions, topic)
	chaosResult(t, cycles, a, time.Since(start), fmt.Sprintf("; cut off %d times, slow link %d times; replicas byte-identical",
		faults["cut"], faults["slow"]))
}

// TestChaosDamagedDisk SIGKILLs a lone broker and damages its data
// directory before the restart, one way per subtest: a torn or corrupted
// batch after the acknowledged ones (a write cut short by a power loss),
// and a deleted or corrupted index. Every acknowledged record must still be
// there, and production must go on at the right offsets.
func TestChaosDamagedDisk(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dataDir string)
		log    string // what the broker must say at its restart
	}{
		{"torn batch at the tail", func(t *testing.T, dataDir string) {
			path, end, last := segmentTail(t, dataDir, "damage", 0)
			writeAt(t, path, end, last[:len(last)/2])
		}, "recovery: cutting a torn or corrupt tail"},
		{"corrupted batch at the tail", func(t *testing.T, dataDir string) {
			path, end, last := segmentTail(t, dataDir, "damage", 0)
			bad := slices.Clone(last)
			bad[len(bad)-3] ^= 0xFF
			// The next offset, so only the CRC tells it apart.
			wire.BigEndian.PutUint64(bad, wire.BigEndian.Uint64(last)+uint64(wire.BigEndian.Uint32(last[23:]))+1)
			writeAt(t, path, end, bad)
		}, "recovery: cutting a torn or corrupt tail"},
		{"index deleted", func(t *testing.T, dataDir string) {
			if err := os.RemoveAll(filepath.Join(dataDir, "index")); err != nil {
				t.Fatal(err)
			}
		}, "recovered partition log"},
		{"index manifest corrupted", func(t *testing.T, dataDir string) {
			overwriteIndexFiles(t, dataDir, func(name string) bool { return strings.HasPrefix(name, "MANIFEST") })
		}, "the index is damaged"},
		{"index CURRENT corrupted", func(t *testing.T, dataDir string) {
			overwriteIndexFiles(t, dataDir, func(name string) bool { return name == "CURRENT" })
		}, "the index is damaged"},
		{"index tables and log corrupted", func(t *testing.T, dataDir string) {
			overwriteIndexFiles(t, dataDir, func(name string) bool {
				return filepath.Ext(name) == ".sst" || filepath.Ext(name) == ".log"
			})
			// Pebble takes a write-ahead log of garbage for a torn
			// one and drops it: recovery scans the segments.
		}, `msg="recovered partition log" partition=damage-0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const (
				topic      = "damage"
				partitions = 2
			)
			b := startBroker(t, "", "--fsync", "always")
			createTopic(t, b, topic, partitions)
			cl := b.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.ProducerLinger(2*time.Millisecond), kgo.MetadataMinAge(100*time.Millisecond))
			sp := startSequenceProducer(t, cl, partitions, 2*time.Millisecond, 3)
			sp.acks.waitMore(t, -1, 500, 30*time.Second, "before the damage")
			sp.finish(t) // everything sent is acknowledged: the damage is past it
			b.kill()
			tc.damage(t, b.dataDir)
			b.restart()
			if !strings.Contains(b.logs(), tc.log) {
				t.Errorf("the broker did not log %q at its restart", tc.log)
			}
			// A new producer writes on; the old one's records and its
			// are checked together.
			acked := sp.acks.records()
			cl2 := b.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			for i := range 20 {
				seq := sp.sent + i
				r := &kgo.Record{Partition: int32(seq % partitions), Value: fmt.Appendf(nil, "%d", seq)}
				if err := cl2.ProduceSync(ctxTimeout(t, 30*time.Second), r).FirstErr(); err != nil {
					t.Fatalf("producing after the restart: %v", err)
				}
				acked = append(acked, ackedRecord{seq: seq, partition: r.Partition, offset: r.Offset})
			}
			checkSequenceLog(t, readTopic(t, b.client, topic, partitions), partitions, acked)
		})
	}
}

// overwriteIndexFiles puts garbage in place of each file of the index
// whose name match picks; there must be one.
func overwriteIndexFiles(t *testing.T, dataDir string, match func(string) bool) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dataDir, "index", "*"))
	n := 0
	for _, f := range files {
		if !match(filepath.Base(f)) {
			continue
		}
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		garbage := make([]byte, max(st.Size(), 64))
		for i := range garbage {
			garbage[i] = byte(i*7 + 3)
		}
		if err := os.WriteFile(f, garbage, 0o644); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no index files to damage among %v", files)
	}
}

// segmentTail returns the newest segment file of topic-index in dataDir,
// where its data ends, and its last batch.
func segmentTail(t *testing.T, dataDir, topic string, index int32) (path string, end int, last []byte) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dataDir, "topics", fmt.Sprintf("%s-%d", topic, index), "*.log"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segments of %s-%d: %v", topic, index, err)
	}
	sort.Strings(segs)
	path = segs[len(segs)-1]
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for end+12 <= len(b) {
		length := int(wire.BigEndian.Uint32(b[end+8:]))
		if length == 0 {
			break
		}
		last = b[end : end+12+length]
		end += 12 + length
	}
	if last == nil {
		t.Fatalf("%s holds no batch", path)
	}
	return path, end, slices.Clone(last)
}

func writeAt(t *testing.T, path string, at int, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, int64(at)); err != nil {
		t.Fatal(err)
	}
}

// TestChaosFullDisk runs a lone broker on a small tmpfs and produces
// until the file system is full. The produce that does not fit gets
// KAFKA_STORAGE_ERROR, the broker keeps serving what it holds, and once
// space is freed it takes writes again; after a SIGKILL and a restart
// every acknowledged record is there.
func TestChaosFullDisk(t *testing.T) {
	const topic = "full"
	if os.Geteuid() != 0 {
		privileged(t, "mounting a small tmpfs to fill needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=24m"); err != nil {
		privileged(t, fmt.Sprintf("cannot mount a tmpfs on %s: %v", dir, err))
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, filepath.Join(dir, "data"), "--fsync", "always")
	resp, err := kadm.NewClient(b.client()).CreateTopic(ctxTimeout(t, 30*time.Second), 1, 1,
		map[string]*string{"segment.bytes": kadm.StringPtr("1048576")}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	// Not idempotent, and no retries: the failure must reach the test.
	cl := b.client(kgo.DefaultProduceTopic(topic), kgo.DisableIdempotentWrite(), kgo.RecordRetries(0),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	var acked []ackedRecord
	pad := make([]byte, 4000) // random: the client compresses
	for i := range pad {
		pad[i] = byte(rand.Uint32())
	}
	produce := func(seq int) error {
		r := &kgo.Record{Value: fmt.Appendf(nil, "%d", seq), Headers: []kgo.RecordHeader{{Key: "pad", Value: pad}}}
		err := cl.ProduceSync(ctxTimeout(t, 30*time.Second), r).FirstErr()
		if err == nil {
			acked = append(acked, ackedRecord{seq: seq, partition: 0, offset: r.Offset})
		}
		return err
	}
	seq := 0
	for ; ; seq++ {
		err := produce(seq)
		if err == nil {
			continue
		}
		if !errors.Is(err, kerr.KafkaStorageError) {
			t.Fatalf("record %d, with the disk filling: %v, want KAFKA_STORAGE_ERROR", seq, err)
		}
		t.Logf("the disk is full after %d records: %v", len(acked), err)
		break
	}
	if len(acked) < 100 {
		t.Fatalf("only %d records fit", len(acked))
	}
	// Still serving: everything acknowledged reads back.
	checkSequenceLog(t, readTopic(t, b.client, topic, 1), 1, acked)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		seq++
		if err := produce(seq); err != nil {
			t.Fatalf("record %d of 50 after space was freed: %v", i, err)
		}
	}
	b.kill()
	b.restart()
	a := checkSequenceLog(t, readTopic(t, b.client, topic, 1), 1, acked)
	chaosResult(t, 1, a, 0, "; KAFKA_STORAGE_ERROR when full, writes again once space was freed, all after kill -9")
}

// privileged skips a test that needs root, or fails it where
// RUNNEL_TEST_PRIVILEGED=require says the machine can run it.
func privileged(t *testing.T, why string) {
	t.Helper()
	if os.Getenv(privilegedEnv) == "require" {
		t.Fatal(why)
	}
	t.Skip(why)
}
