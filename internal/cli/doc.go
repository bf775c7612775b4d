// Package cli holds runnel's client subcommands: topic, group, txn,
// cluster, produce, consume, user and acl, and the plumbing they share with the bench
// tools in the subpackage bench (the --brokers flag, flag parsing that lets
// flags follow positional arguments, client construction, the few Kafka
// requests several subcommands make).
//
// Everything here is a Kafka client built on franz-go: it speaks the Kafka
// protocol to any Kafka-compatible broker and never reaches into the
// broker's own packages, apart from the constants the broker and these
// tools agree on (server's DescribeQuorum tags). The broker goes the other
// way not at all: broker/ and what it imports must not depend on this
// package or its subpackages, which a test in broker/ checks.
//
// The packages are internal because they are the implementation of the
// runnel binary, not an API: cmd/runnel dispatches to the entry points
// (Topic, Group, Txn, Cluster, Produce, Consume, User, ACL, bench.Run), and their flags and
// output are the interface users see. The bench tools are a package of
// their own because they are most of the code and change for reasons of
// their own (new load shapes, new summaries), while sharing nothing with
// the interactive tools beyond the plumbing here.
package cli
