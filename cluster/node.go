package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Voter is one member of the Raft quorum.
type Voter struct {
	ID   int32
	Addr string // its --raft-listen host:port
}

// ParseVoters parses "1@host:port,2@host:port,...".
func ParseVoters(s string) ([]Voter, error) {
	var out []Voter
	seen := map[int32]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "@")
		n, err := strconv.ParseInt(id, 10, 32)
		if !ok || err != nil || n <= 0 {
			return nil, fmt.Errorf("cluster: voter %q: want ID@host:port with a positive ID", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("cluster: voter %q: %v", part, err)
		}
		if seen[int32(n)] {
			return nil, fmt.Errorf("cluster: voter id %d given twice", n)
		}
		seen[int32(n)] = true
		out = append(out, Voter{ID: int32(n), Addr: addr})
	}
	if len(out) == 0 {
		return nil, errors.New("cluster: no voters")
	}
	return out, nil
}

// NodeOptions configure a Raft node.
type NodeOptions struct {
	// ID is this broker's node id. If it is not one of Voters, the node
	// joins their quorum as a non-voting member (an observer), which
	// needs Listen (or Listener) for its own Raft address.
	ID int32
	// Dir holds the Raft store and snapshots (DATA/meta).
	Dir string
	// Voters is the quorum. The address of this node's entry is where it
	// listens.
	Voters []Voter
	// HeartbeatTimeout and ElectionTimeout are Raft's; defaults 1 s, or
	// 50 ms for a lone voter, which has no one to disagree with.
	HeartbeatTimeout, ElectionTimeout time.Duration
	// Listen is the address to listen on for Raft; default: this node's
	// voter address.
	Listen string
	// Listener, if set, is where Raft serves, bound by the caller (tests
	// that must know every voter's address before any node starts hold
	// the port this way instead of freeing it and hoping); Listen is then
	// ignored. The node closes it.
	Listener net.Listener
	// TLS, if set, runs Raft and forwarded proposals over TLS
	// (--raft-tls): every voter must then have it.
	TLS *PeerTLS
	// Local runs a lone voter without a network listener (Raft's
	// in-memory transport): a single broker that was not given --voters.
	Local bool
	// Logger: nil means slog.Default().
	Logger *slog.Logger
}

// Node is this broker's member of the Raft quorum that replicates cluster
// metadata.
type Node struct {
	opts  NodeOptions
	log   *slog.Logger
	raft  *raft.Raft
	fsm   *FSM
	store *RaftStore
	mux   *muxListener
	trans raft.Transport

	poolMu sync.Mutex
	pool   map[string][]*forwardConn

	live     liveness      // the controller's heartbeats
	beatConn heartbeatConn // this broker's heartbeats to the controller

	ready   chan struct{} // closed once raft is set: forwarded frames wait for it
	closing chan struct{} // closed when Close starts

	faults struct {
		// dropReplies is how many forwarded proposals to apply and then
		// drop the connection instead of replying (tests).
		dropReplies atomic.Int32
	}

	closeOnce sync.Once
	closeErr  error
}

