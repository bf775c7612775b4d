package quota

import (
	"errors"
	"math"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

// TestWindowRateAndThrottle: the rate is the samples' total over at least
// Samples-1 spans; the throttle brings the rate back to the bound; old
// samples stop counting.
func TestWindowRateAndThrottle(t *testing.T) {
	w := NewWindow(11, time.Second)
	w.Record(t0, 1000)
	if got := w.Rate(t0); got != 100 { // 1000 over the 10 s floor
		t.Fatalf("rate after the first record: %v, want 100", got)
	}
	if got := w.Throttle(t0, 100, time.Hour); got != 0 {
		t.Fatalf("throttle at the bound: %v", got)
	}
	d := w.Throttle(t0, 50, time.Hour)
	if d != 10*time.Second {
		t.Fatalf("throttle at twice the bound: %v, want 10s", d)
	}
	// Past the 10 s floor the time measured over grows: waiting the
	// throttle from there brings the rate to the bound.
	at15 := t0.Add(15 * time.Second)
	w15 := NewWindow(11, time.Second)
	w15.Record(t0.Add(5*time.Second), 500)
	w15.Record(at15, 1000) // 1500 over 10 s: 150/s
	d15 := w15.Throttle(at15, 100, time.Hour)
	if d15 != 5*time.Second {
		t.Fatalf("throttle at 1.5 times the bound: %v, want 5s", d15)
	}
	if got := w15.Rate(at15.Add(d15)); math.Abs(got-100) > 1e-9 {
		t.Fatalf("rate after the throttle: %v, want 100", got)
	}
	// Samples: a record within a span joins the sample, one after it
	// starts the next.
	w.Record(t0.Add(500*time.Millisecond), 100)
	w.Record(t0.Add(1500*time.Millisecond), 100)
	if got := w.total(t0.Add(1500 * time.Millisecond)); got != 1200 {
		t.Fatalf("total: %v", got)
	}
	// The first sample (started at t0, holding 1100) stops counting 11
	// spans after it started.
	at := t0.Add(11 * time.Second)
	if got := w.total(at); got != 100 {
		t.Fatalf("total once the first sample expired: %v, want 100", got)
	}
	// Measured over the time since the oldest sample that counts, at
	// least 10 s.
	if got := w.size(at); got != 10*time.Second {
		t.Fatalf("size: %v", got)
	}
	if got := w.size(t0.Add(12 * time.Second)); got != 10500*time.Millisecond {
		t.Fatalf("size past the floor: %v", got)
	}
	// Far over the bound: at most the limit.
	w2 := NewWindow(11, time.Second)
	w2.Record(t0, 1e12)
	if got := w2.Throttle(t0, 1, time.Second); got != time.Second {
		t.Fatalf("capped throttle: %v", got)
	}
	// Empty: rate zero, no throttle.
	if got := NewWindow(11, time.Second).Throttle(t0, 1, time.Hour); got != 0 {
		t.Fatalf("empty window throttles %v", got)
	}
}

// TestWindowSteadyRate: a client recording as fast as its throttle lets
// it moves, over a long run, the bound's worth per second.
func TestWindowSteadyRate(t *testing.T) {
	const bound = 1000.0
	w := NewWindow(11, time.Second)
	now := t0
	var total float64
	for now.Sub(t0) < 120*time.Second {
		w.Record(now, 4000)
		total += 4000
		now = now.Add(w.Throttle(now, bound, time.Hour) + time.Millisecond)
	}
	rate := total / now.Sub(t0).Seconds()
	if rate > bound*1.15 || rate < bound*0.85 {
		t.Fatalf("steady rate %v, quota %v", rate, bound)
	}
}

func name(s string) *string { return &s }

func TestParseEntity(t *testing.T) {
	for _, tc := range []struct {
		parts []Part
		want  Entity
		err   bool
	}{
		{[]Part{{TypeUser, name("alice")}}, Entity{User: "alice", HasUser: true}, false},
		{[]Part{{TypeClientID, nil}, {TypeUser, name("a")}}, Entity{User: "a", HasUser: true, HasClientID: true}, false},
		{[]Part{{TypeClientID, name("c")}}, Entity{ClientID: "c", HasClientID: true}, false},
		{nil, Entity{}, true},
		{[]Part{{TypeUser, name("a")}, {TypeUser, name("b")}}, Entity{}, true},
		{[]Part{{TypeUser, name("")}}, Entity{}, true},
		{[]Part{{TypeIP, name("10.0.0.1")}}, Entity{}, true},
		{[]Part{{"group", name("g")}}, Entity{}, true},
	} {
		got, err := ParseEntity(tc.parts)
		if tc.err {
			if !errors.Is(err, ErrInvalidEntity) {
				t.Errorf("%+v: %v, want ErrInvalidEntity", tc.parts, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%+v: %+v, %v", tc.parts, got, err)
		}
		back, err := ParseEntity(got.Parts())
		if err != nil || back != got {
			t.Errorf("%+v does not round trip: %+v %v", got, back, err)
		}
	}
}

func TestValidateValue(t *testing.T) {
	for _, tc := range []struct {
		key string
		v   float64
		err error
	}{
		{ProducerByteRate, 1024, nil},
		{ConsumerByteRate, 1, nil},
		{RequestPercentage, 12.5, nil},
		{ProducerByteRate, 10.5, ErrInvalidValue},
		{ConsumerByteRate, 0, ErrInvalidValue},
		{RequestPercentage, -1, ErrInvalidValue},
		{RequestPercentage, math.NaN(), ErrInvalidValue},
		{ProducerByteRate, math.Inf(1), ErrInvalidValue},
		{ProducerByteRate, 1e300, ErrInvalidValue},
		{ControllerMutationRate, 10, ErrInvalidKey},
		{"producer_byte_rates", 10, ErrInvalidKey},
	} {
		if err := ValidateValue(tc.key, tc.v); !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("%s=%v: %v, want %v", tc.key, tc.v, err, tc.err)
		}
	}
}

// TestPrecedence: Kafka's order, the most specific entity first, each key
// found on its own; the entity measured takes the connection's names.
func TestPrecedence(t *testing.T) {
	u := func(n string) Entity { return Entity{User: n, HasUser: true} }
	c := func(n string) Entity { return Entity{ClientID: n, HasClientID: true} }
	uc := func(un, cn string) Entity { return Entity{User: un, ClientID: cn, HasUser: true, HasClientID: true} }
	all := map[Entity]float64{
		uc("alice", "app"): 1, uc("alice", ""): 2, u("alice"): 3, uc("", "app"): 4, uc("", ""): 5, u(""): 6, c("app"): 7, c(""): 8,
	}
	order := []Entity{uc("alice", "app"), uc("alice", ""), u("alice"), uc("", "app"), uc("", ""), u(""), c("app"), c("")}
	metered := []Entity{uc("alice", "app"), uc("alice", "app"), u("alice"), uc("alice", "app"), uc("alice", "app"), u("alice"),
		c("app"), c("app")}
	// Take the entities away most specific first: each time the next one
	// in Kafka's order answers.
	for i := range order {
		by := map[Entity]map[string]float64{}
		for _, e := range order[i:] {
			by[e] = map[string]float64{ProducerByteRate: all[e]}
		}
		cfg := NewConfig(by)
		b, m, ok := cfg.Find(ProducerByteRate, "alice", "app")
		if !ok || b != all[order[i]] || m != metered[i] {
			t.Errorf("with %v first: %v %+v %v, want %v %+v", order[i], b, m, ok, all[order[i]], metered[i])
		}
	}
	// Keys are found on their own: the consumer quota of a less specific
	// entity applies where a more specific one sets only the producer's.
	cfg := NewConfig(map[Entity]map[string]float64{
		uc("alice", "app"): {ProducerByteRate: 100},
		c(""):              {ConsumerByteRate: 200},
	})
	if b, m, ok := cfg.Find(ConsumerByteRate, "alice", "app"); !ok || b != 200 || m != c("app") {
		t.Errorf("consumer quota: %v %+v %v", b, m, ok)
	}
	if _, _, ok := cfg.Find(RequestPercentage, "alice", "app"); ok {
		t.Error("a key set nowhere applies")
	}
	// Another user or client id does not match a named entity.
	if b, m, ok := cfg.Find(ProducerByteRate, "bob", "app"); ok {
		t.Errorf("bob: %v %+v", b, m)
	}
	if _, _, ok := cfg.Find(ProducerByteRate, "alice", "other"); ok {
		t.Error("another client id of alice matched alice/app")
	}
	var none *Config
	if _, _, ok := none.Find(ProducerByteRate, "a", "b"); ok {
		t.Error("nil config")
	}
}

// TestManagerSharesWindows: clients measured under one entity share its
// window; others have their own; no quota records nothing.
func TestManagerSharesWindows(t *testing.T) {
	now := t0
	m := NewManager(Options{Now: func() time.Time { return now }})
	if r := m.Record(ProducerByteRate, "a", "x", 1e9); r.Throttle != 0 || m.Windows() != 0 {
		t.Fatalf("no quota: %+v, %d windows", r, m.Windows())
	}
	m.SetConfig(NewConfig(map[Entity]map[string]float64{
		{User: "a", HasUser: true}: {ProducerByteRate: 100},
		{HasClientID: true}:        {ProducerByteRate: 100},
	}))
	// User a's client ids share the user's quota.
	if r := m.Record(ProducerByteRate, "a", "x", 1000); r.Throttle != 0 {
		t.Fatalf("at the bound: %+v", r)
	}
	if r := m.Record(ProducerByteRate, "a", "y", 1000); r.Throttle != 10*time.Second || r.Entity != (Entity{User: "a", HasUser: true}) {
		t.Fatalf("second client of a: %+v", r)
	}
	// A byte-rate throttle is what the rate needs; a request-time
	// throttle at most one sample's span, as Kafka bounds them.
	if r := m.Record(ProducerByteRate, "a", "y", 1e6); r.Throttle < 10000*time.Second {
		t.Fatalf("a byte-rate throttle far over the quota: %v", r.Throttle)
	}
	m.SetConfig(NewConfig(map[Entity]map[string]float64{
		{User: "a", HasUser: true}: {ProducerByteRate: 100},
		{HasClientID: true}:        {ProducerByteRate: 100, RequestPercentage: 1},
	}))
	if r := m.Record(RequestPercentage, "b", "x", 1e6); r.Throttle != time.Second {
		t.Fatalf("a request-time throttle far over the quota: %v", r.Throttle)
	}
	if got := m.MaxValueInWindow(100); got != 1000 {
		t.Fatalf("most without a throttle at 100/s: %v", got)
	}
	// Users without a quota of their own: each client id its own window.
	if r := m.Record(ProducerByteRate, "b", "x", 1000); r.Throttle != 0 {
		t.Fatalf("b/x: %+v", r)
	}
	if r := m.Record(ProducerByteRate, "b", "z", 1000); r.Throttle != 0 {
		t.Fatalf("b/z: %+v", r)
	}
	if m.Windows() != 4 {
		t.Fatalf("%d windows", m.Windows())
	}
	// Idle windows go.
	now = now.Add(2 * time.Hour)
	m.Record(ProducerByteRate, "b", "x", 1)
	if m.Windows() != 1 {
		t.Fatalf("%d windows after two idle hours", m.Windows())
	}
}
