package health

import (
	"math"
	"testing"
)

// TestBinError: every latency's bin reports a value within the
// contract's error: 1 ms below 20 ms, 5% above, up to the last log bin.
func TestBinError(t *testing.T) {
	top := logBounds[logBins]
	prev := 0
	for x := 0.0; x < top; x += 0.01 + x/1000 {
		b := binOf(x)
		if b < prev {
			t.Fatalf("binOf not monotonic at %v", x)
		}
		prev = b
		v := math.Round(binValue[b]*100) / 100 // as percentile reports it
		if err := math.Abs(v - x); err > max(1, 0.05*x) {
			t.Fatalf("latency %v: bin %d reports %v, off by %v", x, b, v, err)
		}
	}
	for _, edge := range logBounds[:logBins] {
		if b := binOf(edge); binValue[b] < edge {
			t.Errorf("a bound, %v, fell into the bin below", edge)
		}
	}
	if b := binOf(top * 10); b != numBins-1 {
		t.Errorf("above the top: bin %d", b)
	}
	if b := binOf(maxLatencyMs); b != numBins-1 {
		t.Errorf("max latency: bin %d", b)
	}
}

// TestHistHalving: a count that would wrap halves the histogram instead,
// keeping proportions and every bin seen.
func TestHistHalving(t *testing.T) {
	var h hist
	for range 70_000 {
		h.add(3)
	}
	h.add(50)
	h.add(50) // one of two is counted now
	var acc [numBins]uint64
	total := h.sumInto(&acc, 0, numBins-1)
	if h.shift != 1 || total < 69_990 || total > 70_010 || acc[50] == 0 {
		t.Errorf("after 70002 adds: shift %d, total %d, bin 50 %d", h.shift, total, acc[50])
	}
	p := percentiles(&acc, total, 0, numBins-1, 0, 1e9, [3]float64{0.5, 0.9999, 1})
	if p[0] != binValue[3] || p[1] != binValue[3] {
		t.Errorf("p50, p99.99 %v, want %v", p[:2], binValue[3])
	}
	if p[2] != 1e9 {
		t.Errorf("p100 %v, want the max", p[2])
	}
}
