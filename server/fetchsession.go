package server

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/consumer"
)

// Incremental fetch sessions (KIP-227). A client that fetches the same
// partitions again and again sends them once, in a full fetch (session id
// 0, epoch 0); the broker keeps them, with each one's fetch position, in a
// session and answers with its id. Each later fetch is incremental: it
// names the session and the epoch the client expects (1, 2, …), carries only
// the partitions whose position or limits changed, new partitions, and the
// partitions to forget; the answer lists only the partitions with something
// to say: new records, a high watermark, last stable offset or log start
// that moved, an error, a preferred read replica, a diverging epoch or a new
// leader.
//
// The rules are Kafka's:
//   - epoch 0 (full) closes the named session, if any, and opens a new one
//     when a slot is free or one may be evicted; epoch -1 (full) closes it
//     and opens none (the answer's session id is 0);
//   - any other epoch is incremental: a session this broker does not hold
//     is FETCH_SESSION_ID_NOT_FOUND, an epoch other than the session's
//     INVALID_FETCH_SESSION_EPOCH, and a session opened with topic ids (v13
//     and later) used without them, or the other way round,
//     FETCH_SESSION_TOPIC_ID_ERROR; a session left with no partitions is
//     closed;
//   - the cache holds at most MaxFetchSessions sessions. Opening one when
//     it is full evicts the least recently used session if it has not been
//     used for fetchSessionEvictAfter; otherwise the least valuable session
//     that is open to eviction, if it is worth less than the new one.
//     Sessions of followers (privileged) are worth more than consumers',
//     then larger sessions more than smaller; a session younger than
//     fetchSessionEvictAfter may be evicted only by a follower's, and only
//     if it is a consumer's.
//
// runnel's choices where Kafka leaves room: a session answers only the
// principal that opened it (to any other it does not exist, so another
// client cannot read or close it by guessing its id); a full fetch of no
// partitions opens no session; whether a session is open to eviction is
// judged at the time of the eviction, not of its last use.
//
// Locks: fetchSessionCache.mu (the sessions by id) may be held while taking
// a fetchSession.mu, never the other way round. Both guard memory only and
// are held for work linear in the partitions of one request or session;
// partition reads and waits run with neither held.

// fetchSessionEvictAfter is how long a session is safe from eviction after
// its creation and its last use: Kafka's
// min.incremental.fetch.session.eviction.ms.
const fetchSessionEvictAfter = 2 * time.Minute

// defaultMaxFetchSessions is Kafka's max.incremental.fetch.session.cache.slots.
const defaultMaxFetchSessions = 1000

// sessionKey names a partition in a session: by topic id in a session
// opened at v13 or later, by topic name before.
type sessionKey struct {
	topic string
	id    cluster.TopicID
	part  int32
}

// sessionPartition is one partition of a session: what the client last
// asked of it, and what the broker last told it, in session order.
type sessionPartition struct {
	key sessionKey
	// As last requested.
	fetchOffset      int64
	maxBytes         int32
	leaderEpoch      int32
	lastFetchedEpoch int32
	logStartOffset   int64
	// As last answered; a high watermark of -1 sends the partition again.
	highWatermark  int64
	lastStable     int64
	leaderLogStart int64

	prev, next *sessionPartition
}

// fetchSession is one client's session.
type fetchSession struct {
	id         int32
	privileged bool // a follower's
	principal  string
	topicIDs   bool // opened at v13 or later
	created    time.Time

	// Read by the cache's eviction without the session's lock.
	lastUsed atomic.Int64 // unix nanoseconds
	size     atomic.Int32

	mu struct {
		sync.Mutex
		closed bool  // evicted or closed: the id no longer finds it
		epoch  int32 // the epoch the next incremental fetch must carry
		parts  map[sessionKey]*sessionPartition
		// head and tail of the partitions in session order.
		head, tail *sessionPartition
	}
}

func (fs *fetchSession) pushLocked(sp *sessionPartition) {
	sp.prev, sp.next = fs.mu.tail, nil
	if fs.mu.tail != nil {
		fs.mu.tail.next = sp
	} else {
		fs.mu.head = sp
	}
	fs.mu.tail = sp
}

