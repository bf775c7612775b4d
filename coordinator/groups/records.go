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
	meta      group.GroupRecord // of a group-metadata record
}

// decodeRecord decodes a record's key and value with Kafka's schemas.
func decodeRecord(r coordinator.Record) (decoded, error) {
	k, err := offsetsfmt.DecodeKey(r.Key)
	if err != nil {
		return decoded{}, err
	}
	d := decoded{isOffset: k.IsOffsetCommit(), group: k.Group, tp: group.TopicPartition{Topic: k.Topic, Partition: k.Partition}}
	if !d.isOffset {
		v, tomb, err := offsetsfmt.DecodeGroupValue(r.Value)
		if err != nil {
			return decoded{}, fmt.Errorf("group %q: %w", k.Group, err)
		}
		d.tombstone = tomb
		d.meta = groupRecord(k.Group, &v)
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

// groupRecord is the group's metadata as the coordinator keeps it.
func groupRecord(g string, v *offsetsfmt.GroupValue) group.GroupRecord {
	rec := group.GroupRecord{Group: g, ProtocolType: v.ProtocolType, Generation: v.Generation}
	if v.Protocol != nil {
		rec.Protocol = *v.Protocol
	}
	if v.Leader != nil {
		rec.Leader = *v.Leader
	}
	if v.CurrentStateTimestamp >= 0 {
		rec.StateTime = time.UnixMilli(v.CurrentStateTimestamp)
	}
	for _, m := range v.Members {
		mr := group.MemberRecord{MemberID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost,
			RebalanceTimeout: time.Duration(m.RebalanceTimeout) * time.Millisecond,
			SessionTimeout:   time.Duration(m.SessionTimeout) * time.Millisecond,
			Subscription:     m.Subscription, Assignment: m.Assignment}
		if m.GroupInstanceID != nil {
			mr.InstanceID = *m.GroupInstanceID
		}
		rec.Members = append(rec.Members, mr)
	}
	return rec
}

// groupValue encodes a group's metadata in Kafka's GroupMetadataValue.
func groupValue(rec group.GroupRecord) ([]byte, error) {
	v := offsetsfmt.GroupValue{ProtocolType: rec.ProtocolType, Generation: rec.Generation, CurrentStateTimestamp: rec.StateTime.UnixMilli()}
	if rec.Protocol != "" {
		v.Protocol = &rec.Protocol
	}
	if rec.Leader != "" {
		v.Leader = &rec.Leader
	}
	for _, m := range rec.Members {
		gm := offsetsfmt.GroupMember{MemberID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost,
			RebalanceTimeout: int32(m.RebalanceTimeout / time.Millisecond), SessionTimeout: int32(m.SessionTimeout / time.Millisecond),
			Subscription: orEmpty(m.Subscription), Assignment: orEmpty(m.Assignment)}
		if m.InstanceID != "" {
			id := m.InstanceID
			gm.GroupInstanceID = &id
		}
		v.Members = append(v.Members, gm)
	}
	return offsetsfmt.AppendGroupValue(nil, &v)
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
