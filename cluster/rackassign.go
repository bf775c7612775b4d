package cluster

import (
	"slices"
	"sort"
)

// AssignRackAware spreads n partitions (numbered from first) of topic
// over brokers as Assign does, and each partition's replicas over as many
// racks as it can (Kafka's rack-aware assignment, KIP-36): the brokers are
// taken in rack-alternated order (the first of each rack, by rack name,
// then the second of each, ...), a partition's first replica rotates over
// that order, and each next replica is the next broker in it whose rack
// the partition has no replica on yet, or, once every rack has one, the
// next broker not yet chosen. rackOf gives each broker's rack; brokers
// without one share the rack "". With a single rack it is Assign over the
// alternated order, which is the brokers' order.
func AssignRackAware(brokers []int32, rackOf map[int32]string, topic string, first, n, rf int) [][]int32 {
	byRack := map[string][]int32{}
	for _, b := range brokers {
		byRack[rackOf[b]] = append(byRack[rackOf[b]], b)
	}
	racks := make([]string, 0, len(byRack))
	for r, bs := range byRack {
		racks = append(racks, r)
		slices.Sort(bs)
	}
	sort.Strings(racks)
	var alt []int32
	for i := 0; len(alt) < len(brokers); i++ {
		for _, r := range racks {
			if bs := byRack[r]; i < len(bs) {
				alt = append(alt, bs[i])
			}
		}
	}
	start := 0
	for _, c := range []byte(topic) {
		start = (start*31 + int(c)) % len(alt)
	}
	out := make([][]int32, n)
	for i := range out {
		p := first + i
		lead := (start + p) % len(alt)
		replicas := []int32{alt[lead]}
		used := map[string]bool{rackOf[alt[lead]]: true}
		for k := 1; k < len(alt) && len(replicas) < rf; k++ {
			b := alt[(lead+k)%len(alt)]
			if !used[rackOf[b]] {
				replicas = append(replicas, b)
				used[rackOf[b]] = true
			}
		}
		for k := 1; k < len(alt) && len(replicas) < rf; k++ {
			if b := alt[(lead+k)%len(alt)]; !slices.Contains(replicas, b) {
				replicas = append(replicas, b)
			}
		}
		out[i] = replicas
	}
	return out
}