func (fs *fetchSession) unlinkLocked(sp *sessionPartition) {
	if sp.prev != nil {
		sp.prev.next = sp.next
	} else {
		fs.mu.head = sp.next
	}
	if sp.next != nil {
		sp.next.prev = sp.prev
	} else {
		fs.mu.tail = sp.prev
	}
	sp.prev, sp.next = nil, nil
}

// nextSessionEpoch is the epoch after e, wrapping to 1 past the largest.
func nextSessionEpoch(e int32) int32 {
	if e == math.MaxInt32 {
		return 1
	}
	return e + 1
}

// fetchSessionCache holds the open sessions of one broker.
type fetchSessionCache struct {
	max int
	now func() time.Time
	m   *fetchSessionMetrics

	mu struct {
		sync.Mutex
		sessions map[int32]*fetchSession
	}
}

func newFetchSessionCache(max int, now func() time.Time, m *fetchSessionMetrics) *fetchSessionCache {
	c := &fetchSessionCache{max: max, now: now, m: m}
	c.mu.sessions = map[int32]*fetchSession{}
	return c
}

// len returns the number of open sessions.
func (c *fetchSessionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mu.sessions)
}

func (c *fetchSessionCache) get(id int32) *fetchSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.sessions[id]
}

// remove closes the session if it is still the one cached under its id.
func (c *fetchSessionCache) remove(fs *fetchSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(fs)
}

func (c *fetchSessionCache) removeLocked(fs *fetchSession) {
	if c.mu.sessions[fs.id] != fs {
		return
	}
	delete(c.mu.sessions, fs.id)
	fs.mu.Lock()
	fs.mu.closed = true
	c.m.closed(fs)
	fs.mu.Unlock()
}

// add caches a new session, evicting one if the cache is full and the
// rules allow, and gives it an id. It returns false when there is no room.
func (c *fetchSessionCache) add(fs *fetchSession) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max <= 0 {
		return false
	}
	if len(c.mu.sessions) >= c.max && !c.evictLocked(fs.privileged, fs.size.Load()) {
		return false
	}
	for {
		id := rand.Int32N(math.MaxInt32) + 1 // 1 to MaxInt32; 0 means none
		if _, used := c.mu.sessions[id]; !used {
			fs.id = id
			break
		}
	}
	c.mu.sessions[fs.id] = fs
	c.m.opened(fs)
	return true
}

// evictLocked makes room for a session of the given kind and size, as
// Kafka's cache does: the least recently used session goes if it is stale;
// otherwise the least valuable session open to eviction goes if the new
// one is worth more. It returns whether a session was evicted.
func (c *fetchSessionCache) evictLocked(privileged bool, size int32) bool {
	now := c.now()
	var lru, least *fetchSession
	for _, fs := range c.mu.sessions {
		if lru == nil || fs.lastUsed.Load() < lru.lastUsed.Load() {
			lru = fs
		}
		// Open to everyone once old enough; to a follower's session also
		// while young, if a consumer's.
		old := now.Sub(fs.created) > fetchSessionEvictAfter
		if !old && !(privileged && !fs.privileged) {
			continue
		}
		if least == nil || fs.worthLess(least) {
			least = fs
		}
	}
	if lru == nil {
		return false
	}
	victim := (*fetchSession)(nil)
	if now.UnixNano()-lru.lastUsed.Load() > int64(fetchSessionEvictAfter) {
		victim = lru
	} else if least != nil && worthMore(privileged, size, least) {
		victim = least
	}
	if victim == nil {
		return false
	}
	c.removeLocked(victim)
	c.m.evicted()
	return true
}

// worthLess orders sessions by value: consumers' before followers', then
// by size, then by id (Kafka's EvictableKey).
func (fs *fetchSession) worthLess(o *fetchSession) bool {
	if fs.privileged != o.privileged {
		return !fs.privileged
	}
	if a, b := fs.size.Load(), o.size.Load(); a != b {
		return a < b
	}
	return fs.id < o.id
}

