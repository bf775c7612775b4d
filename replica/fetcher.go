package replica

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/throttle"
	"github.com/runnel-io/runnel/partition"
	"github.com/runnel-io/runnel/segment"
)

// follow is one replica following a leader at an epoch.
type follow struct {
	p     *partition.Partition
	epoch int32
	addr  string
}

// followed is a fetcher's state of one replica.
type followed struct {
	follow
	truncated bool      // the log was cut where it diverges, for this epoch
	until     time.Time // backing off after an error
}

// fetcher copies batches from one leader to the replicas following it,
// with Fetch requests naming this broker as the replica, like Kafka's
// replica fetcher. Before fetching at a new leader epoch, a replica asks
// the leader where its log and the leader's diverge (OffsetForLeaderEpoch)
// and truncates there.
type fetcher struct {
	m      *Manager
	leader int32
	addr   string

	mu    sync.Mutex
	parts map[*partition.Partition]*followed
	wake  chan struct{}

	// session is the fetch session with the leader; only run uses it.
	session fetchSession

	cancel context.CancelFunc
	done   chan struct{}
}

// setFetchers gives each leader's fetcher its replicas, starting and
// stopping fetchers as needed.
func (m *Manager) setFetchers(byLeader map[int32][]follow) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return
	}
	for id, f := range m.mu.fetchers {
		fs, ok := byLeader[id]
		if !ok || fs[0].addr != f.addr {
			f.stop()
			delete(m.mu.fetchers, id)
		}
	}
	for id, fs := range byLeader {
		f := m.mu.fetchers[id]
		if f == nil {
			f = m.startFetcher(id, fs[0].addr)
			m.mu.fetchers[id] = f
		}
		f.set(fs)
	}
}

