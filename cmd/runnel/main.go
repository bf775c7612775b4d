// Command runnel is the runnel broker and its client tools.
//
//	runnel serve [flags]     run a broker
//	runnel topic ...         create, list, describe and delete topics
//	runnel group ...         list, describe and delete groups; reset offsets
//	runnel cluster status    show the controller, the brokers and the Raft quorum
//	runnel produce TOPIC     produce lines of stdin as records
//	runnel consume TOPIC     print records
//	runnel bench ...         measure produce and consume throughput
//
// Run `runnel COMMAND --help` for the flags of each.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stderr)
	case "topic":
		err = topicCmd(args[1:], stdout, stderr)
	case "group":
		err = groupCmd(args[1:], stdout, stderr)
	case "cluster":
		err = clusterCmd(args[1:], stdout, stderr)
	case "produce":
		err = produceCmd(args[1:], os.Stdin, stdout, stderr)
	case "consume":
		err = consumeCmd(args[1:], stdout, stderr)
	case "bench":
		err = benchCmd(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "runnel: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
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
	fmt.Fprint(w, `runnel — a Kafka-compatible log broker

Usage:
  runnel serve [flags]    run a broker (see: runnel serve --help)
  runnel topic ...        create, list, describe and delete topics
  runnel group ...        list, describe and delete groups; reset offsets
  runnel cluster status   show the controller, the brokers and the Raft quorum
  runnel produce TOPIC    produce lines of stdin as records
  runnel consume TOPIC    print records
  runnel bench ...        measure produce and consume throughput

Client commands take --brokers (env RUNNEL_BROKERS, default 127.0.0.1:9092);
run runnel COMMAND --help for the rest.
`)
}
