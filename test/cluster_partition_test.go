package test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestClusterPartitionedLeader runs each broker in a network namespace of
// its own and cuts a leader's links to the other brokers, twice: first
// the controller, then a broker that is only a partition leader. Clients
// still reach every broker. While it is cut off:
//   - the other two elect new leaders for its partitions at a higher
//     epoch and acknowledge writes to them;
//   - the cut-off broker still believes it leads, appends what a client
//     sends it, and acknowledges none of it with acks=all, with
//     min.insync.replicas 2 or 1.
//
// Once the links are mended it truncates what it alone holds and follows.
// Every record the idempotent acks=all producers saw acknowledged is in
// the log once, in order, at its offset, and the replicas end
// byte-identical.
func TestClusterPartitionedLeader(t *testing.T) {
	const partitions = 3
	lab := newNetLab(t, clusterSize)
	c := startNetnsCluster(t, lab, append(slices.Clone(fastFailover), "--replica-lag-time-max", "2s")...)
	topics := map[string]string{"cut-mis2": "2", "cut-mis1": "1"}
	producers := map[string]*sequenceProducer{}
	for topic, mis := range topics {
		c.createTopic(topic, partitions, 3, map[string]string{"min.insync.replicas": mis})
		cl := c.sequenceClient(topic, kgo.ProduceRequestTimeout(2*time.Second))
		producers[topic] = startSequenceProducer(t, cl, partitions, 5*time.Millisecond, 2)
	}
	for topic, sp := range producers {
		sp.acks.waitMore(t, -1, 100, 30*time.Second, topic+" before the first cut")
	}

	for round := range 2 {
		ctrl := c.controller()
		victim := ctrl
		led := map[string][]int32{} // what the victim leads, by topic
		if round == 1 {
			// A broker that leads a partition and is not the controller.
			victim = -1
			for _, n := range c.nodes {
				if n.id == ctrl || victim != -1 {
					continue
				}
				for p, pv := range c.waitISR("cut-mis1", partitions, 3) {
					if pv.leader == n.id {
						victim = n.id
						t.Logf("broker %d leads cut-mis1-%d", n.id, p)
					}
				}
			}
			if victim == -1 {
				t.Fatalf("every partition of cut-mis1 is led by the controller %d", ctrl)
			}
		}
		epochs := map[string]int32{}
		for topic := range topics {
			for p, pv := range c.waitISR(topic, partitions, 3) {
				if pv.leader == victim {
					led[topic] = append(led[topic], p)
					epochs[fmt.Sprintf("%s-%d", topic, p)] = pv.leaderEpoch
				}
			}
		}
		if len(led) == 0 {
			t.Fatalf("round %d: broker %d leads no partition", round, victim)
		}

		c.isolate(lab, victim)
		cut := time.Now()
		t.Logf("round %d: cut broker %d (controller %d) off; it leads %v", round, victim, ctrl, led)

		// The old leader takes the batches and acknowledges none,
		// before and after --replica-lag-time-max.
		cutOff := make(chan struct{})
		go func() {
			defer close(cutOff)
			produceToCutOffLeader(t, c.node(victim), led, 0, cut)
			produceToCutOffLeader(t, c.node(victim), led, 1, cut)
		}()

		// Meanwhile the majority elects new leaders at higher epochs
		// and acknowledges writes to them.
		for topic, ps := range led {
			for _, p := range ps {
				next := c.waitLeader(topic, p, func(id int32) bool { return id != victim })
				pv, err := c.agreedPartitions(topic, partitions)
				if err != nil {
					t.Fatal(err)
				}
				was := epochs[fmt.Sprintf("%s-%d", topic, p)]
				if pv[p].leaderEpoch <= was {
					t.Errorf("%s-%d: new leader %d at epoch %d, not above %d", topic, p, next, pv[p].leaderEpoch, was)
				}
			}
		}
		elected := time.Since(cut)
		for topic, ps := range led {
			for _, p := range ps {
				producers[topic].acks.waitMore(t, p, 20, 30*time.Second,
					fmt.Sprintf("round %d: %s-%d under its new leader while broker %d is cut off", round, topic, p, victim))
			}
		}
		resumed := time.Since(cut)

		// The cut-off broker has not heard: it still names itself.
		m, err := c.node(victim).metadata()
		if err != nil {
			t.Fatalf("broker %d, cut off, does not answer the test: %v", victim, err)
		}
		for _, mt := range m.Topics {
			for _, mp := range mt.Partitions {
				if slices.Contains(led[*mt.Topic], mp.Partition) && mp.Leader != victim {
					t.Errorf("broker %d, cut off, names %d leader of %s-%d: it should not have heard", victim, mp.Leader, *mt.Topic, mp.Partition)
				}
			}
		}
		<-cutOff

		c.rejoin(lab, victim)
		healed := time.Now()
		c.waitHealthy()
		for topic := range topics {
			c.waitISR(topic, partitions, 3)
		}
		t.Logf("round %d: new leaders after %v, acknowledgements again after %v; cut for %v; ISRs full %v after the mend",
			round, elected.Round(time.Millisecond), resumed.Round(time.Millisecond),
			healed.Sub(cut).Round(time.Millisecond), time.Since(healed).Round(time.Millisecond))
	}

	var names []string
	for topic, sp := range producers {
		c.finishAndCheck(sp, topic, partitions)
		names = append(names, topic)
	}
	c.stopAndCompare(partitions, names...)
}
