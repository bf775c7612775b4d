package quota

import "time"

// Window measures a rate as Kafka's quota sensors do: the sum of what was
// recorded in the last Samples samples, each Span long, over the time they
// cover. A sample starts at the first record after the one before it
// ended, so samples are not aligned to a clock; one whose start is more
// than Samples spans ago no longer counts. The time a rate is measured
// over is from the start of the oldest sample that counts to now, but never
// less than Samples-1 spans, so that a client's first burst is measured
// over the whole window rather than over the moment it took.
//
// A Window is not safe for concurrent use.
type Window struct {
	span    time.Duration
	samples []sample
	cur     int // the sample records go to
}

type sample struct {
	start time.Time // zero: never started
	value float64
}

// NewWindow returns a window of n samples of span each (n at least 2).
func NewWindow(n int, span time.Duration) *Window {
	return &Window{span: span, samples: make([]sample, max(n, 2))}
}

// Record adds v at now.
func (w *Window) Record(now time.Time, v float64) {
	s := &w.samples[w.cur]
	if s.start.IsZero() || now.Sub(s.start) >= w.span {
		w.cur = (w.cur + 1) % len(w.samples)
		s = &w.samples[w.cur]
		s.start, s.value = now, 0
	}
	s.value += v
}

// expired reports whether a sample no longer counts at now.
func (w *Window) expired(s sample, now time.Time) bool {
	return s.start.IsZero() || now.Sub(s.start) >= time.Duration(len(w.samples))*w.span
}

// size is the time the rate at now is measured over.
func (w *Window) size(now time.Time) time.Duration {
	oldest := now
	for _, s := range w.samples {
		if !w.expired(s, now) && s.start.Before(oldest) {
			oldest = s.start
		}
	}
	elapsed := now.Sub(oldest)
	if least := time.Duration(len(w.samples)-1) * w.span; elapsed < least {
		elapsed = least
	}
	return elapsed
}

// total is what the samples that count at now hold.
func (w *Window) total(now time.Time) float64 {
	var t float64
	for _, s := range w.samples {
		if !w.expired(s, now) {
			t += s.value
		}
	}
	return t
}

// Rate returns the rate at now, per second.
func (w *Window) Rate(now time.Time) float64 {
	return w.total(now) / w.size(now).Seconds()
}

// Throttle returns how long the client must wait so that its rate comes
// back to bound (Kafka's: the excess over the bound, as a fraction of the
// bound, times the time measured over), at most limit; zero when the rate
// is within the bound.
func (w *Window) Throttle(now time.Time, bound float64, limit time.Duration) time.Duration {
	size := w.size(now)
	rate := w.total(now) / size.Seconds()
	if rate <= bound {
		return 0
	}
	d := (rate - bound) / bound * float64(size)
	if d >= float64(limit) {
		return limit
	}
	return time.Duration(d)
}

// LastRecord returns when the window last saw a record (zero: never).
func (w *Window) LastRecord() time.Time { return w.samples[w.cur].start }
