package groups

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/group/offsetsfmt"
)

// fuzzItem is a record or a transaction marker of the offsets topic.
type fuzzItem struct {
	rec    coordinator.Record
	marker *coordinator.Marker
}

// fuzzRecords turns prog into records of the offsets topic, four bytes an
// operation (kind, group, topic partition, offset): offset commits (values
// of version 3 and of version 1), their tombstones, group tombstones,
// group metadata values, keys or values taken from raw, which may not
// decode, transactional commits of two producers and their commit and
// abort markers. Groups, partitions and producers come from small sets so
// that records overwrite and delete each other.
func fuzzRecords(t *testing.T, prog, raw []byte) []fuzzItem {
	groups := []string{"g0", "g1", "billing", ""}
	topics := []string{"orders", "audit"}
	cut := func(n byte) []byte { return raw[:int(n)%(len(raw)+1)] }
	var out []fuzzItem
	for i := 0; i+4 <= len(prog); i += 4 {
		op, gi, tp, n := prog[i], prog[i+1], prog[i+2], prog[i+3]
		g, topic, p := groups[int(gi)%len(groups)], topics[int(tp)%len(topics)], int32(tp>>1)%4
		key, err := offsetsfmt.AppendOffsetKey(nil, g, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		v := offsetsfmt.OffsetValue{Offset: int64(n) * 1000, LeaderEpoch: int32(gi), Metadata: string(cut(n)),
			CommitTimestamp: 1_700_000_000_000 + int64(i), ExpireTimestamp: -1}
		var value []byte
		pid := int64(1 + gi%2)
		txn := false
		switch op % 12 {
		case 0, 1: // a commit, version 3
			value, err = offsetsfmt.AppendOffsetValue(nil, v)
		case 2: // a commit with an expire timestamp, version 1
			v.ExpireTimestamp = v.CommitTimestamp + 86_400_000
			value, err = offsetsfmt.AppendOffsetValue(nil, v)
		case 3: // the commit's tombstone
		case 4: // the group's tombstone
			key, err = offsetsfmt.AppendGroupKey(nil, g)
		case 5: // group metadata, decodable or not
			key, err = offsetsfmt.AppendGroupKey(nil, g)
			value = append([]byte{0, byte(n % 6)}, cut(n)...)
		case 6: // an offset key and bytes for its value
			value = append([]byte{0, byte(n % 6)}, cut(n)...)
		case 7: // bytes for the key, a commit for the value
			key = append([]byte{byte(n >> 4), byte(n % 4)}, cut(n)...)
			value, err = offsetsfmt.AppendOffsetValue(nil, v)
		case 8, 9: // a commit in the producer's transaction
			txn = true
			value, err = offsetsfmt.AppendOffsetValue(nil, v)
		case 10, 11: // the producer's commit or abort marker
			out = append(out, fuzzItem{marker: &coordinator.Marker{Offset: int64(len(out)), ProducerID: pid, Commit: op%12 == 10}})
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		r := coordinator.Record{Offset: int64(len(out)), Timestamp: v.CommitTimestamp, Key: key, Value: value, ProducerID: -1, ProducerEpoch: -1}
		if txn {
			r.Transactional, r.ProducerID, r.ProducerEpoch = true, pid, 0
		}
		out = append(out, fuzzItem{rec: r})
	}
	return out
}

// modelPending is a transactional commit the model holds pending.
type modelPending struct {
	pid   int64
	group string
	o     group.Offset
	at    int64
}

// modelLoad is what a partition's records leave committed and pending,
// from Kafka's rules: a record whose key or value does not decode is
// skipped; a commit replaces the one before it for its group and topic
// partition; an offset tombstone deletes it (and, as the coordinator
// writes one when it removes them, the partition's pending transactional
// commits); a group tombstone deletes the group's offsets, pending or
// not; a transactional commit waits for its producer's marker: a commit
// marker makes it the partition's commit unless that was written after
// it, an abort marker drops it.
func modelLoad(items []fuzzItem) (map[string]map[group.TopicPartition]group.Offset, []modelPending) {
	out := map[string]map[group.TopicPartition]group.Offset{}
	at := map[string]map[group.TopicPartition]int64{}
	var pending []modelPending
	set := func(g string, tp group.TopicPartition, o group.Offset, when int64) {
		if out[g] == nil {
			out[g], at[g] = map[group.TopicPartition]group.Offset{}, map[group.TopicPartition]int64{}
		}
		out[g][tp], at[g][tp] = o, when
	}
	keep := func(f func(p modelPending) bool) {
		var left []modelPending
		for _, p := range pending {
			if f(p) {
				left = append(left, p)
			}
		}
		pending = left
	}
	for _, it := range items {
		if m := it.marker; m != nil {
			for _, p := range pending {
				tp := group.TopicPartition{Topic: p.o.Topic, Partition: p.o.Partition}
				if p.pid != m.ProducerID || !m.Commit {
					continue
				}
				if when, ok := at[p.group][tp]; ok && when > p.at {
					continue
				}
				set(p.group, tp, p.o, p.at)
			}
			keep(func(p modelPending) bool { return p.pid != m.ProducerID })
			continue
		}
		r := it.rec
		k, err := offsetsfmt.DecodeKey(r.Key)
		if err != nil {
			continue
		}
		tp := group.TopicPartition{Topic: k.Topic, Partition: k.Partition}
		switch {
		case k.IsOffsetCommit() && r.Value == nil:
			delete(out[k.Group], tp)
			delete(at[k.Group], tp)
			keep(func(p modelPending) bool {
				return p.group != k.Group || p.o.Topic != tp.Topic || p.o.Partition != tp.Partition
			})
		case k.IsOffsetCommit():
			v, _, err := offsetsfmt.DecodeOffsetValue(r.Value)
			if err != nil {
				continue
			}
			o := group.Offset{Topic: k.Topic, Partition: k.Partition, Offset: v.Offset,
				LeaderEpoch: v.LeaderEpoch, Metadata: v.Metadata, CommitTime: time.UnixMilli(v.CommitTimestamp)}
			if !r.Transactional {
				set(k.Group, tp, o, r.Offset)
				continue
			}
			keep(func(p modelPending) bool {
				return p.pid != r.ProducerID || p.group != k.Group || p.o.Topic != tp.Topic || p.o.Partition != tp.Partition
			})
			pending = append(pending, modelPending{pid: r.ProducerID, group: k.Group, o: o, at: r.Offset})
		case r.Value == nil:
			delete(out, k.Group)
			delete(at, k.Group)
			keep(func(p modelPending) bool { return p.group != k.Group })
		}
	}
	for g, m := range out {
		if len(m) == 0 {
			delete(out, g)
		}
	}
	return out, pending
}

// FuzzLoaderReplay: the loader of a partition of __consumer_offsets takes
// any sequence of records without failing the load (records it cannot
// decode are skipped), and what it hands the group coordinator is exactly
// the model's latest commit per group and partition, although every key
// and value buffer is overwritten after its Replay returns, as the
// runtime's read buffer is.
func FuzzLoaderReplay(f *testing.F) {
	f.Add([]byte{0, 0, 0, 5, 0, 0, 2, 7, 3, 0, 0, 0}, []byte("meta"))
	f.Add([]byte{0, 1, 0, 1, 2, 1, 1, 2, 4, 1, 0, 0, 0, 1, 0, 9}, []byte{})
	f.Add([]byte{5, 2, 0, 3, 6, 2, 0, 0x21, 7, 0, 1, 0x13}, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 'x'})
	var seed []byte
	for i := range 64 {
		seed = binary.BigEndian.AppendUint32(seed, uint32(i*2654435761))
	}
	f.Add(seed, []byte("some metadata of a client"))
	f.Add([]byte{8, 0, 0, 1, 0, 0, 0, 2, 10, 0, 0, 0, 9, 1, 2, 3, 11, 1, 0, 0, 8, 0, 2, 4, 1, 0, 2, 5, 10, 0, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, prog, raw []byte) {
		items := fuzzRecords(t, prog, raw)
		want, wantPending := modelLoad(items)
		l := (&Service{log: quiet}).newLoader(0).(*loader)
		for _, it := range items {
			if it.marker != nil {
				if err := l.ReplayMarker(*it.marker); err != nil {
					t.Fatal(err)
				}
				continue
			}
			r := it.rec
			key := append([]byte(nil), r.Key...)
			var value []byte
			if r.Value != nil {
				value = append([]byte{}, r.Value...)
			}
			r.Key, r.Value = key, value
			if err := l.Replay(r); err != nil {
				t.Fatalf("Replay of record %d: %v", r.Offset, err)
			}
			for i := range key {
				key[i] = 0xa5
			}
			for i := range value {
				value[i] = 0x5a
			}
		}
		loaded, err := (&logStore{loaded: l.offsets}).Load()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]map[group.TopicPartition]group.Offset{}
		for g, offs := range loaded {
			m := map[group.TopicPartition]group.Offset{}
			for _, o := range offs {
				tp := group.TopicPartition{Topic: o.Topic, Partition: o.Partition}
				if _, dup := m[tp]; dup {
					t.Fatalf("group %q: %v loaded twice", g, tp)
				}
				m[tp] = o
			}
			if len(m) == 0 {
				t.Fatalf("group %q loaded without offsets", g)
			}
			got[g] = m
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("loaded %s\nwant   %s", fmt.Sprint(got), fmt.Sprint(want))
		}
		var gotPending []modelPending
		for _, p := range l.txnLoad().Pending {
			gotPending = append(gotPending, modelPending{pid: p.ProducerID, group: p.Group, o: p.Offset, at: p.Order})
		}
		sort.Slice(wantPending, func(i, j int) bool { return wantPending[i].at < wantPending[j].at })
		if len(gotPending) != len(wantPending) || len(gotPending) > 0 && !reflect.DeepEqual(gotPending, wantPending) {
			t.Fatalf("pending %v\nwant    %v", gotPending, wantPending)
		}
	})
}
