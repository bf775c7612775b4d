package groups

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/group"
)

// TEMPORARY: replaced by group/offsetsfmt.

// PartitionFor returns the partition of the topic that holds a group.
func PartitionFor(g string, partitions int32) int32 {
	var h int32
	for _, r := range g {
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

type decoded struct {
	isOffset  bool
	tombstone bool
	group     string
	tp        group.TopicPartition
	offset    group.Offset
}

func decodeRecord(r coordinator.Record) (decoded, error) {
	if len(r.Key) < 2 {
		return decoded{}, errors.New("short key")
	}
	v := int16(r.Key[0])<<8 | int16(r.Key[1])
	switch v {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(r.Key); err != nil {
			return decoded{}, err
		}
		d := decoded{isOffset: true, group: k.Group, tp: group.TopicPartition{Topic: k.Topic, Partition: k.Partition}}
		if r.Value == nil {
			d.tombstone = true
			return d, nil
		}
		var val kmsg.OffsetCommitValue
		if err := val.ReadFrom(r.Value); err != nil {
			return decoded{}, err
		}
		d.offset = group.Offset{Topic: k.Topic, Partition: k.Partition, Offset: val.Offset, LeaderEpoch: val.LeaderEpoch,
			Metadata: val.Metadata, CommitTime: time.UnixMilli(val.CommitTimestamp)}
		return d, nil
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(r.Key); err != nil {
			return decoded{}, err
		}
		return decoded{group: k.Group, tombstone: r.Value == nil}, nil
	}
	return decoded{}, fmt.Errorf("key version %d", v)
}

func offsetKey(g, topic string, p int32) []byte {
	k := kmsg.NewOffsetCommitKey()
	k.Version = 1
	k.Group, k.Topic, k.Partition = g, topic, p
	return k.AppendTo(nil)
}

func offsetValue(o group.Offset) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = 3
	v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = o.Offset, o.LeaderEpoch, o.Metadata, o.CommitTime.UnixMilli()
	return v.AppendTo(nil)
}

func groupKey(g string) []byte {
	k := kmsg.NewGroupMetadataKey()
	k.Version = 2
	k.Group = g
	return k.AppendTo(nil)
}
