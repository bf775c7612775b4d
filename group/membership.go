package group

import (
	"bytes"
	"time"
)

// Protocol is one assignment protocol a member supports, with its
// protocol-specific metadata (for consumers: subscriptions).
type Protocol struct {
	Name     string
	Metadata []byte
}

// JoinRequest is a JoinGroup.
type JoinRequest struct {
	Group            string
	MemberID         string // empty on a first join
	InstanceID       string // group.instance.id of a static member, or empty
	ClientID         string
	ClientHost       string
	ProtocolType     string
	Protocols        []Protocol // in order of preference
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	// RequireKnownMemberID: a first join gets ErrMemberIDRequired and a
	// member id to join again with (JoinGroup v4+).
	RequireKnownMemberID bool
	// SkipAssignment may be answered (JoinGroup v9+).
	SupportsSkipAssignment bool
}

// MemberMetadata is what the leader learns of each member.
type MemberMetadata struct {
	MemberID   string
	InstanceID string
	Metadata   []byte // for the chosen protocol
}

// JoinResult answers a JoinGroup.
type JoinResult struct {
	Err          error
	Generation   int32
	ProtocolType string
	Protocol     string
	Leader       string
	MemberID     string
	Members      []MemberMetadata // to the leader only
	// SkipAssignment: the leader is a static member that rejoined; the
	// group's assignment stands and the leader must not compute another.
	SkipAssignment bool
}

// SyncRequest is a SyncGroup.
type SyncRequest struct {
	Group        string
	MemberID     string
	InstanceID   string
	Generation   int32
	ProtocolType string // empty when the request version does not carry it
	Protocol     string // likewise
	Assignments  map[string][]byte
}

// SyncResult answers a SyncGroup.
type SyncResult struct {
	Err          error
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// Leaving names one member leaving: by member id, by instance id, or both.
type Leaving struct {
	MemberID   string
	InstanceID string
}

type member struct {
	id               string
	instanceID       string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocols        []Protocol
	assignment       []byte

	joinWait chan JoinResult // set while a JoinGroup waits for the join phase
	syncWait chan SyncResult // set while a SyncGroup waits for the leader
	synced   bool            // sent SyncGroup in the current generation
	isNew    bool            // joined during the current join phase

	expiry Timer
	seq    uint64 // which expiry timer is current
}

func (m *member) answerJoin(r JoinResult) {
	if m.joinWait != nil {
		m.joinWait <- r
		m.joinWait = nil
	}
}

func (m *member) answerSync(r SyncResult) {
	if m.syncWait != nil {
		m.syncWait <- r
		m.syncWait = nil
	}
}

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func sameProtocols(a, b []Protocol) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Metadata, b[i].Metadata) {
			return false
		}
	}
	return true
}

type group struct {
	id           string
	state        State
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	joinOrder    []string         // member ids, oldest first
	pending      map[string]Timer // member ids handed out with ErrMemberIDRequired
	static       map[string]string
	offsets      map[TopicPartition]Offset
	order        map[TopicPartition]int64 // each offset's place in the store's order (txn.go)
	// txnOffsets: producer id → its pending transactional offsets (txn.go).
	txnOffsets map[int64]map[TopicPartition]txnOffset
	emptySince time.Time
	stored     bool // the store holds metadata of the group (GroupStore)

	joinTimer       Timer
	joinDeadline    time.Time // the latest an initial delay may extend to
	initialJoin     bool      // this join phase started from Empty
	newSinceTimer   bool      // a member joined since the initial-delay timer was armed
	syncTimer       Timer
	rebalanceSerial uint64 // tells stale join and sync timers from current ones
}

func (g *group) stopTimers() {
	stop(g.joinTimer)
	stop(g.syncTimer)
	g.joinTimer, g.syncTimer = nil, nil
}

func (g *group) addMember(m *member) {
	g.members[m.id] = m
	g.joinOrder = append(g.joinOrder, m.id)
	if m.instanceID != "" {
		g.static[m.instanceID] = m.id
	}
}

func (g *group) removeMember(m *member) {
	delete(g.members, m.id)
	for i, id := range g.joinOrder {
		if id == m.id {
			g.joinOrder = append(g.joinOrder[:i], g.joinOrder[i+1:]...)
			break
		}
	}
	if m.instanceID != "" && g.static[m.instanceID] == m.id {
		delete(g.static, m.instanceID)
	}
	stop(m.expiry)
	m.expiry = nil
	if g.leader == m.id {
		g.leader = ""
	}
}

