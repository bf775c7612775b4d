package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestCLILatencyHistogram checks quantiles against exact ones from sorted
// samples: within the histogram's stated 1/64 relative error.
func TestCLILatencyHistogram(t *testing.T) {
	var h latencyHist
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram has a non-zero quantile")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	samples := make([]time.Duration, 100_000)
	for i := range samples {
		// Spread over ns to seconds.
		samples[i] = time.Duration(rng.ExpFloat64() * float64(rng.IntN(7)+1) * 1e6 * float64(rng.IntN(1000)+1) / 100)
		h.add(samples[i])
	}
	slices.Sort(samples)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		exact := samples[int(math.Ceil(q*float64(len(samples))))-1]
		got := h.quantile(q)
		if diff := (got - exact).Abs(); float64(diff) > float64(exact)/64+1 {
			t.Errorf("q%.3f = %v, exact %v", q, got, exact)
		}
	}
	if h.max != samples[len(samples)-1] {
		t.Errorf("max %v, want %v", h.max, samples[len(samples)-1])
	}
	// Every bucket's value maps back to the bucket.
	for i := range histBuckets {
		if j := histIndex(histValue(i)); j != i {
			t.Fatalf("bucket %d: value %d maps to bucket %d", i, histValue(i), j)
		}
	}
	var m latencyHist
	m.merge(&h)
	m.merge(&h)
	if m.n != 2*h.n || m.quantile(0.5) != h.quantile(0.5) {
		t.Errorf("merge: n %d, p50 %v; want %d, %v", m.n, m.quantile(0.5), 2*h.n, h.quantile(0.5))
	}
}
