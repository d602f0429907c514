package hub

import (
	"fmt"
	"net/http"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// handshakeVia dials through a trusted proxy (the test itself, on
// loopback) on behalf of client, and returns the status.
func (s *testServer) handshakeVia(t *testing.T, client, token string) int {
	t.Helper()
	c, resp, err := hubtest.Dial(t, s.wsURL(""), token, http.Header{"X-Forwarded-For": {client}})
	if err == nil {
		c.Conn.CloseNow()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("handshake for %s: %v", client, err)
	}
	return resp.StatusCode
}

var loopbackProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// One IPv6 host holds a whole /64: its /128s share one bucket (each used to
// have its own).
func TestHandshakeRateGroupsIPv6By64(t *testing.T) {
	s := newTestServer(t, Options{HandshakeRate: 0.001, HandshakeBurst: 2, TrustedProxies: loopbackProxies})
	tok := hubtest.Token(t, "v6", time.Hour, "*")
	for i, client := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"} {
		if got := s.handshakeVia(t, client, tok); got != http.StatusSwitchingProtocols {
			t.Fatalf("handshake %d from %s: %d", i, client, got)
		}
	}
	if got := s.handshakeVia(t, "2001:db8:1:2:abcd::77", tok); got != http.StatusTooManyRequests {
		t.Fatalf("third handshake from the same /64: %d, want 429", got)
	}
	if got := s.handshakeVia(t, "2001:db8:1:3::1", tok); got != http.StatusSwitchingProtocols {
		t.Fatalf("the next /64: %d, want its own bucket", got)
	}
}

// A table full of addresses in use never stops limiting: addresses it
// cannot hold share one bucket (they used to go unlimited), and those it
// holds keep theirs.
func TestHandshakeRateHoldsWhenTableIsFull(t *testing.T) {
	s := newTestServer(t, Options{HandshakeRate: 0.001, HandshakeBurst: 2, TrustedProxies: loopbackProxies})
	s.admission.ips.max = 8
	tok := hubtest.Token(t, "flood", time.Hour, "*")
	for i := range 8 {
		if got := s.handshakeVia(t, fmt.Sprintf("198.51.100.%d", i), tok); got != http.StatusSwitchingProtocols {
			t.Fatalf("filling address %d: %d", i, got)
		}
	}
	admitted := 0
	for i := range 50 {
		if s.handshakeVia(t, fmt.Sprintf("203.0.113.%d", i), tok) == http.StatusSwitchingProtocols {
			admitted++
		}
	}
	if admitted != 2 {
		t.Fatalf("%d of 50 new addresses admitted past a full table, want the shared burst of 2", admitted)
	}
	if got := s.handshakeVia(t, "198.51.100.0", tok); got != http.StatusSwitchingProtocols {
		t.Fatalf("a tracked address with a token left: %d", got)
	}
	if got := s.admission.ips.size(); got != 8 {
		t.Fatalf("table holds %d, want its bound of 8", got)
	}
}

// An address whose bucket has filled up again is forgotten (a new bucket
// would be the same), oldest first; one still filling is kept.
func TestIPTableForgetsRefilledAddresses(t *testing.T) {
	now := time.Now()
	l := newIPLimiter(1, 2, DefaultHandshakeIPv6Prefix, now)
	for i := range 100 {
		l.allow(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), now)
	}
	l.allow(netip.MustParseAddr("192.0.2.200"), now.Add(time.Second))
	if got := l.size(); got != 101 {
		t.Fatalf("%d entries, want 101", got)
	}
	later := now.Add(2 * time.Second) // the first 100 have refilled, the last not
	for l.size() > 2 {
		before := l.size()
		l.allow(netip.MustParseAddr("198.51.100.1"), later)
		if l.size() >= before && before > 2 {
			t.Fatalf("no entry forgotten at %d", before)
		}
	}
	if ok, _, _ := l.allow(netip.MustParseAddr("192.0.2.200"), later); !ok {
		t.Fatal("the kept address lost its bucket")
	}
	if got := l.size(); got != 2 {
		t.Fatalf("%d entries, want the two still filling", got)
	}
}

// BenchmarkIPLimiterTable fills the table to its bound and reports the
// memory it holds per address (the README's figure).
func BenchmarkIPLimiterTable(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		now := time.Now()
		l := newIPLimiter(20, 40, DefaultHandshakeIPv6Prefix, now)
		for i := range ipTableMax {
			ip := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 16), byte(i >> 8), byte(i)})
			l.allow(ip, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/ipTableMax, "B/address")
		runtime.KeepAlive(l)
	}
}

// A rate so low that the refill time overflows a Duration still limits
// (the refill time went negative, and every bucket was forgotten at once).
func TestIPLimiterTinyRateStillLimits(t *testing.T) {
	now := time.Now()
	l := newIPLimiter(1e-12, 40, DefaultHandshakeIPv6Prefix, now)
	ip := netip.MustParseAddr("192.0.2.1")
	allowed := 0
	for i := range 100 {
		if ok, _, _ := l.allow(ip, now.Add(time.Duration(i)*time.Millisecond)); ok {
			allowed++
		}
	}
	if allowed != 40 {
		t.Fatalf("%d of 100 allowed, want the burst of 40", allowed)
	}
}
