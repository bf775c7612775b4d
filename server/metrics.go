package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the server's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	requests    *prometheus.CounterVec   // by api
	latency     *prometheus.HistogramVec // by api
	errors      *prometheus.CounterVec   // by api and Kafka error code
	badRequests *prometheus.CounterVec   // closed connections, by what was bad
	bytesInC    prometheus.Counter
	bytesOutC   prometheus.Counter
	conns       prometheus.Gauge
	rejected    prometheus.Counter
	acceptErrs  prometheus.Counter
	writeTO     prometheus.Counter
	queued      prometheus.Gauge   // request bytes reserved from the budget
	queuedWaits prometheus.Counter // reservations that had to wait
	tlsFailed   prometheus.Counter
	saslAuths   *prometheus.CounterVec // by mechanism and result
	saslReauths prometheus.Counter
	saslExpires prometheus.Counter
	denied      *prometheus.CounterVec // by api, resource type and operation
	sessions    *fetchSessionMetrics
	follower    *followerFetchMetrics
}

// NewMetrics creates the server metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runnel_requests_total", Help: "Kafka requests answered, by API."}, []string{"api"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "runnel_request_duration_seconds", Help: "Time from a request's answer being due to its last byte written, by API (includes durability waits and long-polls).",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18)}, []string{"api"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runnel_request_errors_total", Help: "Kafka error codes returned, by API and code."}, []string{"api", "code"}),
		badRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runnel_bad_requests_total", Help: "Connections closed for undecodable requests, by what was wrong."}, []string{"reason"}),
		bytesInC:  prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_bytes_in_total", Help: "Request bytes read."}),
		bytesOutC: prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_bytes_out_total", Help: "Response bytes written."}),
		conns:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "runnel_connections", Help: "Open client connections."}),
		rejected:  prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_connections_rejected_total", Help: "Connections closed at once because of the connection limit."}),
	}
	m.acceptErrs = prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_accept_errors_total",
		Help: "Failed accepts of client connections (out of file descriptors, memory, aborted handshakes); the listener backs off and keeps serving."})
	m.writeTO = prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_write_timeouts_total",
		Help: "Connections closed because a response could not be written within the write timeout (the client stopped reading)."})
	m.queued = prometheus.NewGauge(prometheus.GaugeOpts{Name: "runnel_queued_request_bytes",
		Help: "Bytes of request frames being read or handled, reserved from the queued request bytes budget."})
	m.queuedWaits = prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_queued_request_waits_total",
		Help: "Requests whose reading waited for room in the queued request bytes budget."})
	m.tlsFailed = prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_tls_handshake_failures_total",
		Help: "Connections to an SSL listener closed because the TLS handshake failed (a plaintext client, a missing or untrusted client certificate, a timeout)."})
	m.saslAuths = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runnel_sasl_authentications_total",
		Help: "SASL authentications on SASL listeners, by mechanism and result (success; failure: wrong credentials, an unknown user, a malformed or out-of-order SASL message)."},
		[]string{"mechanism", "result"})
	m.saslReauths = prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_sasl_reauthentications_total",
		Help: "SASL sessions renewed on their connection (KIP-368)."})
	m.saslExpires = prometheus.NewCounter(prometheus.CounterOpts{Name: "runnel_sasl_expired_sessions_total",
		Help: "Connections closed for a request after their SASL session expired without a re-authentication (KIP-368)."})
	m.denied = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runnel_authorization_denied_total",
		Help: "Operations the authorizer denied, by API, resource type and operation."}, []string{"api", "resource", "operation"})
	m.sessions = newFetchSessionMetrics(reg)
	m.follower = newFollowerFetchMetrics(reg)
	reg.MustRegister(m.tlsFailed, m.saslAuths, m.saslReauths, m.saslExpires, m.denied)
	reg.MustRegister(m.requests, m.latency, m.errors, m.badRequests, m.bytesInC, m.bytesOutC, m.conns, m.rejected,
		m.acceptErrs, m.writeTO, m.queued, m.queuedWaits)
	return m
}

func (m *Metrics) request(api string, d time.Duration) {
	if m != nil {
		m.requests.WithLabelValues(api).Inc()
		m.latency.WithLabelValues(api).Observe(d.Seconds())
	}
}

func (m *Metrics) errorCode(api string, code int16) {
	if m != nil && code != 0 {
		m.errors.WithLabelValues(api, strconv.Itoa(int(code))).Inc()
	}
}

func (m *Metrics) badRequest(reason string) {
	if m != nil {
		m.badRequests.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) bytesIn(n int) {
	if m != nil {
		m.bytesInC.Add(float64(n))
	}
}

func (m *Metrics) bytesOut(n int64) {
	if m != nil {
		m.bytesOutC.Add(float64(n))
	}
}

func (m *Metrics) connOpened() {
	if m != nil {
		m.conns.Inc()
	}
}

func (m *Metrics) connClosed() {
	if m != nil {
		m.conns.Dec()
	}
}

func (m *Metrics) connRejected() {
	if m != nil {
		m.rejected.Inc()
	}
}

func (m *Metrics) acceptError() {
	if m != nil {
		m.acceptErrs.Inc()
	}
}

func (m *Metrics) writeTimeout() {
	if m != nil {
		m.writeTO.Inc()
	}
}

func (m *Metrics) queuedBytes(n int64) {
	if m != nil {
		m.queued.Add(float64(n))
	}
}

func (m *Metrics) queuedWait() {
	if m != nil {
		m.queuedWaits.Inc()
	}
}

func (m *Metrics) tlsHandshakeFailed() {
	if m != nil {
		m.tlsFailed.Inc()
	}
}

func (m *Metrics) saslAuthentication(mechanism string, ok bool) {
	if m != nil {
		if mechanism == "" {
			mechanism = "none"
		}
		result := "failure"
		if ok {
			result = "success"
		}
		m.saslAuths.WithLabelValues(mechanism, result).Inc()
	}
}

func (m *Metrics) saslReauthentication() {
	if m != nil {
		m.saslReauths.Inc()
	}
}

func (m *Metrics) saslExpired() {
	if m != nil {
		m.saslExpires.Inc()
	}
}

func (m *Metrics) authorizationDenied(api, resource, op string) {
	if m != nil {
		m.denied.WithLabelValues(api, resource, op).Inc()
	}
}
