package server

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/authz"
	"github.com/runnel-io/runnel/partition"
)

// AlterConfigs and IncrementalAlterConfigs. Both come down to one list of
// operations on one resource's explicit configs (alterConfigs): the
// legacy API replaces the whole set, so its configs are SETs over an empty
// one; the incremental API's SET, DELETE, APPEND and SUBTRACT apply over
// the configs the resource has. The new set is validated whole, then
// committed through the metadata (CmdSetConfigs for a topic), and every
// open replica takes it without a restart (partition.Partition.SetConfig,
// from the replica reconciliation each metadata change runs).

// Kafka's IncrementalAlterConfigs operations.
const (
	opSet      int8 = 0
	opDelete   int8 = 1
	opAppend   int8 = 2
	opSubtract int8 = 3
)

// configOp is one operation on a config.
type configOp struct {
	name  string
	op    int8
	value *string
}

// configTarget names a resource in a request, for finding the ones named
// twice.
type configTarget struct {
	typ  kmsg.ConfigResourceType
	name string
}

// duplicateTargets returns the resources a request names more than once:
// as Kafka, each of them is refused with INVALID_REQUEST, since which of
// the changes should win is not said.
func duplicateTargets(targets []configTarget) map[configTarget]bool {
	n := map[configTarget]int{}
	for _, t := range targets {
		n[t]++
	}
	dup := map[configTarget]bool{}
	for t, c := range n {
		if c > 1 {
			dup[t] = true
		}
	}
	return dup
}

func errDuplicateResource(t configTarget) error {
	return fmt.Errorf("%w: resource %d %q is named more than once in the request", kerr.InvalidRequest, t.typ, t.name)
}

