// Command kfakepeer runs franz-go's kfake, a Kafka-compatible broker in
// one process, as a peer of runnel in scripts/bench-produce-peer.sh: one
// broker on --addr that keeps its log in --data-dir (without fsync unless
// --sync), until it is sent SIGINT or SIGTERM. The benchmark drives it with
// the same runnel bench produce as runnel, so the two see the same client.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:19392", "address to listen on for Kafka clients")
	dir := flag.String("data-dir", "", "directory kfake keeps its log in (empty: memory only)")
	sync := flag.Bool("sync", false, "fsync every produced batch (kfake.SyncWrites)")
	flag.Parse()
	if err := run(*addr, *dir, *sync); err != nil {
		fmt.Fprintln(os.Stderr, "kfakepeer:", err)
		os.Exit(1)
	}
}

func run(addr, dir string, sync bool) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// kfake listens through ListenFn: hand it the listener opened above, so
	// that it serves the address asked for and a taken port fails here.
	listen := func(string, string) (net.Listener, error) { return ln, nil }
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.ListenFn(listen), kfake.AllowAutoTopicCreation()}
	if dir != "" {
		opts = append(opts, kfake.DataDir(dir))
	}
	if sync {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Fprintln(os.Stderr, "kfakepeer: listening on", c.ListenAddrs()[0])
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	c.Close()
	return nil
}
