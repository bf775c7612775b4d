// Package replica makes this broker's partition replicas follow the
// cluster metadata: it opens the replicas assigned to the broker, gives
// each its role (leader or follower at a leader epoch), runs the fetchers
// that copy batches from leaders, and, for the partitions this broker
// leads, proposes ISR changes to the Raft quorum.
package replica

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/throttle"
	"github.com/runnel-io/runnel/partition"
)

// DefaultMaxLag is how long a follower may go without catching up to the
// leader's log end before it leaves the ISR (Kafka's
// replica.lag.time.max.ms).
const DefaultMaxLag = 30 * time.Second

// Options configure a Manager.
type Options struct {
	NodeID int32
	Parts  *partition.Manager
	Node   *cluster.Node
	// MaxLag: see DefaultMaxLag.
	MaxLag time.Duration
	// FetchMaxWait bounds a follower's long poll. Default 500 ms.
	FetchMaxWait time.Duration
	// Logger: nil means slog.Default().
	Logger *slog.Logger
	// Dial connects to a leader's inter-broker listener. Nil: plain TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Throttle holds the fetches of throttled replicas (see
	// partition.Partition.FollowerThrottled) to the follower replication
	// rate; nil: none.
	Throttle *throttle.Rate
	// Reconciled, if set, is called at the end of every Reconcile, once
	// the replicas have their roles (the coordinators of internal topics
	// follow leadership with it).
	Reconciled func()
}

// Manager keeps this broker's replicas in line with the metadata.
type Manager struct {
	o   Options
	log *slog.Logger

	isrCheck  chan struct{}
	logEvents chan logEvent

	// boundaries holds the partitions whose segment boundaries or log
	// start the metadata changed since the follower loop last looked; a
	// leaf lock, taken under the state machine's.
	boundaries struct {
		sync.Mutex
		tps   map[cluster.TP]struct{}
		ready chan struct{} // one token: tps is not empty
	}

	mu struct {
		sync.Mutex
		fetchers map[int32]*fetcher // by leader
		closed   bool
	}
	reconcileMu sync.Mutex
	wg          sync.WaitGroup
	ctx         context.Context
	cancel      context.CancelFunc
}

// New returns a Manager; Start runs it.
func New(o Options) *Manager {
	if o.MaxLag <= 0 {
		o.MaxLag = DefaultMaxLag
	}
	if o.FetchMaxWait <= 0 {
		o.FetchMaxWait = 500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m := &Manager{o: o, log: o.Logger, isrCheck: make(chan struct{}, 1), logEvents: make(chan logEvent, 4096)}
	m.mu.fetchers = map[int32]*fetcher{}
	m.boundaries.tps = map[cluster.TP]struct{}{}
	m.boundaries.ready = make(chan struct{}, 1)
	o.Node.FSM().OnLogBoundaries(m.boundariesChanged)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	o.Parts.SetHooks(partition.Hooks{
		Rolled: func(p *partition.Partition, base int64) {
			m.queueLogEvent(logEvent{cmd: cluster.CmdSegmentRolled, payload: cluster.SegmentRolled{TP: tpOf(p), Base: base}})
		},
		LogStartChanged: func(p *partition.Partition, start int64) {
			m.queueLogEvent(logEvent{cmd: cluster.CmdSegmentsDeleted, payload: cluster.SegmentsDeleted{TP: tpOf(p), LogStart: start}})
		},
	})
	return m
}

func tpOf(p *partition.Partition) cluster.TP { return cluster.TP{Topic: p.Topic, Partition: p.Index} }

// logEvent is a leader's segment roll or log start move, on its way to
// the metadata.
type logEvent struct {
	cmd     cluster.CommandType
	payload any
}

func (m *Manager) queueLogEvent(e logEvent) {
	select {
	case m.logEvents <- e:
	default:
		m.log.Warn("dropping a segment event: the queue to the metadata is full", "event", e.payload)
	}
}

// proposeLogEvents records leaders' segment events in the metadata, one
// at a time and in order.
func (m *Manager) proposeLogEvents() {
	for {
		select {
		case <-m.ctx.Done():
			return
		case e := <-m.logEvents:
			ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
			if _, err := m.o.Node.Propose(ctx, e.cmd, e.payload); err != nil {
				m.log.Warn("recording a segment event in the metadata failed", "event", e.payload, "err", err)
			}
			cancel()
		}
	}
}

// boundariesChanged is the state machine telling of a partition whose
// segment boundaries or log start moved. It runs under the state
// machine's lock: it only notes the partition.
func (m *Manager) boundariesChanged(tp cluster.TP) {
	m.boundaries.Lock()
	m.boundaries.tps[tp] = struct{}{}
	m.boundaries.Unlock()
	select {
	case m.boundaries.ready <- struct{}{}:
	default:
	}
}

// followBoundaries gives each local replica whose segment boundaries or
// log start changed in the metadata the new ones, without a whole
// reconciliation: a roll anywhere costs each broker one partition's work.
func (m *Manager) followBoundaries() {
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.boundaries.ready:
		}
		m.boundaries.Lock()
		tps := m.boundaries.tps
		m.boundaries.tps = map[cluster.TP]struct{}{}
		m.boundaries.Unlock()
		m.reconcileMu.Lock()
		for tp := range tps {
			p, err := m.o.Parts.Get(tp.Topic, tp.Partition)
			if err != nil {
				continue // not hosted here
			}
			var segments []int64
			var logStart int64
			found := false
			m.o.Node.FSM().Read(func(s *cluster.State) {
				if parts := s.Partitions[tp.Topic]; tp.Partition >= 0 && int(tp.Partition) < len(parts) {
					info := parts[tp.Partition]
					segments, logStart, found = slices.Clone(info.Segments), info.LogStart, true
				}
			})
			if !found {
				continue
			}
			if err := p.FollowLeaderLog(segments, logStart); err != nil {
				m.log.Warn("following the leader's log start", "partition", partition.Name(p.Topic, p.Index), "err", err)
			}
		}
		m.reconcileMu.Unlock()
	}
}

