package cleaner

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-io/runnel/compression"
)

// gather returns the values of the cleaner's metrics by name (a labelled
// one: its first series).
func gather(t *testing.T, cl *Cleaner) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(cl.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		out[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return out
}

// TestRunCleansDirtyPartitions: a running cleaner with two threads finds
// the dirty compacted partition on its own (once woken), cleans it, shows
// its dirty ratio, and stops when its context ends, with its goroutines.
func TestRunCleansDirtyPartitions(t *testing.T) {
	b := openBroker(t, t.TempDir(), compactedTopic(nil))
	defer b.close()
	for n := 0; n < 200; n++ {
		var recs []rec
		for k := 0; k < 5; k++ {
			recs = append(recs, rec{key: []byte(fmt.Sprint("k", k)), value: []byte(fmt.Sprint("v", n))})
		}
		b.produce(compression.None, -1, 0, recs)
	}
	b.sealAll()
	cl, err := New(b.m, Options{Threads: 2, Backoff: time.Hour, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cl.Run(ctx); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for cl.Stats().Cleans.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no clean within 30 s")
		}
		cl.Wake()
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if cl.Stats().RecordsRemoved.Load() == 0 {
		t.Fatal("the clean removed nothing")
	}
	rs := cl.DirtyRatios()
	if len(rs) != 1 || rs[0].Topic != "c" || rs[0].Partition != 0 {
		t.Fatalf("dirty ratios %+v: want partition c-0's", rs)
	}
	m := gather(t, cl)
	if len(m) != 13 {
		t.Fatalf("the collector gives %d metrics, want 13: %v", len(m), m)
	}
	if _, ok := m["runnel_log_cleaner_dirty_ratio"]; !ok || m["runnel_log_cleaner_cleans_total"] < 1 || m["runnel_log_cleaner_records_removed_total"] < 1 {
		t.Fatalf("metrics %v", m)
	}
	if got := readLog(t, b.p.Log()); len(got) != 5 {
		t.Fatalf("%d records left, want the 5 keys' latest", len(got))
	}
}
