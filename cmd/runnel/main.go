// Command runnel is the runnel broker and its client tools.
//
//	runnel serve [flags]     run a broker
//	runnel topic ...         create, list, describe and delete topics
//	runnel group ...         list, describe and delete groups; reset offsets
//	runnel cluster ...       show the controller, the brokers and the Raft quorum; broker configs; leader elections, log directories; move replicas
//	runnel produce TOPIC     produce lines of stdin as records
//	runnel consume TOPIC     print records
//	runnel user ...          create, delete and list SCRAM users
//	runnel bench ...         measure produce and consume throughput
//
// Run `runnel COMMAND --help` for the flags of each. The broker is package
// broker; serve here only turns flags, RUNNEL_* variables and the config
// file into its Config. The client and bench commands are packages
// internal/cli and internal/cli/bench.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/runnel-io/runnel/internal/cli"
	"github.com/runnel-io/runnel/internal/cli/bench"
)

// command is one subcommand of runnel: its name, how the usage shows it,
// and what runs it with the arguments after the name.
type command struct {
	name     string
	synopsis string
	summary  string
	run      func(args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// commands are runnel's subcommands, in the order the usage lists them.
var commands = []command{
	{"serve", "serve [flags]", "run a broker (see: runnel serve --help)",
		func(args []string, _ io.Reader, _, stderr io.Writer) error { return serve(args, stderr) }},
	{"topic", "topic ...", "create, list, describe and delete topics", noStdin(cli.Topic)},
	{"group", "group ...", "list, describe and delete groups; reset offsets", noStdin(cli.Group)},
	{"txn", "txn ...", "list and describe transactions; abort a hanging one", noStdin(cli.Txn)},
	{"cluster", "cluster ...", "show the controller, the brokers and the Raft quorum; broker configs; elect leaders; log directories; move replicas, drain and remove brokers", noStdin(cli.Cluster)},
	{"produce", "produce TOPIC", "produce lines of stdin as records", cli.Produce},
	{"consume", "consume TOPIC", "print records", noStdin(cli.Consume)},
	{"user", "user ...", "create, delete and list SCRAM users", cli.User},
	{"acl", "acl ...", "create, list and delete ACLs", cli.ACL},
	{"quota", "quota ...", "alter and describe client quotas", noStdin(cli.Quota)},
	{"bench", "bench ...", "measure produce and consume throughput", noStdin(bench.Run)},
}

func noStdin(f func(args []string, stdout, stderr io.Writer) error) func([]string, io.Reader, io.Writer, io.Writer) error {
	return func(args []string, _ io.Reader, stdout, stderr io.Writer) error { return f(args, stdout, stderr) }
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == args[0] {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "runnel: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	err := cmd.run(args[1:], stdin, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "runnel: %v\n", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, "runnel — a Kafka-compatible log broker\n\nUsage:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  runnel %-17s%s\n", c.synopsis, c.summary)
	}
	fmt.Fprint(w, `
Client commands take --brokers (env RUNNEL_BROKERS, default 127.0.0.1:9092);
run runnel COMMAND --help for the rest.
`)
}
