package cluster

import (
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"time"
)

// The controller is the Raft leader's duty of watching broker liveness.
// Every broker sends the leader a heartbeat each HeartbeatInterval; they
// are kept in the leader's memory only, since Raft need not agree on each
// one. A broker silent for SessionTimeout is fenced with a command in the
// log, and the state machine moves its leaderships in the same command
// (State.brokerDown). A fenced broker that heartbeats again is unfenced.

// Liveness defaults, as Kafka's broker.session.timeout.ms and
// broker.heartbeat.interval.ms (runnel's session is shorter: 6 s).
const (
	DefaultSessionTimeout    = 6 * time.Second
	DefaultHeartbeatInterval = time.Second
)

// heartbeatFrame marks a forwarded frame that is a heartbeat, not a
// command: the byte, then the broker id (big-endian int32). It is not a
// CommandType and never reaches the log.
const heartbeatFrame = 0xFF

// liveness is the controller's memory of heartbeats.
type liveness struct {
	mu      sync.Mutex
	last    map[int32]time.Time
	leading bool
}

func (l *liveness) beat(id int32, now time.Time) {
	l.mu.Lock()
	if l.last == nil {
		l.last = map[int32]time.Time{}
	}
	l.last[id] = now
	l.mu.Unlock()
}

// Heartbeat tells the controller this broker is alive.
func (n *Node) Heartbeat(ctx context.Context) error {
	if n.IsLeader() {
		n.live.beat(n.opts.ID, time.Now())
		return nil
	}
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return errNoLeader
	}
	frame := binary.BigEndian.AppendUint32([]byte{heartbeatFrame}, uint32(n.opts.ID))
	reply, err := n.forward(ctx, string(addr), frame)
	if err != nil {
		return err
	}
	if reply.NotLeader {
		return errNoLeader
	}
	return nil
}

// ControllerOptions time broker liveness.
type ControllerOptions struct {
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	// LeaderRebalanceInterval is how often leadership goes back to
	// preferred replicas (the first of each partition's replicas) that
	// are in sync again; 0 turns it off.
	LeaderRebalanceInterval time.Duration
}

// RunController sends this broker's heartbeats and, while this node leads
// the quorum, fences brokers whose heartbeats stop, until ctx ends.
func (n *Node) RunController(ctx context.Context, o ControllerOptions) {
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	go func() {
		t := time.NewTicker(o.HeartbeatInterval)
		defer t.Stop()
		for {
			hctx, cancel := context.WithTimeout(ctx, o.HeartbeatInterval)
			if err := n.Heartbeat(hctx); err != nil && ctx.Err() == nil {
				n.log.Debug("heartbeat to the controller failed", "err", err)
			}
			cancel()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	tick := time.NewTicker(min(o.HeartbeatInterval, 250*time.Millisecond))
	defer tick.Stop()
	lastRebalance := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		n.checkLiveness(ctx, o, now)
		if o.LeaderRebalanceInterval > 0 && now.Sub(lastRebalance) >= o.LeaderRebalanceInterval {
			lastRebalance = now
			if n.IsLeader() {
				n.preferLeaders(ctx)
			}
		}
	}
}

// preferLeaders moves each partition's leadership back to its preferred
// replica where that replica is up and in sync, so leaders spread over
// the brokers again after failures and restarts.
func (n *Node) preferLeaders(ctx context.Context) {
	var moves []ChangeLeader
	n.fsm.Read(func(s *State) {
		for _, name := range s.topicNames() {
			for i, p := range s.Partitions[name] {
				want := p.Replicas[0]
				b := s.Brokers[want]
				if p.Leader == want || b == nil || b.Fenced || !slices.Contains(p.ISR, want) {
					continue
				}
				moves = append(moves, ChangeLeader{TP: TP{name, int32(i)}, PrevEpoch: p.LeaderEpoch, Leader: want, ISR: slices.Clone(p.ISR)})
			}
		}
	})
	for _, c := range moves {
		pctx, cancel := context.WithTimeout(ctx, proposeTimeout)
		_, err := n.Propose(pctx, CmdChangeLeader, c)
		cancel()
		if err != nil {
			n.log.Debug("moving leadership to the preferred replica failed", "partition", c.TP, "err", err)
			continue
		}
		n.log.Info("leadership moved to the preferred replica", "partition", c.TP, "leader", c.Leader)
	}
}

// checkLiveness is one round of the controller's watch.
func (n *Node) checkLiveness(ctx context.Context, o ControllerOptions, now time.Time) {
	l := &n.live
	if !n.IsLeader() {
		l.mu.Lock()
		l.leading = false
		l.mu.Unlock()
		return
	}
	brokers := NewMeta(n).Brokers()
	var fence, unfence []int32
	l.mu.Lock()
	if l.last == nil {
		l.last = map[int32]time.Time{}
	}
	if !l.leading {
		// A new controller has seen no heartbeats yet: every broker that
		// is up gets a whole session to send one. Fenced brokers must
		// heartbeat to come back.
		l.leading = true
		for _, b := range brokers {
			if !b.Fenced {
				l.last[b.ID] = now
			} else {
				delete(l.last, b.ID)
			}
		}
	}
	l.last[n.opts.ID] = now
	for _, b := range brokers {
		t, ok := l.last[b.ID]
		if !ok && !b.Fenced {
			l.last[b.ID], t, ok = now, now, true // registered since
		}
		alive := ok && now.Sub(t) < o.SessionTimeout
		switch {
		case !b.Fenced && !alive:
			fence = append(fence, b.ID)
		case b.Fenced && alive:
			unfence = append(unfence, b.ID)
		}
	}
	l.mu.Unlock()
	for _, id := range fence {
		n.log.Warn("fencing broker: no heartbeat within the session timeout", "broker", id, "session_timeout", o.SessionTimeout)
		n.setFenced(ctx, id, true)
	}
	for _, id := range unfence {
		n.log.Info("unfencing broker: heartbeats resumed", "broker", id)
		n.setFenced(ctx, id, false)
	}
}

func (n *Node) setFenced(ctx context.Context, id int32, fenced bool) {
	ctx, cancel := context.WithTimeout(ctx, proposeTimeout)
	defer cancel()
	if _, err := n.Propose(ctx, CmdSetBrokerFenced, SetBrokerFenced{ID: id, Fenced: fenced}); err != nil {
		n.log.Warn("changing broker fencing failed", "broker", id, "fenced", fenced, "err", err)
	}
}