// worthMore says whether a new session (which has no id yet, so loses
// ties) is worth more than fs.
func worthMore(privileged bool, size int32, fs *fetchSession) bool {
	if privileged != fs.privileged {
		return privileged
	}
	return size > fs.size.Load()
}

// fetchSessionKind is how a fetch uses sessions.
type fetchSessionKind uint8

const (
	sessionless fetchSessionKind = iota // answered in full, no session kept
	sessionFull                         // answered in full, a session opened if there is room
	sessionIncremental
)

// sessionFetch is one fetch's use of the sessions: begun before the
// partitions are read, finished on the response.
type sessionFetch struct {
	kind    fetchSessionKind
	errCode int16 // a session error: the whole fetch is refused with it
	session *fetchSession
	epoch   int32 // the session's epoch this fetch set, checked at finish
	// parts are the session's partitions at the fetch's start, in the
	// order the fetch reads them (incremental only).
	parts []*sessionPartition
	// replace says the fetch reads topics rather than the request's own:
	// for an incremental fetch, every partition of the session at the
	// positions it holds.
	replace bool
	topics  []kmsg.FetchRequestTopic
}

// fetchReplicaID is the broker id a follower's fetch names, or -1 from a
// consumer.
func fetchReplicaID(h requestHeader, r *kmsg.FetchRequest) int32 {
	if h.Version >= 15 {
		return r.ReplicaState.ID
	}
	return r.ReplicaID
}

// begin decides how the fetch uses sessions and, for an
// incremental one, applies the request to its session.
func (c *fetchSessionCache) begin(id identity, h requestHeader, r *kmsg.FetchRequest) sessionFetch {
	if h.Version < 7 {
		return sessionFetch{kind: sessionless}
	}
	if r.SessionEpoch == 0 || r.SessionEpoch == -1 {
		if r.SessionID != 0 {
			if fs := c.get(r.SessionID); fs != nil && fs.principal == id.principal {
				c.remove(fs)
			}
		}
		c.m.request(sessionKindFull)
		if r.SessionEpoch == -1 {
			return sessionFetch{kind: sessionless}
		}
		return sessionFetch{kind: sessionFull}
	}
	c.m.request(sessionKindIncremental)
	fs := c.get(r.SessionID)
	if fs == nil || fs.principal != id.principal {
		return sessionFetch{errCode: kerr.FetchSessionIDNotFound.Code}
	}
	sf, emptied := c.beginIncremental(fs, h, r)
	if emptied {
		c.remove(fs)
	}
	return sf
}

// beginIncremental applies an incremental fetch to its session. It
// returns whether the fetch left the session empty, to be closed.
func (c *fetchSessionCache) beginIncremental(fs *fetchSession, h requestHeader, r *kmsg.FetchRequest) (sessionFetch, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	switch {
	case fs.mu.closed:
		return sessionFetch{errCode: kerr.FetchSessionIDNotFound.Code}, false
	case fs.mu.epoch != r.SessionEpoch:
		return sessionFetch{errCode: kerr.InvalidFetchSessionEpoch.Code}, false
	case fs.topicIDs != (h.Version >= 13):
		return sessionFetch{errCode: kerr.FetchSessionTopicIDError.Code}, false
	}
	fs.updateLocked(r, fs.topicIDs)
	size := int32(len(fs.mu.parts))
	c.m.resized(fs.size.Load(), size)
	fs.size.Store(size)
	if size == 0 {
		// Everything forgotten: the session ends and this fetch is
		// answered, empty, without one.
		return sessionFetch{kind: sessionless, replace: true}, true
	}
	fs.mu.epoch = nextSessionEpoch(fs.mu.epoch)
	fs.lastUsed.Store(c.now().UnixNano())
	sf := sessionFetch{kind: sessionIncremental, replace: true, session: fs, epoch: fs.mu.epoch}
	sf.parts = make([]*sessionPartition, 0, size)
	// One backing array for every topic's partitions, cut per topic.
	all := make([]kmsg.FetchRequestTopicPartition, 0, size)
	from := 0
	for sp := fs.mu.head; sp != nil; sp = sp.next {
		sf.parts = append(sf.parts, sp)
		n := len(sf.topics)
		if n == 0 || sf.topics[n-1].Topic != sp.key.topic || sf.topics[n-1].TopicID != sp.key.id {
			if n > 0 {
				sf.topics[n-1].Partitions = all[from:len(all):len(all)]
				from = len(all)
			}
			sf.topics = append(sf.topics, kmsg.FetchRequestTopic{Topic: sp.key.topic, TopicID: sp.key.id})
		}
		all = append(all, kmsg.FetchRequestTopicPartition{
			Partition: sp.key.part, CurrentLeaderEpoch: sp.leaderEpoch, FetchOffset: sp.fetchOffset,
			LastFetchedEpoch: sp.lastFetchedEpoch, LogStartOffset: sp.logStartOffset, PartitionMaxBytes: sp.maxBytes,
		})
	}
	sf.topics[len(sf.topics)-1].Partitions = all[from:len(all):len(all)]
	return sf, false
}

