package main

import (
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// latencyHist records publish-to-receive latencies in microseconds, from
// 1 µs to 60 s at 3 significant digits; every delivery is counted. The
// poller's one thread records; the lock is for the report reading it.
type latencyHist struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

func newLatencyHist() *latencyHist {
	return &latencyHist{h: hdrhistogram.New(1, 60_000_000, 3)}
}

// record adds one latency.
func (l *latencyHist) record(micros int64) {
	l.mu.Lock()
	_ = l.h.RecordValue(max(micros, 1))
	l.mu.Unlock()
}

// merged returns a copy of everything recorded so far.
func (l *latencyHist) merged() *hdrhistogram.Histogram {
	out := hdrhistogram.New(1, 60_000_000, 3)
	l.mu.Lock()
	out.Merge(l.h)
	l.mu.Unlock()
	return out
}