func (s *Server) handleAlterConfigs(c *conn, r *kmsg.AlterConfigsRequest) kmsg.Response {
	resp := kmsg.NewPtrAlterConfigsResponse()
	var targets []configTarget
	for _, rr := range r.Resources {
		targets = append(targets, configTarget{rr.ResourceType, rr.ResourceName})
	}
	dup := duplicateTargets(targets)
	for i, rr := range r.Resources {
		var err error
		if dup[targets[i]] {
			err = errDuplicateResource(targets[i])
		} else {
			ops := make([]configOp, 0, len(rr.Configs))
			for _, cfg := range rr.Configs {
				ops = append(ops, configOp{name: cfg.Name, op: opSet, value: cfg.Value})
			}
			err = s.alterConfigs(c, "AlterConfigs", rr.ResourceType, rr.ResourceName, ops, true, r.ValidateOnly)
		}
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		sr.ErrorCode, sr.ErrorMessage = errorCode(err), errMessage(err)
		s.m.errorCode("AlterConfigs", sr.ErrorCode)
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

func (s *Server) handleIncrementalAlterConfigs(c *conn, r *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
	resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
	var targets []configTarget
	for _, rr := range r.Resources {
		targets = append(targets, configTarget{rr.ResourceType, rr.ResourceName})
	}
	dup := duplicateTargets(targets)
	for i, rr := range r.Resources {
		var err error
		if dup[targets[i]] {
			err = errDuplicateResource(targets[i])
		} else {
			ops := make([]configOp, 0, len(rr.Configs))
			seen := map[string]bool{}
			for _, cfg := range rr.Configs {
				if seen[cfg.Name] {
					err = fmt.Errorf("%w: config %q is named more than once for the resource", kerr.InvalidRequest, cfg.Name)
					break
				}
				seen[cfg.Name] = true
				ops = append(ops, configOp{name: cfg.Name, op: int8(cfg.Op), value: cfg.Value})
			}
			if err == nil {
				err = s.alterConfigs(c, "IncrementalAlterConfigs", rr.ResourceType, rr.ResourceName, ops, false, r.ValidateOnly)
			}
		}
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		sr.ErrorCode, sr.ErrorMessage = errorCode(err), errMessage(err)
		s.m.errorCode("IncrementalAlterConfigs", sr.ErrorCode)
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

// alterConfigs applies ops to one resource's explicit configs, over none
// (replace, the legacy API) or over those it has, and commits the result
// unless validateOnly. A refusal is logged.
func (s *Server) alterConfigs(c *conn, api string, typ kmsg.ConfigResourceType, name string, ops []configOp, replace, validateOnly bool) error {
	var err error
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		err = s.alterTopicConfigs(c, api, name, ops, replace, validateOnly)
	case kmsg.ConfigResourceTypeBroker:
		err = s.alterBrokerConfigs(c, api, name, ops, replace, validateOnly)
	default:
		err = fmt.Errorf("%w: resource type %d is not supported", kerr.InvalidRequest, typ)
	}
	if err != nil {
		s.log.Info("config change refused", "api", api, "resource_type", typ.String(), "resource", name, "err", err)
	} else if !validateOnly {
		s.log.Info("configs changed", "api", api, "resource_type", typ.String(), "resource", name, "changes", describeOps(ops))
	}
	return err
}

// describeOps renders operations for the log, values of secrets hidden.
func describeOps(ops []configOp) string {
	var b strings.Builder
	for i, o := range ops {
		if i > 0 {
			b.WriteString(" ")
		}
		v := "null"
		if o.value != nil {
			v = *o.value
		}
		if isSensitive(o.name) {
			v = "(hidden)"
		}
		fmt.Fprintf(&b, "%s:%s=%s", [...]string{"set", "delete", "append", "subtract"}[min(max(o.op, 0), 3)], o.name, v)
	}
	return b.String()
}

func (s *Server) alterTopicConfigs(c *conn, api, name string, ops []configOp, replace, validateOnly bool) error {
	if !s.authorize(c, api, authz.OpAlterConfigs, authz.ResourceTopic, name) {
		return kerr.TopicAuthorizationFailed
	}
	t, ok := s.meta.Topic(name)
	if !ok {
		return fmt.Errorf("%w: topic %q", kerr.UnknownTopicOrPartition, name)
	}
	have := t.Configs
	if replace {
		have = nil
	}
	next, err := applyConfigOps(have, ops, func(n string) (string, int8, bool) {
		d, ok := partition.LookupConfig(n)
		return d.Default, partition.ConfigType(n), ok
	})
	if err != nil {
		return err
	}
	if err := partition.ValidateConfigs(next); err != nil {
		return err
	}
	if cfg, _ := partition.ResolveConfig(next); int(cfg.MinInsyncRepl) > int(max(t.ReplicationFactor, 1)) {
		return fmt.Errorf("%w: min.insync.replicas=%d is above the replication factor %d",
			kerr.InvalidConfig, cfg.MinInsyncRepl, max(t.ReplicationFactor, 1))
	}
	if validateOnly || maps.Equal(next, t.Configs) {
		return nil
	}
	if err := s.meta.SetConfigs(name, next); err != nil {
		return err
	}
	// Every broker's replicas take the configs when their reconciliation
	// sees the change; this broker's before the answer.
	if err := s.replicas.Reconcile(); err != nil {
		s.log.Warn("applying changed topic configs to the replicas", "topic", name, "err", err)
	}
	return nil
}

// applyConfigOps returns have with ops applied, in a new map. lookup gives
// a config's default, its Kafka type, and whether it is known at all: an
// unknown name is INVALID_CONFIG, as a null value to set is
// INVALID_REQUEST and APPEND or SUBTRACT on a config that is not a list
// INVALID_CONFIG (Kafka's answers). APPEND adds the values not yet in the
// list, SUBTRACT removes those in it, each from the explicit value or,
// without one, the default, as Kafka's lists are split on commas.
func applyConfigOps(have map[string]string, ops []configOp, lookup func(string) (def string, typ int8, known bool)) (map[string]string, error) {
	next := maps.Clone(have)
	if next == nil {
		next = map[string]string{}
	}
	for _, o := range ops {
		def, typ, known := lookup(o.name)
		if !known {
			return nil, fmt.Errorf("%w: unknown config %q", partition.ErrInvalidConfig, o.name)
		}
		if o.op != opDelete && o.value == nil {
			return nil, fmt.Errorf("%w: a null value for %q (delete it instead)", kerr.InvalidRequest, o.name)
		}
		switch o.op {
		case opSet:
			next[o.name] = *o.value
		case opDelete:
			delete(next, o.name)
		case opAppend, opSubtract:
			if typ != partition.TypeList {
				return nil, fmt.Errorf("%w: %q is not a list: APPEND and SUBTRACT apply to lists only", partition.ErrInvalidConfig, o.name)
			}
			cur, ok := next[o.name]
			if !ok {
				cur = def
			}
			list := splitList(cur)
			for _, v := range splitList(*o.value) {
				if o.op == opAppend && !slices.Contains(list, v) {
					list = append(list, v)
				}
				if o.op == opSubtract {
					list = slices.DeleteFunc(list, func(e string) bool { return e == v })
				}
			}
			next[o.name] = strings.Join(list, ",")
		default:
			return nil, fmt.Errorf("%w: operation %d on %q", kerr.InvalidRequest, o.op, o.name)
		}
	}
	return next, nil
}

// splitList splits a list config's value on commas, spaces around the
// entries and empty entries dropped.
func splitList(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// errReadOnlyConfig refuses a change of a broker setting that needs a
// restart.
var errReadOnlyConfig = errors.New("server: config is read-only: set it with the broker's flag and restart")

// alterBrokerConfigs: broker settings are the broker's flags.
func (s *Server) alterBrokerConfigs(c *conn, api, name string, ops []configOp, replace, validateOnly bool) error {
	if !s.authorize(c, api, authz.OpAlterConfigs, authz.ResourceCluster, clusterResource) {
		return kerr.ClusterAuthorizationFailed
	}
	return fmt.Errorf("%w: %w", kerr.InvalidRequest, errReadOnlyConfig)
}

// isSensitive says whether a config's value is a secret, never shown.
func isSensitive(name string) bool { return false }
