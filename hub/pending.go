package hub

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Defaults of the pending-connection caps, derived from the file limit.
const (
	// pendingShareOfFiles is the part of the file limit that connections
	// still in HTTP (not yet upgraded) may hold: the rest is for clients,
	// Redis and the process itself.
	pendingShareOfFiles = 8
	minDefaultPending   = 16
	maxDefaultPending   = 1024
	// pendingShareOfAddress is the part of the pending cap one address may
	// hold by default: enough for a burst of handshakes from behind one
	// NAT (or a load test), and no single address fills the pool (when it
	// is full, the connection waiting longest gives way anyway).
	pendingShareOfAddress = 4
)

// pendingRefusal is what a connection past a cap gets before it is closed:
// written at once, without reading the request, into a socket buffer that
// is empty, so it does not block.
var pendingRefusal = func() []byte {
	body := `{"error":"too_many_pending","message":"too many connections not yet upgraded; retry later"}` + "\n"
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"+
		"X-Content-Type-Options: nosniff\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}()

// defaultMaxPending is the total cap on pending connections when none is
// set: an eighth of the file limit, within [16, 1024].
func defaultMaxPending() int {
	limit := fileLimit()
	if limit <= 0 {
		return maxDefaultPending
	}
	return min(maxDefaultPending, max(minDefaultPending, limit/pendingShareOfFiles))
}

// pendingGate caps the connections the HTTP server holds that are not (or
// not yet) WebSockets: every connection from accept until it is upgraded
// or closed, plain HTTP requests and idle keep-alives included. A flood of
// idle TCP connections would otherwise take every file the process may
// open, and with it the handshakes of good clients and /healthz.
//
// Past the cap per address, a new connection from that address is
// refused: answered 503 at once and closed, before a byte is read. Past
// the total cap, the connection that has waited longest since it last
// did anything is closed to make room: a good client's request takes
// milliseconds, so the oldest are those that stall, and a flood from
// many addresses cannot lock newcomers (or a health check) out. The cap
// per address does not apply to trusted proxies, which speak for many
// clients (the handshake rate still tells those clients apart).
type pendingGate struct {
	maxTotal, maxPerIP int
	v6Bits             int
	trusted            []netip.Prefix
	onRefuse           func(reason admitReason)
	acceptLog          *logLimiter
	log                *slog.Logger

	mu      sync.Mutex
	conns   map[net.Conn]*useNode[pendingConn] // as accepted from the inner listener
	perIP   map[netip.Addr]int
	waiting byUse[pendingConn] // by last activity
}

// pendingConn is one counted connection and its address key.
type pendingConn struct {
	conn net.Conn
	key  netip.Addr
}

// gatedListener counts the connections it accepts into its gate.
type gatedListener struct {
	net.Listener
	gate *pendingGate
}

// Listen returns ln with the pending-connection caps applied, and hooks hs
// to see when connections upgrade, change state or close: serve hs on the
// returned listener, and set hs.ConnState, if at all, before calling
// Listen. A TLS listener may wrap the returned one or be wrapped by it.
func (s *Server) Listen(ln net.Listener, hs *http.Server) net.Listener {
	g := s.pending
	next := hs.ConnState
	hs.ConnState = func(c net.Conn, state http.ConnState) {
		switch state {
		case http.StateHijacked, http.StateClosed:
			g.release(c)
		case http.StateActive, http.StateIdle:
			g.touch(c)
		}
		if next != nil {
			next(c, state)
		}
	}
	return &gatedListener{Listener: ln, gate: g}
}

func newPendingGate(o Options, log *slog.Logger, onRefuse func(admitReason)) *pendingGate {
	g := &pendingGate{
		maxTotal:  o.MaxPending,
		maxPerIP:  o.MaxPendingPerIP,
		v6Bits:    o.HandshakeIPv6Prefix,
		trusted:   o.TrustedProxies,
		onRefuse:  onRefuse,
		acceptLog: newLogLimiter(10*time.Second, 1),
		log:       log,
		conns:     make(map[net.Conn]*useNode[pendingConn]),
		perIP:     make(map[netip.Addr]int),
	}
	g.waiting.init()
	return g
}

// Accept returns the next connection within the caps.
func (l *gatedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.gate.acceptFailed(err)
			return nil, err
		}
		admitted, evicted := l.gate.admit(c)
		// Counted before the peer can see it, so that what it sees is
		// already in the metrics.
		if evicted != nil {
			l.gate.onRefuse(admitPendingFull)
			_ = evicted.Close()
		}
		if !admitted {
			l.gate.onRefuse(admitPendingIP)
			answerRefused(c)
			continue
		}
		return c, nil
	}
}

