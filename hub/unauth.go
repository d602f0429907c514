package hub

import (
	"net/netip"
	"sync"
)

// Reasons a handshake without a token is refused when first-message auth
// is on; labels of pongcast_handshake_refusals_total.
const (
	admitUnauthFull admitReason = "unauthenticated_full"
	admitUnauthIP   admitReason = "unauthenticated_ip"
)

// unauthGate caps the connections upgraded without a token that have not
// sent their auth message yet: they cost a socket, a session and a timer
// for up to the auth timeout, and no token names who holds them, so the
// per-subject limit cannot bound them. The caps are those of the pending
// gate (total, and per address with trusted proxies excepted), counted
// apart: such a connection has left the pending gate at its upgrade.
type unauthGate struct {
	maxTotal, maxPerIP int // negative: no cap
	v6Bits             int
	trusted            []netip.Prefix

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

func newUnauthGate(o Options) *unauthGate {
	return &unauthGate{maxTotal: o.MaxPending, maxPerIP: o.MaxPendingPerIP, v6Bits: o.HandshakeIPv6Prefix,
		trusted: o.TrustedProxies, perIP: make(map[netip.Addr]int)}
}

// acquire counts one more connection from ip, or says which cap it meets.
// It returns the key to release with.
func (g *unauthGate) acquire(ip netip.Addr) (netip.Addr, admitReason) {
	key := groupKey(ip, g.v6Bits)
	if !key.IsValid() {
		key = netip.IPv6Unspecified() // no address known: counted all the same
	}
	perIP := g.maxPerIP > 0 && ip.IsValid() && !isTrusted(ip, g.trusted)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxTotal > 0 && g.total >= g.maxTotal {
		return netip.Addr{}, admitUnauthFull
	}
	if perIP && g.perIP[key] >= g.maxPerIP {
		return netip.Addr{}, admitUnauthIP
	}
	g.total++
	g.perIP[key]++
	return key, admitOK
}

// release uncounts a connection acquired under key. A zero key (nothing
// counted, or released already) is a no-op, so it is safe to call twice
// when the caller clears its key.
func (g *unauthGate) release(key netip.Addr) {
	if !key.IsValid() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if n := g.perIP[key] - 1; n > 0 {
		g.perIP[key] = n
	} else {
		delete(g.perIP, key)
	}
}
