package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzSubscribedTopics: members' protocol metadata is untrusted bytes that
// OffsetDelete parses for their subscriptions. Any bytes must parse or be
// treated as "subscribed to everything", never panic.
func FuzzSubscribedTopics(f *testing.F) {
	for v := int16(0); v <= 3; v++ {
		m := kmsg.ConsumerMemberMetadata{Version: v, Topics: []string{"a", "bb"}, UserData: []byte{1, 2},
			OwnedPartitions: []kmsg.ConsumerMemberMetadataOwnedPartition{{Topic: "a", Partitions: []int32{0, 1}}}}
		f.Add(m.AppendTo(nil))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, metadata []byte) {
		g := &group{protocol: "range", members: map[string]*member{
			"m": {id: "m", protocols: []Protocol{{Name: "range", Metadata: metadata}}},
		}}
		got := g.subscribedTopics()
		if len(got) == 0 {
			var m kmsg.ConsumerMemberMetadata
			if err := m.ReadFrom(metadata); err != nil {
				t.Fatalf("unparsable metadata %x gave no subscriptions; want every topic", metadata)
			}
		}
	})
}
