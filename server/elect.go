package server

// ElectLeaders (KIP-183, KIP-460): preferred and unclean leader elections
// an operator asks for, held by the cluster metadata (cluster.Meta) through
// the Raft leader. Any broker answers; the answer comes once this broker's
// metadata shows the new leaders.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/authz"
)

// leaderElector is the part of the metadata store that holds elections.
type leaderElector interface {
	ElectLeaders(ctx context.Context, typ cluster.ElectionType, tps []cluster.TP) ([]cluster.Election, error)
}

// electTimeout bounds an election request whose TimeoutMillis is not
// positive; maxElectTimeout bounds any.
const (
	electTimeout    = 60 * time.Second
	maxElectTimeout = 5 * time.Minute
)

func (s *Server) handleElectLeaders(c *conn, r *kmsg.ElectLeadersRequest) *kmsg.ElectLeadersResponse {
	resp := kmsg.NewPtrElectLeadersResponse()
	// The named partitions, each once (Kafka reads them as a set), in the
	// order asked; nil: every partition.
	var tps []cluster.TP
	if r.Topics != nil {
		tps = []cluster.TP{}
		seen := map[cluster.TP]bool{}
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				tp := cluster.TP{Topic: t.Topic, Partition: p}
				if !seen[tp] {
					seen[tp] = true
					tps = append(tps, tp)
				}
			}
		}
	}
	// refuse answers every named partition with code; v0 has no
	// top-level error, so that is where a v0 client reads it.
	refuse := func(code int16, msg string) *kmsg.ElectLeadersResponse {
		resp.ErrorCode = code
		results := make([]cluster.Election, len(tps))
		for i, tp := range tps {
			results[i] = cluster.Election{TP: tp, Leader: -1}
		}
		resp.Topics = electionResults(results, func(cluster.Election) (int16, *string) { return code, &msg })
		return resp
	}
	if !s.authorize(c, "ElectLeaders", authz.OpAlter, authz.ResourceCluster, clusterResource) {
		return refuse(kerr.ClusterAuthorizationFailed.Code, "Cluster authorization failed.")
	}
	typ := cluster.ElectPreferred
	if r.Version >= 1 {
		typ = cluster.ElectionType(r.ElectionType)
	}
	el, ok := s.meta.(leaderElector)
	if !ok {
		return refuse(kerr.UnsupportedVersion.Code, "this broker's metadata holds no elections")
	}
	timeout := time.Duration(r.TimeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = electTimeout
	}
	ctx, cancel := context.WithTimeout(s.ctx, min(timeout, maxElectTimeout))
	defer cancel()
	results, err := el.ElectLeaders(ctx, typ, tps)
	if err != nil {
		return refuse(errorCode(err), err.Error())
	}
	resp.Topics = electionResults(results, func(e cluster.Election) (int16, *string) {
		return errorCode(e.Err), errMessage(e.Err)
	})
	for _, e := range results {
		if e.Err == nil {
			s.log.Info("leader elected on request", "partition", e.TP, "leader", e.Leader, "type", typ.String(),
				"principal", c.principal, "host", c.addr)
		}
	}
	return resp
}

// electionResults groups the outcomes by topic, topics in the order they
// first appear.
func electionResults(results []cluster.Election, code func(cluster.Election) (int16, *string)) []kmsg.ElectLeadersResponseTopic {
	out := []kmsg.ElectLeadersResponseTopic{}
	at := map[string]int{}
	for _, e := range results {
		i, ok := at[e.TP.Topic]
		if !ok {
			i = len(out)
			at[e.TP.Topic] = i
			rt := kmsg.NewElectLeadersResponseTopic()
			rt.Topic = e.TP.Topic
			out = append(out, rt)
		}
		rp := kmsg.NewElectLeadersResponseTopicPartition()
		rp.Partition = e.TP.Partition
		rp.ErrorCode, rp.ErrorMessage = code(e)
		out[i].Partitions = append(out[i].Partitions, rp)
	}
	return out
}
