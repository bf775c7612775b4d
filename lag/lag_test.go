package lag

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeCluster is the world a Refresher sees: committed offsets, the
// partitions this broker leads and the leaders of the others.
type fakeCluster struct {
	mu        sync.Mutex
	committed []Committed
	local     map[TP]int64
	leaders   map[TP]string // address of the leader
	remote    map[TP]int64  // high watermarks the leaders answer with
	fail      map[string]bool
	asked     map[string][]TP
}

func (f *fakeCluster) options() Options {
	return Options{
		Committed: func() []Committed {
			f.mu.Lock()
			defer f.mu.Unlock()
			return slices.Clone(f.committed)
		},
		LocalHighWatermark: func(tp TP) (int64, bool) {
			f.mu.Lock()
			defer f.mu.Unlock()
			hw, ok := f.local[tp]
			return hw, ok
		},
		Leader: func(tp TP) (int32, string, bool) {
			f.mu.Lock()
			defer f.mu.Unlock()
			a, ok := f.leaders[tp]
			return 2, a, ok
		},
		HighWatermarks: func(_ context.Context, addr string, tps []TP) (map[TP]int64, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.asked == nil {
				f.asked = map[string][]TP{}
			}
			f.asked[addr] = append(f.asked[addr], tps...)
			if f.fail[addr] {
				return nil, errors.New("leader unreachable")
			}
			out := map[TP]int64{}
			for _, tp := range tps {
				if hw, ok := f.remote[tp]; ok {
					out[tp] = hw
				}
			}
			return out, nil
		},
		Interval: time.Minute,
	}
}

// scrape gathers r and returns each series as "name{group,topic,partition}"
// to its value.
func scrape(t *testing.T, r *Refresher) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(r)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			k := mf.GetName()
			if len(m.GetLabel()) > 0 {
				lv := map[string]string{}
				for _, l := range m.GetLabel() {
					lv[l.GetName()] = l.GetValue()
				}
				k += fmt.Sprintf("{%s,%s,%s}", lv["group"], lv["topic"], lv["partition"])
			}
			out[k] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}

func TestLagOfLocalPartitions(t *testing.T) {
	f := &fakeCluster{
		committed: []Committed{{"g", TP{"t", 0}, 10}, {"g", TP{"t", 1}, 7}, {"h", TP{"t", 0}, 40}},
		local:     map[TP]int64{{"t", 0}: 42, {"t", 1}: 7},
	}
	s := scrape(t, New(f.options()))
	for k, want := range map[string]float64{
		"runnel_consumer_group_lag{g,t,0}":              32,
		"runnel_consumer_group_lag{g,t,1}":              0,
		"runnel_consumer_group_lag{h,t,0}":              2,
		"runnel_consumer_group_committed_offset{g,t,0}": 10,
		"runnel_consumer_group_committed_offset{h,t,0}": 40,
	} {
		if got, ok := s[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
}

func TestLagOfRemotePartitionsComesFromRefresh(t *testing.T) {
	f := &fakeCluster{
		committed: []Committed{{"g", TP{"a", 0}, 5}, {"g", TP{"b", 0}, 1}, {"h", TP{"a", 0}, 2}, {"g", TP{"c", 0}, 0}},
		local:     map[TP]int64{},
		leaders:   map[TP]string{{"a", 0}: "b2:9092", {"b", 0}: "b3:9092"},
		remote:    map[TP]int64{{"a", 0}: 9, {"b", 0}: 4},
	}
	r := New(f.options())
	s := scrape(t, r)
	if _, ok := s["runnel_consumer_group_lag{g,a,0}"]; ok {
		t.Fatal("lag of a remote partition before any refresh")
	}
	if s["runnel_consumer_group_committed_offset{g,a,0}"] != 5 {
		t.Fatal("committed offset missing before the first refresh")
	}
	r.Refresh(context.Background())
	if got := f.asked["b2:9092"]; !slices.Equal(got, []TP{{"a", 0}}) {
		t.Errorf("asked b2 for %v, want each partition once", got)
	}
	if got := f.asked["b3:9092"]; !slices.Equal(got, []TP{{"b", 0}}) {
		t.Errorf("asked b3 for %v", got)
	}
	s = scrape(t, r)
	for k, want := range map[string]float64{
		"runnel_consumer_group_lag{g,a,0}": 4,
		"runnel_consumer_group_lag{h,a,0}": 7,
		"runnel_consumer_group_lag{g,b,0}": 3,
	} {
		if got, ok := s[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if _, ok := s["runnel_consumer_group_lag{g,c,0}"]; ok {
		t.Error("lag of a partition without a leader")
	}
	if s["runnel_consumer_group_lag_refresh_timestamp_seconds"] == 0 {
		t.Error("refresh time not reported")
	}
}

func TestFailedRefreshKeepsAnswerUntilItIsTooOld(t *testing.T) {
	f := &fakeCluster{
		committed: []Committed{{"g", TP{"a", 0}, 5}},
		local:     map[TP]int64{},
		leaders:   map[TP]string{{"a", 0}: "b2:9092"},
		remote:    map[TP]int64{{"a", 0}: 9},
	}
	r := New(f.options())
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	r.Refresh(context.Background())
	f.mu.Lock()
	f.fail = map[string]bool{"b2:9092": true}
	f.mu.Unlock()
	now = now.Add(time.Minute)
	r.Refresh(context.Background())
	s := scrape(t, r)
	if s["runnel_consumer_group_lag{g,a,0}"] != 4 {
		t.Errorf("lag after a failed refresh = %v, want the previous answer's 4", s["runnel_consumer_group_lag{g,a,0}"])
	}
	if s["runnel_consumer_group_lag_refresh_failures_total"] != 1 {
		t.Errorf("failures = %v, want 1", s["runnel_consumer_group_lag_refresh_failures_total"])
	}
	now = now.Add(2 * time.Minute)
	s = scrape(t, r)
	if _, ok := s["runnel_consumer_group_lag{g,a,0}"]; ok {
		t.Error("lag from an answer three intervals old")
	}
}

func TestSeriesAreCapped(t *testing.T) {
	f := &fakeCluster{local: map[TP]int64{{"t", 0}: 10}}
	for _, g := range []string{"d", "b", "c", "a"} {
		f.committed = append(f.committed, Committed{g, TP{"t", 0}, 1})
	}
	o := f.options()
	o.MaxSeries = 3
	r := New(o)
	s := scrape(t, r)
	for _, g := range []string{"a", "b", "c"} {
		if _, ok := s["runnel_consumer_group_lag{"+g+",t,0}"]; !ok {
			t.Errorf("group %s missing", g)
		}
	}
	if _, ok := s["runnel_consumer_group_lag{d,t,0}"]; ok {
		t.Error("group d exported past the cap")
	}
	if s["runnel_consumer_group_lag_dropped_series_total"] != 1 {
		t.Errorf("dropped = %v, want 1", s["runnel_consumer_group_lag_dropped_series_total"])
	}
	s = scrape(t, r)
	if s["runnel_consumer_group_lag_dropped_series_total"] != 2 {
		t.Errorf("dropped after two scrapes = %v, want 2", s["runnel_consumer_group_lag_dropped_series_total"])
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	f := &fakeCluster{local: map[TP]int64{}}
	r := New(f.options())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	cancel()
	<-done
}
