package cleaner

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector reports the cleaner's counters and each compacted partition's
// dirty ratio at scrape time.
func (c *Cleaner) Collector() prometheus.Collector { return &collector{c: c, descs: newDescs()} }

type descs struct {
	read, written, cleaned, after, removed *prometheus.Desc
	markers                                *prometheus.Desc
	cleans, failures, segments             *prometheus.Desc
	seconds, lastRun, ratio, dirty         *prometheus.Desc
}

func newDescs() descs {
	l := []string{"topic", "partition"}
	return descs{
		read:     prometheus.NewDesc("runnel_log_cleaner_read_bytes_total", "Log bytes the cleaner read.", nil, nil),
		written:  prometheus.NewDesc("runnel_log_cleaner_written_bytes_total", "Log bytes the cleaner wrote into new segment files.", nil, nil),
		cleaned:  prometheus.NewDesc("runnel_log_cleaner_cleaned_bytes_total", "Bytes of the segments the cleaner replaced, before cleaning.", nil, nil),
		after:    prometheus.NewDesc("runnel_log_cleaner_kept_bytes_total", "Bytes of the segments the cleaner replaced, after cleaning.", nil, nil),
		removed:  prometheus.NewDesc("runnel_log_cleaner_records_removed_total", "Records the cleaner removed (superseded by a later record of their key, or tombstones past delete.retention.ms).", nil, nil),
		markers:  prometheus.NewDesc("runnel_log_cleaner_markers_removed_total", "Transaction markers the cleaner removed (their transactions' records gone, past delete.retention.ms).", nil, nil),
		cleans:   prometheus.NewDesc("runnel_log_cleaner_cleans_total", "Cleaning passes finished.", nil, nil),
		failures: prometheus.NewDesc("runnel_log_cleaner_failures_total", "Cleaning passes that failed (logged; the partition is tried again later).", nil, nil),
		segments: prometheus.NewDesc("runnel_log_cleaner_segments_total", "Segments the cleaner rewrote.", nil, nil),
		seconds:  prometheus.NewDesc("runnel_log_cleaner_seconds_total", "Time spent cleaning.", nil, nil),
		lastRun:  prometheus.NewDesc("runnel_log_cleaner_last_run_timestamp_seconds", "When the last cleaning pass ended (Unix time; 0: none yet).", nil, nil),
		ratio:    prometheus.NewDesc("runnel_log_cleaner_last_ratio", "Bytes kept over bytes before, in the segments the last pass rewrote.", nil, nil),
		dirty:    prometheus.NewDesc("runnel_log_cleaner_dirty_ratio", "A compacted partition's bytes not yet cleaned over the bytes of its sealed segments, at the cleaner's last look.", l, nil),
	}
}

type collector struct {
	c     *Cleaner
	descs descs
}

func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	d := m.descs
	for _, x := range []*prometheus.Desc{d.read, d.written, d.cleaned, d.after, d.removed, d.markers, d.cleans, d.failures, d.segments, d.seconds, d.lastRun, d.ratio, d.dirty} {
		ch <- x
	}
}

func (m *collector) Collect(ch chan<- prometheus.Metric) {
	s, d := &m.c.stats, m.descs
	counter := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v)
	}
	counter(d.read, float64(s.BytesRead.Load()))
	counter(d.written, float64(s.BytesWritten.Load()))
	counter(d.cleaned, float64(s.BytesCleaned.Load()))
	counter(d.after, float64(s.BytesAfter.Load()))
	counter(d.removed, float64(s.RecordsRemoved.Load()))
	counter(d.markers, float64(s.MarkersRemoved.Load()))
	counter(d.cleans, float64(s.Cleans.Load()))
	counter(d.failures, float64(s.Failures.Load()))
	counter(d.segments, float64(s.Segments.Load()))
	counter(d.seconds, float64(s.Nanos.Load())/1e9)
	ch <- prometheus.MustNewConstMetric(d.lastRun, prometheus.GaugeValue, float64(s.LastRunUnixMs.Load())/1e3)
	ch <- prometheus.MustNewConstMetric(d.ratio, prometheus.GaugeValue, math.Float64frombits(s.LastRatio.Load()))
	for _, r := range m.c.DirtyRatios() {
		ch <- prometheus.MustNewConstMetric(d.dirty, prometheus.GaugeValue, r.Ratio, r.Topic, strconv.Itoa(int(r.Partition)))
	}
}
