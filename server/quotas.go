package server

import (
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/internal/authz"
	"github.com/runnel-io/runnel/internal/quota"
)

// Client quotas: DescribeClientQuotas and AlterClientQuotas over the
// quotas in the cluster state, and their enforcement. A connection's use
// is recorded after each request (produce: the record bytes appended;
// fetch: the bytes of the response; every request: the time the broker
// spent on it), and a client over its quota is throttled as Kafka
// throttles it: its response carries throttle_time_ms, and the connection
// is muted for that long (no further request of it is read or handled).
// Clients of the versions before KIP-219 (Produce v3-5, Fetch v4-7, ...:
// those whose response kmsg does not mark as client-throttled) get their
// response only once the throttle time has passed.

// quotaUser is the user a connection's quotas are found by: its
// principal's name, without the "User:" type.
func (c *conn) quotaUser() string {
	return strings.TrimPrefix(c.principal, "User:")
}

// mute keeps the connection from reading or handling requests until t.
func (c *conn) mute(t time.Time) {
	n := t.UnixNano()
	for {
		cur := c.mutedUntil.Load()
		if cur >= n || c.mutedUntil.CompareAndSwap(cur, n) {
			return
		}
	}
}

// waitUnmuted returns once the connection is not muted, or when it is
// stopping. It reports whether it waited.
func (c *conn) waitUnmuted() bool {
	waited := false
	for {
		until := c.mutedUntil.Load()
		d := time.Until(time.Unix(0, until))
		if until == 0 || d <= 0 {
			return waited
		}
		waited = true
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.stopCh:
			t.Stop()
			return waited
		case <-c.ctx.Done():
			t.Stop()
			return waited
		}
	}
}

// throttled records v of key for the connection's user and client id
// and returns the throttle time; when it is not zero the connection is
// muted for it, the throttle is counted and logged at debug level.
func (s *Server) throttled(c *conn, user, clientID, key string, v float64) time.Duration {
	res := s.cfg.Quotas.Record(key, user, clientID, v)
	if res.Throttle <= 0 {
		return 0
	}
	c.mute(time.Now().Add(res.Throttle))
	s.log.Debug("client throttled", "key", key, "entity", res.Entity.String(), "rate", res.Rate, "quota", res.Bound,
		"throttle", res.Throttle, "remote", c.remote, "user", user, "client_id", clientID)
	return res.Throttle
}

// throttleMillis is a throttle time as the protocol carries it.
func throttleMillis(d time.Duration) int32 {
	return int32(min(d.Milliseconds(), 1<<31-1))
}

// recordRequestTime records the time the broker spent on a request
// against the request_percentage quota, as Kafka measures it: percent of
// one thread's time.
func (s *Server) recordRequestTime(c *conn, user, clientID string, d time.Duration) time.Duration {
	return s.throttled(c, user, clientID, quota.RequestPercentage, d.Seconds()*100)
}

// quotaExempt reports whether a request is never throttled: the
// inter-broker ones (a follower's fetch, transaction markers) and the
// SASL exchange before the client is known.
func quotaExempt(r *reply) bool {
	switch r.hdr.Key {
	case 17, 36, 27: // SaslHandshake, SaslAuthenticate, WriteTxnMarkers
		return true
	}
	return r.replicaFetch
}

// capFetch bounds a consumer's fetch by its consumer_byte_rate as Kafka
// does: at most what the quota allows over the shortest window a rate is
// measured over, so one fetch cannot overshoot it by much and is never
// throttled for its size alone (the first batch still goes whole,
// KIP-74). It reports whether the connection has a consumer quota.
func (s *Server) capFetch(c *conn, h requestHeader, r *kmsg.FetchRequest) bool {
	bound, ok := s.cfg.Quotas.Bound(quota.ConsumerByteRate, c.quotaUser(), h.ClientID)
	if !ok {
		return false
	}
	limit := int32(min(s.cfg.Quotas.MaxValueInWindow(bound), float64(s.cfg.FetchMaxBytes)))
	limit = max(limit, 1)
	if r.MaxBytes <= 0 || r.MaxBytes > limit {
		r.MaxBytes = limit
	}
	r.MinBytes = min(r.MinBytes, r.MaxBytes)
	return true
}

var errQuotaInvalid = kerr.InvalidRequest

