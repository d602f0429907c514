package hub

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// admission decides, before the upgrade, whether a handshake may proceed:
// per-address handshake rate, total connections, connections per subject.
// Every limit is off when its setting is zero.
type admission struct {
	maxConns   int
	maxPerUser int
	ips        *ipLimiter // nil when the handshake rate is off

	mu      sync.Mutex
	total   int
	perUser map[string]int
}

func newAdmission(o Options) *admission {
	a := &admission{
		maxConns:   o.MaxConnections,
		maxPerUser: o.MaxConnectionsPerUser,
		perUser:    make(map[string]int),
	}
	if o.HandshakeRate > 0 {
		a.ips = newIPLimiter(o.HandshakeRate, o.HandshakeBurst, o.HandshakeIPv6Prefix, time.Now())
	}
	return a
}

// allowHandshake applies the per-address token bucket. It is checked
// before the token, so a flood of handshakes cannot make the server verify
// JWTs at will. It returns how long to wait when refused, and whether the
// address was charged to the bucket shared by those the full table cannot
// hold.
func (a *admission) allowHandshake(ip netip.Addr, now time.Time) (ok bool, wait time.Duration, shared bool) {
	if a.ips == nil || !ip.IsValid() {
		return true, 0, false
	}
	return a.ips.allow(ip, now)
}

// admitReason says why a connection was not admitted (acquire, or the
// pending gate); each is a reason label of
// pongcast_handshake_refusals_total.
type admitReason string

const (
	admitOK          admitReason = ""
	admitServerFull  admitReason = "server_full"
	admitUserFull    admitReason = "user_full"
	admitPendingFull admitReason = "pending_full"
	admitPendingIP   admitReason = "pending_ip"
)

// acquire takes a connection slot for sub; release gives it back.
func (a *admission) acquire(sub string) admitReason {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.maxConns > 0 && a.total >= a.maxConns {
		return admitServerFull
	}
	if a.maxPerUser > 0 && a.perUser[sub] >= a.maxPerUser {
		return admitUserFull
	}
	a.total++
	a.perUser[sub]++
	return admitOK
}

func (a *admission) release(sub string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if n := a.perUser[sub] - 1; n > 0 {
		a.perUser[sub] = n
	} else {
		delete(a.perUser, sub)
	}
}

// clientIP is the address a handshake comes from: the TCP peer, unless
// the peer is a trusted proxy, in which case the right-most address in
// X-Forwarded-For that is not itself a trusted proxy. Headers from
// anyone else are ignored, so a client cannot choose its own address.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			ip, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return peer // a mangled chain: trust only what we saw
			}
			ip = ip.Unmap()
			if !isTrusted(ip, trusted) {
				return ip
			}
		}
	}
	return peer
}

func parseAddr(hostport string) netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
