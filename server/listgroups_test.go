package server

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestListGroupsV5Types: every group is a classic one: listed with that
// type, and found by a types filter that names it in any case; a filter
// of other types (the KIP-848 consumer type, a name that is none) lists
// nothing. The states filter still applies.
func TestListGroupsV5Types(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createTopic(t, "t", 1)
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.SetVersion(8)
	commit.Group, commit.Generation = "g", -1
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.Topic = "t"
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Offset = 0
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	if c := ts.call(t, commit).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; c != 0 {
		t.Fatalf("commit: error %d", c)
	}
	list := func(types, states []string) string {
		req := kmsg.NewPtrListGroupsRequest()
		req.SetVersion(5)
		req.TypesFilter, req.StatesFilter = types, states
		resp := ts.call(t, req).(*kmsg.ListGroupsResponse)
		out := fmt.Sprint(resp.ErrorCode)
		for _, g := range resp.Groups {
			out += fmt.Sprintf(" %s/%s/%s", g.Group, g.GroupState, g.GroupType)
		}
		return out
	}
	for _, c := range []struct {
		types, states []string
		want          string
	}{
		{nil, nil, "0 g/Empty/classic"},
		{[]string{"Classic"}, nil, "0 g/Empty/classic"},
		{[]string{"consumer", "classic"}, []string{"empty"}, "0 g/Empty/classic"},
		{[]string{"consumer"}, nil, "0"},
		{[]string{"nonsense"}, nil, "0"},
		{nil, []string{"Stable"}, "0"},
	} {
		if got := list(c.types, c.states); got != c.want {
			t.Errorf("types %q states %q: %s, want %s", c.types, c.states, got, c.want)
		}
	}
}
