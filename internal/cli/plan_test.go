package cli

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// loads counts the replicas and preferred leaders each broker has in a.
func loads(a assignment) (replicas, leaders map[int32]int) {
	replicas, leaders = map[int32]int{}, map[int32]int{}
	for _, rs := range a {
		for _, r := range rs {
			replicas[r]++
		}
		if len(rs) > 0 {
			leaders[rs[0]]++
		}
	}
	return replicas, leaders
}

// spread is the largest count less the smallest, over brokers.
func spread(counts map[int32]int, brokers []int32) int {
	lo, hi := -1, -1
	for _, b := range brokers {
		n := counts[b]
		if lo == -1 || n < lo {
			lo = n
		}
		if n > hi {
			hi = n
		}
	}
	return hi - lo
}

// checkPlan checks that every partition of plan has rf (or its current
// count) distinct replicas, all on brokers.
func checkPlan(t *testing.T, current, plan assignment, brokers []int32, rf int) {
	t.Helper()
	if len(plan) != len(current) {
		t.Fatalf("plan has %d partitions, current %d", len(plan), len(current))
	}
	for k, rs := range plan {
		want := rf
		if want == 0 {
			want = len(current[k])
		}
		if len(rs) != want {
			t.Errorf("%s: replicas %v, want %d", k, rs, want)
		}
		for i, r := range rs {
			if !slices.Contains(brokers, r) || slices.Contains(rs[:i], r) {
				t.Errorf("%s: replicas %v: not distinct brokers of %v", k, rs, brokers)
			}
		}
	}
}

func uniform(topic string, n int, rs ...int32) assignment {
	a := assignment{}
	for i := range n {
		a[tp{topic, int32(i)}] = slices.Clone(rs)
	}
	return a
}

// TestGeneratePlanSpreadsOntoANewBroker: six partitions of two replicas,
// all on brokers 1 and 2, spread over 1, 2 and 3: four replicas and two
// preferred leaders each, with broker 3's four the only copies.
func TestGeneratePlanSpreadsOntoANewBroker(t *testing.T) {
	current := uniform("t", 6, 1, 2)
	brokers := []int32{1, 2, 3}
	plan, err := generatePlan(current, brokers, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, current, plan, brokers, 0)
	reps, leads := loads(plan)
	for _, b := range brokers {
		if reps[b] != 4 || leads[b] != 2 {
			t.Errorf("broker %d: %d replicas, %d leaders; want 4 and 2 (plan %v)", b, reps[b], leads[b], plan)
		}
	}
	if m := movement(current, plan); m != 4 {
		t.Errorf("%d replicas copied, want 4 (plan %v)", m, plan)
	}
}