// StartNode opens the Raft store, joins (or, on first start, bootstraps)
// the quorum and starts listening.
func StartNode(opts NodeOptions) (n *Node, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Local && len(opts.Voters) != 1 {
		return nil, errors.New("cluster: a local node must be the only voter")
	}
	def := time.Second
	if len(opts.Voters) == 1 {
		def = 50 * time.Millisecond
	}
	if opts.HeartbeatTimeout == 0 {
		opts.HeartbeatTimeout = def
	}
	if opts.ElectionTimeout == 0 {
		opts.ElectionTimeout = def
	}
	var self *Voter
	for i := range opts.Voters {
		if opts.Voters[i].ID == opts.ID {
			self = &opts.Voters[i]
		}
	}
	observer := self == nil
	if observer {
		if opts.Local {
			return nil, fmt.Errorf("cluster: node %d is not the local voter", opts.ID)
		}
		addr := opts.Listen
		if opts.Listener != nil {
			addr = opts.Listener.Addr().String()
		}
		if addr == "" {
			return nil, fmt.Errorf("cluster: node %d is not among the voters, so it joins them as an observer: it needs a Raft listen address", opts.ID)
		}
		self = &Voter{ID: opts.ID, Addr: addr}
	}
	n = &Node{opts: opts, log: opts.Logger, fsm: NewFSM(), pool: map[string][]*forwardConn{}, ready: make(chan struct{}),
		closing: make(chan struct{})}
	// Every return below sets n to nil with its error: release what was
	// opened through a copy.
	opened := n
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	if n.store, err = OpenRaftStore(filepath.Join(opts.Dir, "raft"), opts.Logger); err != nil {
		return nil, err
	}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: slogWriter{opts.Logger}})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(opts.Dir, "raft-snapshots"), 3, hlog)
	if err != nil {
		return nil, fmt.Errorf("cluster: snapshot store: %w", err)
	}
	if opts.Local {
		_, n.trans = raft.NewInmemTransport(raft.ServerAddress(self.Addr))
	} else {
		addr := self.Addr
		if opts.Listen != "" {
			addr = opts.Listen
		}
		ln := opts.Listener
		if ln == nil {
			if ln, err = net.Listen("tcp", addr); err != nil {
				return nil, fmt.Errorf("cluster: raft listener: %w", err)
			}
		}
		n.mux = newMuxListener(ln, opts.TLS, n.serveForwards, n.log)
		n.beatConn.tls = opts.TLS
		n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: n.mux, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog})
	}

	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(strconv.Itoa(int(opts.ID)))
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = opts.HeartbeatTimeout, opts.ElectionTimeout
	cfg.LeaderLeaseTimeout = min(opts.HeartbeatTimeout, cfg.LeaderLeaseTimeout)
	cfg.CommitTimeout = min(cfg.CommitTimeout, opts.HeartbeatTimeout)
	cfg.BatchApplyCh = true // applies queue up while the leader syncs the log, and go in one batch
	cfg.Logger = hlog
	var conf raft.Configuration
	for _, v := range opts.Voters {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(strconv.Itoa(int(v.ID))), Address: raft.ServerAddress(v.Addr)})
	}
	existing, err := raft.HasExistingState(n.store, n.store, snaps)
	if err != nil {
		return nil, err
	}
	if !existing && !observer {
		// Every voter bootstraps with the same configuration; Raft then
		// elects one leader among them. An observer starts empty and is
		// added by the leader (join).
		if err := raft.BootstrapCluster(cfg, n.store, n.store, snaps, n.trans, conf); err != nil {
			return nil, fmt.Errorf("cluster: bootstrap: %w", err)
		}
	}
	if n.raft, err = raft.NewRaft(cfg, n.fsm, n.store, n.store, snaps, n.trans); err != nil {
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	close(n.ready)
	if observer {
		go n.join(self.Addr)
	}
	return n, nil
}

// FSM is the node's replicated state.
func (n *Node) FSM() *FSM { return n.fsm }

// Raft exposes the Raft node, for status.
func (n *Node) Raft() *raft.Raft { return n.raft }

// Leader returns the current Raft leader's node id, or -1.
func (n *Node) Leader() int32 {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return -1
	}
	v, err := strconv.Atoi(string(id))
	if err != nil {
		return -1
	}
	return int32(v)
}

// IsLeader reports whether this node leads the quorum (is the controller).
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Close leaves nothing running: Raft, the listener, the store. It is
// idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Node) close() error {
	close(n.closing)
	var errs []error
	if n.raft != nil {
		errs = append(errs, n.raft.Shutdown().Error())
	}
	// The network transport's Close stops its listener but keeps its pool
	// of outgoing connections open, and a peer's handler blocked reading
	// one of them would outlive this node: close them first.
	if nt, ok := n.trans.(*raft.NetworkTransport); ok {
		nt.CloseStreams()
	}
	if c, ok := n.trans.(io.Closer); ok {
		errs = append(errs, c.Close())
	}
	if n.mux != nil {
		n.mux.Close() // already closed with the network transport
	}
	n.poolMu.Lock()
	for _, conns := range n.pool {
		for _, c := range conns {
			c.c.Close()
		}
	}
	n.pool = map[string][]*forwardConn{}
	n.poolMu.Unlock()
	n.beatConn.close()
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}

var errNoLeader = errors.New("cluster: no Raft leader")

// proposeTimeout bounds one attempt to commit a command.
const proposeTimeout = 10 * time.Second

