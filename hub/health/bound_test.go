package health

import (
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"
)

// TestBound: a publisher that invents 100,000 exchanges gets MaxExchanges
// of them tracked; the rest are counted, and delivered by the caller. The
// memory retained is about MaxExchanges times one exchange's fixed size.
func TestBound(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 pongs")
	}
	const distinct = 100_000
	names := make([]string, distinct)
	for i := range names {
		names[i] = "x" + strconv.Itoa(i)
	}
	env := envAt("x0", t0)
	before := heapInUse()
	tr := newTracker(t, Config{})
	for i, name := range names {
		obs := tr.Observe(name, connected(10), t0.Add(time.Duration(i)*time.Microsecond), env)
		if obs.Tracked != (i < DefaultMaxExchanges) {
			t.Fatalf("pong %d: tracked %v", i, obs.Tracked)
		}
	}
	grown := heapInUse() - before
	c := tr.Counts()
	if c.Tracked() != DefaultMaxExchanges || c.Up != DefaultMaxExchanges || c.Untracked != distinct-DefaultMaxExchanges {
		t.Errorf("counts %+v", c)
	}
	if tr.Seen(names[distinct-1]) || !tr.Seen(names[0]) {
		t.Error("Seen: the last should be untracked, the first tracked")
	}
	if n := len(tr.Exchanges(nil)); n != DefaultMaxExchanges {
		t.Errorf("%d exchanges listed", n)
	}
	perExchange := grown / DefaultMaxExchanges
	fixed := int64(unsafe.Sizeof(exchange{}))
	t.Logf("%d bytes retained per tracked exchange (struct %d, envelope %d)", perExchange, fixed, len(env))
	if limit := fixed + int64(len(env)) + 1024; perExchange > limit {
		t.Errorf("%d bytes per exchange, want at most %d", perExchange, limit)
	}
	runtime.KeepAlive(tr)
}

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestSizes pins the sizes the memory figures rest on: a bucket of 240
// bytes keeps an exchange inside Go's 14336-byte size class.
func TestSizes(t *testing.T) {
	if numBins != 95 {
		t.Errorf("%d bins", numBins)
	}
	if s := unsafe.Sizeof(bucket{}); s != 240 {
		t.Errorf("bucket is %d bytes, want 240", s)
	}
	if s := unsafe.Sizeof(exchange{}); s > 14336 {
		t.Errorf("exchange is %d bytes, past the 14336-byte size class", s)
	}
}
