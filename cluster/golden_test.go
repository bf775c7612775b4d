package cluster

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/runnel-io/runnel/internal/formattest"
)

var update = flag.Bool("update", false, "rewrite testdata/v1 from the code")

// goldenCommands are one of every command, in an order that applies
// cleanly to an empty state, with fixed proposal ids.
func goldenCommands() []command {
	id := func(b byte) ProposalID { return ProposalID{b, 0xA, 0xB, 0xC, 0xD, 0xE, 0xF, 1, 2, 3, 4, 5, 6, 7, 8, b} }
	topicID := uuid{0x3f, 0x2a, 0x1b, 0x0c, 0x4d, 0x5e, 0x46, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8}
	return []command{
		{CmdRegisterBroker, id(1), &RegisterBroker{ID: 1, Addr: "10.0.0.1:9092", RaftAddr: "10.0.0.1:9093"}},
		{CmdRegisterBroker, id(2), &RegisterBroker{ID: 2, Addr: "10.0.0.2:9092", RaftAddr: "10.0.0.2:9093"}},
		{CmdCreateTopic, id(3), &CreateTopic{Name: "orders", ID: topicID, ReplicationFactor: 2,
			Configs: map[string]string{"retention.ms": "604800000"}, Assignment: [][]int32{{1, 2}, {2, 1}}}},
		{CmdCreatePartitions, id(4), &CreatePartitions{Name: "orders", Total: 3, Assignment: [][]int32{{1, 2}}}},
		{CmdSetConfigs, id(5), &SetConfigs{Name: "orders", Configs: map[string]string{"cleanup.policy": "delete"}}},
		{CmdChangeLeader, id(6), &ChangeLeader{TP: TP{"orders", 1}, PrevEpoch: 0, Leader: 1, ISR: []int32{1, 2}}},
		{CmdChangeISR, id(7), &ChangeISR{TP: TP{"orders", 1}, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1, ISR: []int32{1}}},
		{CmdSegmentRolled, ProposalID{}, &SegmentRolled{TP: TP{"orders", 0}, Base: 0}},
		{CmdSegmentRolled, ProposalID{}, &SegmentRolled{TP: TP{"orders", 0}, Base: 4096}},
		{CmdSegmentsDeleted, ProposalID{}, &SegmentsDeleted{TP: TP{"orders", 0}, LogStart: 4100}},
		{CmdCommitOffsets, ProposalID{}, &CommitOffsets{Group: "billing", Offsets: []OffsetCommit{
			{Topic: "orders", Partition: 0, Offset: 4200, LeaderEpoch: 0, Metadata: "m", CommitMs: 1_700_000_000_123},
			{Topic: "orders", Partition: 1, Offset: 17, LeaderEpoch: 1, CommitMs: 1_700_000_000_456}}}},
		{CmdCommitOffsets, ProposalID{}, &CommitOffsets{Group: "audit", Offsets: []OffsetCommit{
			{Topic: "orders", Partition: 2, Offset: 3, LeaderEpoch: -1, CommitMs: 1_700_000_000_789}}}},
		{CmdDeleteOffsets, id(8), &DeleteOffsets{Group: "billing", Partitions: []TP{{"orders", 1}}}},
		{CmdAllocateProducerID, id(9), &AllocateProducerIDs{N: 1000}},
		{CmdCreateTopic, id(10), &CreateTopic{Name: "scratch", ID: uuid{1}, Assignment: [][]int32{{2}}}},
		{CmdDeleteTopic, id(11), &DeleteTopic{Name: "scratch", ID: uuid{1}}},
		{CmdDeleteGroup, id(12), &DeleteGroup{Group: "audit"}},
		{CmdSetBrokerFenced, id(13), &SetBrokerFenced{ID: 2, Fenced: true}},
		{CmdRegisterBroker, id(15), &RegisterBroker{ID: 3, Addr: "10.0.0.3:9094", RaftAddr: "10.0.0.3:9093",
			Listeners: []BrokerListener{{Name: "CLIENTS", Addr: "broker3.example.com:9092"}, {Name: "INTERNAL", Addr: "10.0.0.3:9094"}}}},
		{CmdAlterScramCredentials, id(16), &AlterScramCredentials{Secret: []byte("0123456789abcdef0123456789abcdef"), Upsertions: []ScramCredential{
			{User: "admin", Mechanism: 2, Salt: []byte("salt of admin"), Iterations: 8192, StoredKey: bytes.Repeat([]byte{0xA1}, 64),
				ServerKey: bytes.Repeat([]byte{0xB2}, 64), IfAbsent: true},
			{User: "app", Mechanism: 1, Salt: []byte("salt of app"), Iterations: 4096, StoredKey: bytes.Repeat([]byte{0xC3}, 32),
				ServerKey: bytes.Repeat([]byte{0xD4}, 32)},
			{User: "old", Mechanism: 1, Salt: []byte("salt of old"), Iterations: 4096, StoredKey: bytes.Repeat([]byte{0xE5}, 32),
				ServerKey: bytes.Repeat([]byte{0xF6}, 32)}}}},
		{CmdAlterScramCredentials, id(17), &AlterScramCredentials{Deletions: []ScramUser{{User: "old", Mechanism: 1}},
			Upsertions: []ScramCredential{{User: "admin", Mechanism: 2, Salt: []byte("another salt"), Iterations: 4096,
				StoredKey: bytes.Repeat([]byte{1}, 64), ServerKey: bytes.Repeat([]byte{2}, 64), IfAbsent: true}}}},
		{CmdAlterAcls, id(18), &AlterAcls{Creations: []AclBinding{
			{ResourceType: 2, ResourceName: "orders", PatternType: 3, Principal: "User:app", Host: "*", Operation: 3, Permission: 3},
			{ResourceType: 3, ResourceName: "billing-", PatternType: 4, Principal: "User:app", Host: "10.0.0.9", Operation: 3, Permission: 3},
			{ResourceType: 2, ResourceName: "*", PatternType: 3, Principal: "User:*", Host: "*", Operation: 4, Permission: 2},
			{ResourceType: 4, ResourceName: "kafka-cluster", PatternType: 3, Principal: "User:CN=broker,O=Example", Host: "*",
				Operation: 9, Permission: 3}}}},
		{CmdAlterAcls, id(19), &AlterAcls{Deletions: []AclBinding{
			{ResourceType: 2, ResourceName: "*", PatternType: 3, Principal: "User:*", Host: "*", Operation: 4, Permission: 2}},
			Creations: []AclBinding{
				{ResourceType: 5, ResourceName: "tx-", PatternType: 4, Principal: "User:app", Host: "*", Operation: 4, Permission: 3}}}},
		{CmdAlterClientQuotas, id(20), &AlterClientQuotas{Entries: []ClientQuotaAlteration{
			{Entity: []QuotaEntityPart{{Type: "user", Name: strp("app")}, {Type: "client-id", Name: strp("loader")}},
				Set: map[string]float64{"producer_byte_rate": 1048576, "consumer_byte_rate": 2097152}},
			{Entity: []QuotaEntityPart{{Type: "user", Name: nil}}, Set: map[string]float64{"request_percentage": 12.5}},
			{Entity: []QuotaEntityPart{{Type: "client-id", Name: nil}}, Set: map[string]float64{"producer_byte_rate": 65536}}}}},
		{CmdAlterClientQuotas, id(21), &AlterClientQuotas{Entries: []ClientQuotaAlteration{
			{Entity: []QuotaEntityPart{{Type: "user", Name: strp("app")}, {Type: "client-id", Name: strp("loader")}},
				Remove: []string{"consumer_byte_rate"}},
			{Entity: []QuotaEntityPart{{Type: "client-id", Name: nil}}, Remove: []string{"producer_byte_rate"}}}}},
		{CmdSetBrokerConfigs, id(30), &SetBrokerConfigs{Broker: DefaultBrokerConfigs, Configs: map[string]string{
			"log.retention.ms": "86400000", "log.cleaner.io.max.bytes.per.second": "1048576"}}},
		{CmdSetBrokerConfigs, id(31), &SetBrokerConfigs{Broker: 2, Configs: map[string]string{"log.level": "debug"}}},
		{CmdSetBrokerConfigs, id(32), &SetBrokerConfigs{Broker: 1, Configs: map[string]string{"log.segment.bytes": "1048576"}}},
		{CmdSetBrokerConfigs, id(33), &SetBrokerConfigs{Broker: 1}},
		{CmdSetConfigs, id(34), &SetConfigs{Name: "orders", Configs: map[string]string{"cleanup.policy": "delete", "retention.ms": "3600000"},
			Prev: &map[string]string{"cleanup.policy": "delete"}}},
		{CmdSetBrokerConfigs, id(35), &SetBrokerConfigs{Broker: 2, Configs: map[string]string{"log.level": "info"},
			Prev: &map[string]string{"log.level": "debug"}}},
		{CmdRegisterBroker, id(40), &RegisterBroker{ID: 4, Addr: "10.0.0.4:9092", RaftAddr: "10.0.0.4:9093"}},
		{CmdReassignPartition, id(41), &ReassignPartition{TP: TP{"orders", 0}, Target: []int32{3, 1}}},
		{CmdReassignPartition, id(42), &ReassignPartition{TP: TP{"orders", 2}, Target: []int32{4, 1}}},
		{CmdReassignPartition, id(43), &ReassignPartition{TP: TP{"orders", 2}, Cancel: true}},
		{CmdReassignPartition, id(44), &ReassignPartition{TP: TP{"orders", 2}, Target: []int32{1}}},
		{CmdCompleteReassignment, id(45), &CompleteReassignment{TP: TP{"orders", 2}, PartitionEpoch: 4}},
		{CmdSetBrokerFenced, id(46), &SetBrokerFenced{ID: 4, Fenced: true}},
		{CmdUnregisterBroker, id(47), &UnregisterBroker{ID: 4}},
	}
}

