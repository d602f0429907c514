package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/internal/wsconn"
	"github.com/pongcast/pongcast/protocol"
)

// ExchangesParam is the handshake query parameter that subscribes at
// connect: ?exchanges=gateio,binance.
const ExchangesParam = "exchanges"

// httpError is the JSON body of every refused handshake.
type httpError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeHTTPError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, httpError{Error: code, Message: message})
}

// serveWS authenticates, checks the connect-time subscription, upgrades,
// and hands the connection to a reader goroutine; the handler goroutine
// then returns, so an idle client costs no handler stack.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.closing.Load() {
		s.metrics.HandshakeRefusals.WithLabelValues("shutting_down").Inc()
		w.Header().Set("Retry-After", "1")
		writeHTTPError(w, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down; connect again")
		return
	}
	ip := clientIP(r, s.opts.TrustedProxies)
	if r.Header.Get("X-Forwarded-For") != "" && len(s.opts.TrustedProxies) == 0 {
		s.proxyLog.log(s.log, slog.LevelWarn, "X-Forwarded-For ignored: the peer is not a trusted proxy; set --trusted-proxies to the proxies' addresses", "peer", r.RemoteAddr)
	}
	ok, wait, shared := s.admission.allowHandshake(ip, time.Now())
	if shared {
		s.ipTableLog.log(s.log, slog.LevelWarn, "handshake limiter: the address table is full; addresses it cannot hold share one bucket", "tracked", ipTableMax)
	}
	if !ok {
		s.metrics.HandshakeRefusals.WithLabelValues("ip_rate").Inc()
		w.Header().Set("Retry-After", retryAfter(wait))
		writeHTTPError(w, http.StatusTooManyRequests, "rate_limited", "too many handshakes from this address; retry later")
		return
	}
	if origin := s.origins.check(r); origin != "" {
		s.metrics.HandshakeRefusals.WithLabelValues("origin").Inc()
		s.originLog.log(s.log, slog.LevelInfo, "handshake refused: Origin not allowed; set --allowed-origins to allow it",
			"origin", truncateForLog(origin), "remote", r.RemoteAddr)
		writeHTTPError(w, http.StatusForbidden, "origin_not_allowed",
			fmt.Sprintf("Origin %s is not allowed; set --allowed-origins (PONGCAST_ALLOWED_ORIGINS) to allow it", truncateForLog(origin)))
		return
	}
	claims, err := s.authenticate(r)
	// Without any token, and with first-message auth on, the connection
	// is upgraded to wait for its auth message.
	waiting := err != nil && s.opts.AuthTimeout > 0 && noToken(r)
	if err != nil && !waiting {
		reason := auth.Reason(err)
		s.metrics.AuthFailures.WithLabelValues(reason).Inc()
		s.refusalLog.log(s.log, slog.LevelDebug, "handshake refused", "reason", reason, "remote", r.RemoteAddr, "error", err)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeHTTPError(w, http.StatusUnauthorized, "invalid_token", publicText(err))
		return
	}

	// What the connection is subscribed to at once, checked as a
	// subscribe message would be, but refused here, before the upgrade:
	// a client that cannot get what it asked for hears why at connect.
	var initial []string
	what := "?exchanges"
	if raw := r.URL.Query().Get(ExchangesParam); raw != "" {
		// SplitN: a list past the cap costs one more string, not its length.
		limit := s.maxListNames()
		names, err := protocol.NormalizeExchangeList(strings.SplitN(raw, ",", limit+1), limit)
		if err != nil {
			s.metrics.HandshakeRefusals.WithLabelValues("bad_request").Inc()
			writeHTTPError(w, http.StatusBadRequest, protocol.CodeBadRequest, what+": "+publicText(err))
			return
		}
		initial = names
	} else if s.opts.SubscribeAllOnConnect {
		initial, what = []string{protocol.Wildcard}, "--subscribe-on-connect all"
	}
	if initial != nil && !waiting { // waiting: checked against the token once it comes
		if err := s.hub.checkSubscription(claims, initial); err != nil {
			status, code := http.StatusBadRequest, protocol.CodeBadRequest
			if errors.Is(err, ErrForbidden) {
				status, code = http.StatusForbidden, protocol.CodeForbidden
				s.metrics.HandshakeRefusals.WithLabelValues("forbidden").Inc()
			} else {
				s.metrics.HandshakeRefusals.WithLabelValues("bad_request").Inc()
			}
			writeHTTPError(w, status, code, what+": "+publicText(err))
			return
		}
	}

	var waitKey waitTicket
	if waiting {
		// No subject to count yet: such connections have caps of their own.
		key, evicted, reason := s.unauth.acquire(ip)
		if evicted != nil {
			evicted.giveWay()
		}
		if reason != admitOK {
			s.metrics.HandshakeRefusals.WithLabelValues(string(reason)).Inc()
			w.Header().Set("Retry-After", "1")
			status := http.StatusServiceUnavailable
			if reason == admitUnauthIP {
				status = http.StatusTooManyRequests
			}
			writeHTTPError(w, status, protocol.CodeTooManyUnauthenticated, "too many connections waiting for their auth message; retry later, or send the token in the handshake")
			return
		}
		waitKey = key
	}
	switch s.admitAuthenticated(waiting, claims.Subject) {
	case admitServerFull:
		s.metrics.HandshakeRefusals.WithLabelValues(string(admitServerFull)).Inc()
		w.Header().Set("Retry-After", "5")
		writeHTTPError(w, http.StatusServiceUnavailable, "server_full", "the server is at its connection limit; retry later or elsewhere")
		return
	case admitUserFull:
		s.metrics.HandshakeRefusals.WithLabelValues(string(admitUserFull)).Inc()
		w.Header().Set("Retry-After", "10")
		writeHTTPError(w, http.StatusTooManyRequests, "too_many_connections",
			fmt.Sprintf("this token's subject already has %d connections", s.opts.MaxConnectionsPerUser))
		return
	}
	conn, err := wsconn.Accept(w, r, s.accept, &s.conns)
	if err != nil {
		s.releaseAdmission(waiting, waitKey, claims.Subject)
		// Accept has written the response (426 for a request that is not
		// a WebSocket handshake).
		s.metrics.HandshakeRefusals.WithLabelValues("upgrade").Inc()
		s.refusalLog.log(s.log, slog.LevelDebug, "upgrade refused", "remote", r.RemoteAddr, "error", err)
		return
	}
	c := &session{
		id:      s.nextID.Add(1),
		srv:     s,
		conn:    conn,
		claims:  claims,
		remote:  ip.String(),
		limiter: rate.NewLimiter(rate.Limit(s.opts.ClientRate), s.opts.ClientBurst),
	}
	c.token.authed, c.token.waiting = !waiting, waitKey
	if waiting {
		c.token.initial, initial = initial, nil
		conn.SetReadLimit(min(s.opts.MaxMessageBytes, auth.MaxTokenBytes+authMessageSlack))
	}
	conn.AllowControl(c.allowPing)
	s.wg.Add(1) // the reader's count, taken before Shutdown can see c
	if err := s.hub.register(c); err != nil {
		s.wg.Done()
		s.releaseAdmission(waiting, waitKey, claims.Subject)
		conn.CloseNow(causeShutdown) // not registered, so nothing would time a close out
		conn.Finish()
		return
	}
	if waiting {
		// Registered, so a close is timed out: it may give way from now
		// on (before its 101, which the writer then sends first).
		s.unauth.attach(waitKey, c)
	}
	s.log.Debug("client connected", "client", c, "exchanges", claims.Exchanges)
	// Registered now, so an announcement's sweep sees it; one that came
	// since the token was checked is caught here, before anything is
	// delivered.
	revoked := !waiting && s.revokedSince(claims, c)
	if len(initial) > 0 && !revoked {
		c.subscribe(initial, nil)
	}
	// The 101 went out with the reply, or goes now.
	conn.FinishHandshake()
	c.armTimer(time.Now())
	go c.readLoop()
}

