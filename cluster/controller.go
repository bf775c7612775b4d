package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"
)

// The controller is the Raft leader's duty of watching broker liveness.
// Every broker sends the leader a heartbeat each HeartbeatInterval over a
// connection kept for them; they are kept in the leader's memory only,
// since Raft need not agree on each one. A broker silent for
// SessionTimeout is fenced with a command in the log, and the state
// machine moves its leaderships in the same command (State.brokerDown).
// A fenced broker that heartbeats again is unfenced.
//
// Two signs of a dead broker come sooner than a session's silence, and
// each gives it only lostGrace heartbeat intervals to heartbeat again:
// its heartbeat connection closing (its process died; the kernel closed
// the socket), and, to a controller just elected, the Raft leader before
// it (the quorum lost touch with it). A silent host or a cut link shows
// neither, and waits out the session.

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

// lostGrace is how many heartbeat intervals a broker suspected dead has
// to heartbeat again before it is fenced.
const lostGrace = 2

// liveness is the controller's memory of heartbeats.
type liveness struct {
	mu         sync.Mutex
	last       map[int32]time.Time // each broker's last heartbeat
	lost       map[int32]time.Time // brokers suspected dead, since when
	epochs     map[int32]int64     // each broker's registration seen
	leading    bool
	prevLeader int32 // the Raft leader this node last followed; 0: none
}

func (l *liveness) init() {
	if l.last == nil {
		l.last, l.lost, l.epochs = map[int32]time.Time{}, map[int32]time.Time{}, map[int32]int64{}
	}
}

func (l *liveness) beat(id int32, now time.Time) {
	l.mu.Lock()
	l.init()
	l.last[id] = now
	delete(l.lost, id)
	l.mu.Unlock()
}

// connLost records that broker id's heartbeat connection closed.
func (l *liveness) connLost(id int32, now time.Time) {
	l.mu.Lock()
	l.init()
	l.lost[id] = now
	l.mu.Unlock()
}

// following records the Raft leader while this node is not it.
func (l *liveness) following(leader int32) {
	l.mu.Lock()
	l.leading = false
	if leader > 0 {
		l.prevLeader = leader
	}
	l.mu.Unlock()
}

// check is one round of the controller's watch over brokers, the cluster's
// registered brokers, at now: the brokers to fence and to unfence, each
// with why.
func (l *liveness) check(self int32, brokers []BrokerInfo, o ControllerOptions, now time.Time) (fence map[int32]string, unfence []int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	if !l.leading {
		// A new controller has seen no heartbeats yet: every broker that
		// is up gets a whole session to send one, but the leader it
		// took over from only the grace. Fenced brokers must heartbeat
		// to come back.
		l.leading = true
		clear(l.lost)
		for _, b := range brokers {
			if !b.Fenced {
				l.last[b.ID] = now
			} else {
				delete(l.last, b.ID)
			}
		}
		if l.prevLeader > 0 && l.prevLeader != self {
			l.lost[l.prevLeader] = now
		}
	}
	l.last[self] = now
	delete(l.lost, self)
	grace := min(lostGrace*o.HeartbeatInterval, o.SessionTimeout)
	fence = map[int32]string{}
	for _, b := range brokers {
		if e, seen := l.epochs[b.ID]; seen && e != b.Epoch {
			// Registered again (a restart): alive as of now, whatever
			// its last heartbeat before.
			l.last[b.ID] = now
			delete(l.lost, b.ID)
		}
		l.epochs[b.ID] = b.Epoch
		t, ok := l.last[b.ID]
		if !ok && !b.Fenced {
			l.last[b.ID], t, ok = now, now, true // registered since
		}
		lostAt, lost := l.lost[b.ID]
		switch {
		case !b.Fenced && (!ok || now.Sub(t) >= o.SessionTimeout):
			fence[b.ID] = "no heartbeat within the session timeout"
		case !b.Fenced && lost && now.Sub(lostAt) >= grace:
			fence[b.ID] = "no heartbeat since its heartbeat connection closed or it lost the Raft leadership"
		case b.Fenced && ok && now.Sub(t) < o.SessionTimeout && !lost:
			unfence = append(unfence, b.ID)
		}
	}
	return fence, unfence
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
	reply, err := n.beatConn.send(ctx, string(addr), frame)
	if err != nil {
		return err
	}
	if reply.NotLeader {
		return errNoLeader
	}
	return nil
}

// heartbeatConn is a broker's own connection to the controller for its
// heartbeats, kept apart from the pool of forwarding connections so that
// its closing means something to the controller. Its lock guards the
// fields only: no network I/O happens under it, and close ends a round
// trip in flight.
type heartbeatConn struct {
	tls    *PeerTLS // set before the first send
	mu     sync.Mutex
	addr   string
	fc     *forwardConn // the connection, idle or in use
	closed bool
}

var errHeartbeatClosed = errors.New("cluster: heartbeat connection closed")

func (h *heartbeatConn) send(ctx context.Context, addr string, frame []byte) (forwardReply, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return forwardReply{}, errHeartbeatClosed
	}
	if h.fc != nil && h.addr != addr {
		h.fc.c.Close()
		h.fc = nil
	}
	fc := h.fc
	h.mu.Unlock()
	if fc == nil {
		c, err := dialKind(addr, connForward, 5*time.Second, h.tls)
		if err != nil {
			return forwardReply{}, err
		}
		fc = &forwardConn{c: c, r: bufio.NewReader(c)}
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			c.Close()
			return forwardReply{}, errHeartbeatClosed
		}
		h.fc, h.addr = fc, addr
		h.mu.Unlock()
	}
	reply, err := fc.roundTrip(ctx, frame)
	if err != nil {
		h.mu.Lock()
		fc.c.Close()
		if h.fc == fc {
			h.fc = nil
		}
		h.mu.Unlock()
	}
	return reply, err
}

// close closes the connection, ending a heartbeat in flight; heartbeats
// sent after it fail.
func (h *heartbeatConn) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.fc != nil {
		h.fc.c.Close()
		h.fc = nil
	}
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
		if n.IsLeader() {
			n.completeReassignments(ctx)
			n.removeUnregisteredVoters()
		}
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
	if !n.IsLeader() {
		_, id := n.raft.LeaderWithID()
		leader, _ := strconv.Atoi(string(id))
		n.live.following(int32(leader))
		return
	}
	fence, unfence := n.live.check(n.opts.ID, NewMeta(n).Brokers(), o, now)
	for _, id := range slices.Sorted(maps.Keys(fence)) {
		n.log.Warn("fencing broker", "broker", id, "why", fence[id], "session_timeout", o.SessionTimeout)
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
