package cluster

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/runnel-io/runnel/internal/quota"
)

// fsmLog applies commands to f as consecutive Raft entries.
type fsmLog struct {
	t     *testing.T
	f     *FSM
	index uint64
	all   [][]byte
}

func (l *fsmLog) apply(ct CommandType, payload any) any {
	l.t.Helper()
	b, err := EncodeCommand(ct, payload)
	if err != nil {
		l.t.Fatal(err)
	}
	l.index++
	l.all = append(l.all, b)
	return l.f.Apply(&raft.Log{Index: l.index, Type: raft.LogCommand, Data: b})
}

func (l *fsmLog) ok(ct CommandType, payload any) any {
	l.t.Helper()
	res := l.apply(ct, payload)
	if err, isErr := res.(error); isErr {
		l.t.Fatalf("command %d %+v refused: %v", ct, payload, err)
	}
	return res
}

func (l *fsmLog) refused(ct CommandType, payload any, want error) {
	l.t.Helper()
	before := describeState(l.f)
	res := l.apply(ct, payload)
	err, isErr := res.(error)
	if !isErr || !errors.Is(err, want) {
		l.t.Fatalf("command %d %+v: result %v, want %v", ct, payload, res, want)
	}
	after := describeState(l.f)
	// Only the applied index moves.
	if before != after {
		l.t.Fatalf("refused command %d changed the state:\n%s\n%s", ct, before, after)
	}
}

