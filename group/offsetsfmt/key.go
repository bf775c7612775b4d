package offsetsfmt

import "github.com/runnel-io/runnel/internal/kwire"

// Key versions: the int16 that starts every key of __consumer_offsets
// names the kind of record (Kafka's record type).
const (
	KeyOffsetCommitV0 int16 = 0 // an offset commit, as Kafka before 0.10 wrote it
	KeyOffsetCommit   int16 = 1 // an offset commit, as Kafka writes it today
	KeyGroupMetadata  int16 = 2 // group metadata
)

// Key is a decoded key: an offset commit's {Group, Topic, Partition}, or a
// group metadata record's {Group}.
type Key struct {
	Version   int16 // KeyOffsetCommitV0, KeyOffsetCommit or KeyGroupMetadata
	Group     string
	Topic     string // offset commits only
	Partition int32  // offset commits only
}

// IsOffsetCommit reports whether k keys an offset commit (versions 0 and
// 1); otherwise it keys group metadata.
func (k Key) IsOffsetCommit() bool { return k.Version != KeyGroupMetadata }

// AppendOffsetKey appends the key (version 1) of group's committed offset
// for topic and partition. Only a string longer than 32767 bytes fails
// (ErrTooLong), and dst is then returned as it was.
func AppendOffsetKey(dst []byte, group, topic string, partition int32) ([]byte, error) {
	w := kwire.Writer{B: dst, TooLong: ErrTooLong}
	w.Int16(KeyOffsetCommit)
	w.String("group", group)
	w.String("topic", topic)
	w.Int32(partition)
	if w.Err != nil {
		return dst, w.Err
	}
	return w.B, nil
}

// AppendGroupKey appends the key (version 2) of group's metadata.
func AppendGroupKey(dst []byte, group string) ([]byte, error) {
	w := kwire.Writer{B: dst, TooLong: ErrTooLong}
	w.Int16(KeyGroupMetadata)
	w.String("group", group)
	if w.Err != nil {
		return dst, w.Err
	}
	return w.B, nil
}

// DecodeKey decodes a key of __consumer_offsets. A version other than 0, 1
// and 2 is an *UnknownVersionError; bytes that do not parse, ErrMalformed.
func DecodeKey(b []byte) (Key, error) {
	r := kwire.Reader{B: b, Record: "key", Malformed: ErrMalformed}
	k := Key{Version: r.Int16("version")}
	if r.Err != nil {
		return Key{}, r.Err
	}
	switch k.Version {
	case KeyOffsetCommitV0, KeyOffsetCommit:
		r.Record = "offset commit key"
		k.Group = r.String("group")
		k.Topic = r.String("topic")
		k.Partition = r.Int32("partition")
	case KeyGroupMetadata:
		r.Record = "group metadata key"
		k.Group = r.String("group")
	default:
		return Key{}, &UnknownVersionError{Record: "key", Version: k.Version}
	}
	if r.Err != nil {
		return Key{}, r.Err
	}
	return k, nil
}
