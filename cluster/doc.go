// Package cluster holds the cluster's metadata and replicates it with Raft
// (github.com/hashicorp/raft): brokers, topics with their ids, configs and
// partitions (replicas, leader, leader epoch, ISR, segment boundaries),
// producer-id blocks, SCRAM credentials, ACL bindings and client quotas.
// Committed group offsets live in the __consumer_offsets topic; those an
// older runnel kept here are read once, to be moved there
// (Meta.LegacyOffsets).
//
// Every change is a command in the Raft log, applied by every broker's FSM
// in the same order, and at most once (fsm.go). The commands and the
// snapshots are persisted in versioned formats of this package's own
// (format.go, docs/format.md); those written before they were versioned
// are still read. RaftStore keeps the log and Raft's stable state in
// Pebble. Node is this broker's member of the quorum: it proposes commands
// through the leader, forwarding from followers. Meta is the Store the
// broker reads and changes metadata through. A single broker is a quorum of one voter, with
// no network listener: the same code.
package cluster
