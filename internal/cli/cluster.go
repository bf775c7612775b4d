package cli

// runnel cluster: the controller, the brokers and the Raft quorum, asked
// over the Kafka protocol: DescribeCluster for the brokers and the
// controller, then DescribeQuorum of each broker for its own Raft view.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/server"
)

const clusterUsage = `Usage: runnel cluster COMMAND [flags]

Inspect and operate a runnel cluster: its brokers, leaders and replicas.

Commands:
  status         show the controller, and each broker's liveness and Raft state
  config         show or change broker configs, per broker or cluster-wide
  elect-leaders  move leadership back to preferred replicas, or elect unclean leaders
  log-dirs       show each broker's log directory, its space and partition sizes
  reassign       generate, execute, verify, cancel and list partition reassignments
  decommission   move every replica off a broker, before it leaves the cluster
  unregister     remove a stopped, drained broker from the cluster and the Raft quorum

Run runnel cluster COMMAND --help for the flags of each.
`

// Cluster runs runnel cluster: the controller, the brokers and the
// Raft quorum as the brokers see them.
func Cluster(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, clusterUsage)
		return errors.New("cluster: missing command (status, config, elect-leaders, log-dirs, reassign, decommission or unregister)")
	}
	switch args[0] {
	case "status":
		return clusterStatusCmd(args[1:], stdout, stderr)
	case "config":
		return clusterConfig(args[1:], stdout, stderr)
	case "elect-leaders":
		return clusterElectLeaders(args[1:], stdout, stderr)
	case "log-dirs":
		return clusterLogDirs(args[1:], stdout, stderr)
	case "reassign":
		return clusterReassign(args[1:], stdout, stderr)
	case "decommission":
		return clusterDecommission(args[1:], stdout, stderr)
	case "unregister":
		return clusterUnregister(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, clusterUsage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, clusterUsage)
	return fmt.Errorf("cluster: unknown command %q", args[0])
}

// metadataLog is the partition DescribeQuorum asks about: KRaft's metadata
// log, which is runnel's Raft log.
const (
	metadataLogTopic     = "__cluster_metadata"
	metadataLogPartition = 0
)

// quorumTimeout bounds the DescribeQuorum of one broker, so that a broker
// that is down costs this much, not the whole command's time.
const quorumTimeout = 10 * time.Second

// clusterStatus is what `runnel cluster status` prints; --format json
// prints it as is.
type clusterStatus struct {
	ClusterID    string         `json:"cluster_id"`
	ControllerID int32          `json:"controller_id"`
	Brokers      []brokerStatus `json:"brokers"`
}

// brokerStatus is one broker: what the cluster metadata says of it, and
// its own view of the Raft quorum.
type brokerStatus struct {
	ID int32 `json:"id"`
	// Address is the Kafka host:port it advertises; empty for a voter that
	// never registered as a broker.
	Address string `json:"address"`
	// Liveness is "alive", "fenced" (the controller stopped hearing its
	// heartbeats) or "unregistered" (a Raft voter the metadata does not
	// list as a broker).
	Liveness string `json:"liveness"`
	// Rack is its broker.rack (--rack), empty when it has none.
	Rack string `json:"rack,omitempty"`
	// Raft is nil when the broker could not tell; Error says why.
	Raft  *raftView `json:"raft"`
	Error string    `json:"error,omitempty"`

	answered bool // with an error: the broker was reached
}

// errUnreachable: a broker could not be asked.
var errUnreachable = errors.New("unreachable")

// raftView is one broker's DescribeQuorum answer about itself. -1 is
// unknown; State is "" from a broker that does not report it.
type raftView struct {
	State        string `json:"state"`
	LeaderID     int32  `json:"leader_id"`
	Term         int32  `json:"term"`
	LastIndex    int64  `json:"last_index"`
	CommitIndex  int64  `json:"commit_index"`
	AppliedIndex int64  `json:"applied_index"`

	voters []int32 // the voters the broker knows of
}

