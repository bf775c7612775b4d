package offsetsfmt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/formattest"
)

var update = flag.Bool("update", false, "rewrite testdata from the code and franz-go's kmsg")

func ptr(s string) *string { return &s }

// The fixed records of the golden files.
var (
	goldenGroup  = "billing"
	goldenTopic  = "orders"
	goldenOffset = OffsetValue{Offset: 4200, LeaderEpoch: 7, Metadata: "m", CommitTimestamp: 1_700_000_000_123, ExpireTimestamp: -1}
	goldenExpire = OffsetValue{Offset: 4200, LeaderEpoch: -1, Metadata: "m", CommitTimestamp: 1_700_000_000_123, ExpireTimestamp: 1_700_086_400_123}
	goldenGroupV = GroupValue{ProtocolType: "consumer", Generation: 5, Protocol: ptr("range"), Leader: ptr("m-1"),
		CurrentStateTimestamp: 1_700_000_000_999, Members: []GroupMember{
			{MemberID: "m-1", GroupInstanceID: ptr("i-1"), ClientID: "c1", ClientHost: "/10.0.0.1", RebalanceTimeout: 300_000,
				SessionTimeout: 45_000, Subscription: []byte{0, 1, 2}, Assignment: []byte{3, 4}},
			{MemberID: "m-2", ClientID: "c2", ClientHost: "/10.0.0.2", RebalanceTimeout: 60_000, SessionTimeout: 10_000,
				Subscription: []byte{}, Assignment: []byte{5}},
		}}
)

// asVersion is the golden group value as a version holds it: fields the
// version lacks take the decoders' defaults.
func groupAsVersion(v GroupValue, version int16) GroupValue {
	out := v
	out.Members = append([]GroupMember(nil), v.Members...)
	if version < 2 {
		out.CurrentStateTimestamp = -1
	}
	for i := range out.Members {
		if version < 3 {
			out.Members[i].GroupInstanceID = nil
		}
		if version < 1 {
			out.Members[i].RebalanceTimeout = out.Members[i].SessionTimeout
		}
	}
	return out
}

func offsetAsVersion(v OffsetValue, version int16) OffsetValue {
	if version < 3 {
		v.LeaderEpoch = -1
	}
	if version != 1 {
		v.ExpireTimestamp = -1
	}
	return v
}

// kmsgGroupValue is franz-go's encoding of v at version.
func kmsgGroupValue(v GroupValue, version int16) []byte {
	k := kmsg.NewGroupMetadataValue()
	k.Version, k.ProtocolType, k.Generation, k.Protocol, k.Leader, k.CurrentStateTimestamp =
		version, v.ProtocolType, v.Generation, v.Protocol, v.Leader, v.CurrentStateTimestamp
	for _, m := range v.Members {
		km := kmsg.NewGroupMetadataValueMember()
		km.MemberID, km.InstanceID, km.ClientID, km.ClientHost = m.MemberID, m.GroupInstanceID, m.ClientID, m.ClientHost
		km.RebalanceTimeoutMillis, km.SessionTimeoutMillis, km.Subscription, km.Assignment =
			m.RebalanceTimeout, m.SessionTimeout, m.Subscription, m.Assignment
		k.Members = append(k.Members, km)
	}
	return k.AppendTo(nil)
}

func kmsgOffsetValue(v OffsetValue, version int16, topicID [16]byte) []byte {
	k := kmsg.NewOffsetCommitValue()
	k.Version, k.Offset, k.LeaderEpoch, k.Metadata, k.CommitTimestamp, k.ExpireTimestamp, k.TopicID =
		version, v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp, v.ExpireTimestamp, topicID
	return k.AppendTo(nil)
}

// goldenRecord is one golden file: its bytes, what they decode to, and
// whether the encoders write that version.
type goldenRecord struct {
	name    string // file name in testdata, without ".hex"
	bytes   []byte
	decoded any // Key, OffsetValue or GroupValue
	written bool
}

