package server

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/authz"
	"github.com/runnel-io/runnel/internal/brokerconfig"
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
	case kmsg.ConfigResourceTypeBrokerLogger:
		if replace {
			// As Kafka: only IncrementalAlterConfigs changes loggers.
			err = fmt.Errorf("%w: broker loggers change with IncrementalAlterConfigs", kerr.InvalidRequest)
			break
		}
		err = s.alterBrokerLoggers(c, api, name, ops, validateOnly)
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

// maxConfigAttempts bounds how often a change is computed again after the
// configs changed under it (another change committed first).
const maxConfigAttempts = 5

// noConfigs is a prev no topic's configs can be: a proposal with it is
// refused, as unknown_topic or as configs_changed, and in either case this
// broker has applied the metadata up to it when the refusal comes back.
var noConfigs = map[string]string{"": ""}

func (s *Server) alterTopicConfigs(c *conn, api, name string, ops []configOp, replace, validateOnly bool) error {
	if !s.authorize(c, api, authz.OpAlterConfigs, authz.ResourceTopic, name) {
		return kerr.TopicAuthorizationFailed
	}
	for attempt := 1; ; attempt++ {
		t, ok := s.meta.Topic(name)
		if !ok && attempt == 1 && !validateOnly {
			// This broker may not have applied the topic's creation
			// yet (it was answered by another): ask the metadata, and
			// read again once caught up with it.
			err := s.meta.SetConfigsIf(name, noConfigs, nil)
			if errors.Is(err, cluster.ErrConfigsChanged) {
				continue
			}
			ok = false
		}
		if !ok {
			return fmt.Errorf("%w: topic %q", kerr.UnknownTopicOrPartition, name)
		}
		err := s.alterTopicConfigsOnce(t, ops, replace, validateOnly)
		if errors.Is(err, cluster.ErrConfigsChanged) && attempt < maxConfigAttempts {
			continue // computed again from the configs now applied here
		}
		return err
	}
}

// alterTopicConfigsOnce applies ops over the configs t has and commits
// the result if they are still those.
func (s *Server) alterTopicConfigsOnce(t cluster.Topic, ops []configOp, replace, validateOnly bool) error {
	name := t.Name
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
	if err := s.meta.SetConfigsIf(name, t.Configs, next); err != nil {
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

// brokerResource reads a broker resource's name: the empty name is the
// cluster-wide defaults (cluster.DefaultBrokerConfigs), otherwise a node
// id.
func brokerResource(name string) (int32, error) {
	if name == "" {
		return cluster.DefaultBrokerConfigs, nil
	}
	id, err := strconv.ParseInt(name, 10, 32)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: broker resource %q: want a node id, or the empty name for the cluster-wide defaults", kerr.InvalidRequest, name)
	}
	return int32(id), nil
}

// alterBrokerConfigs changes the dynamic configs of a broker or the
// cluster-wide defaults, kept in the metadata (SetBrokerConfigs); each
// broker applies its own over the defaults when it sees the change. As
// Kafka: ALTER_CONFIGS on the cluster, INVALID_REQUEST for a config that
// is not dynamic, INVALID_CONFIG for an unknown name or a bad value.
func (s *Server) alterBrokerConfigs(c *conn, api, name string, ops []configOp, replace, validateOnly bool) error {
	if !s.authorize(c, api, authz.OpAlterConfigs, authz.ResourceCluster, clusterResource) {
		return kerr.ClusterAuthorizationFailed
	}
	id, err := brokerResource(name)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := s.alterBrokerConfigsOnce(id, ops, replace, validateOnly)
		if errors.Is(err, cluster.ErrConfigsChanged) && attempt < maxConfigAttempts {
			continue // computed again from the configs now applied here
		}
		return err
	}
}

// alterBrokerConfigsOnce applies ops over broker id's dynamic configs as
// this broker has them and commits the result if they are still those.
func (s *Server) alterBrokerConfigsOnce(id int32, ops []configOp, replace, validateOnly bool) error {
	prev := s.meta.BrokerConfigs(id)
	have := prev
	if replace {
		have = nil
	}
	next, err := applyConfigOps(have, ops, func(n string) (string, int8, bool) {
		d, ok := brokerconfig.Lookup(n)
		if !ok {
			return "", 0, false
		}
		e := s.brokerEntry(d, id)
		return e.Value, d.Type, true
	})
	if err != nil {
		return err
	}
	for k, v := range next {
		if err := brokerconfig.Check(k, v); err != nil {
			if errors.Is(err, brokerconfig.ErrReadOnly) {
				return fmt.Errorf("%w: %w", kerr.InvalidRequest, err)
			}
			return fmt.Errorf("%w: %w", kerr.InvalidConfig, err)
		}
	}
	if validateOnly || maps.Equal(next, prev) {
		return nil
	}
	if err := s.meta.SetBrokerConfigsIf(id, prev, next); err != nil {
		return err
	}
	// This broker's replicas take changed topic defaults before the
	// answer; the others' at their reconciliation.
	if err := s.replicas.Reconcile(); err != nil {
		s.log.Warn("applying changed broker configs to the replicas", "err", err)
	}
	return nil
}

// brokerEntry resolves one broker config as broker id (or the defaults)
// has it, for the current value an APPEND or SUBTRACT starts from.
func (s *Server) brokerEntry(d brokerconfig.Def, id int32) brokerconfig.Entry {
	var own map[string]string
	if id != cluster.DefaultBrokerConfigs {
		own = s.meta.BrokerConfigs(id)
	}
	e, _ := brokerconfig.Effective(d.Name, s.cfg.BrokerConfigs, own, s.meta.BrokerConfigs(cluster.DefaultBrokerConfigs))
	return e
}

