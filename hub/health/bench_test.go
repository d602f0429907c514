package health

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

var benchEnv = []byte(`{"type":"exchange:pong","exchange":"gateio","data":{"exchange":"gateio","latency":45,"timestamp":1765738899909,"status":"connected"},"timestamp":1765738899920,"source":"exchange"}`)

// BenchmarkObserve is the cost Observe adds to routing one pong of a
// tracked exchange in steady state (same status, snapshot unread), with
// one exchange and with a full table of 1000, where the deadline heap is
// deepest. Simulated time moves 1 ms a pong, so buckets turn over as
// they would.
func BenchmarkObserve(b *testing.B) {
	for _, n := range []int{1, DefaultMaxExchanges} {
		b.Run(fmt.Sprintf("exchanges=%d", n), func(b *testing.B) {
			tr := newTracker(b, Config{})
			names := benchNames(n)
			now := t0
			for _, name := range names {
				tr.Observe(name, connected(45), now, benchEnv)
			}
			s := connected(45)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				now = now.Add(time.Millisecond)
				tr.Observe(names[i], s, now, benchEnv)
				if i++; i == n {
					i = 0
				}
			}
		})
	}
}

// BenchmarkObserveRead is Observe when every pong's snapshot is read
// before the next, the worst case of the buffer ownership: one
// allocation per pong.
func BenchmarkObserveRead(b *testing.B) {
	tr := newTracker(b, Config{})
	now := t0
	s := connected(45)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Millisecond)
		tr.Observe("gateio", s, now, benchEnv)
		tr.Snapshot("gateio")
	}
}

// BenchmarkStats24h is one exchange's statistics over the 24h window, a
// day of pongs every 30 s behind it: the longest a reader holds the lock.
func BenchmarkStats24h(b *testing.B) {
	for _, w := range []Window{Window1m, Window24h} {
		b.Run("window="+w.String(), func(b *testing.B) {
			tr := newTracker(b, Config{})
			now := t0
			for i := range 24 * 120 {
				now = t0.Add(time.Duration(i) * 30 * time.Second)
				tr.Observe("gateio", connected(float64(20+i%700)), now, benchEnv)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := tr.Stats("gateio", w, now); !ok {
					b.Fatal("no stats")
				}
			}
		})
	}
}

// BenchmarkMemoryPerExchange reports the heap one tracked exchange
// retains (its fixed statistics, the table's share, a snapshot of the
// seed's envelope), from a full table of 1000.
func BenchmarkMemoryPerExchange(b *testing.B) {
	names := benchNames(DefaultMaxExchanges)
	var perExchange float64
	for b.Loop() {
		before := heapInUse()
		tr := newTracker(b, Config{})
		for _, name := range names {
			tr.Observe(name, connected(45), t0, benchEnv)
		}
		perExchange = float64(heapInUse()-before) / float64(len(names))
		tr.Counts() // keep tr alive past the measurement
	}
	b.ReportMetric(perExchange, "bytes/exchange")
}

func benchNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "exchange" + strconv.Itoa(i)
	}
	return names
}