// Propose commits a command through the Raft leader, forwarding it if this
// node is not the leader, and returns once this node's state machine has
// applied it. The result is the command's value (an epoch or a first id)
// or its refusal. It sends the same bytes again until an answer comes: a
// command whose first try was committed after all (a lost reply, a lost
// leadership) applies once, as the state machine deduplicates its
// proposal id or refuses it as a compare-and-set whose state has moved.
func (n *Node) Propose(ctx context.Context, ct CommandType, payload any) (int64, error) {
	var id ProposalID
	if deduplicated(ct) {
		id = newProposalID()
	}
	cmd, err := encodeCommand(ct, id, payload)
	if err != nil {
		return 0, err
	}
	backoff := 20 * time.Millisecond
	for {
		var reply forwardReply
		var err error
		if n.IsLeader() {
			reply = n.applyLocal(cmd)
		} else if addr, _ := n.raft.LeaderWithID(); addr != "" {
			reply, err = n.forward(ctx, string(addr), cmd)
		} else {
			reply.NotLeader = true
		}
		switch {
		case err != nil:
			n.log.Debug("forwarding a proposal failed; retrying", "err", err)
		case reply.NotLeader:
		default:
			if err := n.fsm.WaitApplied(ctx, reply.Index); err != nil {
				return 0, err
			}
			return reply.Value, reply.err()
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("cluster: no Raft leader committed the command: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// deduplicated says whether proposals of a command type carry an id.
// Segment events need none, being idempotent, and are the most numerous:
// they would crowd the others out of the state machine's window.
func deduplicated(ct CommandType) bool {
	return ct != CmdSegmentRolled && ct != CmdSegmentsDeleted
}

// applyLocal commits cmd on this node, the leader.
func (n *Node) applyLocal(cmd []byte) forwardReply {
	f := n.raft.Apply(cmd, proposeTimeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrEnqueueTimeout) {
			return forwardReply{NotLeader: true}
		}
		return forwardReply{Index: f.Index(), ErrMsg: err.Error(), ErrKind: -1}
	}
	r := forwardReply{Index: f.Index()}
	switch v := f.Response().(type) {
	case error:
		r.ErrKind, r.ErrMsg = errorKind(v), v.Error()
	case int64:
		r.Value = v
	case int32:
		r.Value = int64(v)
	}
	return r
}

// forwardReply answers a forwarded proposal.
type forwardReply struct {
	NotLeader bool   `json:"not_leader,omitempty"`
	Index     uint64 `json:"index"`
	Value     int64  `json:"value"`
	ErrKind   int    `json:"err_kind,omitempty"` // 1+ index into forwardedErrors; -1 another error
	ErrMsg    string `json:"err,omitempty"`
}

// forwardedErrors are the refusals a proposer can match with errors.Is
// after the trip through the leader.
var forwardedErrors = []error{
	ErrTopicExists, ErrUnknownTopic, ErrPartitions, ErrUnknownBroker, ErrUnknownPartition, ErrStaleLeaderEpoch,
	ErrBadAssignment, ErrUnknownCommand, ErrMalformedCommand, ErrNotReplica, ErrSegmentOutOfOrder,
	ErrPartitionsChanged, ErrConfigsChanged, ErrNoReassignment, ErrBrokerInUse,
}

// errorKind returns the kind of err; where sentinels wrap others, the
// later (more specific) one.
func errorKind(err error) int {
	for i := len(forwardedErrors) - 1; i >= 0; i-- {
		if errors.Is(err, forwardedErrors[i]) {
			return i + 1
		}
	}
	return -1
}

func (r forwardReply) err() error {
	switch {
	case r.ErrMsg == "":
		return nil
	case r.ErrKind > 0 && r.ErrKind <= len(forwardedErrors):
		return &remoteError{kind: forwardedErrors[r.ErrKind-1], msg: r.ErrMsg}
	}
	return errors.New(r.ErrMsg)
}

// remoteError is a refusal that happened on the leader: its message, and
// the sentinel it matches.
type remoteError struct {
	kind error
	msg  string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

// A forwarded proposal: u32 length + command; the answer: u32 length +
// JSON forwardReply. A connection carries any number of them in turn.
type forwardConn struct {
	c net.Conn
	r *bufio.Reader
}

const maxForwardFrame = 64 << 20

func writeFrame(w io.Writer, b []byte) error {
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err := w.Write(append(frame, b...))
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > maxForwardFrame {
		return nil, fmt.Errorf("cluster: forwarded frame of %d bytes", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

func (n *Node) forward(ctx context.Context, addr string, cmd []byte) (forwardReply, error) {
	var reply forwardReply
	fc, err := n.takeConn(addr)
	if err != nil {
		return reply, err
	}
	reply, err = fc.roundTrip(ctx, cmd)
	if err != nil {
		fc.c.Close()
		return reply, err
	}
	n.putConn(addr, fc)
	return reply, nil
}

// roundTrip sends one frame and reads its reply, within ctx's deadline and
// at most proposeTimeout.
func (fc *forwardConn) roundTrip(ctx context.Context, cmd []byte) (forwardReply, error) {
	var reply forwardReply
	deadline := time.Now().Add(proposeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	fc.c.SetDeadline(deadline)
	if err := writeFrame(fc.c, cmd); err != nil {
		return reply, err
	}
	b, err := readFrame(fc.r)
	if err != nil {
		return reply, err
	}
	fc.c.SetDeadline(time.Time{})
	if err := json.Unmarshal(b, &reply); err != nil {
		return reply, fmt.Errorf("cluster: forwarded reply: %w", err)
	}
	return reply, nil
}

func (n *Node) takeConn(addr string) (*forwardConn, error) {
	n.poolMu.Lock()
	if conns := n.pool[addr]; len(conns) > 0 {
		fc := conns[len(conns)-1]
		n.pool[addr] = conns[:len(conns)-1]
		n.poolMu.Unlock()
		return fc, nil
	}
	n.poolMu.Unlock()
	c, err := dialKind(addr, connForward, 5*time.Second, n.opts.TLS)
	if err != nil {
		return nil, err
	}
	return &forwardConn{c: c, r: bufio.NewReader(c)}, nil
}

func (n *Node) putConn(addr string, fc *forwardConn) {
	n.poolMu.Lock()
	defer n.poolMu.Unlock()
	if len(n.pool[addr]) >= 8 {
		fc.c.Close()
		return
	}
	n.pool[addr] = append(n.pool[addr], fc)
}

// serveForwards answers proposals forwarded to this node.
func (n *Node) serveForwards(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	beats := int32(-1) // the broker whose heartbeats this connection carries
	for {
		cmd, err := readFrame(r)
		if err != nil {
			if beats >= 0 && n.IsLeader() {
				n.log.Info("heartbeat connection closed", "broker", beats, "err", err)
				n.live.connLost(beats, time.Now())
			}
			return
		}
		reply := forwardReply{NotLeader: true}
		select {
		case <-n.ready:
		default:
			// Raft is still starting: not a leader yet.
			b, _ := json.Marshal(reply)
			if err := writeFrame(c, b); err != nil {
				return
			}
			continue
		}
		switch {
		case !n.IsLeader():
		case len(cmd) == 5 && cmd[0] == heartbeatFrame:
			beats = int32(binary.BigEndian.Uint32(cmd[1:]))
			n.live.beat(beats, time.Now())
			reply = forwardReply{}
		case len(cmd) > 5 && cmd[0] == joinFrame:
			reply = n.addObserver(int32(binary.BigEndian.Uint32(cmd[1:5])), string(cmd[5:]))
		default:
			reply = n.applyLocal(cmd)
			if n.faults.dropReplies.Load() > 0 && n.faults.dropReplies.Add(-1) >= 0 {
				return
			}
		}
		b, _ := json.Marshal(reply)
		if err := writeFrame(c, b); err != nil {
			return
		}
	}
}

// slogWriter sends Raft's log lines to slog.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	switch {
	case strings.Contains(line, "[ERROR]"):
		level = slog.LevelError
	case strings.Contains(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.Contains(line, "[DEBUG]"), strings.Contains(line, "[TRACE]"):
		level = slog.LevelDebug
	}
	// Drop hclog's own timestamp and level: slog adds its own.
	if i := strings.Index(line, "]"); i >= 0 && i+1 < len(line) {
		line = strings.TrimSpace(line[i+1:])
	}
	w.l.Log(context.Background(), level, line, "component", "raft")
	return len(p), nil
}

// TransferLeadership hands the Raft leadership (and so the controller and
// the group coordinator) to another voter, for a clean shutdown; it does
// nothing on a follower or a lone voter.
func (n *Node) TransferLeadership() error {
	if !n.IsLeader() || len(n.opts.Voters) < 2 {
		return nil
	}
	return n.raft.LeadershipTransfer().Error()
}

// Barrier returns once every command committed before it is applied on
// this node, which must be the leader.
func (n *Node) Barrier(ctx context.Context) error {
	timeout := proposeTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	return n.raft.Barrier(timeout).Error()
}