// handleDescribeClientQuotas lists the quotas of the entities the filter
// matches. It needs DESCRIBE_CONFIGS on the cluster.
func (s *Server) handleDescribeClientQuotas(c *conn, r *kmsg.DescribeClientQuotasRequest) *kmsg.DescribeClientQuotasResponse {
	resp := kmsg.NewPtrDescribeClientQuotasResponse()
	fail := func(err error) *kmsg.DescribeClientQuotasResponse {
		resp.ErrorCode, resp.ErrorMessage = errorCode(err), errMessage(err)
		s.m.errorCode("DescribeClientQuotas", resp.ErrorCode)
		if resp.ErrorCode == kerr.InvalidRequest.Code {
			c.warn("DescribeClientQuotas refused", "remote", c.remote, "principal", c.principal, "err", err)
		}
		return resp
	}
	if !s.authorize(c, "DescribeClientQuotas", authz.OpDescribeConfigs, authz.ResourceCluster, clusterResource) {
		return fail(kerr.ClusterAuthorizationFailed)
	}
	f, err := parseQuotaFilter(r)
	if err != nil {
		return fail(err)
	}
	cfg := s.meta.ClientQuotas()
	for _, e := range cfg.Entities() {
		if !f.matches(e) {
			continue
		}
		entry := kmsg.NewDescribeClientQuotasResponseEntry()
		for _, p := range e.Parts() {
			ee := kmsg.NewDescribeClientQuotasResponseEntryEntity()
			ee.Type, ee.Name = p.Type, p.Name
			entry.Entity = append(entry.Entity, ee)
		}
		vals := cfg.Values(e)
		for _, k := range []string{quota.ConsumerByteRate, quota.ProducerByteRate, quota.RequestPercentage} {
			if v, ok := vals[k]; ok {
				ev := kmsg.NewDescribeClientQuotasResponseEntryValue()
				ev.Key, ev.Value = k, v
				entry.Values = append(entry.Values, ev)
			}
		}
		resp.Entries = append(resp.Entries, entry)
	}
	return resp
}

// quotaFilter is a DescribeClientQuotas filter: per entity type, a match
// (exact name, the default entity, any), and whether entities with other
// parts are left out (strict).
type quotaFilter struct {
	user, client       *quotaMatch
	strict, ipFiltered bool
}

type quotaMatch struct {
	kind int8 // 0 exact, 1 default, 2 any (Kafka's)
	name string
}

func (m *quotaMatch) matches(has bool, name string) bool {
	if !has {
		return false
	}
	switch m.kind {
	case 0:
		return name != "" && name == m.name
	case 1:
		return name == ""
	}
	return true
}

func parseQuotaFilter(r *kmsg.DescribeClientQuotasRequest) (quotaFilter, error) {
	f := quotaFilter{strict: r.Strict}
	seen := map[string]bool{}
	for _, comp := range r.Components {
		if seen[comp.EntityType] {
			return f, fmt.Errorf("%w: entity type %s appears more than once in the filter", errQuotaInvalid, comp.EntityType)
		}
		seen[comp.EntityType] = true
		m := &quotaMatch{kind: int8(comp.MatchType)}
		switch comp.MatchType {
		case 0:
			if comp.Match == nil || *comp.Match == "" {
				return f, fmt.Errorf("%w: an exact match on %s needs a name", errQuotaInvalid, comp.EntityType)
			}
			m.name = *comp.Match
		case 1, 2:
		default:
			return f, fmt.Errorf("%w: unknown match type %d", errQuotaInvalid, comp.MatchType)
		}
		switch comp.EntityType {
		case quota.TypeUser:
			f.user = m
		case quota.TypeClientID:
			f.client = m
		case quota.TypeIP:
			f.ipFiltered = true
		default:
			return f, fmt.Errorf("%w: unknown entity type %q", errQuotaInvalid, comp.EntityType)
		}
	}
	if f.ipFiltered && (f.user != nil || f.client != nil) {
		return f, fmt.Errorf("%w: an ip entity cannot be combined with user or client-id", errQuotaInvalid)
	}
	return f, nil
}

// matches reports whether an entity is one the filter asks for. This
// broker holds no ip quotas, so a filter on ip matches nothing.
func (f quotaFilter) matches(e quota.Entity) bool {
	switch {
	case f.ipFiltered:
		return false
	case f.user != nil && !f.user.matches(e.HasUser, e.User):
		return false
	case f.client != nil && !f.client.matches(e.HasClientID, e.ClientID):
		return false
	case f.strict && (e.HasUser && f.user == nil || e.HasClientID && f.client == nil):
		return false
	}
	return true
}

