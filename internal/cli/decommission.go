package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func clusterDecommission(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel cluster decommission", "runnel cluster decommission --broker N [--throttle BYTES_PER_SEC] [--wait] [flags]",
		`Drain broker N: move every replica it holds, of every topic, onto the other
live brokers, each partition keeping its replication factor. Each replica
goes to the broker holding the fewest replicas that the partition is not on
yet, and takes the drained one's place in the order (so a partition N was
the preferred leader of prefers its replacement). Refused when a partition
has more replicas than there are other live brokers.

With --wait, it waits until the moves are done and removes the throttles;
without, run it again with --wait (it starts nothing twice) or follow with
runnel cluster reassign --list. Then stop the broker and run
runnel cluster unregister N.`, stderr)
	conn := ConnFlags(fs)
	broker := fs.Int("broker", -1, "the `ID` of the broker to drain")
	throttle := fs.Int64("throttle", noThrottle, "the replication rate in `BYTES_PER_SEC` while replicas are copied; -1: no throttle")
	output := fs.String("output", "", "also write the plan to `FILE` (for runnel cluster reassign --verify or --cancel)")
	w := addWaitFlags(fs, "the broker holds no replica")
	if err := ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *broker < 0 {
		return errors.New("--broker N is needed")
	}
	if *throttle < noThrottle {
		return fmt.Errorf("--throttle %d: want a rate of 0 or more bytes per second", *throttle)
	}
	id := int32(*broker)
	ctx, cl, done, err := waitingClient(conn, w)
	if err != nil {
		return err
	}
	defer done()
	st, err := fetchState(ctx, cl, nil)
	if err != nil {
		return err
	}
	if _, ok := st.brokers[id]; !ok {
		return fmt.Errorf("broker %d: %w", id, kerr.BrokerIDNotRegistered)
	}
	others := slices.DeleteFunc(st.alive(), func(b int32) bool { return b == id })
	moves, err := drainPlan(st.targets(), id, others)
	if err != nil {
		return err
	}
	// Moves off the broker started before (an earlier run without --wait)
	// are waited for too, not started again.
	all := assignment{}
	for k, m := range st.moving {
		if slices.Contains(m.removing, id) {
			all[k] = m.target()
		}
	}
	already := len(all)
	for k, rs := range moves {
		all[k] = rs
	}
	if len(all) == 0 {
		fmt.Fprintf(stdout, "Broker %d holds no replicas. Stop it, then run: runnel cluster unregister %d\n", id, id)
		return nil
	}
	plan := all.plan()
	if *output != "" {
		if err := os.WriteFile(*output, []byte(plan.marshal()+"\n"), 0o644); err != nil {
			return fmt.Errorf("--output: %w", err)
		}
	}
	if len(moves) > 0 {
		fmt.Fprintf(stdout, "Moving %d replicas off broker %d onto brokers %s.\n", len(moves), id, joinInts(others))
		if err := executePlan(ctx, cl, moves.plan(), *throttle, false, stdout); err != nil {
			return err
		}
	}
	if already > 0 {
		fmt.Fprintf(stdout, "%d partitions were already moving off broker %d.\n", already, id)
	}
	if !*w.wait {
		fmt.Fprintf(stdout, "The replicas are being copied. Follow with runnel cluster reassign --list, or run this again with --wait;\n"+
			"once broker %d holds none, stop it and run: runnel cluster unregister %d\n", id, id)
		return nil
	}
	if err := verifyPlan(ctx, cl, plan, w, true, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Broker %d holds no replicas now. Stop it, then run: runnel cluster unregister %d\n", id, id)
	return nil
}

func clusterUnregister(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel cluster unregister", "runnel cluster unregister N [flags]",
		`Remove broker N from the cluster (UnregisterBroker): from the metadata, and
from the Raft quorum, which the controller then shrinks. The broker must be
stopped (fenced) and hold no replicas: drain it first with
runnel cluster decommission --broker N --wait.`, stderr)
	conn := ConnFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, "broker ID"); err != nil {
		return err
	}
	n, err := strconv.ParseInt(pos[0], 10, 32)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a broker id", pos[0])
	}
	id := int32(n)
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	req := kmsg.NewPtrUnregisterBrokerRequest()
	req.BrokerID = id
	resp, err := request[*kmsg.UnregisterBrokerResponse](ctx, cl, req)
	if err != nil {
		return fmt.Errorf("unregister broker %d: %w", id, err)
	}
	msg := ""
	if resp.ErrorMessage != nil {
		msg = *resp.ErrorMessage
	}
	switch err := codeErr(resp.ErrorCode, nil); {
	case err == nil:
		fmt.Fprintf(stdout, "Broker %d unregistered; the controller takes it out of the Raft quorum.\n", id)
		return nil
	case errors.Is(err, kerr.BrokerIDNotRegistered):
		return fmt.Errorf("broker %d is not registered (BROKER_ID_NOT_REGISTERED): see runnel cluster status", id)
	case errors.Is(err, kerr.InvalidRequest):
		return fmt.Errorf("broker %d cannot be unregistered (INVALID_REQUEST): %s\n"+
			"(a broker must be stopped, and shown fenced by runnel cluster status, and hold no replicas: "+
			"runnel cluster decommission --broker %d --wait, then stop it)", id, orDash(msg), id)
	case errors.Is(err, kerr.UnsupportedVersion):
		return fmt.Errorf("unregister broker %d: the brokers do not serve UnregisterBroker", id)
	default:
		return fmt.Errorf("unregister broker %d: %w", id, codeErr(resp.ErrorCode, resp.ErrorMessage))
	}
}
