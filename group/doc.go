// Package group is the consumer group coordinator of Kafka's classic group
// protocol: members join, one of them (the leader) computes an assignment,
// the coordinator hands each member its part, and members heartbeat to keep
// their place. Committed offsets are kept per group and made durable through
// an OffsetStore.
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
// Membership lives in memory: after a coordinator restart members rejoin
// (their heartbeats get UNKNOWN_MEMBER_ID), while committed offsets are read
// back from the OffsetStore.
//
// Concurrency: a Coordinator is safe for concurrent use. One mutex guards
// every group. Under it, OffsetStore.Commit only queues a write (see its
// contract); deletions of offsets (DeleteGroups, DeleteOffsets, expiry,
// topic deletion) are rare and wait for the store under it.
package group