func stripIndex(b []byte) []byte {
	i := bytes.Index(b, []byte(`"index":`))
	if i < 0 {
		return b
	}
	j := i + bytes.IndexAny(b[i:], ",}")
	return append(append([]byte(nil), b[:i]...), b[j:]...)
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

func buildState(t *testing.T) *fsmLog {
	l := &fsmLog{t: t, f: NewFSM()}
	for id := int32(1); id <= 3; id++ {
		l.ok(CmdRegisterBroker, RegisterBroker{ID: id, Addr: "127.0.0.1:909" + string(rune('0'+id)), RaftAddr: "127.0.0.1:1909" + string(rune('0'+id))})
	}
	l.ok(CmdCreateTopic, CreateTopic{Name: "orders", ID: uuid{1}, Configs: map[string]string{"retention.ms": "1000"},
		Assignment: [][]int32{{1, 2, 3}, {2, 3, 1}}})
	l.ok(CmdCreateTopic, CreateTopic{Name: "logs", ID: uuid{2}, Assignment: [][]int32{{3}}})
	return l
}

func TestFSMCommands(t *testing.T) {
	l := buildState(t)
	orders0 := TP{"orders", 0}

	if epoch := l.ok(CmdRegisterBroker, RegisterBroker{ID: 2, Addr: "h:2", RaftAddr: "h:12"}); epoch != int64(2) {
		t.Fatalf("re-registration epoch %v, want 2", epoch)
	}
	l.ok(CmdSetBrokerFenced, SetBrokerFenced{ID: 3, Fenced: true})
	l.refused(CmdSetBrokerFenced, SetBrokerFenced{ID: 9, Fenced: true}, ErrUnknownBroker)

	l.refused(CmdCreateTopic, CreateTopic{Name: "orders", ID: uuid{3}, Assignment: [][]int32{{1}}}, ErrTopicExists)
	l.refused(CmdCreateTopic, CreateTopic{Name: "x", ID: uuid{3}}, ErrPartitions)
	l.refused(CmdCreateTopic, CreateTopic{Name: "x", ID: uuid{3}, Assignment: [][]int32{{1, 1}}}, ErrBadAssignment)
	l.refused(CmdCreateTopic, CreateTopic{Name: "x", ID: uuid{3}, Assignment: [][]int32{{7}}}, ErrUnknownBroker)
	l.refused(CmdCreateTopic, CreateTopic{Name: "x", Assignment: [][]int32{{1}}}, ErrMalformedCommand)

	// Elections bump the epoch and only apply at the epoch they were made for.
	if e := l.ok(CmdChangeLeader, ChangeLeader{TP: orders0, PrevEpoch: 0, Leader: 2, ISR: []int32{2, 3}}); e != int64(1) {
		t.Fatalf("epoch after election %v", e)
	}
	l.refused(CmdChangeLeader, ChangeLeader{TP: orders0, PrevEpoch: 0, Leader: 3, ISR: []int32{3}}, ErrStaleLeaderEpoch)
	l.refused(CmdChangeLeader, ChangeLeader{TP: orders0, PrevEpoch: 1, Leader: 9, ISR: []int32{9}}, ErrNotReplica)
	l.refused(CmdChangeLeader, ChangeLeader{TP: TP{"orders", 5}, PrevEpoch: 0, Leader: 1}, ErrUnknownPartition)
	// The leader changes the ISR at its epoch only, and keeps itself in it.
	// (Re-registering 2 and fencing 3 above moved orders-0 to partition
	// epoch 2; the election made it 3.)
	l.ok(CmdChangeISR, ChangeISR{TP: orders0, Leader: 2, LeaderEpoch: 1, PartitionEpoch: 3, ISR: []int32{2, 3, 1}})
	l.refused(CmdChangeISR, ChangeISR{TP: orders0, Leader: 2, LeaderEpoch: 1, PartitionEpoch: 3, ISR: []int32{2}}, ErrStaleLeaderEpoch)
	l.refused(CmdChangeISR, ChangeISR{TP: orders0, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 4, ISR: []int32{1}}, ErrStaleLeaderEpoch)
	l.refused(CmdChangeISR, ChangeISR{TP: orders0, Leader: 2, LeaderEpoch: 0, PartitionEpoch: 4, ISR: []int32{2}}, ErrStaleLeaderEpoch)
	l.refused(CmdChangeISR, ChangeISR{TP: orders0, Leader: 2, LeaderEpoch: 1, PartitionEpoch: 4, ISR: []int32{3}}, ErrBadAssignment)
	// No leader at all (every replica fenced) is an election too. Fencing
	// 3 left logs-0 leaderless at epoch 1 already.
	l.ok(CmdChangeLeader, ChangeLeader{TP: TP{"logs", 0}, PrevEpoch: 1, Leader: -1, ISR: []int32{3}})

	l.ok(CmdSegmentRolled, SegmentRolled{TP: orders0, Base: 0})
	l.ok(CmdSegmentRolled, SegmentRolled{TP: orders0, Base: 1000})
	l.ok(CmdSegmentRolled, SegmentRolled{TP: orders0, Base: 2500})
	l.refused(CmdSegmentRolled, SegmentRolled{TP: orders0, Base: 2000}, ErrSegmentOutOfOrder)
	l.ok(CmdSegmentRolled, SegmentRolled{TP: orders0, Base: 2500}) // sent again: no change
	l.ok(CmdSegmentsDeleted, SegmentsDeleted{TP: orders0, LogStart: 1200})

	l.ok(CmdCreatePartitions, CreatePartitions{Name: "logs", Total: 3, Assignment: [][]int32{{1}, {2}}})
	l.refused(CmdCreatePartitions, CreatePartitions{Name: "nope", Total: 1, Assignment: [][]int32{{1}}}, ErrUnknownTopic)
	l.ok(CmdSetConfigs, SetConfigs{Name: "logs", Configs: map[string]string{"segment.bytes": "1048576"}})

	now := time.UnixMilli(1_700_000_000_123)
	l.ok(CmdCommitOffsets, CommitOffsets{Group: "g1", Offsets: []OffsetCommit{
		{Topic: "orders", Partition: 0, Offset: 42, LeaderEpoch: 1, Metadata: "m", CommitMs: now.UnixMilli()},
		{Topic: "logs", Partition: 0, Offset: 7, LeaderEpoch: -1, CommitMs: now.UnixMilli()}}})
	l.ok(CmdCommitOffsets, CommitOffsets{Group: "g2", Offsets: []OffsetCommit{{Topic: "orders", Partition: 1, Offset: 1, CommitMs: now.UnixMilli()}}})
	l.ok(CmdDeleteOffsets, DeleteOffsets{Group: "g1", Partitions: []TP{{Topic: "logs", Partition: 0}}})
	if first := l.ok(CmdAllocateProducerID, AllocateProducerIDs{N: 1000}); first != int64(0) {
		t.Fatalf("first producer id %v", first)
	}
	if first := l.ok(CmdAllocateProducerID, AllocateProducerIDs{N: 1000}); first != int64(1000) {
		t.Fatalf("second block %v", first)
	}
	l.refused(CmdAllocateProducerID, AllocateProducerIDs{N: 0}, ErrMalformedCommand)
	l.refused(CommandType(200), struct{}{}, ErrUnknownCommand)
	l.index++
	if res := l.f.Apply(&raft.Log{Index: l.index, Type: raft.LogCommand, Data: []byte{byte(CmdCreateTopic), '{'}}); !errors.Is(res.(error), ErrMalformedCommand) {
		t.Fatalf("truncated JSON: %v", res)
	}

	l.f.Read(func(s *State) {
		p := s.Partitions["orders"][0]
		if p.Leader != 2 || p.LeaderEpoch != 1 || len(p.ISR) != 3 || p.LogStart != 1200 || len(p.Segments) != 2 || p.Segments[0] != 1000 {
			t.Errorf("orders-0: %+v", p)
		}
		if lp := s.Partitions["logs"]; len(lp) != 3 || lp[0].Leader != -1 || s.Topics["logs"].Partitions != 3 {
			t.Errorf("logs: %+v %+v", lp[0], s.Topics["logs"])
		}
		if !s.Brokers[3].Fenced || s.Brokers[2].Addr != "h:2" || s.NextProducerID != 2000 {
			t.Errorf("brokers %+v %+v, next pid %d", s.Brokers[3], s.Brokers[2], s.NextProducerID)
		}
		offs := s.GroupOffsets()
		if len(offs["g1"]) != 1 || offs["g1"][0].Offset != 42 || offs["g1"][0].Metadata != "m" || !offs["g1"][0].CommitTime.Equal(now) {
			t.Errorf("offsets %+v", offs)
		}
	})

	// Deleting a topic takes its partitions and committed offsets.
	// A delete names the topic it was made for: not one of the same name
	// created since.
	l.refused(CmdDeleteTopic, DeleteTopic{Name: "orders", ID: uuid{99}}, ErrUnknownTopic)
	l.ok(CmdDeleteTopic, DeleteTopic{Name: "orders", ID: uuid{1}})
	l.refused(CmdDeleteTopic, DeleteTopic{Name: "orders"}, ErrUnknownTopic)
	l.f.Read(func(s *State) {
		if _, ok := s.Partitions["orders"]; ok {
			t.Error("partitions of a deleted topic remain")
		}
		if offs := s.GroupOffsets(); len(offs["g1"]) != 0 || len(offs["g2"]) != 0 {
			t.Errorf("offsets of a deleted topic remain: %+v", offs)
		}
	})
	l.ok(CmdDeleteGroup, DeleteGroup{Group: "g1"})
	if l.f.AppliedIndex() != l.index {
		t.Fatalf("applied index %d, want %d", l.f.AppliedIndex(), l.index)
	}
}

// TestFSMSnapshotRestore: a snapshot restored into a new state machine
// gives the same state, and applying the same commands to two machines
// gives byte-identical snapshots.
func TestFSMSnapshotRestore(t *testing.T) {
	l := buildState(t)
	l.ok(CmdChangeLeader, ChangeLeader{TP: TP{"orders", 1}, PrevEpoch: 0, Leader: 3, ISR: []int32{3}})
	l.ok(CmdSegmentRolled, SegmentRolled{TP: TP{"orders", 1}, Base: 0})
	l.ok(CmdCommitOffsets, CommitOffsets{Group: "g", Offsets: []OffsetCommit{{Topic: "orders", Partition: 1, Offset: 9, Metadata: "x", CommitMs: 5}}})
	l.ok(CmdAllocateProducerID, AllocateProducerIDs{N: 10})
	want := snapshotBytes(t, l.f)

	restored := NewFSM()
	if err := restored.Restore(io.NopCloser(bytes.NewReader(want))); err != nil {
		t.Fatal(err)
	}
	if got := snapshotBytes(t, restored); !bytes.Equal(got, want) {
		t.Fatalf("restored state differs:\n%s\n%s", got, want)
	}
	if restored.AppliedIndex() != l.index {
		t.Fatalf("restored index %d, want %d", restored.AppliedIndex(), l.index)
	}

	replay := &fsmLog{t: t, f: NewFSM()}
	for _, b := range l.all {
		replay.index++
		replay.f.Apply(&raft.Log{Index: replay.index, Type: raft.LogCommand, Data: b})
	}
	if got := snapshotBytes(t, replay.f); !bytes.Equal(got, want) {
		t.Fatalf("replaying the same commands gave another state:\n%s\n%s", got, want)
	}
	if err := NewFSM().Restore(io.NopCloser(bytes.NewReader([]byte("{not json")))); err == nil {
		t.Fatal("a corrupt snapshot restored")
	}
}

// FuzzFSMApply: any bytes as a command are applied or refused, never a
// panic, and a refused command leaves the state as it was.
func FuzzFSMApply(f *testing.F) {
	seed := func(ct CommandType, payload any) {
		b, _ := EncodeCommand(ct, payload)
		f.Add(b)
	}
	seed(CmdCreateTopic, CreateTopic{Name: "t", ID: uuid{9}, Assignment: [][]int32{{1}}})
	seed(CmdChangeLeader, ChangeLeader{TP: TP{"orders", 0}, PrevEpoch: 0, Leader: 2, ISR: []int32{2}})
	seed(CmdSegmentsDeleted, SegmentsDeleted{TP: TP{"orders", 0}, LogStart: 5})
	seed(CmdCommitOffsets, CommitOffsets{Group: "g", Offsets: []OffsetCommit{{Topic: "orders"}}})
	// Version 0, as runnel wrote it before the formats were versioned.
	f.Add([]byte(`\x03{"topic":{"name":"t","id":[9,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"partitions":1},"assignment":[[1]]}`))
	f.Add([]byte(`\x05{"name":"orders","assignment":[[1]]}`))
	f.Add([]byte(`\x0b{"group":"g","offsets":[{"Topic":"orders","Partition":0,"Offset":1,"CommitTime":"2023-11-14T22:13:20Z"}]}`))
	id, _ := encodeCommand(CmdCreatePartitions, ProposalID{1}, CreatePartitions{Name: "orders", Total: 3, Assignment: [][]int32{{1}}})
	f.Add(id)
	f.Fuzz(func(t *testing.T, cmd []byte) {
		l := buildState(t)
		before := describeState(l.f)
		l.index++
		res := l.f.Apply(&raft.Log{Index: l.index, Type: raft.LogCommand, Data: cmd})
		if _, refused := res.(error); refused {
			if after := describeState(l.f); before != after {
				t.Fatalf("refused command %q changed the state", cmd)
			}
		}
		// Sent again, it changes nothing more (where it has an id) and
		// the state still snapshots and restores.
		snap := snapshotBytes(t, l.f)
		r := NewFSM()
		if err := r.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
			t.Fatalf("state after %q does not restore: %v", cmd, err)
		}
		if got := snapshotBytes(t, r); !bytes.Equal(got, snap) {
			t.Fatalf("state after %q restores differently", cmd)
		}
	})
}

