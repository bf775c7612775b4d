package cli

// Reassignment plans: Kafka's reassignment file format, which `runnel
// cluster reassign` reads and writes, and the planning of balanced
// assignments for --generate and `runnel cluster decommission`.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// planVersion is the only version of the reassignment file format.
const planVersion = 1

// reassignPlan is a reassignment file, as kafka-reassign-partitions.sh
// reads and writes it: {"version":1,"partitions":[{"topic":"t",
// "partition":0,"replicas":[1,2]}]}. The first replica is the preferred
// leader.
type reassignPlan struct {
	Version    int             `json:"version"`
	Partitions []planPartition `json:"partitions"`
}

// planPartition is one partition's target replicas. LogDirs is Kafka's
// per-replica log directory; runnel has one directory per broker, so it
// may only say "any".
type planPartition struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Replicas  []int32  `json:"replicas"`
	LogDirs   []string `json:"log_dirs,omitempty"`
}

// tp is a topic partition.
type tp struct {
	topic     string
	partition int32
}

func (p tp) String() string { return p.topic + "-" + strconv.Itoa(int(p.partition)) }

func (p planPartition) tp() tp { return tp{p.Topic, p.Partition} }

// assignment is the replicas of each partition, preferred leader first.
type assignment map[tp][]int32

// sortedTPs returns the partitions of a in topic and partition order.
func (a assignment) sortedTPs() []tp {
	out := slices.Collect(maps.Keys(a))
	slices.SortFunc(out, func(x, y tp) int {
		return cmp.Or(strings.Compare(x.topic, y.topic), cmp.Compare(x.partition, y.partition))
	})
	return out
}

// plan returns a as a reassignment file, in topic and partition order.
func (a assignment) plan() reassignPlan {
	p := reassignPlan{Version: planVersion, Partitions: []planPartition{}}
	for _, k := range a.sortedTPs() {
		p.Partitions = append(p.Partitions, planPartition{Topic: k.topic, Partition: k.partition, Replicas: slices.Clone(a[k])})
	}
	return p
}

// assignment returns the plan's partitions by name.
func (p reassignPlan) assignment() assignment {
	a := assignment{}
	for _, pp := range p.Partitions {
		a[pp.tp()] = slices.Clone(pp.Replicas)
	}
	return a
}

// topics returns the plan's topics, sorted.
func (p reassignPlan) topics() []string {
	var out []string
	for _, pp := range p.Partitions {
		if !slices.Contains(out, pp.Topic) {
			out = append(out, pp.Topic)
		}
	}
	slices.Sort(out)
	return out
}

// marshal is the plan as one line of JSON, as Kafka's tool prints it.
func (p reassignPlan) marshal() string {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // a plan is ints and strings
	}
	return string(b)
}

// parsePlan reads a reassignment file and checks it as Kafka's tool
// does: version 1, at least one partition, no partition twice, and each
// partition's replicas a non-empty list of distinct broker ids. Unknown
// fields are refused, so a misspelt one is not silently dropped.
func parsePlan(data []byte) (reassignPlan, error) {
	var p reassignPlan
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("not a reassignment file: %w", err)
	}
	if dec.More() {
		return p, errors.New("not a reassignment file: more after the JSON object")
	}
	if p.Version != planVersion {
		return p, fmt.Errorf("version %d: want %d", p.Version, planVersion)
	}
	if len(p.Partitions) == 0 {
		return p, errors.New("the plan has no partitions")
	}
	seen := map[tp]bool{}
	for i, pp := range p.Partitions {
		switch {
		case pp.Topic == "":
			return p, fmt.Errorf("partition %d of the plan has no topic", i)
		case pp.Partition < 0:
			return p, fmt.Errorf("%s: a negative partition", pp.tp())
		case seen[pp.tp()]:
			return p, fmt.Errorf("%s is in the plan twice", pp.tp())
		case len(pp.Replicas) == 0:
			return p, fmt.Errorf("%s: no replicas", pp.tp())
		case pp.LogDirs != nil && len(pp.LogDirs) != len(pp.Replicas):
			return p, fmt.Errorf("%s: %d log_dirs for %d replicas", pp.tp(), len(pp.LogDirs), len(pp.Replicas))
		}
		seen[pp.tp()] = true
		for j, r := range pp.Replicas {
			if r < 0 || slices.Contains(pp.Replicas[:j], r) {
				return p, fmt.Errorf("%s: replicas %v: want distinct broker ids", pp.tp(), pp.Replicas)
			}
		}
		for _, d := range pp.LogDirs {
			if d != "any" {
				return p, fmt.Errorf("%s: log_dirs %q: runnel keeps one log directory per broker, so only \"any\" is accepted", pp.tp(), d)
			}
		}
	}
	return p, nil
}

