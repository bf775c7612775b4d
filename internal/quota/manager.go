package quota

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Manager. Zero fields take the defaults.
type Options struct {
	// Samples and SampleSpan are the window's (Kafka's quota.window.num,
	// 11, and quota.window.size.seconds, 1).
	Samples    int
	SampleSpan time.Duration
	// Idle is how long a measured entity may see no request before its
	// window is dropped (Kafka keeps a quota sensor an hour).
	Idle time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	// Metrics, if not nil, receives the rates and throttle times.
	Metrics *Metrics
}

// Defaults.
const (
	DefaultSamples    = 11
	DefaultSampleSpan = time.Second
	DefaultIdle       = time.Hour
)

func (o Options) withDefaults() Options {
	if o.Samples <= 1 {
		o.Samples = DefaultSamples
	}
	if o.SampleSpan <= 0 {
		o.SampleSpan = DefaultSampleSpan
	}
	if o.Idle <= 0 {
		o.Idle = DefaultIdle
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Manager holds the quotas in force and a window per measured entity and
// key. Its methods are safe for concurrent use.
type Manager struct {
	opts Options
	cfg  atomic.Pointer[Config]

	mu struct {
		sync.Mutex
		windows   map[windowKey]*Window
		lastSweep time.Time
	}
}

type windowKey struct {
	key    string
	entity Entity
}

// NewManager returns a manager with no quotas.
func NewManager(opts Options) *Manager {
	m := &Manager{opts: opts.withDefaults()}
	m.cfg.Store(NewConfig(nil))
	m.mu.windows = map[windowKey]*Window{}
	return m
}

// SetConfig puts quotas in force. Windows are kept: a client's use so far
// counts against its new quota.
func (m *Manager) SetConfig(c *Config) { m.cfg.Store(c) }

// Config returns the quotas in force.
func (m *Manager) Config() *Config { return m.cfg.Load() }

// MaxThrottle is the longest throttle of a key, as Kafka bounds them: a
// request_percentage throttle is at most one sample's span; a byte-rate
// throttle is what the rate needs (at most what throttle_time_ms holds).
func (m *Manager) maxThrottle(key string) time.Duration {
	if key == RequestPercentage {
		return m.opts.SampleSpan
	}
	return math.MaxInt32 * time.Millisecond
}

// MaxValueInWindow is the most a client with quota bound may use at once
// without being throttled whatever it used before: bound over the
// shortest time a rate is measured over (Samples-1 spans). A consumer's
// fetch is capped at it, as Kafka caps it, so that a fetch alone is not
// throttled for more than its protocol bytes.
func (m *Manager) MaxValueInWindow(bound float64) float64 {
	return bound * (time.Duration(m.opts.Samples-1) * m.opts.SampleSpan).Seconds()
}

// Bound returns the quota of key for a connection, and whether one
// applies.
func (m *Manager) Bound(key, user, clientID string) (float64, bool) {
	b, _, ok := m.cfg.Load().Find(key, user, clientID)
	return b, ok
}

// Result is what recording use found.
type Result struct {
	// Throttle is how long the client must wait for its rate to come back
	// under its quota; zero when it is under.
	Throttle time.Duration
	Entity   Entity  // where the use is measured
	Bound    float64 // the quota
	Rate     float64 // the rate, per second, with this use counted
}

// Record adds v to what the connection of user and clientID used of key
// and returns how long it is to be throttled. Without a quota for it
// nothing is recorded and the result is zero.
func (m *Manager) Record(key, user, clientID string, v float64) Result {
	bound, e, ok := m.cfg.Load().Find(key, user, clientID)
	if !ok {
		return Result{}
	}
	now := m.opts.Now()
	k := windowKey{key, e}
	m.mu.Lock()
	w := m.mu.windows[k]
	if w == nil {
		w = NewWindow(m.opts.Samples, m.opts.SampleSpan)
		m.mu.windows[k] = w
	}
	w.Record(now, v)
	res := Result{Entity: e, Bound: bound, Rate: w.Rate(now), Throttle: w.Throttle(now, bound, m.maxThrottle(key))}
	var gone []windowKey
	if now.Sub(m.mu.lastSweep) >= time.Minute {
		gone = m.sweepLocked(now)
	}
	m.mu.Unlock()
	m.opts.Metrics.recorded(key, res)
	m.opts.Metrics.forget(gone)
	return res
}

// Add adds v as Record does, without a throttle: what it adds counts
// toward the throttle of the next Record.
func (m *Manager) Add(key, user, clientID string, v float64) {
	_, e, ok := m.cfg.Load().Find(key, user, clientID)
	if !ok {
		return
	}
	now := m.opts.Now()
	k := windowKey{key, e}
	m.mu.Lock()
	w := m.mu.windows[k]
	if w == nil {
		w = NewWindow(m.opts.Samples, m.opts.SampleSpan)
		m.mu.windows[k] = w
	}
	w.Record(now, v)
	m.mu.Unlock()
}

// sweepLocked drops the windows idle for longer than Idle.
func (m *Manager) sweepLocked(now time.Time) []windowKey {
	m.mu.lastSweep = now
	var gone []windowKey
	for k, w := range m.mu.windows {
		if now.Sub(w.LastRecord()) > m.opts.Idle {
			delete(m.mu.windows, k)
			gone = append(gone, k)
		}
	}
	return gone
}

// Windows returns how many entities are measured, for tests.
func (m *Manager) Windows() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.mu.windows)
}

// Metrics are the quota metrics. A nil *Metrics records nothing.
type Metrics struct {
	rate      *prometheus.GaugeVec   // by key, user and client id
	throttled *prometheus.CounterVec // by key
	seconds   *prometheus.CounterVec // by key
}

// NewMetrics creates the quota metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "runnel_quota_rate",
			Help: "The measured rate of each client quota entity at its last request, by quota key (bytes per second for the byte rates, percent of one thread for request_percentage), user and client id (empty where the entity has no such part)."},
			[]string{"key", "user", "client_id"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runnel_quota_throttled_requests_total",
			Help: "Requests whose client was throttled for going over its quota, by quota key."}, []string{"key"}),
		seconds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runnel_quota_throttle_seconds_total",
			Help: "Throttle time given to clients over their quota, by quota key."}, []string{"key"}),
	}
	reg.MustRegister(m.rate, m.throttled, m.seconds)
	return m
}

func (m *Metrics) recorded(key string, r Result) {
	if m == nil {
		return
	}
	m.rate.WithLabelValues(key, r.Entity.User, r.Entity.ClientID).Set(r.Rate)
	if r.Throttle > 0 {
		m.throttled.WithLabelValues(key).Inc()
		m.seconds.WithLabelValues(key).Add(r.Throttle.Seconds())
	}
}

func (m *Metrics) forget(gone []windowKey) {
	if m == nil {
		return
	}
	for _, k := range gone {
		m.rate.DeleteLabelValues(k.key, k.entity.User, k.entity.ClientID)
	}
}
