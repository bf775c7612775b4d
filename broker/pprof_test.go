package broker

import (
	"net/http"
	"runtime"
	"testing"
)

// TestPprof checks that the profiles are on the metrics listener only with
// Pprof set, and that setting it turns the block and mutex profiles on.
func TestPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		cfg := testConfig(t)
		cfg.Pprof = on
		b, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + b.MetricsAddr() + "/debug/pprof/block?debug=1")
		if err != nil {
			b.Close()
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		if resp.StatusCode != want {
			t.Errorf("Pprof %v: /debug/pprof/block answered %d, want %d", on, resp.StatusCode, want)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if f := runtime.SetMutexProfileFraction(-1); f == 0 {
		t.Error("Pprof left the mutex profile off")
	}
	runtime.SetBlockProfileRate(0)
	runtime.SetMutexProfileFraction(0)
}
