package groups

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/group/offsetsfmt"
)

// fuzzRecords turns prog into records of the offsets topic, four bytes an
// operation (kind, group, topic partition, offset): offset commits (values
// of version 3 and of version 1), their tombstones, group tombstones,
// group metadata values, and keys or values taken from raw, which may not
// decode. Groups and partitions come from small sets so that records
// overwrite and delete each other.
func fuzzRecords(t *testing.T, prog, raw []byte) []coordinator.Record {
	groups := []string{"g0", "g1", "billing", ""}
	topics := []string{"orders", "audit"}
	cut := func(n byte) []byte { return raw[:int(n)%(len(raw)+1)] }
	var out []coordinator.Record
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
		switch op % 8 {
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
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, coordinator.Record{Offset: int64(len(out)), Timestamp: v.CommitTimestamp, Key: key, Value: value})
	}
	return out
}

// modelLoad is what a partition's records leave committed, from Kafka's
// rules: a record whose key or value does not decode is skipped; a commit
// replaces the one before it for its group and topic partition; an offset
// tombstone deletes it; a group tombstone deletes the group's offsets.
func modelLoad(recs []coordinator.Record) map[string]map[group.TopicPartition]group.Offset {
	out := map[string]map[group.TopicPartition]group.Offset{}
	for _, r := range recs {
		k, err := offsetsfmt.DecodeKey(r.Key)
		if err != nil {
			continue
		}
		tp := group.TopicPartition{Topic: k.Topic, Partition: k.Partition}
		switch {
		case k.IsOffsetCommit() && r.Value == nil:
			delete(out[k.Group], tp)
		case k.IsOffsetCommit():
			v, _, err := offsetsfmt.DecodeOffsetValue(r.Value)
			if err != nil {
				continue
			}
			if out[k.Group] == nil {
				out[k.Group] = map[group.TopicPartition]group.Offset{}
			}
			out[k.Group][tp] = group.Offset{Topic: k.Topic, Partition: k.Partition, Offset: v.Offset,
				LeaderEpoch: v.LeaderEpoch, Metadata: v.Metadata, CommitTime: time.UnixMilli(v.CommitTimestamp)}
		case r.Value == nil:
			delete(out, k.Group)
		}
	}
	for g, m := range out {
		if len(m) == 0 {
			delete(out, g)
		}
	}
	return out
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
	f.Fuzz(func(t *testing.T, prog, raw []byte) {
		recs := fuzzRecords(t, prog, raw)
		want := modelLoad(recs)
		l := (&Service{log: quiet}).newLoader(0).(*loader)
		for _, r := range recs {
			key := append([]byte(nil), r.Key...)
			var value []byte
			if r.Value != nil {
				value = append([]byte{}, r.Value...)
			}
			if err := l.Replay(coordinator.Record{Offset: r.Offset, Timestamp: r.Timestamp, Key: key, Value: value}); err != nil {
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
	})
}
