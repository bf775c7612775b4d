package server

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/group"
)

// TestDescribeRepeatsAnsweredOnce: DescribeConfigs, DescribeGroups and
// OffsetFetch of a whole group answer an entry named many times once, so a
// small request cannot ask for the same large answer thousands of times.
func TestDescribeRepeatsAnsweredOnce(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createTopic(t, "t", 1)
	var offsets []group.Offset
	for p := int32(0); p < 100; p++ {
		offsets = append(offsets, group.Offset{Topic: "t", Partition: p, Offset: 1, LeaderEpoch: -1})
	}
	if _, wait := ts.groups.Coordinators()[0].Commit(group.CommitRequest{Group: "g", Generation: -1, Offsets: offsets}); wait() != nil {
		t.Fatal("commit failed")
	}
	const repeats = 1000

	dc := kmsg.NewPtrDescribeConfigsRequest()
	dc.SetVersion(4)
	dc.IncludeDocumentation = true
	for i := 0; i < repeats; i++ {
		dc.Resources = append(dc.Resources,
			kmsg.DescribeConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t"},
			kmsg.DescribeConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "unknown"})
	}
	if got := ts.call(t, dc).(*kmsg.DescribeConfigsResponse); len(got.Resources) != 2 || len(got.Resources[0].Configs) == 0 {
		t.Errorf("DescribeConfigs answered %d resources, want 2", len(got.Resources))
	}

	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.SetVersion(5)
	for i := 0; i < repeats; i++ {
		dg.Groups = append(dg.Groups, "g", "h")
	}
	if got := ts.call(t, dg).(*kmsg.DescribeGroupsResponse); len(got.Groups) != 2 {
		t.Errorf("DescribeGroups answered %d groups, want 2", len(got.Groups))
	}

	of := kmsg.NewPtrOffsetFetchRequest()
	of.SetVersion(8)
	for i := 0; i < repeats; i++ {
		of.Groups = append(of.Groups, kmsg.OffsetFetchRequestGroup{Group: "g"})
	}
	one := kmsg.OffsetFetchRequestGroup{Group: "g", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{3}}}}
	of.Groups = append(of.Groups, one, one)
	got := ts.call(t, of).(*kmsg.OffsetFetchResponse)
	if len(got.Groups) != 3 {
		t.Fatalf("OffsetFetch answered %d groups, want 3", len(got.Groups))
	}
	if n := len(got.Groups[0].Topics); n != 1 || len(got.Groups[0].Topics[0].Partitions) != 100 {
		t.Fatalf("the whole group: %+v", got.Groups[0])
	}
	for _, g := range got.Groups[1:] {
		if len(g.Topics) != 1 || len(g.Topics[0].Partitions) != 1 || g.Topics[0].Partitions[0].Offset != 1 {
			t.Fatalf("one partition of the group: %+v", g)
		}
	}
}
