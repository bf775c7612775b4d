// Package lag reports consumer lag: for every committed offset of the
// groups a broker coordinates, the partition's high watermark minus the
// offset, as Prometheus series.
//
// The broker that coordinates a group knows its committed offsets, but the
// high watermark only of the partitions it leads. The others come from a
// Refresher: a background loop that asks each partition's leader with
// ListOffsets (latest, read_uncommitted: the high watermark) every
// Interval, and keeps the answers in a cache. A scrape reads the committed
// offsets, the local high watermarks and the cache; it never waits for the
// network, and no lock is held across I/O. The lag of a partition led
// elsewhere is therefore as old as the last refresh (at most Interval plus
// one round of requests, each bounded by Timeout); one whose leader has not
// answered yet is reported with its committed offset but without a lag,
// and an answer older than three intervals is dropped.
//
// The series are bounded: at most MaxSeries group partitions are exported
// (the first in group, topic, partition order), and the ones left out are
// counted.
package lag

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TP names a partition.
type TP struct {
	Topic     string
	Partition int32
}

// Committed is one committed offset of a group.
type Committed struct {
	Group string
	TP
	Offset int64
}

// Options configure a Refresher. Every function must be safe for
// concurrent use; none but HighWatermarks may block on I/O.
type Options struct {
	// Committed returns the committed offsets of the groups this broker
	// coordinates.
	Committed func() []Committed
	// LocalHighWatermark returns the high watermark of a partition this
	// broker leads; ok is false for any other.
	LocalHighWatermark func(TP) (hw int64, ok bool)
	// Leader returns the address of the inter-broker listener of a
	// partition's leader; ok is false when it has none.
	Leader func(TP) (leader int32, addr string, ok bool)
	// HighWatermarks asks the broker at addr for the high watermarks of
	// partitions. A partition missing from the answer (the broker no longer
	// leads it, or answered with an error) is left out.
	HighWatermarks func(ctx context.Context, addr string, partitions []TP) (map[TP]int64, error)
	// Interval between two refreshes. Default 15 s.
	Interval time.Duration
	// Timeout bounds each broker's answer. Default 5 s.
	Timeout time.Duration
	// MaxSeries bounds the group partitions exported. Default 10000.
	MaxSeries int
	// Logger: nil means slog.Default().
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultInterval  = 15 * time.Second
	DefaultTimeout   = 5 * time.Second
	DefaultMaxSeries = 10000
)

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

type cached struct {
	hw int64
	at time.Time
}

// Refresher keeps the high watermarks of partitions led by other brokers
// and reports lag as a prometheus.Collector. Its methods are safe for
// concurrent use.
type Refresher struct {
	o   Options
	now func() time.Time

	// mu guards the cache; a leaf lock, never held across I/O.
	mu struct {
		sync.Mutex
		hw map[TP]cached
	}
	dropped  atomic.Int64 // group partitions left out of scrapes
	failures atomic.Int64 // requests to leaders that failed
	lastAt   atomic.Int64 // Unix ms of the last refresh's end

	lag, committed, droppedD, failuresD, lastD *prometheus.Desc
}

// New returns a Refresher; Run refreshes it. It does not change o.
func New(o Options) *Refresher {
	r := &Refresher{o: o.withDefaults(), now: time.Now}
	r.mu.hw = map[TP]cached{}
	l := []string{"group", "topic", "partition"}
	r.lag = prometheus.NewDesc("runnel_consumer_group_lag", "High watermark of the partition minus the group's committed offset (absent until the high watermark of a partition led by another broker is known).", l, nil)
	r.committed = prometheus.NewDesc("runnel_consumer_group_committed_offset", "The group's committed offset of the partition.", l, nil)
	r.droppedD = prometheus.NewDesc("runnel_consumer_group_lag_dropped_series_total", "Group partitions left out of scrapes because of the cap on lag series, summed over scrapes.", nil, nil)
	r.failuresD = prometheus.NewDesc("runnel_consumer_group_lag_refresh_failures_total", "ListOffsets requests to partition leaders for the high watermarks of lag that failed.", nil, nil)
	r.lastD = prometheus.NewDesc("runnel_consumer_group_lag_refresh_timestamp_seconds", "When the last refresh of the high watermarks of partitions led by other brokers ended (Unix time; 0: none yet).", nil, nil)
	return r
}

