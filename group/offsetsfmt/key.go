package offsetsfmt

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
	w := writer{b: dst}
	w.int16(KeyOffsetCommit)
	w.string("group", group)
	w.string("topic", topic)
	w.int32(partition)
	if w.err != nil {
		return dst, w.err
	}
	return w.b, nil
}

// AppendGroupKey appends the key (version 2) of group's metadata.
func AppendGroupKey(dst []byte, group string) ([]byte, error) {
	w := writer{b: dst}
	w.int16(KeyGroupMetadata)
	w.string("group", group)
	if w.err != nil {
		return dst, w.err
	}
	return w.b, nil
}

// DecodeKey decodes a key of __consumer_offsets. A version other than 0, 1
// and 2 is an *UnknownVersionError; bytes that do not parse, ErrMalformed.
func DecodeKey(b []byte) (Key, error) {
	r := reader{b: b, record: "key"}
	k := Key{Version: r.int16("version")}
	if r.err != nil {
		return Key{}, r.err
	}
	switch k.Version {
	case KeyOffsetCommitV0, KeyOffsetCommit:
		r.record = "offset commit key"
		k.Group = r.string("group")
		k.Topic = r.string("topic")
		k.Partition = r.int32("partition")
	case KeyGroupMetadata:
		r.record = "group metadata key"
		k.Group = r.string("group")
	default:
		return Key{}, &UnknownVersionError{Record: "key", Version: k.Version}
	}
	if r.err != nil {
		return Key{}, r.err
	}
	return k, nil
}