// renameMember gives a static member a new member id.
func (g *group) renameMember(m *member, newID string) {
	delete(g.members, m.id)
	for i, id := range g.joinOrder {
		if id == m.id {
			g.joinOrder[i] = newID
		}
	}
	if g.leader == m.id {
		g.leader = newID
	}
	m.id = newID
	g.members[newID] = m
	g.static[m.instanceID] = newID
}

// maxRebalanceTimeout is the longest rebalance timeout of the members.
func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// supportsProtocols reports whether a member with these protocols could
// join: same protocol type, and at least one protocol every member has.
func (g *group) supportsProtocols(protocolType string, protocols []Protocol) bool {
	if len(protocols) == 0 || protocolType == "" {
		return false
	}
	if len(g.members) == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		if g.allSupport(p.Name) {
			return true
		}
	}
	return false
}

func (g *group) allSupport(name string) bool {
	for _, m := range g.members {
		if !hasProtocol(m.protocols, name) {
			return false
		}
	}
	return true
}

func hasProtocol(ps []Protocol, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}

// selectProtocol picks the protocol by vote: each member votes for its
// most preferred protocol that every member supports; the most votes win,
// ties going to the protocol the oldest member prefers.
func (g *group) selectProtocol() string {
	votes := map[string]int{}
	var order []string
	for _, id := range g.joinOrder {
		m := g.members[id]
		for _, p := range m.protocols {
			if g.allSupport(p.Name) {
				if _, seen := votes[p.Name]; !seen {
					order = append(order, p.Name)
				}
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, name := range order {
		if best == "" || votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

func (c *Coordinator) checkClosedLocked() error {
	switch {
	case c.mu.closed:
		return ErrCoordinatorNotAvailable
	case c.mu.resigned:
		return ErrNotCoordinator
	}
	return nil
}

// Join handles a JoinGroup. The answer arrives on the returned channel,
// at once or when the group's join phase completes.
func (c *Coordinator) Join(req JoinRequest) <-chan JoinResult {
	ch := make(chan JoinResult, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.joinLocked(req, ch); err != nil {
		ch <- JoinResult{Err: err, MemberID: req.MemberID}
		if g := c.mu.groups[req.Group]; g != nil {
			c.maybeForgetLocked(g)
		}
	}
	return ch
}

func (c *Coordinator) joinLocked(req JoinRequest, ch chan JoinResult) error {
	if err := c.checkClosedLocked(); err != nil {
		return err
	}
	if req.Group == "" {
		return ErrInvalidGroupID
	}
	if req.SessionTimeout < c.cfg.MinSessionTimeout || req.SessionTimeout > c.cfg.MaxSessionTimeout {
		return ErrInvalidSessionTimeout
	}
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout // JoinGroup v0 has no rebalance timeout
	}
	size := 0
	for _, p := range req.Protocols {
		size += len(p.Metadata) + len(p.Name)
	}
	if size > c.cfg.MaxMemberMetadata {
		return ErrMemberMetadataTooLarge
	}
	g := c.mu.groups[req.Group]
	if g == nil {
		if req.MemberID != "" {
			return ErrUnknownMember
		}
		g = c.newGroupLocked(req.Group, c.clock.Now())
	}
	if !g.supportsProtocols(req.ProtocolType, req.Protocols) {
		return ErrInconsistentProtocol
	}

	if req.MemberID == "" {
		if req.InstanceID != "" {
			if oldID, ok := g.static[req.InstanceID]; ok {
				return c.staticRejoinLocked(g, g.members[oldID], req, ch)
			}
		}
		if c.cfg.MaxGroupSize > 0 && len(g.members)+len(g.pending) >= c.cfg.MaxGroupSize {
			return ErrGroupFull
		}
		id := newMemberID(req.ClientID)
		if req.InstanceID == "" && req.RequireKnownMemberID {
			// KIP-394: hand out an id and wait for the member to come
			// back with it, so a client that never does leaves no member.
			g.pending[id] = c.clock.AfterFunc(req.SessionTimeout, func() { c.expirePending(g, id) })
			ch <- JoinResult{Err: ErrMemberIDRequired, MemberID: id}
			return nil
		}
		c.addAndJoinLocked(g, newMember(id, req), req.ProtocolType, ch)
		return nil
	}

	if t, ok := g.pending[req.MemberID]; ok {
		t.Stop()
		delete(g.pending, req.MemberID)
		c.addAndJoinLocked(g, newMember(req.MemberID, req), req.ProtocolType, ch)
		return nil
	}
	m, err := g.memberOf(req.MemberID, req.InstanceID)
	if err != nil {
		return err
	}
	switch g.state {
	case PreparingRebalance:
		c.updateMemberLocked(g, m, req, ch)
		c.maybeCompleteJoinLocked(g)
	case CompletingRebalance:
		if sameProtocols(m.protocols, req.Protocols) {
			// A join repeated while the leader assigns: answer with the
			// generation the member is already in.
			ch <- g.joinResult(m, m.id == g.leader)
			return nil
		}
		c.updateMemberLocked(g, m, req, ch)
		c.prepareRebalanceLocked(g, "member "+m.id+" changed its protocols")
	case Stable:
		if m.id != g.leader && sameProtocols(m.protocols, req.Protocols) {
			ch <- g.joinResult(m, false)
			c.heartbeatLocked(g, m)
			return nil
		}
		c.updateMemberLocked(g, m, req, ch)
		c.prepareRebalanceLocked(g, "member "+m.id+" rejoined")
	default:
		return ErrUnknownMember
	}
	return nil
}

func newMember(id string, req JoinRequest) *member {
	return &member{
		id: id, instanceID: req.InstanceID, clientID: req.ClientID, clientHost: req.ClientHost,
		sessionTimeout: req.SessionTimeout, rebalanceTimeout: req.RebalanceTimeout,
		protocols: req.Protocols, isNew: true,
	}
}

// memberOf returns the member a request names. As Kafka does, an instance
// id that belongs to another member id is FENCED_INSTANCE_ID before the
// member id is looked up; a member id whose own instance id differs from the
// one given is fenced too.
func (g *group) memberOf(memberID, instanceID string) (*member, error) {
	if id, ok := g.static[instanceID]; instanceID != "" && ok && id != memberID {
		return nil, ErrFencedInstanceID
	}
	m := g.members[memberID]
	if m == nil {
		return nil, ErrUnknownMember
	}
	if instanceID != "" && m.instanceID != instanceID {
		return nil, ErrFencedInstanceID
	}
	return m, nil
}

func (c *Coordinator) addAndJoinLocked(g *group, m *member, protocolType string, ch chan JoinResult) {
	if len(g.members) == 0 {
		g.protocolType = protocolType
	}
	g.addMember(m)
	m.joinWait = ch
	c.heartbeatLocked(g, m)
	if g.state == PreparingRebalance {
		if g.initialJoin {
			g.newSinceTimer = true
		}
		c.maybeCompleteJoinLocked(g)
		return
	}
	c.prepareRebalanceLocked(g, "member "+m.id+" joined")
}

func (c *Coordinator) updateMemberLocked(g *group, m *member, req JoinRequest, ch chan JoinResult) {
	m.protocols = req.Protocols
	m.sessionTimeout, m.rebalanceTimeout = req.SessionTimeout, req.RebalanceTimeout
	m.clientID, m.clientHost = req.ClientID, req.ClientHost
	if m.joinWait != nil && m.joinWait != ch {
		// A second JoinGroup while the first waits: the first gets the
		// error a superseded request gets, the second waits instead.
		m.answerJoin(JoinResult{Err: ErrRebalanceInProgress, MemberID: m.id})
	}
	m.joinWait = ch
}

// staticRejoinLocked handles a static member coming back without its
// member id (a restarted process): it gets a new id, its predecessor is
// fenced, and if nothing about it changed the group does not rebalance.
func (c *Coordinator) staticRejoinLocked(g *group, m *member, req JoinRequest, ch chan JoinResult) error {
	m.answerJoin(JoinResult{Err: ErrFencedInstanceID, MemberID: m.id})
	m.answerSync(SyncResult{Err: ErrFencedInstanceID})
	g.renameMember(m, newMemberID(req.ClientID))
	m.sessionTimeout, m.rebalanceTimeout = req.SessionTimeout, req.RebalanceTimeout
	m.clientID, m.clientHost = req.ClientID, req.ClientHost
	m.protocols = req.Protocols
	c.heartbeatLocked(g, m)
	// As Kafka decides it: the group need not rebalance if it would still
	// choose the same protocol. The metadata may differ (a restarted
	// cooperative consumer no longer lists what it owned); the assignment
	// stands. A leader that cannot be told to skip assigning (JoinGroup
	// before v9) would compute an assignment nobody uses, so it rebalances.
	keep := g.state == Stable && g.selectProtocol() == g.protocol &&
		(m.id != g.leader || req.SupportsSkipAssignment)
	if keep {
		c.log.Info("static member rejoined without a rebalance", "group", g.id, "instance_id", m.instanceID, "member_id", m.id)
		res := g.joinResult(m, false)
		if m.id == g.leader {
			res = g.joinResult(m, true)
			res.SkipAssignment = true
		}
		ch <- res
		return nil
	}
	m.joinWait = ch
	if g.state == PreparingRebalance {
		c.maybeCompleteJoinLocked(g)
		return nil
	}
	c.prepareRebalanceLocked(g, "static member "+m.instanceID+" rejoined")
	return nil
}

// joinResult is the answer for m in the current generation; the leader's
// carries every member's metadata.
func (g *group) joinResult(m *member, withMembers bool) JoinResult {
	r := JoinResult{
		Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol,
		Leader: g.leader, MemberID: m.id,
	}
	if withMembers {
		for _, id := range g.joinOrder {
			o := g.members[id]
			r.Members = append(r.Members, MemberMetadata{MemberID: o.id, InstanceID: o.instanceID, Metadata: o.metadataFor(g.protocol)})
		}
	}
	return r
}

// prepareRebalanceLocked starts a join phase.
func (c *Coordinator) prepareRebalanceLocked(g *group, reason string) {
	if g.state == CompletingRebalance {
		for _, m := range g.members {
			if m.syncWait != nil {
				m.answerSync(SyncResult{Err: ErrRebalanceInProgress})
				c.heartbeatLocked(g, m) // its session ran on while it waited
			}
		}
	}
	stop(g.syncTimer)
	g.syncTimer = nil
	wasEmpty := g.state == Empty
	g.state = PreparingRebalance
	g.rebalanceSerial++
	serial := g.rebalanceSerial
	stop(g.joinTimer)
	c.log.Info("group rebalancing", "group", g.id, "generation", g.generation, "members", len(g.members), "reason", reason)
	rt := g.maxRebalanceTimeout()
	if wasEmpty && c.cfg.InitialRebalanceDelay > 0 {
		g.initialJoin = true
		g.newSinceTimer = false
		g.joinDeadline = c.clock.Now().Add(rt)
		g.joinTimer = c.clock.AfterFunc(min(c.cfg.InitialRebalanceDelay, rt), func() { c.joinTimerFired(g, serial) })
		return
	}
	g.initialJoin = false
	g.joinTimer = c.clock.AfterFunc(rt, func() { c.joinTimerFired(g, serial) })
	c.maybeCompleteJoinLocked(g)
}

func (c *Coordinator) joinTimerFired(g *group, serial uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed || g.rebalanceSerial != serial || g.state != PreparingRebalance || c.mu.groups[g.id] != g {
		return
	}
	if g.initialJoin && g.newSinceTimer {
		if left := g.joinDeadline.Sub(c.clock.Now()); left > 0 {
			g.newSinceTimer = false
			g.joinTimer = c.clock.AfterFunc(min(c.cfg.InitialRebalanceDelay, left), func() { c.joinTimerFired(g, serial) })
			return
		}
	}
	c.completeJoinLocked(g)
	c.maybeForgetLocked(g)
}

// maybeCompleteJoinLocked completes the join phase once every member has
// rejoined and no member id handed out is still unused. The initial delay
// of a new group is waited out regardless.
func (c *Coordinator) maybeCompleteJoinLocked(g *group) {
	if g.state != PreparingRebalance || g.initialJoin || len(g.pending) > 0 {
		return
	}
	for _, m := range g.members {
		if m.joinWait == nil {
			return
		}
	}
	c.completeJoinLocked(g)
}

// completeJoinLocked ends the join phase: members that did not rejoin are
// removed, the generation advances, and every waiting JoinGroup is
// answered, the leader's with the members.
func (c *Coordinator) completeJoinLocked(g *group) {
	stop(g.joinTimer)
	g.joinTimer = nil
	g.initialJoin = false
	for _, id := range append([]string(nil), g.joinOrder...) {
		if m := g.members[id]; m.joinWait == nil {
			c.log.Info("member removed: did not rejoin within the rebalance timeout", "group", g.id, "member_id", m.id)
			m.answerSync(SyncResult{Err: ErrRebalanceInProgress})
			g.removeMember(m)
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.state = Empty
		g.protocol, g.leader = "", ""
		g.emptySince = c.clock.Now()
		c.log.Info("group is empty", "group", g.id, "generation", g.generation)
		c.storeGroupLocked(g)
		return
	}
	if _, ok := g.members[g.leader]; !ok {
		g.leader = g.joinOrder[0]
	}
	g.protocol = g.selectProtocol()
	g.state = CompletingRebalance
	g.rebalanceSerial++
	serial := g.rebalanceSerial
	for _, id := range g.joinOrder {
		m := g.members[id]
		m.synced, m.isNew = false, false
		m.answerJoin(g.joinResult(m, id == g.leader))
		c.heartbeatLocked(g, m)
	}
	c.log.Info("group join phase complete", "group", g.id, "generation", g.generation, "protocol", g.protocol,
		"leader", g.leader, "members", len(g.members))
	g.syncTimer = c.clock.AfterFunc(g.maxRebalanceTimeout(), func() { c.syncTimerFired(g, serial) })
}

// syncTimerFired: members that never sent SyncGroup in time are removed and
// the group rebalances without them.
func (c *Coordinator) syncTimerFired(g *group, serial uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed || g.rebalanceSerial != serial || g.state != CompletingRebalance || c.mu.groups[g.id] != g {
		return
	}
	for _, id := range append([]string(nil), g.joinOrder...) {
		if m := g.members[id]; !m.synced {
			c.log.Info("member removed: no SyncGroup within the rebalance timeout", "group", g.id, "member_id", m.id)
			g.removeMember(m)
		}
	}
	c.prepareRebalanceLocked(g, "members did not sync")
	c.maybeForgetLocked(g)
}

// heartbeatLocked restarts m's session.
func (c *Coordinator) heartbeatLocked(g *group, m *member) {
	stop(m.expiry)
	m.seq++
	seq := m.seq
	m.expiry = c.clock.AfterFunc(m.sessionTimeout, func() { c.expireMember(g, m, seq) })
}

func (c *Coordinator) expireMember(g *group, m *member, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed || m.seq != seq || g.members[m.id] != m || c.mu.groups[g.id] != g {
		return
	}
	if m.joinWait != nil || m.syncWait != nil {
		// A member waiting on the coordinator is alive.
		c.heartbeatLocked(g, m)
		return
	}
	c.log.Info("member session expired", "group", g.id, "member_id", m.id, "instance_id", m.instanceID,
		"session_timeout", m.sessionTimeout)
	c.removeAndRebalanceLocked(g, m, "session of member "+m.id+" expired")
	c.maybeForgetLocked(g)
}

func (c *Coordinator) expirePending(g *group, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := g.pending[id]; !ok || c.mu.closed || c.mu.groups[g.id] != g {
		return
	}
	delete(g.pending, id)
	c.maybeCompleteJoinLocked(g)
	c.maybeForgetLocked(g)
}

func (c *Coordinator) removeAndRebalanceLocked(g *group, m *member, reason string) {
	m.answerJoin(JoinResult{Err: ErrUnknownMember, MemberID: m.id})
	m.answerSync(SyncResult{Err: ErrUnknownMember})
	g.removeMember(m)
	switch g.state {
	case Stable, CompletingRebalance:
		c.prepareRebalanceLocked(g, reason)
	case PreparingRebalance:
		if len(g.members) == 0 && !g.initialJoin {
			c.completeJoinLocked(g)
			return
		}
		c.maybeCompleteJoinLocked(g)
	}
}

// maybeForgetLocked drops a group with no members, no member ids pending
// and no offsets.
func (c *Coordinator) maybeForgetLocked(g *group) {
	if g.state == Empty && len(g.members) == 0 && len(g.pending) == 0 && len(g.offsets) == 0 && len(g.txnOffsets) == 0 {
		g.stopTimers()
		delete(c.mu.groups, g.id)
		if g.stored {
			// Its metadata goes too, as Kafka removes an empty group
			// whose offsets are gone.
			if _, err := c.store.DeleteGroup(g.id, nil); err != nil {
				c.log.Warn("removing a forgotten group's metadata failed", "group", g.id, "err", err)
			}
		}
	}
}

// Sync handles a SyncGroup. The answer arrives on the returned channel, at
// once or when the leader's SyncGroup arrives.
func (c *Coordinator) Sync(req SyncRequest) <-chan SyncResult {
	ch := make(chan SyncResult, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.syncLocked(req, ch); err != nil {
		ch <- SyncResult{Err: err}
	}
	return ch
}

func (c *Coordinator) syncLocked(req SyncRequest, ch chan SyncResult) error {
	if err := c.checkClosedLocked(); err != nil {
		return err
	}
	g := c.mu.groups[req.Group]
	if g == nil {
		return ErrUnknownMember
	}
	m, err := g.memberOf(req.MemberID, req.InstanceID)
	if err != nil {
		return err
	}
	if req.Generation != g.generation {
		return ErrIllegalGeneration
	}
	if req.ProtocolType != "" && req.ProtocolType != g.protocolType || req.Protocol != "" && req.Protocol != g.protocol {
		return ErrInconsistentProtocol
	}
	switch g.state {
	case PreparingRebalance:
		return ErrRebalanceInProgress
	case Stable:
		c.heartbeatLocked(g, m)
		ch <- SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: m.assignment}
		return nil
	case CompletingRebalance:
		m.synced = true
		m.answerSync(SyncResult{Err: ErrRebalanceInProgress})
		m.syncWait = ch
		c.heartbeatLocked(g, m)
		if m.id != g.leader {
			return nil
		}
		for _, o := range g.members {
			o.assignment = req.Assignments[o.id]
		}
		stop(g.syncTimer)
		g.syncTimer = nil
		g.state = Stable
		for _, o := range g.members {
			if o.syncWait != nil {
				o.answerSync(SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: o.assignment})
				c.heartbeatLocked(g, o) // its session ran on while it waited
			}
		}
		c.log.Info("group stable", "group", g.id, "generation", g.generation, "members", len(g.members))
		c.storeGroupLocked(g)
		return nil
	}
	return ErrUnknownMember
}

// Heartbeat handles a Heartbeat.
func (c *Coordinator) Heartbeat(groupID, memberID, instanceID string, generation int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkClosedLocked(); err != nil {
		return err
	}
	g := c.mu.groups[groupID]
	if g == nil {
		return ErrUnknownMember
	}
	m, err := g.memberOf(memberID, instanceID)
	if err != nil {
		return err
	}
	if generation != g.generation {
		return ErrIllegalGeneration
	}
	c.heartbeatLocked(g, m)
	if g.state == PreparingRebalance {
		return ErrRebalanceInProgress
	}
	return nil
}

// Leave handles a LeaveGroup: one error per member, in order.
func (c *Coordinator) Leave(groupID string, leaving []Leaving) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	errs := make([]error, len(leaving))
	if err := c.checkClosedLocked(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	g := c.mu.groups[groupID]
	for i, l := range leaving {
		if g == nil {
			errs[i] = ErrUnknownMember
			continue
		}
		id := l.MemberID
		if l.InstanceID != "" {
			cur, ok := g.static[l.InstanceID]
			switch {
			case !ok:
				errs[i] = ErrUnknownMember
				continue
			case id != "" && id != cur:
				errs[i] = ErrFencedInstanceID
				continue
			}
			id = cur
		}
		if t, ok := g.pending[id]; ok {
			t.Stop()
			delete(g.pending, id)
			c.maybeCompleteJoinLocked(g)
			continue
		}
		m := g.members[id]
		if m == nil {
			errs[i] = ErrUnknownMember
			continue
		}
		c.log.Info("member left", "group", g.id, "member_id", m.id, "instance_id", m.instanceID)
		c.removeAndRebalanceLocked(g, m, "member "+m.id+" left")
	}
	if g != nil {
		c.maybeForgetLocked(g)
	}
	return errs
}
