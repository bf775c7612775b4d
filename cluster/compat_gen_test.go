package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/runnel-io/runnel/group"
)

// TestGenerateV0 writes testdata/v0 with the code of this commit: a data
// directory (a snapshot, then one log entry of every command), the bytes
// of every command and a snapshot, and the state they make.
func TestGenerateV0(t *testing.T) {
	if os.Getenv("RUNNEL_GEN_V0") == "" {
		t.Skip("RUNNEL_GEN_V0 not set")
	}
	dir := t.TempDir()
	meta := filepath.Join(dir, "meta")
	n, err := StartNode(NodeOptions{ID: 1, Dir: meta, Voters: []Voter{{ID: 1, Addr: "127.0.0.1:19093"}}, Local: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for n.Leader() != 1 {
		time.Sleep(10 * time.Millisecond)
	}
	var cmds [][]byte
	prop := func(ct CommandType, payload any) {
		t.Helper()
		b, _ := EncodeCommand(ct, payload)
		cmds = append(cmds, b)
		if _, err := n.Propose(ctx, ct, payload); err != nil {
			t.Fatalf("%d: %v", ct, err)
		}
	}
	at := time.UnixMilli(1_700_000_000_123).UTC()
	// The state the snapshot holds.
	for id := int32(1); id <= 3; id++ {
		prop(CmdRegisterBroker, RegisterBroker{ID: id, Addr: fmt.Sprintf("127.0.0.1:909%d", id), RaftAddr: fmt.Sprintf("127.0.0.1:1909%d", id)})
	}
	prop(CmdCreateTopic, CreateTopic{Topic: Topic{Name: "orders", ID: TopicID{1, 2, 3}, Partitions: 2, ReplicationFactor: 3,
		Configs: map[string]string{"retention.ms": "1000"}}, Assignment: [][]int32{{1, 2, 3}, {2, 3, 1}}})
	prop(CmdCreateTopic, CreateTopic{Topic: Topic{Name: "logs", ID: TopicID{4, 5, 6}, Partitions: 1}, Assignment: [][]int32{{3}}})
	prop(CmdSegmentRolled, SegmentRolled{TP: TP{"orders", 0}, Base: 0})
	prop(CmdSegmentRolled, SegmentRolled{TP: TP{"orders", 0}, Base: 500})
	prop(CmdCommitOffsets, CommitOffsets{Group: "g1", Offsets: []group.Offset{
		{Topic: "orders", Partition: 0, Offset: 42, LeaderEpoch: 1, Metadata: "m", CommitTime: at}}})
	prop(CmdAllocateProducerID, AllocateProducerIDs{N: 1000})
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	snap := snapshotBytes(t, n.fsm)
	// One log entry of every command after the snapshot.
	prop(CmdRegisterBroker, RegisterBroker{ID: 4, Addr: "127.0.0.1:9094", RaftAddr: "127.0.0.1:19094"})
	prop(CmdSetBrokerFenced, SetBrokerFenced{ID: 3, Fenced: true})
	prop(CmdCreateTopic, CreateTopic{Topic: Topic{Name: "gone", ID: TopicID{7}, Partitions: 1}, Assignment: [][]int32{{4}}})
	prop(CmdDeleteTopic, DeleteTopic{Name: "gone"})
	prop(CmdCreatePartitions, CreatePartitions{Name: "logs", Assignment: [][]int32{{1}, {2}}})
	prop(CmdSetConfigs, SetConfigs{Name: "logs", Configs: map[string]string{"segment.bytes": "1048576"}})
	prop(CmdChangeLeader, ChangeLeader{TP: TP{"orders", 1}, PrevEpoch: 0, Leader: 1, ISR: []int32{1, 2}})
	prop(CmdChangeISR, ChangeISR{TP: TP{"orders", 1}, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 2, ISR: []int32{1}})
	prop(CmdSegmentRolled, SegmentRolled{TP: TP{"orders", 0}, Base: 900})
	prop(CmdSegmentsDeleted, SegmentsDeleted{TP: TP{"orders", 0}, LogStart: 600})
	prop(CmdCommitOffsets, CommitOffsets{Group: "g2", Offsets: []group.Offset{
		{Topic: "orders", Partition: 1, Offset: 7, LeaderEpoch: -1, CommitTime: at},
		{Topic: "logs", Partition: 2, Offset: 3, LeaderEpoch: 0, Metadata: "x", CommitTime: at}}})
	prop(CmdDeleteOffsets, DeleteOffsets{Group: "g2", Partitions: []group.TopicPartition{{Topic: "logs", Partition: 2}}})
	prop(CmdCommitOffsets, CommitOffsets{Group: "g3", Offsets: []group.Offset{{Topic: "logs", Partition: 0, Offset: 1, CommitTime: at}}})
	prop(CmdDeleteGroup, DeleteGroup{Group: "g3"})
	prop(CmdAllocateProducerID, AllocateProducerIDs{N: 1000})
	state := describeState(n.fsm)
	index := n.fsm.AppliedIndex()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	out := "testdata/v0"
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(out, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("snapshot.json", snap)
	write("state.json", []byte(state))
	write("applied-index", []byte(fmt.Sprintln(index)))
	var log []byte
	for _, c := range cmds {
		log = append(log, fmt.Sprintf("%x\n", c)...)
	}
	write("commands.hex", log)
	tar := exec.Command("tar", "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-czf",
		filepath.Join(mustAbs(t, out), "datadir.tar.gz"), "-C", dir, "meta")
	if b, err := tar.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, b)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
