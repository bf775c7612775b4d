package cluster

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestSegmentEventsDoNotWakeTopology: segment rolls and log start moves
// reach the boundary hook for their partition alone and leave the
// topology channel open, so reconcilers stay asleep; offset commits and
// producer ids leave it open too. What replicas follow (leaders, ISRs,
// topics) closes it.
func TestSegmentEventsDoNotWakeTopology(t *testing.T) {
	l := buildState(t)
	var told []TP
	l.f.OnLogBoundaries(func(tp TP) { told = append(told, tp) })
	o0 := TP{"orders", 0}
	quiet := []struct {
		ct      CommandType
		payload any
	}{
		{CmdSegmentRolled, SegmentRolled{TP: o0, Base: 0}},
		{CmdSegmentRolled, SegmentRolled{TP: o0, Base: 100}},
		{CmdSegmentsDeleted, SegmentsDeleted{TP: o0, LogStart: 100}},
		{CmdCommitOffsets, CommitOffsets{Group: "g", Offsets: []OffsetCommit{{Topic: "orders", Offset: 1}}}},
		{CmdAllocateProducerID, AllocateProducerIDs{N: 1}},
		{CmdSetBrokerFenced, SetBrokerFenced{ID: 1, Fenced: false}}, // no change
	}
	for _, c := range quiet {
		ch := l.f.TopologyChanged()
		l.ok(c.ct, c.payload)
		if closed(ch) {
			t.Fatalf("%s %+v woke the topology watchers", c.ct, c.payload)
		}
	}
	if len(told) != 3 || told[0] != o0 || told[2] != o0 {
		t.Fatalf("boundary hook told %v, want orders-0 three times", told)
	}
	// A refused command changes nothing and wakes no one.
	ch := l.f.TopologyChanged()
	l.refused(CmdChangeISR, ChangeISR{TP: o0, Leader: 3, ISR: []int32{3}}, ErrStaleLeaderEpoch)
	if closed(ch) {
		t.Fatal("a refused command woke the topology watchers")
	}
	for _, c := range []struct {
		ct      CommandType
		payload any
	}{
		{CmdChangeISR, ChangeISR{TP: o0, Leader: 1, ISR: []int32{1, 2}}},
		{CmdChangeLeader, ChangeLeader{TP: o0, PrevEpoch: 0, Leader: 2, ISR: []int32{2}}},
		{CmdSetBrokerFenced, SetBrokerFenced{ID: 3, Fenced: true}},
		{CmdCreatePartitions, CreatePartitions{Name: "logs", Total: 2, Assignment: [][]int32{{1}}}},
		{CmdSetConfigs, SetConfigs{Name: "logs", Configs: map[string]string{"retention.ms": "5"}}},
		{CmdDeleteTopic, DeleteTopic{Name: "logs"}},
	} {
		ch := l.f.TopologyChanged()
		l.ok(c.ct, c.payload)
		if !closed(ch) {
			t.Fatalf("%s %+v did not wake the topology watchers", c.ct, c.payload)
		}
	}
}

// bigState is a state machine with topics × partitions partitions over
// three brokers, and the topics' ids.
func bigState(b *testing.B, topics, partitions int) (*FSM, []TopicID) {
	f := NewFSM()
	var index uint64
	apply := func(ct CommandType, payload any) {
		cmd, err := EncodeCommand(ct, payload)
		if err != nil {
			b.Fatal(err)
		}
		index++
		if res, refused := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: cmd}).(error); refused {
			b.Fatal(res)
		}
	}
	for id := int32(1); id <= 3; id++ {
		apply(CmdRegisterBroker, RegisterBroker{ID: id})
	}
	ids := make([]TopicID, topics)
	for i := range ids {
		ids[i] = NewTopicID()
		name := fmt.Sprintf("topic-%06d", i)
		apply(CmdCreateTopic, CreateTopic{Name: name, ID: uuid(ids[i]), Assignment: Assign([]int32{1, 2, 3}, name, 0, partitions, 3)})
	}
	return f, ids
}

// BenchmarkTopicByID looks topics up by id in a state of 100,000
// partitions, spread over 1,000 and over 100,000 topics: the same cost,
// whatever the number of topics.
func BenchmarkTopicByID(b *testing.B) {
	for _, shape := range []struct{ topics, partitions int }{{1000, 100}, {100_000, 1}} {
		b.Run(fmt.Sprintf("topics=%d/partitions=%d", shape.topics, shape.topics*shape.partitions), func(b *testing.B) {
			f, ids := bigState(b, shape.topics, shape.partitions)
			b.ResetTimer()
			for i := range b.N {
				var ok bool
				f.Read(func(s *State) { _, ok = s.TopicByID(ids[i%len(ids)]) })
				if !ok {
					b.Fatal("topic not found")
				}
			}
		})
	}
}

// BenchmarkSegmentRolled applies segment rolls across a state of 100,000
// partitions and counts the topology wakes they cause (wakes/op: 0).
func BenchmarkSegmentRolled(b *testing.B) {
	const topics, partitions = 1000, 100
	f, _ := bigState(b, topics, partitions)
	cmds := make([][]byte, topics*partitions)
	for i := range cmds {
		cmds[i], _ = EncodeCommand(CmdSegmentRolled, SegmentRolled{TP: TP{fmt.Sprintf("topic-%06d", i/partitions), int32(i % partitions)}, Base: 0})
	}
	index := f.AppliedIndex()
	told, wakes := 0, 0
	f.OnLogBoundaries(func(TP) { told++ })
	b.ResetTimer()
	for i := range b.N {
		ch := f.TopologyChanged()
		c := cmds[i%len(cmds)]
		if i >= len(cmds) {
			// Later rounds roll every partition again, further on.
			c, _ = EncodeCommand(CmdSegmentRolled, SegmentRolled{TP: TP{fmt.Sprintf("topic-%06d", (i%len(cmds))/partitions),
				int32(i % partitions)}, Base: int64(i / len(cmds))})
		}
		index++
		if res, refused := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: c}).(error); refused {
			b.Fatal(res)
		}
		if closed(ch) {
			wakes++
		}
	}
	b.ReportMetric(float64(wakes)/float64(b.N), "wakes/op")
	b.ReportMetric(float64(told)/float64(b.N), "boundary-calls/op")
}
