package offsetsfmt

import "github.com/runnel-io/runnel/internal/kwire"

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
	w := kwire.Writer{B: dst, TooLong: ErrTooLong}
	if v.ExpireTimestamp > 0 {
		w.Int16(1)
		w.Int64(v.Offset)
		w.String("metadata", v.Metadata)
		w.Int64(v.CommitTimestamp)
		w.Int64(v.ExpireTimestamp)
	} else {
		w.Int16(OffsetValueVersion)
		w.Int64(v.Offset)
		w.Int32(v.LeaderEpoch)
		w.String("metadata", v.Metadata)
		w.Int64(v.CommitTimestamp)
	}
	if w.Err != nil {
		return dst, w.Err
	}
	return w.B, nil
}

// DecodeOffsetValue decodes an offset commit value of versions 0 to 4. A
// nil b (a null record value) is a tombstone: it returns tombstone true and
// no error.
func DecodeOffsetValue(b []byte) (v OffsetValue, tombstone bool, err error) {
	if b == nil {
		return OffsetValue{}, true, nil
	}
	r := kwire.Reader{B: b, Record: "offset commit value", Malformed: ErrMalformed}
	version := r.Int16("version")
	if r.Err != nil {
		return OffsetValue{}, false, r.Err
	}
	if version < 0 || version > MaxValueVersion {
		return OffsetValue{}, false, &UnknownVersionError{Record: "offset commit value", Version: version}
	}
	r.Flexible = version >= 4
	v = OffsetValue{LeaderEpoch: -1, ExpireTimestamp: -1}
	v.Offset = r.Int64("offset")
	if version >= 3 {
		v.LeaderEpoch = r.Int32("leaderEpoch")
	}
	v.Metadata = r.String("metadata")
	v.CommitTimestamp = r.Int64("commitTimestamp")
	if version == 1 {
		v.ExpireTimestamp = r.Int64("expireTimestamp")
	}
	r.Tags(nil)
	if r.Err != nil {
		return OffsetValue{}, false, r.Err
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
	w := kwire.Writer{B: dst, TooLong: ErrTooLong}
	w.Int16(GroupValueVersion)
	w.String("protocolType", v.ProtocolType)
	w.Int32(v.Generation)
	w.NullableString("protocol", v.Protocol)
	w.NullableString("leader", v.Leader)
	w.Int64(v.CurrentStateTimestamp)
	w.Int32(int32(len(v.Members)))
	for i := range v.Members {
		m := &v.Members[i]
		w.String("memberId", m.MemberID)
		w.NullableString("groupInstanceId", m.GroupInstanceID)
		w.String("clientId", m.ClientID)
		w.String("clientHost", m.ClientHost)
		w.Int32(m.RebalanceTimeout)
		w.Int32(m.SessionTimeout)
		w.Bytes("subscription", m.Subscription)
		w.Bytes("assignment", m.Assignment)
	}
	if w.Err != nil {
		return dst, w.Err
	}
	return w.B, nil
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
	r := kwire.Reader{B: b, Record: "group metadata value", Malformed: ErrMalformed}
	version := r.Int16("version")
	if r.Err != nil {
		return GroupValue{}, false, r.Err
	}
	if version < 0 || version > MaxValueVersion {
		return GroupValue{}, false, &UnknownVersionError{Record: "group metadata value", Version: version}
	}
	r.Flexible = version >= 4
	v = GroupValue{CurrentStateTimestamp: -1}
	v.ProtocolType = r.String("protocolType")
	v.Generation = r.Int32("generation")
	v.Protocol = r.NullableString("protocol")
	v.Leader = r.NullableString("leader")
	if version >= 2 {
		v.CurrentStateTimestamp = r.Int64("currentStateTimestamp")
	}
	n := r.Count("members", minMemberSize(version), false)
	if n > 0 {
		v.Members = make([]GroupMember, n)
	}
	for i := 0; i < n && r.Err == nil; i++ {
		m := &v.Members[i]
		m.MemberID = r.String("memberId")
		if version >= 3 {
			m.GroupInstanceID = r.NullableString("groupInstanceId")
		}
		m.ClientID = r.String("clientId")
		m.ClientHost = r.String("clientHost")
		if version >= 1 {
			m.RebalanceTimeout = r.Int32("rebalanceTimeout")
		}
		m.SessionTimeout = r.Int32("sessionTimeout")
		if version == 0 {
			m.RebalanceTimeout = m.SessionTimeout
		}
		m.Subscription = r.Bytes("subscription")
		m.Assignment = r.Bytes("assignment")
		r.Tags(nil)
	}
	r.Tags(nil)
	if r.Err != nil {
		return GroupValue{}, false, r.Err
	}
	return v, false, nil
}
