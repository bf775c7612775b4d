package broker

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/coordinator/groups"
	"github.com/runnel-io/runnel/coordinator/txns"
	"github.com/runnel-io/runnel/internal/certstore"
	"github.com/runnel-io/runnel/partition"
)

// storageCollector reports per-partition log figures at scrape time.
type storageCollector struct {
	parts      *partition.Manager
	leo, hw    *prometheus.Desc
	size, segs *prometheus.Desc
	partitions *prometheus.Desc
	sent, cp   *prometheus.Desc
	mapped     *prometheus.Desc
	tlsSent    *prometheus.Desc
	offline    *prometheus.Desc
	underRep   *prometheus.Desc
	underReps  *prometheus.Desc
}

func newStorageCollector(parts *partition.Manager) *storageCollector {
	l := []string{"topic", "partition"}
	return &storageCollector{parts: parts,
		leo:        prometheus.NewDesc("runnel_log_end_offset", "Next offset to be assigned.", l, nil),
		hw:         prometheus.NewDesc("runnel_high_watermark", "Offset below which consumers may read.", l, nil),
		size:       prometheus.NewDesc("runnel_log_size_bytes", "Bytes held by the partition's segments.", l, nil),
		segs:       prometheus.NewDesc("runnel_log_segments", "Segments of the partition.", l, nil),
		partitions: prometheus.NewDesc("runnel_partitions", "Partitions hosted.", nil, nil),
		sent:       prometheus.NewDesc("runnel_fetch_sendfile_bytes_total", "Record bytes sent to consumers with sendfile.", nil, nil),
		cp:         prometheus.NewDesc("runnel_fetch_copied_bytes_total", "Record bytes sent to consumers through the copy path.", nil, nil),
		offline:    prometheus.NewDesc("runnel_partition_offline", "1 if the partition went offline after a failed sync or write (its produces and fetches answer KAFKA_STORAGE_ERROR until the broker restarts), else 0.", l, nil),
		tlsSent:    prometheus.NewDesc("runnel_fetch_tls_bytes_total", "Record bytes sent to consumers on TLS connections: read from the segment into the connection's buffer and encrypted in user space (sendfile cannot be used).", nil, nil),
		mapped:     prometheus.NewDesc("runnel_fetch_mapped_bytes_total", "Record bytes sent to consumers by writing from a mapping of the segment (fetch path mmap).", nil, nil),
		underRep:   prometheus.NewDesc("runnel_partition_under_replicated", "For a partition this broker leads: 1 if its ISR holds fewer replicas than it has (not counting those a reassignment is adding), else 0.", l, nil),
		underReps:  prometheus.NewDesc("runnel_under_replicated_partitions", "Partitions this broker leads whose ISR holds fewer replicas than they have.", nil, nil),
	}
}

func (c *storageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leo, c.hw, c.size, c.segs, c.partitions, c.sent, c.cp, c.mapped, c.tlsSent, c.offline, c.underRep, c.underReps} {
		ch <- d
	}
}

func (c *storageCollector) Collect(ch chan<- prometheus.Metric) {
	ps := c.parts.Partitions()
	ch <- prometheus.MustNewConstMetric(c.partitions, prometheus.GaugeValue, float64(len(ps)))
	ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(consumer.SentfileBytes.Load()))
	ch <- prometheus.MustNewConstMetric(c.cp, prometheus.CounterValue, float64(consumer.CopiedBytes.Load()))
	ch <- prometheus.MustNewConstMetric(c.mapped, prometheus.CounterValue, float64(consumer.MappedBytes.Load()))
	ch <- prometheus.MustNewConstMetric(c.tlsSent, prometheus.CounterValue, float64(consumer.BufferedBytes.Load()))
	underReps := 0
	for _, p := range ps {
		lv := []string{p.Topic, strconv.Itoa(int(p.Index))}
		if r := p.Role(); r.Leader {
			under := 0.0
			// As Kafka: replicas a reassignment is adding do not count
			// until they are in the ISR.
			if len(r.ISR) < len(r.Replicas)-len(r.Adding) {
				under = 1
				underReps++
			}
			ch <- prometheus.MustNewConstMetric(c.underRep, prometheus.GaugeValue, under, lv...)
		}
		ch <- prometheus.MustNewConstMetric(c.leo, prometheus.GaugeValue, float64(p.LogEndOffset()), lv...)
		ch <- prometheus.MustNewConstMetric(c.hw, prometheus.GaugeValue, float64(p.HighWatermark()), lv...)
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(p.Log().Size()), lv...)
		ch <- prometheus.MustNewConstMetric(c.segs, prometheus.GaugeValue, float64(len(p.Log().Segments())), lv...)
		offline := 0.0
		if p.Log().Offline() != nil {
			offline = 1
		}
		ch <- prometheus.MustNewConstMetric(c.offline, prometheus.GaugeValue, offline, lv...)
	}
	ch <- prometheus.MustNewConstMetric(c.underReps, prometheus.GaugeValue, float64(underReps))
}

