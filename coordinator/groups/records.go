package groups

import (
	"fmt"
	"time"

	"github.com/runnel-io/runnel/coordinator"
	"github.com/runnel-io/runnel/group"
	"github.com/runnel-io/runnel/group/offsetsfmt"
)

// PartitionFor returns the partition of the topic that holds a group, as
// Kafka computes it.
func PartitionFor(g string, partitions int32) int32 { return offsetsfmt.PartitionFor(g, partitions) }

// decoded is one record of the topic, as the loader applies it.
type decoded struct {
	isOffset  bool // an offset commit (else group metadata)
	tombstone bool
	group     string
	tp        group.TopicPartition
	offset    group.Offset
}

// decodeRecord decodes a record's key and value with Kafka's schemas.
func decodeRecord(r coordinator.Record) (decoded, error) {
	k, err := offsetsfmt.DecodeKey(r.Key)
	if err != nil {
		return decoded{}, err
	}
	d := decoded{isOffset: k.IsOffsetCommit(), group: k.Group, tp: group.TopicPartition{Topic: k.Topic, Partition: k.Partition}}
	if !d.isOffset {
		if _, tomb, err := offsetsfmt.DecodeGroupValue(r.Value); err != nil {
			return decoded{}, fmt.Errorf("group %q: %w", k.Group, err)
		} else {
			d.tombstone = tomb
		}
		return d, nil
	}
	v, tomb, err := offsetsfmt.DecodeOffsetValue(r.Value)
	if err != nil {
		return decoded{}, fmt.Errorf("group %q, %s-%d: %w", k.Group, k.Topic, k.Partition, err)
	}
	d.tombstone = tomb
	d.offset = group.Offset{Topic: k.Topic, Partition: k.Partition, Offset: v.Offset, LeaderEpoch: v.LeaderEpoch,
		Metadata: v.Metadata, CommitTime: time.UnixMilli(v.CommitTimestamp)}
	return d, nil
}

// encodeError refuses a record whose strings do not fit Kafka's schemas
// (a group id past 32,767 bytes): nothing is written, and the client is
// told INVALID_COMMIT_OFFSET_SIZE.
func encodeError(err error) error {
	return fmt.Errorf("%w: %v", coordinator.ErrRecordTooLarge, err)
}

func offsetKey(g, topic string, p int32) ([]byte, error) {
	return offsetsfmt.AppendOffsetKey(nil, g, topic, p)
}

func offsetValue(o group.Offset) ([]byte, error) {
	return offsetsfmt.AppendOffsetValue(nil, offsetsfmt.OffsetValue{Offset: o.Offset, LeaderEpoch: o.LeaderEpoch,
		Metadata: o.Metadata, CommitTimestamp: o.CommitTime.UnixMilli(), ExpireTimestamp: -1})
}

func groupKey(g string) ([]byte, error) { return offsetsfmt.AppendGroupKey(nil, g) }
