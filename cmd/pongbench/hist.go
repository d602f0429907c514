package main

import (
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// histShards spreads recording over several HDR histograms so that
// thousands of reader goroutines do not queue on one lock.
const histShards = 32

// latencyHist records publish-to-receive latencies in microseconds, from
// 1 µs to 60 s at 3 significant digits; every delivery is counted.
type latencyHist struct {
	shards [histShards]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
		_  [40]byte // keep shards on separate cache lines
	}
}

func newLatencyHist() *latencyHist {
	l := &latencyHist{}
	for i := range l.shards {
		l.shards[i].h = hdrhistogram.New(1, 60_000_000, 3)
	}
	return l
}

// record adds one latency for the client with index i.
func (l *latencyHist) record(i int, micros int64) {
	s := &l.shards[i%histShards]
	s.mu.Lock()
	_ = s.h.RecordValue(max(micros, 1))
	s.mu.Unlock()
}

// merged returns one histogram of everything recorded.
func (l *latencyHist) merged() *hdrhistogram.Histogram {
	out := hdrhistogram.New(1, 60_000_000, 3)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		out.Merge(s.h)
		s.mu.Unlock()
	}
	return out
}
