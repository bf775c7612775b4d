package offsetsfmt

// Value versions.
const (
	// OffsetValueVersion is the offset commit value version the encoder
	// writes, unless an expire timestamp is set (then version 1).
	OffsetValueVersion int16 = 3
	// GroupValueVersion is the group metadata value version the encoder
	// writes.
	GroupValueVersion int16 = 3
	// MaxValueVersion is the highest version of both values the decoders
	// read; version 4 is Kafka's flexible form.
	MaxValueVersion int16 = 4
)

// OffsetValue is a committed offset: the value of an offset commit record.
type OffsetValue struct {
	Offset          int64
	LeaderEpoch     int32 // -1: none (and in versions 0 to 2, which lack it)
	Metadata        string
	CommitTimestamp int64 // ms
	ExpireTimestamp int64 // ms; -1: none (only version 1 carries one)
}

// AppendOffsetValue appends v as Kafka writes it: version 3, or version 1
// when ExpireTimestamp is set (above 0: a zero one is taken for unset too,
// so that a zero OffsetValue does not pick version 1). Version 1 has no
// leader epoch. Only metadata longer than 32767 bytes fails (ErrTooLong),
// and dst is then returned as it was.
func AppendOffsetValue(dst []byte, v OffsetValue) ([]byte, error) {
	w := writer{b: dst}
	if v.ExpireTimestamp > 0 {
		w.int16(1)
		w.int64(v.Offset)
		w.string("metadata", v.Metadata)
		w.int64(v.CommitTimestamp)
		w.int64(v.ExpireTimestamp)
	} else {
		w.int16(OffsetValueVersion)
		w.int64(v.Offset)
		w.int32(v.LeaderEpoch)
		w.string("metadata", v.Metadata)
		w.int64(v.CommitTimestamp)
	}
	if w.err != nil {
		return dst, w.err
	}
	return w.b, nil
}

// DecodeOffsetValue decodes an offset commit value of versions 0 to 4. A
// nil b (a null record value) is a tombstone: it returns tombstone true and
// no error.
func DecodeOffsetValue(b []byte) (v OffsetValue, tombstone bool, err error) {
	if b == nil {
		return OffsetValue{}, true, nil
	}
	r := reader{b: b, record: "offset commit value"}
	version := r.int16("version")
	if r.err != nil {
		return OffsetValue{}, false, r.err
	}
	if version < 0 || version > MaxValueVersion {
		return OffsetValue{}, false, &UnknownVersionError{Record: "offset commit value", Version: version}
	}
	r.flexible = version >= 4
	v = OffsetValue{LeaderEpoch: -1, ExpireTimestamp: -1}
	v.Offset = r.int64("offset")
	if version >= 3 {
		v.LeaderEpoch = r.int32("leaderEpoch")
	}
	v.Metadata = r.string("metadata")
	v.CommitTimestamp = r.int64("commitTimestamp")
	if version == 1 {
		v.ExpireTimestamp = r.int64("expireTimestamp")
	}
	r.tags()
	if r.err != nil {
		return OffsetValue{}, false, r.err
	}
	return v, false, nil
}

// GroupValue is a group's metadata: the value of a group metadata record.
type GroupValue struct {
	ProtocolType          string // "" for a group without one
	Generation            int32
	Protocol              *string // nil: none chosen
	Leader                *string // nil: no leader
	CurrentStateTimestamp int64   // ms; -1: none (and in versions 0 and 1)
	Members               []GroupMember
}

// GroupMember is one member of a GroupValue.
type GroupMember struct {
	MemberID        string
	GroupInstanceID *string // nil: a dynamic member (and in versions 0 to 2)
	ClientID        string
	ClientHost      string
	// RebalanceTimeout in ms. Version 0 lacks it; decoding gives the
	// session timeout then, as Kafka's coordinator took it.
	RebalanceTimeout int32
	SessionTimeout   int32 // ms
	Subscription     []byte
	Assignment       []byte
}

// AppendGroupValue appends v as Kafka writes it: version 3. Only a string
// longer than 32767 bytes fails (ErrTooLong), and dst is then returned as
// it was.
func AppendGroupValue(dst []byte, v *GroupValue) ([]byte, error) {
	w := writer{b: dst}
	w.int16(GroupValueVersion)
	w.string("protocolType", v.ProtocolType)
	w.int32(v.Generation)
	w.nullableString("protocol", v.Protocol)
	w.nullableString("leader", v.Leader)
	w.int64(v.CurrentStateTimestamp)
	w.int32(int32(len(v.Members)))
	for i := range v.Members {
		m := &v.Members[i]
		w.string("memberId", m.MemberID)
		w.nullableString("groupInstanceId", m.GroupInstanceID)
		w.string("clientId", m.ClientID)
		w.string("clientHost", m.ClientHost)
		w.int32(m.RebalanceTimeout)
		w.int32(m.SessionTimeout)
		w.bytes("subscription", m.Subscription)
		w.bytes("assignment", m.Assignment)
	}
	if w.err != nil {
		return dst, w.err
	}
	return w.b, nil
}

// minMemberSize is the fewest bytes a member of a version takes: its
// strings and bytes empty (a length of 2 or 4 bytes, or of 1 in the
// flexible form), its timeouts, and in the flexible form a tag count.
func minMemberSize(version int16) int {
	switch version {
	case 0:
		return 3*2 + 4 + 2*4 // three strings, sessionTimeout, two bytes
	case 1, 2:
		return 3*2 + 2*4 + 2*4 // and rebalanceTimeout
	case 3:
		return 4*2 + 2*4 + 2*4 // and groupInstanceId
	}
	return 4*1 + 2*4 + 2*1 + 1 // compact lengths, tag count
}

// DecodeGroupValue decodes a group metadata value of versions 0 to 4. A
// nil b (a null record value) is a tombstone: it returns tombstone true and
// no error.
func DecodeGroupValue(b []byte) (v GroupValue, tombstone bool, err error) {
	if b == nil {
		return GroupValue{}, true, nil
	}
	r := reader{b: b, record: "group metadata value"}
	version := r.int16("version")
	if r.err != nil {
		return GroupValue{}, false, r.err
	}
	if version < 0 || version > MaxValueVersion {
		return GroupValue{}, false, &UnknownVersionError{Record: "group metadata value", Version: version}
	}
	r.flexible = version >= 4
	v = GroupValue{CurrentStateTimestamp: -1}
	v.ProtocolType = r.string("protocolType")
	v.Generation = r.int32("generation")
	v.Protocol = r.nullableString("protocol")
	v.Leader = r.nullableString("leader")
	if version >= 2 {
		v.CurrentStateTimestamp = r.int64("currentStateTimestamp")
	}
	n := r.count("members", minMemberSize(version))
	if n > 0 {
		v.Members = make([]GroupMember, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		m := &v.Members[i]
		m.MemberID = r.string("memberId")
		if version >= 3 {
			m.GroupInstanceID = r.nullableString("groupInstanceId")
		}
		m.ClientID = r.string("clientId")
		m.ClientHost = r.string("clientHost")
		if version >= 1 {
			m.RebalanceTimeout = r.int32("rebalanceTimeout")
		}
		m.SessionTimeout = r.int32("sessionTimeout")
		if version == 0 {
			m.RebalanceTimeout = m.SessionTimeout
		}
		m.Subscription = r.bytes("subscription")
		m.Assignment = r.bytes("assignment")
		r.tags()
	}
	r.tags()
	if r.err != nil {
		return GroupValue{}, false, r.err
	}
	return v, false, nil
}