func partitionOf(t *testing.T, f *FSM, tp TP) PartitionInfo {
	t.Helper()
	var p PartitionInfo
	f.Read(func(s *State) {
		got, err := s.partition(tp)
		if err != nil {
			t.Fatal(err)
		}
		p = *got
	})
	return p
}

func TestFSMElections(t *testing.T) {
	l := buildState(t) // orders-0 {1,2,3} led by 1, orders-1 {2,3,1} led by 2, logs-0 {3}
	l.ok(CmdCreateTopic, CreateTopic{Name: "dirty", ID: uuid{9},
		Configs: map[string]string{UncleanElectionConfig: "true"}, Assignment: [][]int32{{1, 2}}})
	o0, o1, logs, dirty := TP{"orders", 0}, TP{"orders", 1}, TP{"logs", 0}, TP{"dirty", 0}
	check := func(tp TP, leader, epoch int32, isr ...int32) {
		t.Helper()
		p := partitionOf(t, l.f, tp)
		if p.Leader != leader || p.LeaderEpoch != epoch || !slices.Equal(p.ISR, isr) {
			t.Fatalf("%s: leader %d epoch %d isr %v; want %d, %d, %v", tp, p.Leader, p.LeaderEpoch, p.ISR, leader, epoch, isr)
		}
	}

	// Fencing the leader elects the next in-sync replica in preference
	// order and drops the fenced one from the ISR; followers only leave
	// the ISR, without a new leader epoch.
	l.ok(CmdSetBrokerFenced, SetBrokerFenced{ID: 1, Fenced: true})
	check(o0, 2, 1, 2, 3)
	check(o1, 2, 0, 2, 3)
	check(dirty, 2, 1, 2)
	// Fencing twice changes nothing.
	l.ok(CmdSetBrokerFenced, SetBrokerFenced{ID: 1, Fenced: true})
	check(o0, 2, 1, 2, 3)

	// The last in-sync replica fenced: no leader, and it stays in the ISR
	// so that it, and no out-of-sync replica, leads when it returns.
	l.ok(CmdSetBrokerFenced, SetBrokerFenced{ID: 3, Fenced: true})
	check(logs, -1, 1, 3)
	check(o0, 2, 1, 2)
	l.ok(CmdSetBrokerFenced, SetBrokerFenced{ID: 2, Fenced: true})
	check(o0, -1, 2, 2)
	check(o1, -1, 1, 2)
	// An unclean topic elects any replica that is up.
	check(dirty, -1, 2, 2)
	l.ok(CmdSetBrokerFenced, SetBrokerFenced{ID: 1, Fenced: false})
	check(dirty, 1, 3, 1)
	check(o0, -1, 2, 2) // 1 is not in sync: no leader
	l.ok(CmdSetBrokerFenced, SetBrokerFenced{ID: 2, Fenced: false})
	check(o0, 2, 3, 2)
	check(o1, 2, 2, 2)

	// A restart (registering again) gives up leadership to another in-sync
	// replica, or, as the only one, leads again at a new epoch.
	l.ok(CmdChangeISR, ChangeISR{TP: o0, Leader: 2, LeaderEpoch: 3, PartitionEpoch: partitionOf(t, l.f, o0).PartitionEpoch, ISR: []int32{2, 1}})
	l.ok(CmdRegisterBroker, RegisterBroker{ID: 2, Addr: "h:2", RaftAddr: "h:12"})
	check(o0, 1, 4, 1)
	check(o1, 2, 4, 2) // down (3) and up again (4)
	l.ok(CmdSetBrokerFenced, SetBrokerFenced{ID: 3, Fenced: false})
	check(logs, 3, 2, 3)
}