func (m *Manager) startFetcher(leader int32, addr string) *fetcher {
	ctx, cancel := context.WithCancel(m.ctx)
	f := &fetcher{m: m, leader: leader, addr: addr, parts: map[*partition.Partition]*followed{},
		wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go f.run(ctx)
	return f
}

func (f *fetcher) stop() {
	f.cancel()
	<-f.done
}

func (f *fetcher) set(fs []follow) {
	f.mu.Lock()
	next := map[*partition.Partition]*followed{}
	for _, fl := range fs {
		st := f.parts[fl.p]
		if st == nil || st.epoch != fl.epoch {
			st = &followed{follow: fl}
		}
		next[fl.p] = st
	}
	f.parts = next
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fetcher) snapshot() []*followed {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	out := make([]*followed, 0, len(f.parts))
	for _, st := range f.parts {
		if now.After(st.until) {
			out = append(out, st)
		}
	}
	return out
}

func (f *fetcher) run(ctx context.Context) {
	defer close(f.done)
	log := f.m.log.With("leader", f.leader, "leader_addr", f.addr)
	var c *conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		parts := f.snapshot()
		if len(parts) == 0 {
			select {
			case <-ctx.Done():
			case <-f.wake:
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if c == nil {
			var err error
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err = dial(dctx, f.m.o.Dial, f.addr, "runnel-replica-"+strconv.Itoa(int(f.m.o.NodeID)))
			cancel()
			if err != nil {
				log.Debug("connecting to the leader failed", "err", err)
				sleep(ctx, backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
		}
		err := f.round(ctx, c, parts)
		if err != nil {
			if ctx.Err() == nil {
				log.Debug("replica fetch failed", "err", err)
			}
			c.Close()
			c = nil
			sleep(ctx, backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// errorBackoff is how long a replica waits after the leader refused it
// (it is not the leader yet, or no longer): the metadata will say more.
const errorBackoff = 200 * time.Millisecond

// round truncates the replicas that need it, then fetches once.
func (f *fetcher) round(ctx context.Context, c *conn, parts []*followed) error {
	var need []*followed
	for _, st := range parts {
		if !st.truncated {
			need = append(need, st)
		}
	}
	if len(need) > 0 {
		if err := f.truncate(ctx, c, need); err != nil {
			return err
		}
	}
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID = f.m.o.NodeID
	req.MaxWaitMillis = int32(f.m.o.FetchMaxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = 16 << 20
	req.IsolationLevel = 0
	byName := map[cluster.TP]*followed{}
	var want []wantPartition
	thr := f.m.o.Throttle
	if thr != nil && thr.Limit() == throttle.Unlimited {
		thr = nil // no rate: nothing to hold back or count
	}
	held := thr != nil && thr.Exceeded()
	skipped := false
	throttled := map[cluster.TP]bool{}
	for _, st := range parts {
		if !st.truncated {
			continue
		}
		if thr != nil && st.p.FollowerThrottled() {
			if held {
				skipped = true // over the follower replication rate: not this round
				continue
			}
			throttled[tpOf(st.p)] = true
		}
		want = append(want, wantPartition{p: st.p, sentPartition: sentPartition{
			offset: st.p.LogEndOffset(), logStart: st.p.LogStartOffset(), epoch: st.epoch}})
		byName[tpOf(st.p)] = st
	}
	if len(want) == 0 {
		if skipped {
			sleep(ctx, min(max(thr.Wait(), 10*time.Millisecond), f.m.o.FetchMaxWait))
		} else {
			sleep(ctx, errorBackoff)
		}
		return nil
	}
	next := f.session.fill(req, want, 4<<20)
	kresp, err := c.do(ctx, req, f.m.o.FetchMaxWait+10*time.Second)
	if err != nil {
		f.session.reset()
		return err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if sessionError(resp.ErrorCode) {
		f.m.log.Debug("the leader lost this replica's fetch session; opening another", "err", kerr.ErrorForCode(resp.ErrorCode))
		f.session.reset()
		return nil
	}
	if resp.ErrorCode != 0 {
		f.session.reset()
		return fmt.Errorf("replica: fetch refused: %w", kerr.ErrorForCode(resp.ErrorCode))
	}
	f.session.done(resp, next)
	var appended []*followed
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			st := byName[cluster.TP{Topic: rt.Topic, Partition: rp.Partition}]
			if st == nil {
				continue
			}
			if rp.ErrorCode == kerr.OffsetOutOfRange.Code && rp.LogStartOffset > st.p.LogEndOffset() {
				// The leader dropped what follows this replica's end:
				// start again at the leader's log start.
				f.m.log.Warn("leader no longer holds this replica's next offset; resetting the replica to its log start",
					"partition", partition.Name(st.p.Topic, st.p.Index), "log_end_offset", st.p.LogEndOffset(),
					"leader_log_start", rp.LogStartOffset)
				if err := st.p.ResetTo(rp.LogStartOffset); err != nil {
					f.m.log.Error("resetting the replica failed", "partition", partition.Name(st.p.Topic, st.p.Index), "err", err)
					f.backoff(st)
				}
				continue
			}
			if rp.ErrorCode == kerr.OffsetOutOfRange.Code {
				st.truncated = false // past the leader's end: find the divergence again
			}
			if rp.ErrorCode != 0 {
				f.refused(st, rp.ErrorCode)
				continue
			}
			if throttled[cluster.TP{Topic: rt.Topic, Partition: rp.Partition}] {
				thr.Record(int64(len(rp.RecordBatches)))
			}
			if len(rp.RecordBatches) > 0 {
				if _, err := st.p.AppendReplica(rp.RecordBatches); err != nil {
					if errors.Is(err, segment.ErrClosed) {
						// Removed (a reassignment moved it away, its topic
						// was deleted) or closing while this fetch ran.
						f.m.log.Debug("replica closed during a fetch", "partition", partition.Name(st.p.Topic, st.p.Index))
						continue
					}
					f.m.log.Error("appending replicated batches failed", "partition", partition.Name(st.p.Topic, st.p.Index), "err", err)
					if errors.Is(err, partition.ErrReplicaGap) || errors.Is(err, segment.ErrCorrupt) || errors.Is(err, segment.ErrCRC) {
						st.truncated = false // ask the leader again where to continue
					}
					f.backoff(st)
					continue
				}
				appended = append(appended, st)
			}
			st.p.SetFollowerHW(rp.HighWatermark)
		}
	}
	// The next fetch reports these offsets to the leader as held: make
	// them durable first, as the policy says (every flush started before
	// waiting on the first).
	for _, st := range appended {
		st.p.RequestSync()
	}
	for _, st := range appended {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := st.p.WaitDurable(dctx, st.p.LogEndOffset())
		cancel()
		if err != nil {
			return fmt.Errorf("replica: %s: %w", partition.Name(st.p.Topic, st.p.Index), err)
		}
	}
	return nil
}

func (f *fetcher) backoff(st *followed) {
	f.mu.Lock()
	st.until = time.Now().Add(errorBackoff)
	f.mu.Unlock()
}

func (f *fetcher) refused(st *followed, code int16) {
	err := kerr.ErrorForCode(code)
	name := partition.Name(st.p.Topic, st.p.Index)
	switch err {
	case kerr.OffsetOutOfRange:
		f.m.log.Warn("leader has no offset this replica needs; will retry", "partition", name,
			"log_end_offset", st.p.LogEndOffset())
	case kerr.NotLeaderForPartition, kerr.FencedLeaderEpoch, kerr.UnknownLeaderEpoch, kerr.UnknownTopicOrPartition:
		f.m.log.Debug("leader refused the replica's fetch", "partition", name, "err", err)
	default:
		f.m.log.Warn("leader refused the replica's fetch", "partition", name, "err", err)
	}
	f.backoff(st)
}

// truncate asks the leader where each replica's newest epoch ended and
// cuts the replica's log there.
func (f *fetcher) truncate(ctx context.Context, c *conn, need []*followed) error {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.SetVersion(3)
	req.ReplicaID = f.m.o.NodeID
	byName := map[cluster.TP]*followed{}
	for _, st := range need {
		latest := st.p.LatestEpoch()
		if latest < 0 {
			st.truncated = true // nothing written: nothing can diverge
			continue
		}
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = st.p.Topic
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition = st.p.Index
		rp.CurrentLeaderEpoch = st.epoch
		rp.LeaderEpoch = latest
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		byName[tpOf(st.p)] = st
	}
	if len(req.Topics) == 0 {
		return nil
	}
	kresp, err := c.do(ctx, req, 10*time.Second)
	if err != nil {
		return err
	}
	for _, rt := range kresp.(*kmsg.OffsetForLeaderEpochResponse).Topics {
		for _, rp := range rt.Partitions {
			st := byName[cluster.TP{Topic: rt.Topic, Partition: rp.Partition}]
			if st == nil {
				continue
			}
			if rp.ErrorCode != 0 {
				f.refused(st, rp.ErrorCode)
				continue
			}
			p := st.p
			leo := p.LogEndOffset()
			to := leo
			switch {
			case rp.LeaderEpoch < 0 || rp.EndOffset < 0:
				// The leader's history starts after ours: keep only what
				// was known committed.
				to = min(leo, p.HighWatermark())
			default:
				_, localEnd := p.EndOffsetForEpoch(rp.LeaderEpoch)
				to = min(leo, rp.EndOffset, localEnd)
			}
			if to < leo {
				f.m.log.Info("truncating replica to the leader's log", "partition", partition.Name(p.Topic, p.Index),
					"from", leo, "to", to, "leader_epoch", st.epoch)
				if err := p.TruncateTo(to); err != nil {
					f.m.log.Error("truncating replica failed", "partition", partition.Name(p.Topic, p.Index), "err", err)
					f.backoff(st)
					continue
				}
			}
			st.truncated = true
		}
	}
	return nil
}
