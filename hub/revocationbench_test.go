package hub

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/pongcast/pongcast/auth"
)

// BenchmarkRevocationListMemory fills a list to DefaultMaxRevocations
// with jti entries of 32 characters (what pongctl token issue makes) and
// reports the memory held per entry: the README's figure for
// --max-revocations.
func BenchmarkRevocationListMemory(b *testing.B) {
	const n = DefaultMaxRevocations
	now := time.Now()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		l := newRevocationList(Options{MaxRevocations: n, Metrics: NewMetrics(nil),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}.withDefaults())
		for i := range n {
			// Each its own string, as one decoded from Redis is.
			l.add(auth.Revocation{JTI: fmt.Sprintf("%032x", i), Until: now.Add(time.Hour)}, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if held := len(l.byKey); held != n {
			b.Fatalf("%d entries held, want %d", held, n)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/entry")
		runtime.KeepAlive(l)
	}
}