// assigned is one replica this broker should hold, as the metadata says.
type assigned struct {
	topic cluster.Topic
	index int32
	info  cluster.PartitionInfo
}

func (m *Manager) assignments() (out []assigned, brokers map[int32]cluster.BrokerInfo) {
	brokers = map[int32]cluster.BrokerInfo{}
	m.o.Node.FSM().Read(func(s *cluster.State) {
		for id, b := range s.Brokers {
			brokers[id] = *b
		}
		for name, parts := range s.Partitions {
			t := s.Topics[name]
			for i, p := range parts {
				if !slices.Contains(p.Replicas, m.o.NodeID) {
					continue
				}
				info := *p
				info.Replicas, info.ISR, info.Segments = slices.Clone(p.Replicas), slices.Clone(p.ISR), slices.Clone(p.Segments)
				info.AddingReplicas, info.RemovingReplicas = slices.Clone(p.AddingReplicas), slices.Clone(p.RemovingReplicas)
				out = append(out, assigned{topic: t, index: int32(i), info: info})
			}
		}
	})
	return out, brokers
}

// Reconcile brings the local replicas in line with the metadata once:
// opens new ones, sets every role, moves followers to their leaders'
// fetchers, and removes replicas no longer assigned here.
func (m *Manager) Reconcile() error {
	m.reconcileMu.Lock()
	defer m.reconcileMu.Unlock()
	want, brokers := m.assignments()
	keep := map[*partition.Partition]bool{}
	var errs []error
	byLeader := map[int32][]follow{}
	for _, a := range want {
		r := partition.Role{Leader: a.info.Leader == m.o.NodeID, LeaderID: a.info.Leader, Epoch: a.info.LeaderEpoch,
			ISR: a.info.ISR, PartitionEpoch: a.info.PartitionEpoch, Replicas: a.info.Replicas, Adding: a.info.AddingReplicas, Removing: a.info.RemovingReplicas}
		p, err := m.o.Parts.Open(a.topic, a.index, r)
		if err != nil {
			errs = append(errs, err)
			m.log.Error("opening a replica failed", "partition", partition.Name(a.topic.Name, a.index), "err", err)
			continue
		}
		keep[p] = true
		prev := p.Role()
		if err := p.SetRole(r); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := p.FollowLeaderLog(a.info.Segments, a.info.LogStart); err != nil {
			m.log.Warn("following the leader's log start", "partition", partition.Name(p.Topic, p.Index), "err", err)
		}
		if prev.Leader != r.Leader || prev.Epoch != r.Epoch {
			m.log.Info("replica role", "partition", partition.Name(p.Topic, p.Index), "leader", r.LeaderID,
				"leader_epoch", r.Epoch, "isr", r.ISR, "this_broker_leads", r.Leader)
		}
		if !r.Leader && r.LeaderID >= 0 {
			if b, ok := brokers[r.LeaderID]; ok {
				byLeader[r.LeaderID] = append(byLeader[r.LeaderID], follow{p: p, epoch: r.Epoch, addr: b.Addr})
			}
		}
	}
	for _, p := range m.o.Parts.Partitions() {
		if !keep[p] {
			m.log.Info("removing a replica no longer assigned to this broker", "partition", partition.Name(p.Topic, p.Index))
			if err := m.o.Parts.Remove(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	m.setFetchers(byLeader)
	if m.o.Reconciled != nil {
		m.o.Reconciled()
	}
	return errors.Join(errs...)
}

// Start reconciles at every change of the metadata's topology and checks
// the ISRs of led partitions, until Close.
func (m *Manager) Start() {
	m.wg.Add(4)
	go func() {
		defer m.wg.Done()
		m.proposeLogEvents()
	}()
	go func() {
		defer m.wg.Done()
		m.followBoundaries()
	}()
	go func() {
		defer m.wg.Done()
		for {
			ch := m.o.Node.FSM().TopologyChanged()
			if err := m.Reconcile(); err != nil {
				m.log.Warn("reconciling replicas", "err", err)
			}
			select {
			case <-m.ctx.Done():
				return
			case <-ch:
			}
		}
	}()
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(min(m.o.MaxLag/4, time.Second))
		defer t.Stop()
		for {
			select {
			case <-m.ctx.Done():
				return
			case <-t.C:
			case <-m.isrCheck:
			}
			m.checkISRs()
		}
	}()
}

// FollowerFetched is the server's report of a follower's fetch from a
// partition this broker leads.
func (m *Manager) FollowerFetched(p *partition.Partition, id int32, offset int64, epoch int32) error {
	if err := p.FollowerFetched(id, offset, epoch); err != nil {
		return err
	}
	if !p.InSync(id) {
		select {
		case m.isrCheck <- struct{}{}:
		default:
		}
	}
	return nil
}

// checkISRs proposes the ISR changes the led partitions want.
func (m *Manager) checkISRs() {
	for _, p := range m.o.Parts.Partitions() {
		isr, r, ok := p.ISRChange(m.o.MaxLag)
		if !ok {
			continue
		}
		p.BeginISRChange(isr)
		ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
		_, err := m.o.Node.Propose(ctx, cluster.CmdChangeISR, cluster.ChangeISR{
			TP: cluster.TP{Topic: p.Topic, Partition: p.Index}, Leader: m.o.NodeID, LeaderEpoch: r.Epoch,
			PartitionEpoch: r.PartitionEpoch, ISR: isr})
		cancel()
		p.EndISRChange(r, isr, err == nil)
		name := partition.Name(p.Topic, p.Index)
		switch {
		case err != nil:
			m.log.Warn("ISR change refused", "partition", name, "isr", isr, "err", err)
		case len(isr) < len(r.ISR):
			m.log.Warn("ISR shrank", "partition", name, "from", r.ISR, "to", isr, "max_lag", m.o.MaxLag)
		default:
			m.log.Info("ISR expanded", "partition", name, "from", r.ISR, "to", isr)
		}
	}
}

// Close stops the fetchers and the watch.
func (m *Manager) Close() {
	m.cancel()
	m.mu.Lock()
	m.mu.closed = true
	fs := m.mu.fetchers
	m.mu.fetchers = map[int32]*fetcher{}
	m.mu.Unlock()
	for _, f := range fs {
		f.stop()
	}
	m.wg.Wait()
}