// answerRefused answers c 503 and closes it. Only a plain TCP connection
// is answered: on any other (TLS first of all) a write may wait for the
// peer, and the accept loop must not.
func answerRefused(c net.Conn) {
	if _, plain := c.(*net.TCPConn); plain {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write(pendingRefusal)
	}
	_ = c.Close()
}

// admit counts c, or refuses it for its address's cap. When the total is
// full it makes room by giving up the longest waiting connection, which
// the caller closes.
func (g *pendingGate) admit(c net.Conn) (admitted bool, evicted net.Conn) {
	ip := parseAddr(c.RemoteAddr().String())
	key := groupKey(ip, g.v6Bits)
	perIP := g.maxPerIP > 0 && ip.IsValid() && !isTrusted(ip, g.trusted)
	g.mu.Lock()
	defer g.mu.Unlock()
	if perIP && g.perIP[key] >= g.maxPerIP {
		return false, nil
	}
	if g.maxTotal > 0 && len(g.conns) >= g.maxTotal {
		oldest := g.waiting.oldest()
		g.removeLocked(oldest)
		evicted = oldest.v.conn
	}
	pc := &useNode[pendingConn]{v: pendingConn{conn: c, key: key}}
	g.conns[c] = pc
	g.perIP[key]++
	g.waiting.add(pc)
	return true, evicted
}

// counted finds the connection as it was accepted: the HTTP server may
// hold it wrapped (in TLS, say).
func counted(c net.Conn) net.Conn {
	for {
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return c
		}
		c = w.NetConn()
	}
}

// touch moves c to the back of the list: it has just done something.
func (g *pendingGate) touch(c net.Conn) {
	c = counted(c)
	g.mu.Lock()
	defer g.mu.Unlock()
	if pc, ok := g.conns[c]; ok {
		g.waiting.touch(pc)
	}
}

// release uncounts c; it is safe to call for a connection never counted
// or already released.
func (g *pendingGate) release(c net.Conn) {
	c = counted(c)
	g.mu.Lock()
	defer g.mu.Unlock()
	if pc, ok := g.conns[c]; ok {
		g.removeLocked(pc)
	}
}

func (g *pendingGate) removeLocked(pc *useNode[pendingConn]) {
	g.waiting.remove(pc)
	delete(g.conns, pc.v.conn)
	if n := g.perIP[pc.v.key] - 1; n > 0 {
		g.perIP[pc.v.key] = n
	} else {
		delete(g.perIP, pc.v.key)
	}
}

// pending is the number of connections counted now.
func (g *pendingGate) pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// acceptFailed logs why accept failed, once per 10 s: the HTTP server
// retries, so the log would otherwise repeat every few milliseconds.
func (g *pendingGate) acceptFailed(err error) {
	if errors.Is(err, net.ErrClosed) {
		return
	}
	msg := "accept failed"
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		msg = "accept: too many open files; raise the file limit (ulimit -n) or lower --max-connections"
	}
	g.acceptLog.log(g.log, slog.LevelWarn, msg, "error", err)
}

// groupKey is the address a client is counted under: an IPv4 address, or
// an IPv6 address cut to its first v6Bits bits.
func groupKey(ip netip.Addr, v6Bits int) netip.Addr {
	if !ip.Is6() {
		return ip
	}
	p, err := ip.WithZone("").Prefix(v6Bits)
	if err != nil {
		return ip
	}
	return p.Addr()
}
