package server

import (
	"sync"
	"time"
)

// logLimiter bounds the log lines written about one key (a client's IP
// address, or one kind of event): the first limit lines in a window are
// written, the rest are counted, and when the window ends one summary line
// says how many were suppressed. Metrics are not limited: callers count
// every event and ask the limiter only whether to log it.
type logLimiter struct {
	limit  int
	window time.Duration
	// summary writes the line for the lines suppressed under key.
	summary func(key string, suppressed int, window time.Duration)
	// now and after are the clock; tests replace them.
	now   func() time.Time
	after func(d time.Duration, f func())

	mu struct {
		sync.Mutex
		keys  map[string]*limitWindow
		swept time.Time // the last forgetLocked
	}
}

// limitWindow is one key's current window.
type limitWindow struct {
	start      time.Time
	logged     int
	suppressed int // a summary is due at the window's end while > 0
}

// maxLimitKeys bounds the keys remembered; past it, keys whose window is
// over are forgotten, and if none is, every new key shares one window.
const maxLimitKeys = 4096

// overflowKey is the window shared by keys past maxLimitKeys.
const overflowKey = "other addresses"

func newLogLimiter(limit int, window time.Duration, summary func(key string, suppressed int, window time.Duration)) *logLimiter {
	l := &logLimiter{limit: limit, window: window, summary: summary, now: time.Now,
		after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
	l.mu.keys = map[string]*limitWindow{}
	return l
}

// allow reports whether a line about key may be written now.
func (l *logLimiter) allow(key string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.mu.keys[key]
	if w != nil && w.suppressed == 0 && now.Sub(w.start) >= l.window {
		w = nil // over, and nothing to report: start again
	}
	if w == nil {
		if len(l.mu.keys) >= maxLimitKeys && now.Sub(l.mu.swept) >= time.Second {
			l.forgetLocked(now)
		}
		if len(l.mu.keys) >= maxLimitKeys {
			key = overflowKey
			w = l.mu.keys[key]
		}
	}
	if w == nil {
		w = &limitWindow{start: now}
		l.mu.keys[key] = w
	}
	if w.logged < l.limit {
		w.logged++
		return true
	}
	w.suppressed++
	if w.suppressed == 1 {
		l.after(w.start.Add(l.window).Sub(now), func() { l.flush(key, w) })
	}
	return false
}

// flush ends w's window and writes its summary.
func (l *logLimiter) flush(key string, w *limitWindow) {
	l.mu.Lock()
	n := w.suppressed
	if l.mu.keys[key] == w {
		delete(l.mu.keys, key)
	}
	l.mu.Unlock()
	l.summary(key, n, l.window)
}

// forgetLocked drops the keys whose window is over and has no summary due.
func (l *logLimiter) forgetLocked(now time.Time) {
	l.mu.swept = now
	for k, w := range l.mu.keys {
		if w.suppressed == 0 && now.Sub(w.start) >= l.window {
			delete(l.mu.keys, k)
		}
	}
}