func clusterStatusCmd(args []string, stdout, stderr io.Writer) error {
	fs := NewFlagSet("runnel cluster status", "runnel cluster status [flags]",
		`Show the cluster id, the controller (the Raft leader) and one row per broker:
its id, address, rack (a column only where brokers have --rack), liveness
("alive", or "fenced" when the controller stopped hearing its heartbeats)
and its own view of the Raft quorum that replicates
the metadata: its Raft state (Leader, Follower, Candidate), the term, the
index of the last entry in its log, the commit index and the applied index.
A broker that cannot be asked is shown as "unreachable" (or "error" if it
answered with one) and the reason is written to stderr; that is a finding,
not a failure of the command.

Brokers are listed with DescribeCluster, then each is sent DescribeQuorum.`, stderr)
	conn := ConnFlags(fs)
	format := fs.String("format", "table", "output `FORMAT`: table, or json (one object, as for scripts)")
	if err := ParseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("--format: want table or json, got %q", *format)
	}
	ctx, cl, done, err := adminClient(conn)
	if err != nil {
		return err
	}
	defer done()
	sec, err := conn.Opts()
	if err != nil {
		return err
	}
	st, err := describeClusterStatus(ctx, cl, sec)
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
	} else if err := st.print(stdout); err != nil {
		return err
	}
	for _, b := range st.Brokers {
		if b.Error != "" {
			fmt.Fprintf(stderr, "runnel: broker %d: %s\n", b.ID, b.Error)
		}
	}
	return nil
}

// describeClusterStatus asks for the brokers and the controller, then asks
// every broker, at once, about its Raft state. sec are the TLS and SASL
// options of a client of its own for a broker cl cannot reach.
func describeClusterStatus(ctx context.Context, cl *kgo.Client, sec []kgo.Opt) (*clusterStatus, error) {
	req := kmsg.NewPtrDescribeClusterRequest()
	req.IncludeFencedBrokers = true
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("describe cluster: %w", err)
	}
	if err := codeErr(resp.ErrorCode, resp.ErrorMessage); err != nil {
		return nil, fmt.Errorf("describe cluster: %w", err)
	}
	st := &clusterStatus{ClusterID: resp.ClusterID, ControllerID: resp.ControllerID}
	for _, b := range resp.Brokers {
		liveness := "alive"
		if b.IsFenced {
			liveness = "fenced"
		}
		bs := brokerStatus{ID: b.NodeID, Address: hostPort(b.Host, b.Port), Liveness: liveness}
		if b.Rack != nil {
			bs.Rack = *b.Rack
		}
		st.Brokers = append(st.Brokers, bs)
	}

	// The client reaches by id the brokers Metadata lists: the live ones.
	// A fenced broker may still be up and answer, on a client of its own.
	known, err := metadataBrokers(ctx, cl)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for i := range st.Brokers {
		b := &st.Brokers[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			bctx, cancel := context.WithTimeout(ctx, quorumTimeout)
			defer cancel()
			var err error
			if known[b.ID] {
				b.Raft, err = describeQuorum(bctx, cl.Broker(int(b.ID)), b.ID)
			} else {
				b.Raft, err = describeQuorumAt(bctx, b.Address, b.ID, sec)
			}
			if err != nil {
				b.Error, b.answered = err.Error(), !errors.Is(err, errUnreachable)
			}
		}()
	}
	wg.Wait()

	// A voter that never registered has no address to ask; it is shown so
	// that a missing member of the quorum is not missed.
	for _, id := range quorumVoters(st) {
		if !slices.ContainsFunc(st.Brokers, func(b brokerStatus) bool { return b.ID == id }) {
			st.Brokers = append(st.Brokers, brokerStatus{ID: id, Liveness: "unregistered",
				Error: "a Raft voter not registered as a broker: no address to ask"})
		}
	}
	slices.SortFunc(st.Brokers, func(a, b brokerStatus) int { return int(a.ID) - int(b.ID) })
	return st, nil
}

// metadataBrokers returns the ids of the brokers Metadata lists, which the
// client then knows by id.
func metadataBrokers(ctx context.Context, cl *kgo.Client) (map[int32]bool, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{} // none: only the brokers
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	known := map[int32]bool{}
	for _, b := range resp.Brokers {
		known[b.NodeID] = true
	}
	return known, nil
}