func mustBytes(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func goldenRecords() []goldenRecord {
	keyV0 := (&kmsg.OffsetCommitKey{Version: 0, Group: goldenGroup, Topic: goldenTopic, Partition: 3}).AppendTo(nil)
	recs := []goldenRecord{
		{"offset-key-v0", keyV0, Key{Version: 0, Group: goldenGroup, Topic: goldenTopic, Partition: 3}, false},
		{"offset-key-v1", mustBytes(AppendOffsetKey(nil, goldenGroup, goldenTopic, 3)), Key{Version: 1, Group: goldenGroup, Topic: goldenTopic, Partition: 3}, true},
		{"group-key-v2", mustBytes(AppendGroupKey(nil, goldenGroup)), Key{Version: 2, Group: goldenGroup}, true},
	}
	for version := int16(0); version <= MaxValueVersion; version++ {
		src, written := goldenOffset, version == OffsetValueVersion
		var topicID [16]byte
		switch version {
		case 1:
			src, written = goldenExpire, true
		case 4:
			topicID = [16]byte{0x3f, 0x2a, 0x1b, 0x0c, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15} // a tagged field to skip
		}
		b := kmsgOffsetValue(src, version, topicID)
		if written {
			b = mustBytes(AppendOffsetValue(nil, src))
		}
		recs = append(recs, goldenRecord{fmt.Sprintf("offset-value-v%d", version), b, offsetAsVersion(src, version), written})
	}
	for version := int16(0); version <= MaxValueVersion; version++ {
		b := kmsgGroupValue(goldenGroupV, version)
		written := version == GroupValueVersion
		if written {
			b = mustBytes(AppendGroupValue(nil, &goldenGroupV))
		}
		recs = append(recs, goldenRecord{fmt.Sprintf("group-value-v%d", version), b, groupAsVersion(goldenGroupV, version), written})
	}
	return recs
}

func decodeAny(name string, b []byte) (any, error) {
	switch {
	case strings.Contains(name, "key"):
		return DecodeKey(b)
	case strings.HasPrefix(name, "offset-value"):
		v, _, err := DecodeOffsetValue(b)
		return v, err
	default:
		v, _, err := DecodeGroupValue(b)
		return v, err
	}
}

// TestGoldenRecords: every key and value version has a golden copy in
// testdata; the versions the encoders write encode to it byte for byte,
// and so does franz-go's kmsg for the same fields (Kafka's schemas, from
// an implementation of its own); every golden file decodes to its record.
func TestGoldenRecords(t *testing.T) {
	for _, g := range goldenRecords() {
		t.Run(g.name, func(t *testing.T) {
			path := filepath.Join("testdata", g.name+".hex")
			want := formattest.Golden(t, path, []byte(hex.EncodeToString(g.bytes)+"\n"), *update)
			b, err := hex.DecodeString(strings.TrimSpace(string(want)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeAny(g.name, b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, g.decoded) {
				t.Fatalf("decoded\n %+v\nwant\n %+v", got, g.decoded)
			}
			if g.written {
				var k []byte
				switch v := g.decoded.(type) {
				case Key:
					if v.Version == KeyGroupMetadata {
						k = (&kmsg.GroupMetadataKey{Version: 2, Group: v.Group}).AppendTo(nil)
					} else {
						k = (&kmsg.OffsetCommitKey{Version: 1, Group: v.Group, Topic: v.Topic, Partition: v.Partition}).AppendTo(nil)
					}
				case OffsetValue:
					version := OffsetValueVersion
					if v.ExpireTimestamp > 0 {
						version = 1
					}
					k = kmsgOffsetValue(v, version, [16]byte{})
				case GroupValue:
					k = kmsgGroupValue(v, GroupValueVersion)
				}
				if !bytes.Equal(k, b) {
					t.Fatalf("franz-go writes\n %x\nthe encoder\n %x", k, b)
				}
			}
		})
	}
}

// TestKmsgReadsWhatWeWrite: franz-go's decoders read the encoders' records
// back to the same fields.
func TestKmsgReadsWhatWeWrite(t *testing.T) {
	var ok kmsg.OffsetCommitKey
	if err := ok.ReadFrom(mustBytes(AppendOffsetKey(nil, "g", "t", 9))); err != nil || ok.Version != 1 || ok.Group != "g" || ok.Topic != "t" || ok.Partition != 9 {
		t.Errorf("offset key: %+v %v", ok, err)
	}
	var ov kmsg.OffsetCommitValue
	if err := ov.ReadFrom(mustBytes(AppendOffsetValue(nil, goldenOffset))); err != nil || ov.Version != 3 || ov.Offset != 4200 ||
		ov.LeaderEpoch != 7 || ov.Metadata != "m" || ov.CommitTimestamp != goldenOffset.CommitTimestamp {
		t.Errorf("offset value: %+v %v", ov, err)
	}
	var gv kmsg.GroupMetadataValue
	if err := gv.ReadFrom(mustBytes(AppendGroupValue(nil, &goldenGroupV))); err != nil || gv.Version != 3 || len(gv.Members) != 2 ||
		*gv.Members[0].InstanceID != "i-1" || gv.Members[1].InstanceID != nil || !bytes.Equal(gv.Members[0].Subscription, []byte{0, 1, 2}) {
		t.Errorf("group value: %+v %v", gv, err)
	}
}

func TestTombstones(t *testing.T) {
	if v, tomb, err := DecodeOffsetValue(nil); !tomb || err != nil || v != (OffsetValue{}) {
		t.Errorf("offset value nil: %+v %v %v", v, tomb, err)
	}
	if _, tomb, err := DecodeGroupValue(nil); !tomb || err != nil {
		t.Errorf("group value nil: %v %v", tomb, err)
	}
	// An empty value that is not null is no tombstone but a short record.
	if _, tomb, err := DecodeOffsetValue([]byte{}); tomb || !errors.Is(err, ErrMalformed) {
		t.Errorf("offset value empty: %v %v", tomb, err)
	}
	if _, tomb, err := DecodeGroupValue([]byte{}); tomb || !errors.Is(err, ErrMalformed) {
		t.Errorf("group value empty: %v %v", tomb, err)
	}
}

func TestOffsetValueVersionChoice(t *testing.T) {
	for _, tc := range []struct {
		expire  int64
		version int16
	}{{-1, 3}, {0, 3}, {1_700_000_000_000, 1}} {
		b := mustBytes(AppendOffsetValue(nil, OffsetValue{Offset: 1, LeaderEpoch: 2, ExpireTimestamp: tc.expire}))
		if got := int16(b[0])<<8 | int16(b[1]); got != tc.version {
			t.Errorf("expire %d: version %d, want %d", tc.expire, got, tc.version)
		}
	}
}

func TestEncodersRefuseLongStrings(t *testing.T) {
	long := strings.Repeat("x", 1<<15)
	dst := []byte("keep")
	check := func(what string, b []byte, err error) {
		t.Helper()
		if !errors.Is(err, ErrTooLong) || string(b) != "keep" {
			t.Errorf("%s: %q, %v; want ErrTooLong and dst unchanged", what, b, err)
		}
	}
	b, err := AppendOffsetKey(dst, long, "t", 0)
	check("offset key group", b, err)
	b, err = AppendOffsetKey(dst, "g", long, 0)
	check("offset key topic", b, err)
	b, err = AppendGroupKey(dst, long)
	check("group key", b, err)
	b, err = AppendOffsetValue(dst, OffsetValue{Metadata: long, ExpireTimestamp: -1})
	check("offset metadata", b, err)
	b, err = AppendGroupValue(dst, &GroupValue{Members: []GroupMember{{ClientHost: long}}})
	check("member client host", b, err)
	if b, err := AppendGroupKey(nil, long[:1<<15-1]); err != nil || len(b) != 2+2+1<<15-1 {
		t.Errorf("a 32767-byte group id: %d bytes, %v", len(b), err)
	}
}