func strp(s string) *string { return &s }

// renderCommand is a command's log bytes as the golden files hold them:
// the header in hex on one line, the JSON on the next.
func renderCommand(b []byte) []byte {
	return []byte(hex.EncodeToString(b[:commandHeader]) + "\n" + string(b[commandHeader:]) + "\n")
}

func parseCommand(t *testing.T, golden []byte) []byte {
	head, body, ok := strings.Cut(strings.TrimSuffix(string(golden), "\n"), "\n")
	h, err := hex.DecodeString(head)
	if !ok || err != nil {
		t.Fatalf("golden command %q: %v", golden, err)
	}
	return append(h, body...)
}

// TestGoldenCommands: every command type encodes to its golden bytes, the
// golden bytes decode to the same command, and they all apply.
func TestGoldenCommands(t *testing.T) {
	cmds := goldenCommands()
	seen := map[CommandType]bool{}
	f := NewFSM()
	for i, c := range cmds {
		b, err := encodeCommand(c.typ, c.id, c.payload)
		if err != nil {
			t.Fatal(err)
		}
		n := 1
		for _, d := range cmds[:i] {
			if d.typ == c.typ {
				n++
			}
		}
		name := fmt.Sprintf("%s-%d.cmd", c.typ, n)
		golden := parseCommand(t, formattest.Golden(t, filepath.Join("testdata", "v1", name), renderCommand(b), *update))
		dec, err := decodeCommand(golden)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(dec, c) {
			t.Fatalf("%s decodes to %+v, want %+v", name, dec, c)
		}
		if res, refused := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: golden}).(error); refused {
			t.Fatalf("%s refused: %v", name, res)
		}
		seen[c.typ] = true
	}
	for ct := range commandNames {
		if !seen[ct] {
			t.Errorf("no golden command of type %s", ct)
		}
	}
	// A refusal is remembered too.
	again, _ := encodeCommand(CmdCreatePartitions, ProposalID{14}, CreatePartitions{Name: "orders", Total: 3, Assignment: [][]int32{{2, 1}}})
	if res, _ := f.Apply(&raft.Log{Index: uint64(len(cmds) + 1), Type: raft.LogCommand, Data: again}).(error); !errors.Is(res, ErrPartitions) {
		t.Fatalf("raising the count to the one it has: %v", res)
	}
	formattest.Golden(t, filepath.Join("testdata", "v1", "snapshot.json"), append(snapshotBytes(t, f), '\n'), *update)
}

// TestGoldenSnapshot: the golden snapshot restores, and snapshots again to
// the same bytes; a snapshot of an unknown version is refused.
func TestGoldenSnapshot(t *testing.T) {
	want, err := os.ReadFile("testdata/v1/snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	f := NewFSM()
	if err := f.Restore(io.NopCloser(bytes.NewReader(want))); err != nil {
		t.Fatal(err)
	}
	if got := append(snapshotBytes(t, f), '\n'); !bytes.Equal(got, want) {
		t.Fatalf("restored and snapshot again:\n%s\nwant\n%s", got, want)
	}
	for _, bad := range []string{`{"version":2}`, `{"version":1,"brokers":[],"surprise":1}`, `[]`} {
		if err := NewFSM().Restore(io.NopCloser(strings.NewReader(bad))); err == nil {
			t.Errorf("snapshot %s restored", bad)
		}
	}
}