// TestAlterScramCredentials: deletions then upsertions, if_absent keeps
// the credential there is, the first secret stays, and a malformed entry
// refuses the whole command.
func TestAlterScramCredentials(t *testing.T) {
	l := &fsmLog{t: t, f: NewFSM()}
	cred := func(user string, m int8, iter int32) ScramCredential {
		return ScramCredential{User: user, Mechanism: m, Salt: []byte("s"), Iterations: iter, StoredKey: []byte{1}, ServerKey: []byte{2}}
	}
	get := func(user string, m int8) (c ScramCredential, ok bool) {
		l.f.Read(func(s *State) { c, ok = s.Scram[ScramUser{user, m}] })
		return c, ok
	}
	l.ok(CmdAlterScramCredentials, AlterScramCredentials{Upsertions: []ScramCredential{cred("a", 1, 4096), cred("a", 2, 4096)}, Secret: []byte("first")})
	again := cred("a", 1, 8192)
	again.IfAbsent = true
	l.ok(CmdAlterScramCredentials, AlterScramCredentials{Upsertions: []ScramCredential{again, cred("a", 2, 8192)}, Secret: []byte("second")})
	if c, _ := get("a", 1); c.Iterations != 4096 {
		t.Errorf("if_absent replaced a credential: %+v", c)
	}
	if c, _ := get("a", 2); c.Iterations != 8192 {
		t.Errorf("upsertion did not replace: %+v", c)
	}
	var secret []byte
	l.f.Read(func(s *State) { secret = s.ScramSecret })
	if string(secret) != "first" {
		t.Errorf("secret %q", secret)
	}
	l.ok(CmdAlterScramCredentials, AlterScramCredentials{Deletions: []ScramUser{{"a", 1}, {"nobody", 2}}})
	if _, ok := get("a", 1); ok {
		t.Error("deleted credential still there")
	}
	before := len(l.all)
	for _, bad := range []AlterScramCredentials{
		{Upsertions: []ScramCredential{cred("b", 1, 4096), cred("", 1, 4096)}},
		{Upsertions: []ScramCredential{cred("b", 3, 4096)}},
		{Deletions: []ScramUser{{"a", 2}}, Upsertions: []ScramCredential{{User: "b", Mechanism: 1, Iterations: 4096}}},
	} {
		res := l.apply(CmdAlterScramCredentials, bad)
		if err, _ := res.(error); !errors.Is(err, ErrMalformedCommand) {
			t.Errorf("%+v: %v", bad, res)
		}
	}
	if _, ok := get("b", 1); ok || len(l.all) != before+3 {
		t.Error("a refused command changed the credentials")
	}
	if _, ok := get("a", 2); !ok {
		t.Error("a refused deletion applied")
	}
}

