package test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/group/offsetsfmt"
)

// offsetsTopic is Kafka's internal topic of group offsets.
const offsetsTopic = "__consumer_offsets"

// offsetsPython returns a Python interpreter that has kafka-python, or
// skips the test. The system interpreter is tried first: an interpreter
// of a version manager earlier on PATH usually lacks the module.
func offsetsPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import kafka").Run() == nil {
			return path
		}
	}
	t.Skip("no python3 with kafka-python (import kafka); Debian's python3-kafka provides it")
	return ""
}

// pyRecord is one record of __consumer_offsets as the Python reader
// decoded it with Kafka's schemas.
type pyRecord struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
	KeyLen    int   `json:"key_len"`
	ValueLen  int   `json:"value_len"`
	Key       struct {
		Version   int16  `json:"version"`
		Kind      string `json:"kind"`
		Group     string `json:"group"`
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
	} `json:"key"`
	Value *struct {
		Version         int16  `json:"version"`
		Offset          int64  `json:"offset"`
		LeaderEpoch     int32  `json:"leader_epoch"`
		Metadata        string `json:"metadata"`
		CommitTimestamp int64  `json:"commit_timestamp"`
		ExpireTimestamp int64  `json:"expire_timestamp"`
	} `json:"value"`
}

type pyOutput struct {
	Partitions            int        `json:"partitions"`
	Internal              bool       `json:"internal"`
	ListedWithoutInternal bool       `json:"listed_without_internal"`
	Records               []pyRecord `json:"records"`
}

// runOffsetsPython runs test/testdata/consumer_offsets.py with args and
// stdin and decodes what it prints.
func runOffsetsPython(t *testing.T, py, stdin string, args ...string) pyOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{filepath.Join("testdata", "consumer_offsets.py")}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("consumer_offsets.py %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	var out pyOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("consumer_offsets.py %s printed %q: %v\nstderr:\n%s", strings.Join(args, " "), stdout.String(), err, stderr.String())
	}
	return out
}

