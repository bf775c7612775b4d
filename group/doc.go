// Package group is the consumer group coordinator of Kafka's classic group
// protocol: members join, one of them (the leader) computes an assignment,
// the coordinator hands each member its part, and members heartbeat to keep
// their place. Committed offsets are kept per group and made durable through
// an OffsetStore. A broker runs one Coordinator per partition of
// __consumer_offsets it leads (package coordinator/groups).
//
// A group moves through these states:
//
//	         join                          all members joined, or the
//	Empty ────────────▶ PreparingRebalance ──rebalance timeout expired──┐
//	  ▲                   ▲       ▲                                    │
//	  │ last member       │       │ member joins, leaves, fails or     ▼
//	  │ leaves            │       └── changes its protocols ──── CompletingRebalance
//	  │                   │                                            │
//	  └───────────── Stable ◀──────── leader's SyncGroup ──────────────┘
//
// Each completed join phase starts a new generation. JoinGroup and SyncGroup
// answers wait for the phase they belong to; Join and Sync return a channel
// that delivers the answer. Heartbeat, LeaveGroup and OffsetCommit answer at
// once.
//
// Membership lives in memory: after a coordinator moves members rejoin
// (their heartbeats get UNKNOWN_MEMBER_ID), while committed offsets are read
// back from the OffsetStore, and a GroupStore's metadata keeps the
// generation numbers going up.
//
// Offsets committed in a transaction (TxnOffsetCommit, through a
// TxnStore) stay pending, invisible to FetchOffsets, until CompleteTxn
// applies their producer's commit or abort marker (txn.go).
//
// Concurrency: a Coordinator is safe for concurrent use. One mutex guards
// its groups. Under it, the store's writes only queue (see OffsetStore);
// every wait for durability runs after it is released.
package group