// noToken reports whether a handshake carries no token at all: no
// Authorization header, no access_token parameter (an empty one is a
// token, and an invalid one).
func noToken(r *http.Request) bool {
	return r.Header.Get("Authorization") == "" && !r.URL.Query().Has(auth.QueryParam)
}

// admitAuthenticated takes a connection slot for sub, unless the
// connection waits for its auth message: that takes its slot then.
func (s *Server) admitAuthenticated(waiting bool, sub string) admitReason {
	if waiting {
		return admitOK
	}
	return s.admission.acquire(sub)
}

// releaseAdmission gives back what serveWS took for a connection that
// did not start.
func (s *Server) releaseAdmission(waiting bool, key waitTicket, sub string) {
	if waiting {
		s.unauth.release(key)
		return
	}
	s.admission.release(sub)
}

// truncateForLog quotes a client's string for a log line or an error,
// cut to 100 bytes.
func truncateForLog(v string) string {
	const keep = 100
	if len(v) > keep {
		return strconv.Quote(v[:keep]) + "..."
	}
	return strconv.Quote(v)
}

// maxListNames is the longest list of exchanges a client may send: every
// name it may hold, plus the wildcard.
func (s *Server) maxListNames() int { return s.opts.MaxSubscriptions + 1 }

// retryAfter renders a wait as whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

func (s *Server) authenticate(r *http.Request) (auth.Claims, error) {
	token, err := auth.TokenFromRequest(r)
	if err != nil {
		return auth.Claims{}, err
	}
	return s.verifyToken(token, time.Now())
}

type statusBody struct {
	Status string `json:"status"`
	Redis  string `json:"redis,omitempty"`
	// Revocations is "loaded" or "loading" (the list is loaded after
	// every start and reconnect; readiness waits for it), with a RedisURL.
	Revocations string `json:"revocations,omitempty"`
	Clients     int    `json:"clients"`
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, statusBody{Status: "ok", Clients: s.Clients()})
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	body := statusBody{Status: "ready", Clients: s.Clients()}
	if s.feed != nil {
		// Each part is said apart, so that a 503 tells Redis being
		// unreachable from the list still loading.
		body.Redis, body.Revocations = "subscribed", "loaded"
		if !s.feed.ready.Load() {
			body.Redis = "not subscribed"
		}
		if !s.revocations.isLoaded() {
			body.Revocations = "loading"
		}
	}
	status := http.StatusOK
	switch {
	case s.closing.Load():
		body.Status, status = "shutting_down", http.StatusServiceUnavailable
	case !s.Ready():
		body.Status, status = "not_ready", http.StatusServiceUnavailable
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