// quorumVoters returns the voters the brokers' answers list, by id.
func quorumVoters(st *clusterStatus) []int32 {
	var out []int32
	for _, b := range st.Brokers {
		if b.Raft == nil {
			continue
		}
		for _, id := range b.Raft.voters {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

// describeQuorumAt asks the broker at addr through a client of its own.
func describeQuorumAt(ctx context.Context, addr string, id int32, sec []kgo.Opt) (*raftView, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ClientID("runnel-cli")}, sec...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	defer cl.Close()
	seeds := cl.SeedBrokers()
	if len(seeds) == 0 {
		return nil, fmt.Errorf("%w: no seed broker for %q", errUnreachable, addr)
	}
	return describeQuorum(ctx, seeds[0], id)
}

// describeQuorum asks one broker, id, about the metadata log and returns
// what it says of itself.
func describeQuorum(ctx context.Context, b *kgo.Broker, id int32) (*raftView, error) {
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = metadataLogTopic
	rp := kmsg.NewDescribeQuorumRequestTopicPartition()
	rp.Partition = metadataLogPartition
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := b.Request(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	resp := kresp.(*kmsg.DescribeQuorumResponse)
	if err := codeErr(resp.ErrorCode, resp.ErrorMessage); err != nil {
		return nil, fmt.Errorf("describe quorum: %w", err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if t.Topic != metadataLogTopic || p.Partition != metadataLogPartition {
				continue
			}
			if err := codeErr(p.ErrorCode, p.ErrorMessage); err != nil {
				return nil, fmt.Errorf("describe quorum: %w", err)
			}
			return ownView(p, id), nil
		}
	}
	return nil, fmt.Errorf("describe quorum: no answer for %s-%d", metadataLogTopic, metadataLogPartition)
}

// ownView is what a broker's DescribeQuorum answer says of the broker
// itself.
func ownView(p kmsg.DescribeQuorumResponseTopicPartition, id int32) *raftView {
	v := &raftView{LeaderID: p.LeaderID, Term: p.LeaderEpoch, LastIndex: -1, CommitIndex: p.HighWatermark, AppliedIndex: -1}
	for _, rs := range p.CurrentVoters {
		v.voters = append(v.voters, rs.ReplicaID)
	}
	for _, rs := range append(p.CurrentVoters, p.Observers...) {
		if rs.ReplicaID != id {
			continue
		}
		v.LastIndex = rs.LogEndOffset
		if x, ok := server.ReadRaftExtras(&rs.UnknownTags); ok {
			v.State, v.AppliedIndex = x.State, x.AppliedIndex
		}
	}
	return v
}

func (st *clusterStatus) print(w io.Writer) error {
	fmt.Fprintf(w, "Cluster ID: %s\nController: %d\n\n", st.ClusterID, st.ControllerID)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// A RACK column only where some broker has a rack.
	racks := slices.ContainsFunc(st.Brokers, func(b brokerStatus) bool { return b.Rack != "" })
	rackHead := ""
	if racks {
		rackHead = "RACK\t"
	}
	fmt.Fprintln(tw, "ID\tADDRESS\t"+rackHead+"LIVENESS\tRAFT-STATE\tTERM\tLAST-INDEX\tCOMMIT\tAPPLIED")
	for _, b := range st.Brokers {
		fmt.Fprintf(tw, "%d\t%s\t", b.ID, orDash(b.Address))
		if racks {
			fmt.Fprintf(tw, "%s\t", orDash(b.Rack))
		}
		fmt.Fprintf(tw, "%s\t", b.Liveness)
		r := b.Raft
		switch {
		case r == nil && b.answered:
			fmt.Fprintln(tw, "error\t-\t-\t-\t-")
			continue
		case r == nil:
			fmt.Fprintln(tw, "unreachable\t-\t-\t-\t-")
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", orDash(r.State), offsetCell(int64(r.Term), true),
			offsetCell(r.LastIndex, true), offsetCell(r.CommitIndex, true), offsetCell(r.AppliedIndex, true))
	}
	return tw.Flush()
}

// hostPort joins a host and a Kafka port.
func hostPort(host string, port int32) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}