// Run refreshes at once, then every Interval, until ctx ends.
func (r *Refresher) Run(ctx context.Context) {
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		r.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh asks the leaders of the committed partitions this broker does not
// lead for their high watermarks, one leader after another, and replaces
// the cache with the answers (keeping a previous answer, until it is too
// old, for a leader that failed).
func (r *Refresher) Refresh(ctx context.Context) {
	byAddr := map[string][]TP{}
	seen := map[TP]bool{}
	for _, c := range r.capped(r.o.Committed()) {
		if seen[c.TP] {
			continue
		}
		seen[c.TP] = true
		if _, ok := r.o.LocalHighWatermark(c.TP); ok {
			continue
		}
		if _, addr, ok := r.o.Leader(c.TP); ok {
			byAddr[addr] = append(byAddr[addr], c.TP)
		}
	}
	fresh := map[TP]cached{}
	for addr, tps := range byAddr {
		if ctx.Err() != nil {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
		hws, err := r.o.HighWatermarks(cctx, addr, tps)
		cancel()
		if err != nil {
			r.failures.Add(1)
			r.o.Logger.Debug("asking a leader for high watermarks failed", "addr", addr, "partitions", len(tps), "err", err)
			continue
		}
		at := r.now()
		for _, tp := range tps {
			if hw, ok := hws[tp]; ok {
				fresh[tp] = cached{hw: hw, at: at}
			}
		}
	}
	now := r.now()
	r.mu.Lock()
	for tp, c := range r.mu.hw {
		if _, ok := fresh[tp]; !ok && seen[tp] && now.Sub(c.at) < 3*r.o.Interval {
			fresh[tp] = c
		}
	}
	r.mu.hw = fresh
	r.mu.Unlock()
	r.lastAt.Store(now.UnixMilli())
}

// capped sorts cs and keeps the first MaxSeries.
func (r *Refresher) capped(cs []Committed) []Committed {
	slices.SortFunc(cs, func(a, b Committed) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	if len(cs) > r.o.MaxSeries {
		cs = cs[:r.o.MaxSeries]
	}
	return cs
}

// highWatermark returns a partition's high watermark: its own if this
// broker leads it, else the cached answer of its leader.
func (r *Refresher) highWatermark(tp TP) (int64, bool) {
	if hw, ok := r.o.LocalHighWatermark(tp); ok {
		return hw, true
	}
	r.mu.Lock()
	c, ok := r.mu.hw[tp]
	r.mu.Unlock()
	if !ok || r.now().Sub(c.at) >= 3*r.o.Interval {
		return 0, false
	}
	return c.hw, true
}

// Describe implements prometheus.Collector.
func (r *Refresher) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{r.lag, r.committed, r.droppedD, r.failuresD, r.lastD} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (r *Refresher) Collect(ch chan<- prometheus.Metric) {
	all := r.o.Committed()
	cs := r.capped(all)
	r.dropped.Add(int64(len(all) - len(cs)))
	for _, c := range cs {
		lv := []string{c.Group, c.Topic, strconv.Itoa(int(c.Partition))}
		ch <- prometheus.MustNewConstMetric(r.committed, prometheus.GaugeValue, float64(c.Offset), lv...)
		if hw, ok := r.highWatermark(c.TP); ok {
			ch <- prometheus.MustNewConstMetric(r.lag, prometheus.GaugeValue, float64(max(hw-c.Offset, 0)), lv...)
		}
	}
	ch <- prometheus.MustNewConstMetric(r.droppedD, prometheus.CounterValue, float64(r.dropped.Load()))
	ch <- prometheus.MustNewConstMetric(r.failuresD, prometheus.CounterValue, float64(r.failures.Load()))
	ch <- prometheus.MustNewConstMetric(r.lastD, prometheus.GaugeValue, float64(r.lastAt.Load())/1e3)
}
