package broker

import (
	"context"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/lag"
)

// newLagRefresher reports the consumer lag of the groups this broker
// coordinates: committed offsets from the group coordinators, high
// watermarks of the partitions this broker leads from the partitions, and
// those of the others from their leaders, asked with ListOffsets over the
// inter-broker listener by the refresher's loop (see package lag).
func (b *Broker) newLagRefresher(o lag.Options) *lag.Refresher {
	o.Logger = b.log
	o.Committed = func() []lag.Committed {
		var out []lag.Committed
		for _, gc := range b.groups.Coordinators() {
			for _, l := range gc.ListGroups() {
				offsets, err := gc.FetchOffsets(l.Group, nil)
				if err != nil {
					continue // the coordinator just resigned
				}
				for tp, off := range offsets {
					out = append(out, lag.Committed{Group: l.Group, TP: lag.TP{Topic: tp.Topic, Partition: tp.Partition}, Offset: off.Offset})
				}
			}
		}
		return out
	}
	o.LocalHighWatermark = func(tp lag.TP) (int64, bool) {
		p, err := b.parts.Get(tp.Topic, tp.Partition)
		if err != nil || !p.Role().Leader {
			return 0, false
		}
		return p.HighWatermark(), true
	}
	o.Leader = func(tp lag.TP) (int32, string, bool) {
		info, ok := b.meta.Partition(tp.Topic, tp.Partition)
		if !ok || info.Leader < 0 || info.Leader == b.cfg.NodeID {
			return 0, "", false
		}
		for _, br := range b.meta.Brokers() {
			if br.ID == info.Leader && br.Addr != "" {
				return br.ID, br.Addr, true
			}
		}
		return 0, "", false
	}
	o.HighWatermarks = func(ctx context.Context, addr string, tps []lag.TP) (map[lag.TP]int64, error) {
		ctps := make([]cluster.TP, len(tps))
		for i, tp := range tps {
			ctps[i] = cluster.TP{Topic: tp.Topic, Partition: tp.Partition}
		}
		hws, err := b.replicas.HighWatermarks(ctx, addr, ctps)
		if err != nil {
			return nil, err
		}
		out := make(map[lag.TP]int64, len(hws))
		for tp, hw := range hws {
			out[lag.TP{Topic: tp.Topic, Partition: tp.Partition}] = hw
		}
		return out, nil
	}
	return lag.New(o)
}
