package hub

import (
	"net/netip"
	"sync"

	"github.com/pongcast/pongcast/protocol"
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
//
// Past the cap per address a newcomer is refused. Past the total cap, as
// in the pending gate, the connection that has waited longest is closed
// to make room: a good client sends its token as soon as it is upgraded,
// so the oldest are those that stall, and silent sockets from a few
// addresses cannot lock first-message auth out for everyone.
type unauthGate struct {
	maxTotal, maxPerIP int // not above zero: no cap
	v6Bits             int
	trusted            []netip.Prefix

	mu      sync.Mutex
	total   int
	perIP   map[netip.Addr]int
	waiting byUse[waitingConn] // oldest first
}

// waitingConn is one counted connection: its address key, and its session
// once it has one (nil while the upgrade is under way).
type waitingConn struct {
	key     netip.Addr
	session *session
	counted bool
}

// waitTicket is a connection's place in the gate, to attach its session
// to and to release with. Nil: nothing counted.
type waitTicket = *useNode[waitingConn]

func newUnauthGate(o Options) *unauthGate {
	g := &unauthGate{maxTotal: o.MaxPending, maxPerIP: o.MaxPendingPerIP, v6Bits: o.HandshakeIPv6Prefix,
		trusted: o.TrustedProxies, perIP: make(map[netip.Addr]int)}
	g.waiting.init()
	return g
}

// acquire counts one more connection from ip, or says which cap it meets.
// When the total is full it makes room by giving up the connection that
// has waited longest, which the caller closes; if that one has no session
// yet (its upgrade is under way, a matter of microseconds), the newcomer
// is refused instead.
func (g *unauthGate) acquire(ip netip.Addr) (waitTicket, *session, admitReason) {
	key := groupKey(ip, g.v6Bits)
	if !key.IsValid() {
		key = netip.IPv6Unspecified() // no address known: counted all the same
	}
	perIP := g.maxPerIP > 0 && ip.IsValid() && !isTrusted(ip, g.trusted)
	g.mu.Lock()
	defer g.mu.Unlock()
	if perIP && g.perIP[key] >= g.maxPerIP {
		return nil, nil, admitUnauthIP
	}
	var evicted *session
	if g.maxTotal > 0 && g.total >= g.maxTotal {
		oldest := g.waiting.oldest()
		if oldest == nil || oldest.v.session == nil {
			return nil, nil, admitUnauthFull
		}
		evicted = oldest.v.session
		g.removeLocked(oldest)
	}
	n := &useNode[waitingConn]{v: waitingConn{key: key, counted: true}}
	g.waiting.add(n)
	g.total++
	g.perIP[key]++
	return n, evicted, admitOK
}

// attach names the session a ticket counts, once it is registered, so
// that it can be given up for room. The ticket is still counted: only a
// ticket with a session is given up.
func (g *unauthGate) attach(t waitTicket, s *session) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.v.counted {
		t.v.session = s
	}
}

// release uncounts a ticket. A nil ticket, or one released or given up
// already, is a no-op, so it is safe to call more than once.
func (g *unauthGate) release(t waitTicket) {
	if t == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.v.counted {
		g.removeLocked(t)
	}
}

func (g *unauthGate) removeLocked(t waitTicket) {
	t.v.counted = false
	t.v.session = nil // the gate holds no session past its place
	g.waiting.remove(t)
	g.total--
	if n := g.perIP[t.v.key] - 1; n > 0 {
		g.perIP[t.v.key] = n
	} else {
		delete(g.perIP, t.v.key)
	}
}

// giveWay closes a connection given up for room: it has waited longest
// for its auth message. Its place in the gate is gone already (acquire
// removed it), so a connection spared here holds none, as it would
// after its own release.
func (c *session) giveWay() {
	// Under token.mu, so that the reader cannot authenticate between the
	// check and the close: a connection that has just authenticated keeps
	// its place, one told unauthorized is never told authenticated after.
	c.token.mu.Lock()
	defer c.token.mu.Unlock()
	if c.token.authed || c.conn.Closing() {
		return // authenticated, or ending already (its auth timeout, say): nothing refused
	}
	c.srv.metrics.HandshakeRefusals.WithLabelValues(string(admitUnauthFull)).Inc() // as pending_full counts its own
	c.reply(authGaveWayMessage)
	c.conn.Close(causeUnauthorized)
}

var authGaveWayMessage = protocol.EncodeError(protocol.CodeUnauthorized,
	`no auth message yet, and the server needed the room: send {"type":"auth","token":"<jwt>"} as soon as you connect`, nil)
