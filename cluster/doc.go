// Package cluster holds the broker's metadata: topics, their ids, partition
// counts and configs, and producer-id blocks.
//
// Metadata is reached through the Store interface. LocalStore keeps it in a
// file replaced atomically on every change, for a single broker; the Raft
// state machine of the cluster implements the same interface.
package cluster