// isrWatch counts the ISR changes of the partitions this broker leads, as
// the replica manager's reconcile after each metadata change sees them
// (changes between two reconciles are seen as one). A change of leader or
// leader epoch is not counted.
type isrWatch struct {
	shrinks, expands prometheus.Counter
	mu               struct {
		sync.Mutex
		led map[cluster.TP]isrSeen // leaf lock
	}
}

type isrSeen struct {
	epoch int32
	isr   int
}

func newISRWatch() *isrWatch {
	w := &isrWatch{
		shrinks: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_isr_shrinks_total",
			Help: "ISRs of partitions this broker leads that lost replicas."}),
		expands: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_isr_expands_total",
			Help: "ISRs of partitions this broker leads that gained replicas."}),
	}
	w.mu.led = map[cluster.TP]isrSeen{}
	return w
}

// observe compares the ISRs of the partitions led here with the last look.
func (w *isrWatch) observe(ps []*partition.Partition) {
	led := make(map[cluster.TP]isrSeen)
	for _, p := range ps {
		if r := p.Role(); r.Leader {
			led[cluster.TP{Topic: p.Topic, Partition: p.Index}] = isrSeen{epoch: r.Epoch, isr: len(r.ISR)}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for tp, now := range led {
		if was, ok := w.mu.led[tp]; ok && was.epoch == now.epoch {
			switch {
			case now.isr < was.isr:
				w.shrinks.Inc()
			case now.isr > was.isr:
				w.expands.Inc()
			}
		}
	}
	w.mu.led = led
}

// clusterCollector reports, on the controller (the Raft leader) only, the
// partitions of the cluster without a leader, as Kafka's controller
// reports OfflinePartitionsCount.
type clusterCollector struct {
	b       *Broker
	offline *prometheus.Desc
}

func newClusterCollector(b *Broker) *clusterCollector {
	return &clusterCollector{b: b,
		offline: prometheus.NewDesc("runnel_offline_partitions", "Partitions of the cluster without a leader; reported by the controller only.", nil, nil)}
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.offline }

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	if c.b.meta.Controller() != c.b.cfg.NodeID {
		return
	}
	n := 0
	c.b.node.FSM().Read(func(s *cluster.State) {
		for _, ps := range s.Partitions {
			for _, p := range ps {
				if p.Leader < 0 {
					n++
				}
			}
		}
	})
	ch <- prometheus.MustNewConstMetric(c.offline, prometheus.GaugeValue, float64(n))
}

// diskCollector reports the file system of the data directory.
type diskCollector struct {
	dir         string
	free, total *prometheus.Desc
}

func newDiskCollector(dir string) *diskCollector {
	return &diskCollector{dir: dir,
		free:  prometheus.NewDesc("runnel_data_dir_free_bytes", "Bytes of the data directory's file system available to the broker (statfs f_bavail).", nil, nil),
		total: prometheus.NewDesc("runnel_data_dir_size_bytes", "Size in bytes of the data directory's file system (statfs f_blocks).", nil, nil)}
}

func (c *diskCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.free; ch <- c.total }

func (c *diskCollector) Collect(ch chan<- prometheus.Metric) {
	var st unix.Statfs_t
	if err := unix.Statfs(c.dir, &st); err != nil {
		ch <- prometheus.NewInvalidMetric(c.free, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(st.Bavail)*float64(st.Bsize))
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(st.Blocks)*float64(st.Bsize))
}

// registerCertMetrics counts the reloads of the TLS certificate files.
func registerCertMetrics(reg prometheus.Registerer, certs *certstore.Store) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "runnel_tls_certificate_reloads_total",
			Help: "Loads of the TLS certificate, key and CA files that replaced the ones in use (the files changed, or SIGHUP)."},
			func() float64 { r, _ := certs.Reloads(); return float64(r) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "runnel_tls_certificate_reload_failures_total",
			Help: "Loads of changed TLS files that failed (the previous certificate stays in use)."},
			func() float64 { _, f := certs.Reloads(); return float64(f) }),
	)
}

// coordinatorCollector reports the group coordinators of this broker at
// scrape time.
type coordinatorCollector struct {
	svc                      *groups.Service
	txns                     *txns.Service // nil: not reported
	shards, groups           *prometheus.Desc
	transactions             *prometheus.Desc
	markerRetries, timedOut  *prometheus.Desc
	expiredIDs               *prometheus.Desc
	loads, records, loadTime *prometheus.Desc
	reloads                  *prometheus.Desc
}

