package hub

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// BenchmarkStatsEndpoint is GET /v1/exchanges?window=24h over a real HTTP
// server with 1,000 tracked exchanges, each with a day's worth of pongs
// spread over its buckets: it reports each request's p50 and p99 (the
// stats query figure in BENCHMARKS.md).
func BenchmarkStatsEndpoint(b *testing.B) {
	s := newTestServer(b, Options{MaxExchanges: 1000})
	day := time.Now().Add(-23 * time.Hour)
	for i := range 1000 {
		for k := range 24 { // a pong an hour, so every 24h bucket is filled
			at := day.Add(time.Duration(k) * time.Hour)
			payload := fmt.Appendf(nil, `{"exchange":"x%04d","latency":%d,"status":"connected"}`, i, 10+k)
			if err := s.route(payload, at); err != nil {
				b.Fatal(err)
			}
		}
	}
	tok := hubtest.Token(b, "bench", time.Hour, "*")
	req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/exchanges?window=24h", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s", resp.Status)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkHostilePublisher routes pongs of 100,000 distinct exchanges
// (with 2 KB envelopes) and reports the heap the server holds afterwards,
// against the same server before: the tracker stops at its bound, so the
// growth is the bound's worth, not the flood's.
func BenchmarkHostilePublisher(b *testing.B) {
	pad := make([]byte, 2000)
	for i := range pad {
		pad[i] = 'x'
	}
	for b.Loop() {
		s := newTestServer(b, Options{})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range 100_000 {
			payload := fmt.Appendf(nil, `{"exchange":"h%06d","latency":1,"pad":"%s"}`, i, pad)
			if err := s.route(payload, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MB-held")
		b.ReportMetric(float64(after.Sys)/(1<<20), "MB-sys")
		runtime.KeepAlive(s)
	}
}