// parseIDs reads a comma-separated list of broker ids, distinct.
func parseIDs(s string) ([]int32, error) {
	ids, bad := splitIDs(s)
	if bad != "" {
		return nil, fmt.Errorf("%q is not a broker id", bad)
	}
	for i, id := range ids {
		if slices.Contains(ids[:i], id) {
			return nil, fmt.Errorf("broker %d is named twice", id)
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("no broker ids given")
	}
	return ids, nil
}

// generatePlan proposes where the partitions of current go on brokers,
// each with rf replicas (0: the replication factor it has), spreading
// replicas and preferred leaders evenly while moving as few replicas as
// it can. The algorithm, in three steps:
//
//  1. Keep. Each partition keeps, in their order, its replicas on brokers
//     of the list, up to its replication factor (a lower one drops the
//     last). Replicas on other brokers are dropped.
//  2. Fill. Each free place, partitions in order, goes to the broker of
//     the list with the fewest replicas so far that the partition is not
//     on (ties: the lower id).
//  3. Balance. While the fullest broker holds two or more replicas more
//     than the emptiest, one replica moves from a broker to one holding
//     two or more fewer, in a partition the second is not in (there
//     always is one for the fullest and the emptiest: the fullest is in
//     more partitions). Moves that
//     copy nothing more are preferred: a replica step 2 placed going
//     elsewhere, or a kept one giving way to a replica the partition has
//     now that step 1 dropped. They go along a chain if need be, the
//     fullest's replica of one partition going to a broker B, and one of
//     B's to the next, until the emptiest (the shortest such chain,
//     found breadth first). A move that copies one replica more is made
//     only when no chain exists. Each round narrows the spread, so this
//     ends with every broker within one replica of the others.
//
// Preferred leaders are then chosen without moving data, by ordering
// each partition's replicas (see balanceLeaders).
func generatePlan(current assignment, brokers []int32, rf int) (assignment, error) {
	if len(brokers) == 0 {
		return nil, errors.New("no brokers to place replicas on")
	}
	if len(current) == 0 {
		return nil, errors.New("no partitions to place")
	}
	for i, b := range brokers {
		if b < 0 || slices.Contains(brokers[:i], b) {
			return nil, fmt.Errorf("brokers %v: want distinct broker ids", brokers)
		}
	}
	if rf < 0 {
		return nil, fmt.Errorf("replication factor %d: want 1 or more", rf)
	}
	tps := current.sortedTPs()
	want := map[tp]int{}
	for _, k := range tps {
		n := rf
		if n == 0 {
			n = len(current[k])
		}
		if n > len(brokers) {
			return nil, fmt.Errorf("%s: replication factor %d, but only %d brokers are given", k, n, len(brokers))
		}
		if n == 0 {
			return nil, fmt.Errorf("%s has no replicas to count its replication factor by; give --replication-factor", k)
		}
		want[k] = n
	}

	load := map[int32]int{}
	for _, b := range brokers {
		load[b] = 0
	}
	out := assignment{}
	for _, k := range tps {
		var rs []int32
		for _, r := range current[k] {
			if len(rs) < want[k] && slices.Contains(brokers, r) && !slices.Contains(rs, r) {
				rs = append(rs, r)
				load[r]++
			}
		}
		out[k] = rs
	}
	for _, k := range tps {
		for len(out[k]) < want[k] {
			b := leastLoaded(brokers, load, out[k])
			out[k] = append(out[k], b)
			load[b]++
		}
	}
	for {
		full, empty := brokers[0], brokers[0]
		for _, b := range brokers {
			if load[b] > load[full] {
				full = b
			}
			if load[b] < load[empty] {
				empty = b
			}
		}
		if load[full]-load[empty] < 2 {
			break
		}
		// Any broker two above another may give it one.
		var path []move
		for _, a := range brokers {
			for _, b := range brokers {
				if path == nil && load[a]-load[b] >= 2 {
					if path = freePath(out, current, brokers, a, b); path != nil {
						full, empty = a, b
					}
				}
			}
		}
		if path == nil {
			// Only a copy more will do: one of full's replicas in a
			// partition empty is not in.
			for _, k := range tps {
				if slices.Contains(out[k], full) && !slices.Contains(out[k], empty) {
					path = []move{{k, full, empty}}
					break
				}
			}
		}
		if path == nil {
			panic("generatePlan: no partition to move a replica in") // see step 3
		}
		for _, m := range path {
			out[m.tp][slices.Index(out[m.tp], m.from)] = m.to
		}
		load[full]--
		load[empty]++
	}
	balanceLeaders(out, current, brokers)
	return out, nil
}

// move is one replica of a partition moving from one broker to another.
type move struct {
	tp       tp
	from, to int32
}

// freePath returns the shortest chain of moves that takes one replica
// off from and puts one on to, every broker between keeping its count,
// and copies nothing more than out already does: each move is of a
// replica current does not have (the copy goes elsewhere instead) or to
// a broker current has (a replica kept in place of another). nil if
// there is none.
func freePath(out, current assignment, brokers []int32, from, to int32) []move {
	tps := out.sortedTPs()
	via := map[int32]move{from: {}} // the move that reached each broker
	queue := []int32{from}
	for len(queue) > 0 {
		a := queue[0]
		queue = queue[1:]
		for _, k := range tps {
			if !slices.Contains(out[k], a) {
				continue
			}
			for _, b := range brokers {
				if _, seen := via[b]; seen || slices.Contains(out[k], b) ||
					(slices.Contains(current[k], a) && !slices.Contains(current[k], b)) {
					continue
				}
				via[b] = move{k, a, b}
				if b != to {
					queue = append(queue, b)
					continue
				}
				var path []move
				for at := to; at != from; at = via[at].from {
					path = append(path, via[at])
				}
				slices.Reverse(path)
				return path
			}
		}
	}
	return nil
}

// leastLoaded returns the broker with the fewest replicas that is not in
// skip; ties go to the lower id.
func leastLoaded(brokers []int32, load map[int32]int, skip []int32) int32 {
	best := int32(-1)
	for _, b := range brokers {
		if slices.Contains(skip, b) {
			continue
		}
		if best == -1 || load[b] < load[best] || (load[b] == load[best] && b < best) {
			best = b
		}
	}
	return best
}

// balanceLeaders orders the replicas of each partition of a so that the
// preferred leaders (the first replicas) spread evenly over brokers. A
// partition keeps its current preferred leader while that broker leads
// fewer than its share (the number of partitions over the number of
// brokers, rounded up); the others take the replica that leads fewest so
// far. Then, while a broker leads two or more partitions more than
// another broker of some partition it leads, that partition's lead
// passes to the other. Only the order changes: no data moves for it.
func balanceLeaders(a assignment, current assignment, brokers []int32) {
	tps := a.sortedTPs()
	share := (len(tps) + len(brokers) - 1) / len(brokers)
	leads := map[int32]int{}
	var open []tp
	for _, k := range tps {
		cur := current[k]
		if len(cur) > 0 && slices.Contains(a[k], cur[0]) && leads[cur[0]] < share {
			setLeader(a[k], cur[0])
			leads[cur[0]]++
			continue
		}
		open = append(open, k)
	}
	for _, k := range open {
		best := a[k][0]
		for _, r := range a[k] {
			if leads[r] < leads[best] {
				best = r
			}
		}
		setLeader(a[k], best)
		leads[best]++
	}
	// Each pass lowers the sum of the squares of the lead counts, so
	// this ends.
	for moved := true; moved; {
		moved = false
		for _, k := range tps {
			l := a[k][0]
			for _, r := range a[k][1:] {
				if leads[l]-leads[r] >= 2 {
					setLeader(a[k], r)
					leads[l]--
					leads[r]++
					moved = true
					break
				}
			}
		}
	}
}

// setLeader moves b to the front of rs, keeping the others' order.
func setLeader(rs []int32, b int32) {
	i := slices.Index(rs, b)
	copy(rs[1:i+1], rs[:i])
	rs[0] = b
}

// drainPlan proposes, for each partition of current with a replica on
// broker from, the same replicas with that one on another broker of to:
// the one holding the fewest replicas of all current's partitions (ties:
// the lower id) that the partition is not already on. The new replica
// takes the old one's place in the order, so a partition the drained
// broker preferred to lead prefers its replacement. Partitions not on
// from are left out. It fails where a partition has more replicas than to
// has brokers it could use.
func drainPlan(current assignment, from int32, to []int32) (assignment, error) {
	load := map[int32]int{}
	for _, b := range to {
		load[b] = 0
	}
	for _, rs := range current {
		for _, r := range rs {
			load[r]++
		}
	}
	out := assignment{}
	for _, k := range current.sortedTPs() {
		rs := current[k]
		i := slices.Index(rs, from)
		if i < 0 {
			continue
		}
		b := leastLoaded(to, load, rs)
		if b == -1 {
			return nil, fmt.Errorf("%s has %d replicas, and the brokers other than %d it could move to are %v: "+
				"too few (start another broker, or lower the replication factor with reassign)", k, len(rs), from, to)
		}
		moved := slices.Clone(rs)
		moved[i] = b
		out[k] = moved
		load[b]++
		load[from]--
	}
	return out, nil
}

// movement counts the replicas to copy: those of target not in current.
func movement(current, target assignment) int {
	n := 0
	for k, rs := range target {
		for _, r := range rs {
			if !slices.Contains(current[k], r) {
				n++
			}
		}
	}
	return n
}