// TestGeneratePlanLeavesABalancedAssignment: a balanced assignment on the
// same brokers comes back unchanged, order included.
func TestGeneratePlanLeavesABalancedAssignment(t *testing.T) {
	current := assignment{
		{"a", 0}: {1, 2}, {"a", 1}: {2, 3}, {"a", 2}: {3, 1},
		{"b", 0}: {2, 1}, {"b", 1}: {3, 2}, {"b", 2}: {1, 3},
	}
	plan, err := generatePlan(current, []int32{1, 2, 3}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for k, rs := range current {
		if !slices.Equal(plan[k], rs) {
			t.Errorf("%s: %v became %v", k, rs, plan[k])
		}
	}
}

// TestGeneratePlanMovesOnlyOffARemovedBroker: leaving broker 4 out of a
// balanced four-broker assignment copies exactly the replicas broker 4
// had, and spreads them so the three left stay balanced.
func TestGeneratePlanMovesOnlyOffARemovedBroker(t *testing.T) {
	current := assignment{}
	for i := range int32(8) {
		current[tp{"t", i}] = []int32{i%4 + 1, (i+1)%4 + 1, (i+2)%4 + 1}
	}
	on4 := 0
	for _, rs := range current {
		if slices.Contains(rs, 4) {
			on4++
		}
	}
	brokers := []int32{1, 2, 3}
	plan, err := generatePlan(current, brokers, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, current, plan, brokers, 0)
	if m := movement(current, plan); m != on4 {
		t.Errorf("%d replicas copied, want the %d broker 4 had", m, on4)
	}
	reps, leads := loads(plan)
	if spread(reps, brokers) > 0 || spread(leads, brokers) > 1 {
		t.Errorf("replicas %v, leaders %v: not balanced", reps, leads)
	}
}

// TestGeneratePlanChangesTheReplicationFactor: --replication-factor up
// and down keeps what it can.
func TestGeneratePlanChangesTheReplicationFactor(t *testing.T) {
	current := uniform("t", 3, 1)
	brokers := []int32{1, 2, 3}
	plan, err := generatePlan(current, brokers, 3)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, current, plan, brokers, 3)
	if m := movement(current, plan); m != 6 {
		t.Errorf("%d copied, want 6", m)
	}
	_, leads := loads(plan)
	if spread(leads, brokers) != 0 {
		t.Errorf("leaders %v: want one each", leads)
	}

	down, err := generatePlan(plan, brokers, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, plan, down, brokers, 1)
	if m := movement(plan, down); m != 0 {
		t.Errorf("lowering the replication factor copied %d replicas", m)
	}
}

// TestGeneratePlanRandom checks many random cases: every plan is valid,
// replicas are within one of each other on every broker, preferred
// leaders within one where every partition has all brokers, and the
// plan copies no more replicas than the best balanced plan, found by
// trying every one (the cases are small for it).
func TestGeneratePlanRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		nb := 1 + rng.IntN(4)
		var all []int32
		for b := range int32(nb + 1) {
			all = append(all, b+1)
		}
		current := assignment{}
		for p := range int32(1 + rng.IntN(6)) {
			rf := 1 + rng.IntN(min(nb, 3))
			rs := slices.Clone(all)
			rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
			current[tp{fmt.Sprint("t", p%2), p}] = rs[:rf]
		}
		brokers := slices.Clone(all)
		rng.Shuffle(len(brokers), func(i, j int) { brokers[i], brokers[j] = brokers[j], brokers[i] })
		brokers = brokers[:nb]
		rf := 0
		if rng.IntN(3) == 0 {
			rf = 1 + rng.IntN(nb)
		}
		plan, err := generatePlan(current, brokers, rf)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		checkPlan(t, current, plan, brokers, rf)
		reps, leads := loads(plan)
		if spread(reps, brokers) > 1 {
			t.Fatalf("case %d: replicas %v over %v: not balanced\ncurrent %v\nplan %v", i, reps, brokers, current, plan)
		}
		if rf == nb && spread(leads, brokers) > 1 {
			t.Fatalf("case %d: leaders %v over %v: not balanced\nplan %v", i, leads, brokers, plan)
		}
		if m, best := movement(current, plan), fewestCopies(current, brokers, rf); m != best {
			t.Fatalf("case %d: %d copied, the best balanced plan copies %d\ncurrent %v\nplan %v", i, m, best, current, plan)
		}
	}
}

// fewestCopies tries every placement of current's partitions on brokers
// (rf replicas each; 0: as many as now) and returns the fewest replicas
// copied by one that is balanced.
func fewestCopies(current assignment, brokers []int32, rf int) int {
	tps := current.sortedTPs()
	load := map[int32]int{}
	best := -1
	var try func(i, copied int)
	try = func(i, copied int) {
		if best != -1 && copied >= best {
			return
		}
		if i == len(tps) {
			if spread(load, brokers) <= 1 {
				best = copied
			}
			return
		}
		want := rf
		if want == 0 {
			want = len(current[tps[i]])
		}
		for mask := range 1 << len(brokers) {
			var set []int32
			for j, b := range brokers {
				if mask&(1<<j) != 0 {
					set = append(set, b)
				}
			}
			if len(set) != want {
				continue
			}
			c := 0
			for _, b := range set {
				load[b]++
				if !slices.Contains(current[tps[i]], b) {
					c++
				}
			}
			try(i+1, copied+c)
			for _, b := range set {
				load[b]--
			}
		}
	}
	try(0, 0)
	return best
}

