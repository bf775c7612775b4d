package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// A broker whose node id is not among --voters joins their quorum as a
// non-voting member, an observer (Raft's nonvoter; KRaft's brokers that
// are not controllers): it receives the metadata log and applies it as
// every broker does, forwards its proposals to the leader, and never
// votes, so the quorum's majority stays that of the voters. It asks each
// voter in turn to add it until one that leads does (joinFrame); once its
// own Raft configuration names it, it has joined, and it stays a member
// across restarts until it is unregistered.

// joinFrame marks a forwarded frame that asks the leader to add an
// observer: the byte, the node id (big-endian int32), then its Raft
// address. It is not a CommandType and never reaches the log.
const joinFrame = 0xFE

// joined reports whether this node's Raft configuration names it.
func (n *Node) joined() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	me := raft.ServerID(strconv.Itoa(int(n.opts.ID)))
	return slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == me })
}

// join asks the voters to add this node as an observer at addr, until it
// is a member or the node closes.
func (n *Node) join(addr string) {
	frame := binary.BigEndian.AppendUint32([]byte{joinFrame}, uint32(n.opts.ID))
	frame = append(frame, addr...)
	backoff := 100 * time.Millisecond
	for i := 0; !n.joined(); i++ {
		v := n.opts.Voters[i%len(n.opts.Voters)]
		if leader, _ := n.raft.LeaderWithID(); leader != "" {
			v.Addr = string(leader)
		}
		ctx, cancel := context.WithTimeout(context.Background(), proposeTimeout)
		reply, err := n.forward(ctx, v.Addr, frame)
		cancel()
		switch {
		case err != nil:
			n.log.Debug("asking a voter to add this broker to the quorum failed", "voter", v.Addr, "err", err)
		case reply.NotLeader:
		case reply.ErrMsg != "":
			n.log.Warn("the Raft leader refused to add this broker to the quorum", "leader", v.Addr, "err", reply.ErrMsg)
		default:
			n.log.Info("joined the Raft quorum as an observer", "leader", v.Addr, "raft_addr", addr)
			backoff = 100 * time.Millisecond
		}
		select {
		case <-n.closing:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// addObserver is the leader's answer to a join: node id, at its Raft
// address addr, becomes a non-voting member. A voter's id is refused: a
// voter leaves and comes back only with its own data.
func (n *Node) addObserver(id int32, addr string) forwardReply {
	if id <= 0 || addr == "" {
		return forwardReply{ErrMsg: fmt.Sprintf("cluster: a join of node %d at %q", id, addr)}
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return forwardReply{ErrMsg: err.Error()}
	}
	sid := raft.ServerID(strconv.Itoa(int(id)))
	for _, s := range f.Configuration().Servers {
		if s.ID == sid && s.Suffrage == raft.Voter {
			return forwardReply{ErrMsg: fmt.Sprintf("cluster: node %d is a voter of the quorum, not an observer", id)}
		}
		if s.ID == sid && s.Address == raft.ServerAddress(addr) {
			return forwardReply{} // a member already
		}
	}
	if err := n.raft.AddNonvoter(sid, raft.ServerAddress(addr), 0, proposeTimeout).Error(); err != nil {
		return forwardReply{ErrMsg: err.Error(), NotLeader: err == raft.ErrNotLeader}
	}
	n.log.Info("broker joined the Raft quorum as an observer", "broker", id, "raft_addr", addr)
	return forwardReply{}
}
