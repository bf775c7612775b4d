package cluster

import (
	"encoding/hex"
	"encoding/json"
	"sort"
)

// describeState renders the replicated state in a form that does not
// depend on how it is stored: brokers by id, topics by name with their
// partitions, committed offsets by group, the next producer id.
func describeState(f *FSM) string {
	type part struct {
		Replicas       []int32 `json:"replicas"`
		Leader         int32   `json:"leader"`
		LeaderEpoch    int32   `json:"leader_epoch"`
		ISR            []int32 `json:"isr"`
		PartitionEpoch int32   `json:"partition_epoch"`
		Segments       []int64 `json:"segments"`
		LogStart       int64   `json:"log_start"`
	}
	type topic struct {
		Name              string            `json:"name"`
		ID                string            `json:"id"`
		Partitions        int32             `json:"partitions"`
		ReplicationFactor int16             `json:"replication_factor"`
		Configs           map[string]string `json:"configs"`
		Parts             []part            `json:"parts"`
	}
	type offset struct {
		Group       string `json:"group"`
		Topic       string `json:"topic"`
		Partition   int32  `json:"partition"`
		Offset      int64  `json:"offset"`
		LeaderEpoch int32  `json:"leader_epoch"`
		Metadata    string `json:"metadata"`
		CommitMs    int64  `json:"commit_ms"`
	}
	type broker struct {
		ID       int32  `json:"id"`
		Addr     string `json:"addr"`
		RaftAddr string `json:"raft_addr"`
		Fenced   bool   `json:"fenced"`
		Epoch    int64  `json:"epoch"`
	}
	var d struct {
		Brokers        []broker `json:"brokers"`
		Topics         []topic  `json:"topics"`
		Offsets        []offset `json:"offsets"`
		NextProducerID int64    `json:"next_producer_id"`
	}
	f.Read(func(s *State) {
		for _, b := range s.Brokers {
			d.Brokers = append(d.Brokers, broker{b.ID, b.Addr, b.RaftAddr, b.Fenced, b.Epoch})
		}
		sort.Slice(d.Brokers, func(i, j int) bool { return d.Brokers[i].ID < d.Brokers[j].ID })
		for name, t := range s.Topics {
			dt := topic{Name: name, ID: hex.EncodeToString(t.ID[:]), Partitions: t.Partitions,
				ReplicationFactor: t.ReplicationFactor, Configs: t.Configs}
			for _, p := range s.Partitions[name] {
				dt.Parts = append(dt.Parts, part{p.Replicas, p.Leader, p.LeaderEpoch, p.ISR, p.PartitionEpoch, p.Segments, p.LogStart})
			}
			d.Topics = append(d.Topics, dt)
		}
		sort.Slice(d.Topics, func(i, j int) bool { return d.Topics[i].Name < d.Topics[j].Name })
		offs := s.GroupOffsets()
		groups := make([]string, 0, len(offs))
		for g := range offs {
			groups = append(groups, g)
		}
		sort.Strings(groups)
		for _, g := range groups {
			for _, o := range offs[g] {
				d.Offsets = append(d.Offsets, offset{g, o.Topic, o.Partition, o.Offset, o.LeaderEpoch, o.Metadata, o.CommitTime.UnixMilli()})
			}
		}
		d.NextProducerID = s.NextProducerID
	})
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		panic(err)
	}
	return string(b) + "\n"
}