func newCoordinatorCollector(svc *groups.Service, tx *txns.Service) *coordinatorCollector {
	l := []string{"topic"}
	return &coordinatorCollector{svc: svc, txns: tx,
		transactions:  prometheus.NewDesc("runnel_coordinator_transactions", "Transactional ids this broker coordinates, by the state of their transaction.", []string{"state"}, nil),
		markerRetries: prometheus.NewDesc("runnel_transaction_marker_retries_total", "Transaction markers written again after a partition's leader failed them.", nil, nil),
		timedOut:      prometheus.NewDesc("runnel_transactions_timed_out_total", "Transactions the coordinators aborted past their timeout.", nil, nil),
		expiredIDs:    prometheus.NewDesc("runnel_transactional_ids_expired_total", "Transactional ids the coordinators removed after --transactional-id-expiration.", nil, nil),
		shards:        prometheus.NewDesc("runnel_coordinator_partitions", "Partitions of the internal topic this broker leads, by state: loading (answering COORDINATOR_LOAD_IN_PROGRESS) or active.", []string{"topic", "state"}, nil),
		groups:        prometheus.NewDesc("runnel_coordinator_groups", "Consumer groups this broker coordinates.", nil, nil),
		loads:         prometheus.NewDesc("runnel_coordinator_loads_total", "Partitions of the internal topic loaded on becoming their leader.", l, nil),
		records:       prometheus.NewDesc("runnel_coordinator_loaded_records_total", "Records replayed by those loads.", l, nil),
		loadTime:      prometheus.NewDesc("runnel_coordinator_load_seconds_total", "Time spent in those loads.", l, nil),
		reloads:       prometheus.NewDesc("runnel_coordinator_reloads_total", "Partitions reloaded from the log after a write failed in a way that may have left memory ahead of it.", l, nil),
	}
}

func (c *coordinatorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.shards, c.groups, c.loads, c.records, c.loadTime, c.reloads,
		c.transactions, c.markerRetries, c.timedOut, c.expiredIDs} {
		ch <- d
	}
}

func (c *coordinatorCollector) Collect(ch chan<- prometheus.Metric) {
	rt := c.svc.Runtime()
	loading, active := rt.Loading()
	ch <- prometheus.MustNewConstMetric(c.shards, prometheus.GaugeValue, float64(loading), groups.Topic, "loading")
	ch <- prometheus.MustNewConstMetric(c.shards, prometheus.GaugeValue, float64(active), groups.Topic, "active")
	n := 0
	for _, gc := range c.svc.Coordinators() {
		n += len(gc.ListGroups())
	}
	ch <- prometheus.MustNewConstMetric(c.groups, prometheus.GaugeValue, float64(n))
	st := rt.Stats()
	ch <- prometheus.MustNewConstMetric(c.loads, prometheus.CounterValue, float64(st.Loads), groups.Topic)
	ch <- prometheus.MustNewConstMetric(c.records, prometheus.CounterValue, float64(st.LoadedRecords), groups.Topic)
	ch <- prometheus.MustNewConstMetric(c.loadTime, prometheus.CounterValue, st.LoadTime.Seconds(), groups.Topic)
	ch <- prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, float64(st.Reloads), groups.Topic)
	if c.txns == nil {
		return
	}
	rt = c.txns.Runtime()
	loading, active = rt.Loading()
	ch <- prometheus.MustNewConstMetric(c.shards, prometheus.GaugeValue, float64(loading), txns.Topic, "loading")
	ch <- prometheus.MustNewConstMetric(c.shards, prometheus.GaugeValue, float64(active), txns.Topic, "active")
	st = rt.Stats()
	ch <- prometheus.MustNewConstMetric(c.loads, prometheus.CounterValue, float64(st.Loads), txns.Topic)
	ch <- prometheus.MustNewConstMetric(c.records, prometheus.CounterValue, float64(st.LoadedRecords), txns.Topic)
	ch <- prometheus.MustNewConstMetric(c.loadTime, prometheus.CounterValue, st.LoadTime.Seconds(), txns.Topic)
	ch <- prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, float64(st.Reloads), txns.Topic)
	byState := map[txns.State]int{}
	for _, tx := range c.txns.List() {
		byState[tx.State]++
	}
	for st := txns.Empty; st <= txns.PrepareEpochFence; st++ {
		ch <- prometheus.MustNewConstMetric(c.transactions, prometheus.GaugeValue, float64(byState[st]), st.String())
	}
	ts := c.txns.Stats()
	ch <- prometheus.MustNewConstMetric(c.markerRetries, prometheus.CounterValue, float64(ts.MarkerRetries))
	ch <- prometheus.MustNewConstMetric(c.timedOut, prometheus.CounterValue, float64(ts.TimedOut))
	ch <- prometheus.MustNewConstMetric(c.expiredIDs, prometheus.CounterValue, float64(ts.Expired))
}