// handleAlterClientQuotas validates each entry as Kafka does and commits
// the valid ones in one command through the Raft leader (none with
// validate_only). It needs ALTER_CONFIGS on the cluster.
func (s *Server) handleAlterClientQuotas(c *conn, r *kmsg.AlterClientQuotasRequest) *kmsg.AlterClientQuotasResponse {
	resp := kmsg.NewPtrAlterClientQuotasResponse()
	errs := make([]error, len(r.Entries))
	var cmd cluster.AlterClientQuotas
	var valid []int
	allowed := s.authorize(c, "AlterClientQuotas", authz.OpAlterConfigs, authz.ResourceCluster, clusterResource)
	for i, e := range r.Entries {
		if !allowed {
			errs[i] = kerr.ClusterAuthorizationFailed
			continue
		}
		a, err := quotaAlteration(e)
		if err != nil {
			errs[i] = err
			c.warn("client quota alteration refused", "remote", c.remote, "principal", c.principal, "err", err)
			continue
		}
		cmd.Entries = append(cmd.Entries, a)
		valid = append(valid, i)
	}
	if len(cmd.Entries) > 0 && !r.ValidateOnly {
		if err := s.meta.AlterClientQuotas(cmd); err != nil {
			for _, i := range valid {
				errs[i] = err
			}
		} else {
			s.log.Info("client quotas altered", "principal", c.principal, "entities", len(cmd.Entries))
		}
	}
	for i, e := range r.Entries {
		res := kmsg.NewAlterClientQuotasResponseEntry()
		res.ErrorCode, res.ErrorMessage = errorCode(errs[i]), errMessage(errs[i])
		for _, p := range e.Entity {
			re := kmsg.NewAlterClientQuotasResponseEntryEntity()
			re.Type, re.Name = p.Type, p.Name
			res.Entity = append(res.Entity, re)
		}
		s.m.errorCode("AlterClientQuotas", res.ErrorCode)
		resp.Entries = append(resp.Entries, res)
	}
	return resp
}

// quotaAlteration checks one entry of an AlterClientQuotas: its entity,
// each key once, values as quota.ValidateValue has them.
func quotaAlteration(e kmsg.AlterClientQuotasRequestEntry) (cluster.ClientQuotaAlteration, error) {
	var a cluster.ClientQuotaAlteration
	parts := make([]quota.Part, len(e.Entity))
	for i, p := range e.Entity {
		parts[i] = quota.Part{Type: p.Type, Name: p.Name}
		a.Entity = append(a.Entity, cluster.QuotaEntityPart{Type: p.Type, Name: p.Name})
	}
	if _, err := quota.ParseEntity(parts); err != nil {
		return a, fmt.Errorf("%w: %v", errQuotaInvalid, err)
	}
	seen := map[string]bool{}
	for _, op := range e.Ops {
		if seen[op.Key] {
			return a, fmt.Errorf("%w: quota key %s appears more than once", errQuotaInvalid, op.Key)
		}
		seen[op.Key] = true
		if op.Remove {
			if err := quota.ValidateKey(op.Key); err != nil {
				return a, fmt.Errorf("%w: %v", errQuotaInvalid, err)
			}
			a.Remove = append(a.Remove, op.Key)
			continue
		}
		if err := quota.ValidateValue(op.Key, op.Value); err != nil {
			return a, fmt.Errorf("%w: %v", errQuotaInvalid, err)
		}
		if a.Set == nil {
			a.Set = map[string]float64{}
		}
		a.Set[op.Key] = op.Value
	}
	return a, nil
}

// throttleResponse runs in the writer before a response is sent: a fetch
// with a consumer quota records its size against it; the longest throttle
// of the request goes into the response's throttle_time_ms; and a client
// of a version before KIP-219 gets its response only once its throttle
// has ended (the connection is muted meanwhile, as for any client).
func (c *conn) throttleResponse(r *reply, out any) {
	var clientThrottles bool
	switch v := out.(type) {
	case *consumer.Encoded:
		if r.consumerQuota {
			r.throttle = max(r.throttle, c.s.throttled(c, r.user, r.hdr.ClientID, quota.ConsumerByteRate, float64(v.Size())))
		}
		if ms := throttleMillis(r.throttle); ms > v.ThrottleMillis() {
			v.SetThrottleMillis(ms)
		}
		clientThrottles = r.hdr.Version >= 8
	case kmsg.Response:
		tr, ok := v.(interface {
			Throttle() (int32, bool)
			SetThrottle(int32)
		})
		if !ok {
			return
		}
		cur, kip219 := tr.Throttle()
		if ms := throttleMillis(r.throttle); ms > cur {
			tr.SetThrottle(ms)
		}
		clientThrottles = kip219
	default:
		return
	}
	if !clientThrottles {
		c.waitUnmuted()
	}
}

// recordSendTime records the writer's time on a response against the
// request_percentage quota without throttling (Kafka's network thread
// time): it counts toward the throttle of the requests after.
func (s *Server) recordSendTime(user, clientID string, d time.Duration) {
	s.cfg.Quotas.Add(quota.RequestPercentage, user, clientID, d.Seconds()*100)
}