// updateLocked applies an incremental request: its partitions are added
// or updated, then its forgotten ones removed, as Kafka does.
func (fs *fetchSession) updateLocked(r *kmsg.FetchRequest, topicIDs bool) {
	key := func(topic string, id cluster.TopicID, part int32) sessionKey {
		if topicIDs {
			return sessionKey{id: id, part: part}
		}
		return sessionKey{topic: topic, part: part}
	}
	for ti := range r.Topics {
		rt := &r.Topics[ti]
		for pi := range rt.Partitions {
			rp := &rt.Partitions[pi]
			k := key(rt.Topic, rt.TopicID, rp.Partition)
			sp := fs.mu.parts[k]
			if sp == nil {
				sp = &sessionPartition{key: k, highWatermark: -1, lastStable: -1, leaderLogStart: -1}
				fs.mu.parts[k] = sp
				fs.pushLocked(sp)
			}
			sp.setRequest(rp)
		}
	}
	for ti := range r.ForgottenTopics {
		ft := &r.ForgottenTopics[ti]
		for _, p := range ft.Partitions {
			k := key(ft.Topic, ft.TopicID, p)
			if sp := fs.mu.parts[k]; sp != nil {
				delete(fs.mu.parts, k)
				fs.unlinkLocked(sp)
			}
		}
	}
}

func (sp *sessionPartition) setRequest(rp *kmsg.FetchRequestTopicPartition) {
	sp.fetchOffset, sp.maxBytes, sp.leaderEpoch = rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch
	sp.lastFetchedEpoch, sp.logStartOffset = rp.LastFetchedEpoch, rp.LogStartOffset
}

// respond records what the answer tells of the partition and says whether
// an incremental answer must carry it.
func (sp *sessionPartition) respond(pd *consumer.PartitionData) bool {
	must := pd.Records.Length > 0 || pd.PreferredReadReplica >= 0 || pd.DivergingEpoch != nil || pd.CurrentLeader != nil
	if sp.highWatermark != pd.HighWatermark {
		must, sp.highWatermark = true, pd.HighWatermark
	}
	if sp.lastStable != pd.LastStableOffset {
		must, sp.lastStable = true, pd.LastStableOffset
	}
	if sp.leaderLogStart != pd.LogStartOffset {
		must, sp.leaderLogStart = true, pd.LogStartOffset
	}
	if pd.ErrorCode != 0 {
		// Sent every time until it clears, and once more when it does.
		must, sp.highWatermark = true, -1
	}
	return must
}