// isSensitive says whether a config's value is a secret, never shown.
func isSensitive(name string) bool {
	d, ok := brokerconfig.Lookup(name)
	return ok && d.Sensitive
}

// describeBrokerConfigs answers DescribeConfigs for a broker resource, as
// Kafka: the empty name gives the cluster-wide dynamic defaults only; this
// broker's id every broker config with its source; another broker's id is
// INVALID_REQUEST (clients send it to that broker). A secret's value is
// null, with IsSensitive.
func (s *Server) describeBrokerConfigs(r *kmsg.DescribeConfigsRequest, rr kmsg.DescribeConfigsRequestResource, sr *kmsg.DescribeConfigsResponseResource) error {
	id, err := brokerResource(rr.ResourceName)
	if err != nil {
		return err
	}
	if id != cluster.DefaultBrokerConfigs && id != s.cfg.NodeID {
		return fmt.Errorf("%w: this is broker %d; describe broker %d's configs on it", kerr.InvalidRequest, s.cfg.NodeID, id)
	}
	defaults := s.meta.BrokerConfigs(cluster.DefaultBrokerConfigs)
	var entries []brokerconfig.Entry
	if id == cluster.DefaultBrokerConfigs {
		for _, d := range brokerconfig.Defs {
			if v, ok := defaults[d.Name]; ok {
				entries = append(entries, brokerconfig.Entry{Def: d, Value: v, Source: brokerconfig.SourceDynamicDefaultBroker,
					Synonyms: []brokerconfig.Synonym{{Name: d.Name, Value: v, Source: brokerconfig.SourceDynamicDefaultBroker}}})
			}
		}
	} else {
		entries = brokerconfig.Resolve(s.cfg.BrokerConfigs, s.meta.BrokerConfigs(id), defaults)
	}
	want := wanted(rr.ConfigNames)
	for _, e := range entries {
		if len(want) > 0 && !want[e.Name] {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name, c.Value = e.Name, kmsg.StringPtr(e.Value)
		c.ReadOnly = !e.Dynamic
		c.IsDefault = e.Source == brokerconfig.SourceDefault
		c.Source = kmsg.ConfigSource(e.Source)
		c.ConfigType = kmsg.ConfigType(e.Type)
		if e.Sensitive {
			c.Value, c.IsSensitive = nil, true
		}
		if r.IncludeSynonyms {
			for _, y := range e.Synonyms {
				sy := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				sy.Name, sy.Value, sy.Source = y.Name, kmsg.StringPtr(y.Value), kmsg.ConfigSource(y.Source)
				if e.Sensitive {
					sy.Value = nil
				}
				c.ConfigSynonyms = append(c.ConfigSynonyms, sy)
			}
		}
		if r.IncludeDocumentation {
			c.Documentation = kmsg.StringPtr(e.Doc)
		}
		sr.Configs = append(sr.Configs, c)
	}
	return nil
}

// describeTopicConfigs answers DescribeConfigs for a topic: each config
// the topic sets (DYNAMIC_TOPIC_CONFIG), else the broker config that is
// its default where one is set dynamically (for this broker, then
// cluster-wide), else the built-in default; with synonyms (v1+), the
// layers under it, as Kafka lists them.
func (s *Server) describeTopicConfigs(r *kmsg.DescribeConfigsRequest, t cluster.Topic, names []string, sr *kmsg.DescribeConfigsResponseResource) {
	own, defaults := s.meta.BrokerConfigs(s.cfg.NodeID), s.meta.BrokerConfigs(cluster.DefaultBrokerConfigs)
	want := wanted(names)
	for _, d := range partition.ConfigDefs {
		if len(want) > 0 && !want[d.Name] {
			continue
		}
		syn := topicConfigLayers(t, d, own, defaults)
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name, c.Value, c.Source = d.Name, syn[0].Value, syn[0].Source
		c.IsDefault = c.Source == kmsg.ConfigSourceDefaultConfig
		c.ConfigType = kmsg.ConfigType(partition.ConfigType(d.Name))
		if r.IncludeSynonyms {
			c.ConfigSynonyms = syn
		}
		if r.IncludeDocumentation {
			c.Documentation = kmsg.StringPtr(d.Doc)
		}
		sr.Configs = append(sr.Configs, c)
	}
}

// topicConfigLayers returns the layers of a topic's config, the one in
// effect first: the topic's own value, the broker config that is its
// default as set for this broker (own) and cluster-wide (defaults), the
// built-in default.
func topicConfigLayers(t cluster.Topic, d partition.ConfigDef, own, defaults map[string]string) []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	var syn []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	add := func(name, value string, source int8) {
		sy := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		sy.Name, sy.Value, sy.Source = name, kmsg.StringPtr(value), kmsg.ConfigSource(source)
		syn = append(syn, sy)
	}
	if v, ok := t.Configs[d.Name]; ok {
		add(d.Name, v, int8(kmsg.ConfigSourceDynamicTopicConfig))
	}
	if bd, ok := brokerconfig.ForTopic(d.Name); ok {
		y, _ := brokerconfig.Effective(bd.Name, nil, own, defaults)
		for _, ys := range y.Synonyms {
			if ys.Source != brokerconfig.SourceDefault {
				add(ys.Name, ys.Value, ys.Source)
			}
		}
	}
	add(d.Name, d.Default, brokerconfig.SourceDefault)
	return syn
}

func wanted(names []string) map[string]bool {
	want := map[string]bool{}
	for _, k := range names {
		want[k] = true
	}
	return want
}