// TestOffsetsTopicDecodedByKafkaPython: a franz-go consumer group reads
// and commits on one broker; kafka-python then reads __consumer_offsets
// from the start and decodes each commit with Kafka's schemas, written out
// by hand in the script, and finds the group's commits, in order, with
// the offsets, leader epochs and metadata OffsetFetch returns. The topic
// is internal in Metadata (to franz-go and to kafka-python), and kcat
// (librdkafka) consumes the same records.
func TestOffsetsTopicDecodedByKafkaPython(t *testing.T) {
	py := offsetsPython(t)

	// The hand-written decoders first, on the bytes of every key and
	// value version Kafka has written (group/offsetsfmt/testdata, made by
	// franz-go's kmsg), against group/offsetsfmt.
	t.Run("every version", func(t *testing.T) {
		golden := func(name string) string {
			b, err := os.ReadFile(filepath.Join("..", "group", "offsetsfmt", "testdata", name+".hex"))
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
		var pairs [][2]string
		for _, k := range []string{"offset-key-v0", "offset-key-v1"} {
			for v := 0; v <= 4; v++ {
				pairs = append(pairs, [2]string{golden(k), golden(fmt.Sprintf("offset-value-v%d", v))})
			}
		}
		in, _ := json.Marshal(pairs)
		out := runOffsetsPython(t, py, string(in), "decode")
		if len(out.Records) != len(pairs) {
			t.Fatalf("decoded %d records of %d", len(out.Records), len(pairs))
		}
		for i, r := range out.Records {
			kb, _ := hex.DecodeString(pairs[i][0])
			vb, _ := hex.DecodeString(pairs[i][1])
			k, err := offsetsfmt.DecodeKey(kb)
			if err != nil {
				t.Fatal(err)
			}
			v, _, err := offsetsfmt.DecodeOffsetValue(vb)
			if err != nil {
				t.Fatal(err)
			}
			if r.Key.Kind != "offset" || r.Key.Group != k.Group || r.Key.Topic != k.Topic || r.Key.Partition != k.Partition ||
				r.Value == nil || r.Value.Offset != v.Offset || r.Value.LeaderEpoch != v.LeaderEpoch ||
				r.Value.Metadata != v.Metadata || r.Value.CommitTimestamp != v.CommitTimestamp ||
				r.Value.ExpireTimestamp != v.ExpireTimestamp {
				t.Errorf("pair %d (value version %d): python decoded %+v %+v; offsetsfmt %+v %+v", i, i%5, r.Key, r.Value, k, v)
			}
		}
		// Only value version 1 carries an expire timestamp.
		if e := out.Records[1].Value.ExpireTimestamp; e <= 0 {
			t.Errorf("value version 1: expire timestamp %d", e)
		}
	})

	b := startBroker(t, "", append(append([]string{}, groupBrokerArgs...), "--offsets-topic-partitions", "5")...)
	const (
		topic   = "offsets-read"
		groupID = "offsets-reader"
		perPart = 10
	)
	createTopic(t, b, topic, 3)
	produceSpread(t, b, topic, 3, perPart)
	startMs := time.Now().UnixMilli()

	m := newGroupMember(t, b, groupID, topic, kgo.DisableAutoCommit())
	consumeAndCommit := func(want int) {
		t.Helper()
		got := 0
		deadline := time.Now().Add(60 * time.Second)
		for got < want {
			if time.Now().After(deadline) {
				t.Fatalf("the group read %d of %d records", got, want)
			}
			got += m.poll(t, 200*time.Millisecond)
		}
		if err := m.cl.CommitUncommittedOffsets(ctxTimeout(t, 30*time.Second)); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	consumeAndCommit(3 * perPart)
	// A second commit of partition 0 only: its older record stays in
	// the log before the new one.
	cl := b.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := 0; i < 5; i++ {
		recs = append(recs, &kgo.Record{Partition: 0, Value: []byte("late-" + strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctxTimeout(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	consumeAndCommit(5)
	endMs := time.Now().UnixMilli()

	// What the group committed, as OffsetFetch answers.
	adm := kadm.NewClient(b.client())
	fetched, err := adm.FetchOffsets(ctxTimeout(t, 30*time.Second), groupID)
	if err != nil || fetched.Error() != nil {
		t.Fatalf("fetch offsets: %v %v", err, fetched.Error())
	}
	for p, want := range map[int32]int64{0: perPart + 5, 1: perPart, 2: perPart} {
		if o, ok := fetched.Lookup(topic, p); !ok || o.At != want {
			t.Fatalf("OffsetFetch %s/%d: %+v, want offset %d", topic, p, o, want)
		}
	}

	// Metadata: the topic is internal.
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(offsetsTopic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctxTimeout(t, 30*time.Second), b.client())
	if err != nil {
		t.Fatal(err)
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 || !mresp.Topics[0].IsInternal || len(mresp.Topics[0].Partitions) != 5 {
		t.Fatalf("metadata of %s: %+v", offsetsTopic, mresp.Topics)
	}

	out := runOffsetsPython(t, py, "", "read", b.addr)
	if !out.Internal || out.ListedWithoutInternal || out.Partitions != 5 {
		t.Errorf("kafka-python: internal %v, listed among non-internal topics %v, %d partitions",
			out.Internal, out.ListedWithoutInternal, out.Partitions)
	}
	// Every offset commit of the group is on the group's partition, in
	// Kafka's current versions; per topic partition, the last is what
	// OffsetFetch gives.
	wantPart := offsetsfmt.PartitionFor(groupID, 5)
	commits := map[int32][]int64{}
	for _, r := range out.Records {
		if r.Key.Group != groupID {
			continue
		}
		if r.Key.Kind == "group" {
			continue // group metadata (key version 2), which Kafka also writes
		}
		switch {
		case r.Key.Kind != "offset" || r.Key.Version != 1:
			t.Errorf("record %d/%d: key %+v, want an offset commit key of version 1", r.Partition, r.Offset, r.Key)
			continue
		case r.Partition != wantPart:
			t.Errorf("record %d/%d of group %s: want partition %d (abs(javaHash) %% 5)", r.Partition, r.Offset, groupID, wantPart)
		case r.Key.Topic != topic:
			t.Errorf("record %d/%d: topic %q", r.Partition, r.Offset, r.Key.Topic)
		case r.Value == nil:
			t.Errorf("record %d/%d: a tombstone", r.Partition, r.Offset)
			continue
		case r.Value.Version != 3 || r.Value.ExpireTimestamp != -1:
			t.Errorf("record %d/%d: value %+v, want version 3 (no expire timestamp)", r.Partition, r.Offset, r.Value)
		case r.Value.CommitTimestamp < startMs || r.Value.CommitTimestamp > endMs:
			t.Errorf("record %d/%d: commit timestamp %d outside [%d, %d]", r.Partition, r.Offset, r.Value.CommitTimestamp, startMs, endMs)
		}
		commits[r.Key.Partition] = append(commits[r.Key.Partition], r.Value.Offset)
		o, _ := fetched.Lookup(topic, r.Key.Partition)
		if r.Value.Metadata != o.Metadata {
			t.Errorf("record %d/%d: metadata %q, OffsetFetch %q", r.Partition, r.Offset, r.Value.Metadata, o.Metadata)
		}
		if r.Value.Offset == o.At && r.Value.LeaderEpoch != o.LeaderEpoch {
			t.Errorf("record %d/%d: leader epoch %d, OffsetFetch %d", r.Partition, r.Offset, r.Value.LeaderEpoch, o.LeaderEpoch)
		}
	}
	want := map[int32][]int64{0: {perPart, perPart + 5}, 1: {perPart}, 2: {perPart}}
	if fmt.Sprint(commits) != fmt.Sprint(want) {
		t.Fatalf("commits decoded by kafka-python, by partition: %v, want %v\nrecords: %+v", commits, want, out.Records)
	}

	// kcat reads the same records of the raw topic.
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Log("kcat not installed; not reading the topic with librdkafka")
		return
	}
	got := kcat(t, "", "-C", "-b", b.addr, "-t", offsetsTopic, "-o", "beginning", "-e", "-f", `%p %o %K %S\n`)
	var kcatLines, pyLines []string
	for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
		if l != "" {
			kcatLines = append(kcatLines, l)
		}
	}
	for _, r := range out.Records {
		pyLines = append(pyLines, fmt.Sprintf("%d %d %d %d", r.Partition, r.Offset, r.KeyLen, r.ValueLen))
	}
	sort.Strings(kcatLines)
	sort.Strings(pyLines)
	if len(kcatLines) != len(pyLines) || strings.Join(kcatLines, "\n") != strings.Join(pyLines, "\n") {
		t.Fatalf("kcat read %d records of %s, kafka-python %d:\nkcat:\n%s\nkafka-python:\n%s",
			len(kcatLines), offsetsTopic, len(pyLines), strings.Join(kcatLines, "\n"), strings.Join(pyLines, "\n"))
	}
}