// finish completes the fetch's use of sessions on its response: a full
// fetch opens its session, an incremental one keeps only the partitions
// with something to say. targets are the partitions read, in resp's order.
func (c *fetchSessionCache) finish(sf *sessionFetch, id identity, h requestHeader, r *kmsg.FetchRequest,
	targets []fetchTarget, resp *consumer.Response) {
	switch sf.kind {
	case sessionFull:
		if len(targets) == 0 {
			return
		}
		fs := &fetchSession{privileged: fetchReplicaID(h, r) >= 0, principal: id.principal, topicIDs: h.Version >= 13,
			created: c.now()}
		fs.mu.parts = make(map[sessionKey]*sessionPartition, len(targets))
		fs.mu.epoch = 1
		i := 0
		for ti := range resp.Topics {
			for pi := range resp.Topics[ti].Partitions {
				t := &targets[i]
				i++
				k := sessionKey{topic: t.topic, part: t.part}
				if fs.topicIDs {
					k = sessionKey{id: t.id, part: t.part}
				}
				sp := &sessionPartition{key: k}
				sp.setRequest(t.req)
				sp.respond(&resp.Topics[ti].Partitions[pi])
				fs.mu.parts[k] = sp
				fs.pushLocked(sp)
			}
		}
		fs.lastUsed.Store(fs.created.UnixNano())
		fs.size.Store(int32(len(fs.mu.parts)))
		if c.add(fs) {
			resp.SessionID = fs.id
		}
	case sessionIncremental:
		fs := sf.session
		fs.mu.Lock()
		defer fs.mu.Unlock()
		if fs.mu.closed || fs.mu.epoch != sf.epoch {
			// Evicted, or used again by a fetch that overtook this one.
			releaseRegions(resp)
			resp.Topics = resp.Topics[:0]
			resp.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
			return
		}
		resp.SessionID = fs.id
		i := 0
		kept := resp.Topics[:0]
		for ti := range resp.Topics {
			td := resp.Topics[ti]
			parts := td.Partitions[:0]
			for pi := range td.Partitions {
				pd := td.Partitions[pi]
				sp := sf.parts[i]
				i++
				if !sp.respond(&pd) {
					pd.Records.Release()
					continue
				}
				parts = append(parts, pd)
				if pd.Records.Length > 0 && fs.mu.parts[sp.key] == sp {
					// Partitions that sent records go to the back, so
					// that under the byte limit the others get a turn.
					fs.unlinkLocked(sp)
					fs.pushLocked(sp)
				}
			}
			if len(parts) > 0 {
				td.Partitions = parts
				kept = append(kept, td)
			}
		}
		resp.Topics = kept
	}
}

// fetchSessionMetrics are the session cache's metrics. A nil
// *fetchSessionMetrics records nothing.
type fetchSessionMetrics struct {
	open       prometheus.Gauge
	partitions prometheus.Gauge
	evictions  prometheus.Counter
	requests   *prometheus.CounterVec // by kind: full or incremental
}

const (
	sessionKindFull        = "full"
	sessionKindIncremental = "incremental"
)

func newFetchSessionMetrics(reg prometheus.Registerer) *fetchSessionMetrics {
	m := &fetchSessionMetrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runnel_fetch_sessions",
			Help: "Incremental fetch sessions open (KIP-227)."}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runnel_fetch_session_partitions",
			Help: "Partitions held by the open fetch sessions, as of each session's last fetch."}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_fetch_session_evictions_total",
			Help: "Fetch sessions evicted to make room for new ones."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runnel_fetch_session_requests_total",
			Help: "Fetch requests at version 7 and later, by kind: full (naming every partition) or incremental (naming a session)."},
			[]string{"kind"}),
	}
	reg.MustRegister(m.open, m.partitions, m.evictions, m.requests)
	return m
}

func (m *fetchSessionMetrics) opened(fs *fetchSession) {
	if m != nil {
		m.open.Inc()
		m.partitions.Add(float64(fs.size.Load()))
	}
}

func (m *fetchSessionMetrics) closed(fs *fetchSession) {
	if m != nil {
		m.open.Dec()
		m.partitions.Sub(float64(fs.size.Load()))
	}
}

func (m *fetchSessionMetrics) resized(from, to int32) {
	if m != nil && from != to {
		m.partitions.Add(float64(to - from))
	}
}

func (m *fetchSessionMetrics) evicted() {
	if m != nil {
		m.evictions.Inc()
	}
}

func (m *fetchSessionMetrics) request(kind string) {
	if m != nil {
		m.requests.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) fetchSessions() *fetchSessionMetrics {
	if m == nil {
		return nil
	}
	return m.sessions
}
