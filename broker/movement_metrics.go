package broker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-io/runnel/internal/throttle"
	"github.com/runnel-io/runnel/partition"
)

// movementCollector reports replica movement at scrape time: the
// partitions this broker leads whose reassignment is in progress, and the
// replication throttles' rates and the bytes they counted.
type movementCollector struct {
	parts       *partition.Manager
	sides       map[string]*throttle.Rate // "leader", "follower"
	reassigning *prometheus.Desc
	bytes       *prometheus.Desc
	rate        *prometheus.Desc
}

func newMovementCollector(parts *partition.Manager, leader, follower *throttle.Rate) *movementCollector {
	side := []string{"side"}
	return &movementCollector{parts: parts, sides: map[string]*throttle.Rate{"leader": leader, "follower": follower},
		reassigning: prometheus.NewDesc("runnel_partitions_reassigning",
			"Partitions this broker leads with a reassignment in progress (replicas being added or removed).", nil, nil),
		bytes: prometheus.NewDesc("runnel_replication_throttled_bytes_total",
			"Bytes of throttled replication traffic while a rate is set: sent to followers of throttled replicas (side leader) or fetched for them (side follower).", side, nil),
		rate: prometheus.NewDesc("runnel_replication_throttle_rate_bytes",
			"The replication throttle's rate in bytes per second (leader. or follower.replication.throttled.rate); -1: unlimited.", side, nil),
	}
}

func (c *movementCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.reassigning
	ch <- c.bytes
	ch <- c.rate
}

func (c *movementCollector) Collect(ch chan<- prometheus.Metric) {
	n := 0
	for _, p := range c.parts.Partitions() {
		if r := p.Role(); r.Leader && (len(r.Adding) > 0 || len(r.Removing) > 0) {
			n++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.reassigning, prometheus.GaugeValue, float64(n))
	for side, t := range c.sides {
		rate := float64(t.Limit())
		if t.Limit() == throttle.Unlimited {
			rate = -1
		}
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(t.Counted()), side)
		ch <- prometheus.MustNewConstMetric(c.rate, prometheus.GaugeValue, rate, side)
	}
}
