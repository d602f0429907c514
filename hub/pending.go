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
	// NAT, too little for one address to starve the others.
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
// open, and with it the handshakes of good clients and /healthz. Past a
// cap a new connection is closed at once, before a byte is read. The cap
// per address does not apply to trusted proxies, which speak for many
// clients (the handshake rate still tells those clients apart).
type pendingGate struct {
	maxTotal, maxPerIP int
	v6Bits             int
	trusted            []netip.Prefix
	onRefuse           func(reason admitReason)
	acceptLog          *logLimiter
	log                *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]netip.Addr // counted connections, by their address key
	perIP map[netip.Addr]int
}

// gatedListener counts the connections it accepts into its gate.
type gatedListener struct {
	net.Listener
	gate *pendingGate
}

// Listen returns ln with the pending-connection caps applied, and hooks hs
// to see when connections upgrade or close. Serve hs on the returned
// listener.
func (s *Server) Listen(ln net.Listener, hs *http.Server) net.Listener {
	g := s.pending
	next := hs.ConnState
	hs.ConnState = func(c net.Conn, state http.ConnState) {
		if state == http.StateHijacked || state == http.StateClosed {
			g.release(c)
		}
		if next != nil {
			next(c, state)
		}
	}
	return &gatedListener{Listener: ln, gate: g}
}

func newPendingGate(o Options, log *slog.Logger, onRefuse func(admitReason)) *pendingGate {
	return &pendingGate{
		maxTotal:  o.MaxPending,
		maxPerIP:  o.MaxPendingPerIP,
		v6Bits:    o.HandshakeIPv6Prefix,
		trusted:   o.TrustedProxies,
		onRefuse:  onRefuse,
		acceptLog: newLogLimiter(10*time.Second, 1),
		log:       log,
		conns:     make(map[net.Conn]netip.Addr),
		perIP:     make(map[netip.Addr]int),
	}
}

// Accept returns the next connection within the caps; those past them are
// closed here and never reach the HTTP server.
func (l *gatedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.gate.acceptFailed(err)
			return nil, err
		}
		if reason := l.gate.admit(c); reason != admitOK {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write(pendingRefusal)
			_ = c.Close()
			l.gate.onRefuse(reason)
			continue
		}
		return c, nil
	}
}

// admit counts c, or says which cap it is past.
func (g *pendingGate) admit(c net.Conn) admitReason {
	ip := parseAddr(c.RemoteAddr().String())
	key := groupKey(ip, g.v6Bits)
	perIP := g.maxPerIP > 0 && ip.IsValid() && !isTrusted(ip, g.trusted)
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.maxTotal > 0 && len(g.conns) >= g.maxTotal:
		return admitPendingFull
	case perIP && g.perIP[key] >= g.maxPerIP:
		return admitPendingIP
	}
	g.conns[c] = key
	g.perIP[key]++
	return admitOK
}

// release uncounts c; it is safe to call for a connection never counted
// or already released.
func (g *pendingGate) release(c net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key, ok := g.conns[c]
	if !ok {
		return
	}
	delete(g.conns, c)
	if n := g.perIP[key] - 1; n > 0 {
		g.perIP[key] = n
	} else {
		delete(g.perIP, key)
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