// TestAlterAcls: bindings are a set; the hook sees every change, from a
// command and from a restored snapshot; a malformed binding refuses the
// whole command.
func TestAlterAcls(t *testing.T) {
	l := &fsmLog{t: t, f: NewFSM()}
	var seen [][]AclBinding
	l.f.OnAclsChanged(func(b []AclBinding) { seen = append(seen, b) })
	if len(seen) != 1 || len(seen[0]) != 0 {
		t.Fatalf("hook at registration: %v", seen)
	}
	read := AclBinding{ResourceType: 2, ResourceName: "orders", PatternType: 3, Principal: "User:app", Host: "*", Operation: 3, Permission: 3}
	deny := AclBinding{ResourceType: 2, ResourceName: "ord", PatternType: 4, Principal: "User:*", Host: "*", Operation: 4, Permission: 2}
	l.ok(CmdAlterAcls, AlterAcls{Creations: []AclBinding{read, deny, read}})
	l.ok(CmdAlterAcls, AlterAcls{Deletions: []AclBinding{deny, {ResourceType: 3, ResourceName: "g", PatternType: 3,
		Principal: "User:x", Host: "*", Operation: 3, Permission: 3}}})
	if got := seen[len(seen)-1]; !slices.Equal(got, []AclBinding{read}) {
		t.Fatalf("after create and delete: %v", got)
	}
	n := len(seen)
	for _, bad := range []AclBinding{
		{ResourceType: 1, ResourceName: "x", PatternType: 3, Principal: "User:a", Host: "*", Operation: 3, Permission: 3},
		{ResourceType: 2, ResourceName: "x", PatternType: 2, Principal: "User:a", Host: "*", Operation: 3, Permission: 3},
		{ResourceType: 2, ResourceName: "x", PatternType: 3, Principal: "User:a", Host: "*", Operation: 1, Permission: 3},
		{ResourceType: 2, ResourceName: "x", PatternType: 3, Principal: "User:a", Host: "*", Operation: 3, Permission: 1},
		{ResourceType: 2, ResourceName: "", PatternType: 3, Principal: "User:a", Host: "*", Operation: 3, Permission: 3},
	} {
		res := l.apply(CmdAlterAcls, AlterAcls{Deletions: []AclBinding{read}, Creations: []AclBinding{bad}})
		if err, _ := res.(error); !errors.Is(err, ErrMalformedCommand) {
			t.Errorf("%+v: %v", bad, res)
		}
	}
	if len(seen) != n {
		t.Errorf("refused commands told the hook")
	}
	snap := snapshotBytes(t, l.f)
	g := NewFSM()
	var restored []AclBinding
	g.OnAclsChanged(func(b []AclBinding) { restored = b })
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(restored, []AclBinding{read}) {
		t.Fatalf("restored %v", restored)
	}
}