func TestGeneratePlanRefuses(t *testing.T) {
	current := uniform("t", 2, 1, 2)
	for _, c := range []struct {
		name    string
		current assignment
		brokers []int32
		rf      int
		want    string
	}{
		{"no brokers", current, nil, 0, "no brokers"},
		{"no partitions", assignment{}, []int32{1}, 0, "no partitions"},
		{"a broker twice", current, []int32{1, 1}, 0, "distinct"},
		{"too few brokers", current, []int32{1}, 0, "replication factor 2, but only 1 brokers"},
		{"rf above brokers", current, []int32{1, 2}, 3, "replication factor 3"},
		{"no replicas to count", assignment{{"t", 0}: nil}, []int32{1}, 0, "--replication-factor"},
	} {
		_, err := generatePlan(c.current, c.brokers, c.rf)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one saying %q", c.name, err, c.want)
		}
	}
}

// TestDrainPlan: draining broker 3 moves only its replicas, each onto the
// broker of the other two that the partition is not on, in its place.
func TestDrainPlan(t *testing.T) {
	current := assignment{
		{"t", 0}: {1, 2}, {"t", 1}: {2, 3}, {"t", 2}: {3, 1},
		{"u", 0}: {3, 2}, {"u", 1}: {1, 2},
	}
	plan, err := drainPlan(current, 3, []int32{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	want := assignment{{"t", 1}: {2, 1}, {"t", 2}: {2, 1}, {"u", 0}: {1, 2}}
	if len(plan) != len(want) {
		t.Fatalf("plan %v, want %v", plan, want)
	}
	for k, rs := range want {
		if !slices.Equal(plan[k], rs) {
			t.Errorf("%s: %v, want %v", k, plan[k], rs)
		}
	}

	// Four brokers: the two replicas off broker 4 go to the emptiest.
	current = assignment{{"t", 0}: {1, 4}, {"t", 1}: {4, 2}, {"t", 2}: {1, 2}}
	plan, err = drainPlan(current, 4, []int32{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plan[tp{"t", 0}], []int32{1, 3}) || !slices.Equal(plan[tp{"t", 1}], []int32{3, 2}) {
		t.Errorf("plan %v", plan)
	}

	if _, err := drainPlan(uniform("t", 1, 1, 2, 3), 3, []int32{1, 2}); err == nil || !strings.Contains(err.Error(), "too few") {
		t.Errorf("three replicas drained onto two brokers: err %v", err)
	}
}

func TestParsePlan(t *testing.T) {
	p, err := parsePlan([]byte(`{"version":1,"partitions":[{"topic":"t","partition":1,"replicas":[2,1],"log_dirs":["any","any"]},
		{"topic":"t","partition":0,"replicas":[3]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	a := p.assignment()
	if len(a) != 2 || !slices.Equal(a[tp{"t", 1}], []int32{2, 1}) || !slices.Equal(a[tp{"t", 0}], []int32{3}) {
		t.Fatalf("assignment %v", a)
	}
	// What --generate writes reads back the same.
	want := `{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[3]},{"topic":"t","partition":1,"replicas":[2,1]}]}`
	if got := a.plan().marshal(); got != want {
		t.Fatalf("marshal = %s, want %s", got, want)
	}
	back, err := parsePlan([]byte(want))
	if err != nil || back.marshal() != want {
		t.Fatalf("round trip: %v, %s", err, back.marshal())
	}

	for _, c := range []struct{ in, want string }{
		{`not json`, "not a reassignment file"},
		{`{"version":2,"partitions":[{"topic":"t","partition":0,"replicas":[1]}]}`, "version 2"},
		{`{"version":1,"partitions":[]}`, "no partitions"},
		{`{"version":1}`, "no partitions"},
		{`{"version":1,"partitions":[{"partition":0,"replicas":[1]}]}`, "no topic"},
		{`{"version":1,"partitions":[{"topic":"t","partition":-1,"replicas":[1]}]}`, "negative"},
		{`{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1]},{"topic":"t","partition":0,"replicas":[2]}]}`, "twice"},
		{`{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[]}]}`, "no replicas"},
		{`{"version":1,"partitions":[{"topic":"t","partition":0}]}`, "no replicas"},
		{`{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,1]}]}`, "distinct"},
		{`{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[-1]}]}`, "distinct"},
		{`{"version":1,"partitions":[{"topic":"t","partition":0,"replica":[1]}]}`, "unknown field"},
		{`{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1],"log_dirs":["/data"]}]}`, "only \"any\""},
		{`{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2],"log_dirs":["any"]}]}`, "1 log_dirs for 2"},
		{`{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1]}]} {}`, "more after"},
	} {
		if _, err := parsePlan([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one saying %q", c.in, err, c.want)
		}
	}
}

func TestParseIDs(t *testing.T) {
	if ids, err := parseIDs(" 3, 1,2 "); err != nil || !slices.Equal(ids, []int32{3, 1, 2}) {
		t.Errorf("parseIDs = %v, %v", ids, err)
	}
	for _, in := range []string{"", "1,x", "1,1", "-2"} {
		if _, err := parseIDs(in); err == nil {
			t.Errorf("parseIDs(%q) took it", in)
		}
	}
}

// TestReplicaList: the throttled-replicas values --execute sets.
func TestReplicaList(t *testing.T) {
	got := replicaList(map[tp][]int32{{"t", 1}: {3}, {"t", 0}: {1, 2}})
	if got != "0:1,0:2,1:3" {
		t.Errorf("replicaList = %q", got)
	}
}

func TestPlanStates(t *testing.T) {
	st := &clusterState{
		replicas: assignment{{"t", 0}: {1, 2}, {"t", 1}: {3, 1, 2}, {"t", 2}: {1, 2}, {"t", 3}: {2, 3, 1}},
		moving: map[tp]inProgress{
			{"t", 1}: {replicas: []int32{3, 1, 2}, adding: []int32{3}, removing: []int32{2}},
			{"t", 3}: {replicas: []int32{2, 3, 1}, adding: []int32{3}, removing: []int32{1}},
		},
	}
	plan := reassignPlan{Version: 1, Partitions: []planPartition{
		{Topic: "t", Partition: 0, Replicas: []int32{1, 2}},
		{Topic: "t", Partition: 1, Replicas: []int32{3, 1}},
		{Topic: "t", Partition: 2, Replicas: []int32{2, 3}},
		{Topic: "t", Partition: 3, Replicas: []int32{1, 3}},
		{Topic: "t", Partition: 9, Replicas: []int32{1}},
	}}
	got := planStates(st, plan)
	for k, want := range map[tp]string{
		{"t", 0}: "complete",
		{"t", 1}: "in progress (adding 3; removing 2)",
		{"t", 2}: "failed: replicas 1,2 differ from the plan's 2,3",
		{"t", 3}: "failed: a reassignment to 2,3, not the plan's 1,3",
		{"t", 9}: "failed: no such partition",
	} {
		if !strings.HasPrefix(got[k].text, want) {
			t.Errorf("%s: %q, want %q", k, got[k].text, want)
		}
	}
	if !got[tp{"t", 0}].complete || got[tp{"t", 1}].complete || got[tp{"t", 1}].failed || !got[tp{"t", 2}].failed {
		t.Errorf("states %+v", got)
	}
}