// TestAlterClientQuotas: values set and removed by entity; an entity with
// none left is gone; a malformed entry refuses the whole command; the hook
// sees every change, from a command and from a restored snapshot.
func TestAlterClientQuotas(t *testing.T) {
	l := &fsmLog{t: t, f: NewFSM()}
	var seen []*quota.Config
	l.f.OnClientQuotasChanged(func(c *quota.Config) { seen = append(seen, c) })
	if len(seen) != 1 || len(seen[0].Entities()) != 0 {
		t.Fatalf("hook at registration: %v", seen)
	}
	app := []QuotaEntityPart{{Type: "user", Name: strp("app")}, {Type: "client-id", Name: nil}}
	appEntity := quota.Entity{User: "app", HasUser: true, HasClientID: true}
	l.ok(CmdAlterClientQuotas, AlterClientQuotas{Entries: []ClientQuotaAlteration{
		{Entity: app, Set: map[string]float64{"producer_byte_rate": 1000, "consumer_byte_rate": 2000}},
		{Entity: []QuotaEntityPart{{Type: "client-id", Name: strp("c")}}, Set: map[string]float64{"request_percentage": 50}},
	}})
	l.ok(CmdAlterClientQuotas, AlterClientQuotas{Entries: []ClientQuotaAlteration{
		{Entity: app, Remove: []string{"consumer_byte_rate", "request_percentage"}},
		{Entity: []QuotaEntityPart{{Type: "client-id", Name: strp("c")}}, Remove: []string{"request_percentage"}},
	}})
	cfg := seen[len(seen)-1]
	if es := cfg.Entities(); len(es) != 1 || es[0] != appEntity || !maps.Equal(cfg.Values(appEntity), map[string]float64{"producer_byte_rate": 1000}) {
		t.Fatalf("after set and remove: %v %v", es, cfg.Values(appEntity))
	}
	n := len(seen)
	for _, bad := range []ClientQuotaAlteration{
		{Entity: nil, Set: map[string]float64{"producer_byte_rate": 1}},
		{Entity: []QuotaEntityPart{{Type: "group", Name: strp("g")}}, Set: map[string]float64{"producer_byte_rate": 1}},
		{Entity: []QuotaEntityPart{{Type: "user", Name: strp("")}}, Set: map[string]float64{"producer_byte_rate": 1}},
		{Entity: []QuotaEntityPart{{Type: "user"}, {Type: "user", Name: strp("x")}}, Set: map[string]float64{"producer_byte_rate": 1}},
		{Entity: app, Set: map[string]float64{"producer_byte_rate": 1.5}},
		{Entity: app, Set: map[string]float64{"producer_byte_rate": -1}},
		{Entity: app, Set: map[string]float64{"connection_creation_rate": 1}},
		{Entity: app, Remove: []string{"nonsense"}},
	} {
		res := l.apply(CmdAlterClientQuotas, AlterClientQuotas{Entries: []ClientQuotaAlteration{
			{Entity: app, Remove: []string{"producer_byte_rate"}}, bad}})
		if err, _ := res.(error); !errors.Is(err, ErrMalformedCommand) {
			t.Errorf("%+v: %v", bad, res)
		}
	}
	if len(seen) != n {
		t.Errorf("refused commands told the hook")
	}
	snap := snapshotBytes(t, l.f)
	g := NewFSM()
	var restored *quota.Config
	g.OnClientQuotasChanged(func(c *quota.Config) { restored = c })
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if es := restored.Entities(); len(es) != 1 || !maps.Equal(restored.Values(appEntity), map[string]float64{"producer_byte_rate": 1000}) {
		t.Fatalf("restored %v", es)
	}
}
