package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/health"
	"github.com/pongcast/pongcast/protocol"
)

// defaultStatsWindow is the window of a stats request that names none.
const defaultStatsWindow = "5m"

// statsReplyHeadroom is what a stats reply holds beside its exchanges'
// statistics (type, window, more, an id of at most MaxIDBytes), kept free
// when filling a reply up to the message cap.
const statsReplyHeadroom = 96 + protocol.MaxIDBytes

// statsResult is one answer to a stats request.
type statsResult struct {
	window    string
	exchanges map[string]json.RawMessage
	more      bool // some left out, to stay within the budget
}

// errNoStats is a stats request for one exchange the server has no
// statistics of.
var errNoStats = fmt.Errorf("%w: no statistics for that exchange: no pong of it seen", ErrStats)

// ErrStats wraps the refusals of a stats request that are the client's
// to mend (an unknown window).
var ErrStats = errors.New("hub: stats request refused")

// stats gathers the statistics of names (normalised; none: every exchange
// tracked that claims allows) over window ("" for the default), within
// budget bytes of JSON (0: no limit). A name claims does not allow refuses
// the whole request, as a subscribe does.
func (s *Server) stats(claims auth.Claims, names []string, window string, now time.Time, budget int) (statsResult, error) {
	if window == "" {
		window = defaultStatsWindow
	}
	w, err := health.ParseWindow(window)
	if err != nil {
		return statsResult{}, fmt.Errorf("%w: %w", ErrStats, err)
	}
	if len(names) == 0 {
		for _, name := range s.hub.health.Exchanges(nil) {
			if claims.Allows(name) {
				names = append(names, name)
			}
		}
	} else if _, _, err := expandSubscription(claims, names); err != nil {
		return statsResult{}, err
	}
	res := statsResult{window: w.String(), exchanges: make(map[string]json.RawMessage, len(names))}
	used := statsReplyHeadroom
	for _, name := range names {
		st, ok := s.hub.health.Stats(name, w, now)
		if !ok {
			continue
		}
		b, err := json.Marshal(st)
		if err != nil {
			continue // the statistics are numbers and names: it cannot fail
		}
		if cost := len(name) + 4 + len(b); budget > 0 && used+cost > budget {
			res.more = true // the rest after the last one in the reply: stop here
			break
		}
		used += len(name) + 4 + len(b)
		res.exchanges[name] = b
	}
	return res, nil
}

// handleStats answers a stats message.
func (sess *session) handleStats(msg protocol.ClientMessage) {
	s := sess.srv
	names := msg.Exchanges
	if len(names) == 1 && names[0] == protocol.Wildcard {
		names = nil
	}
	res, err := s.stats(sess.claims, names, msg.Window, time.Now(), s.opts.MaxMessageBytes)
	if err != nil {
		sess.reply(protocol.EncodeError(subscribeErrorCode(err), publicText(err), msg.ID))
		return
	}
	sess.reply(protocol.EncodeStats(res.window, res.exchanges, res.more, msg.ID))
}

// statsBody is the JSON of GET /v1/exchanges and /v1/exchanges/{name}.
type statsBody struct {
	Window    string                     `json:"window"`
	Exchanges map[string]json.RawMessage `json:"exchanges"`
}

// serveExchanges answers GET /v1/exchanges and /v1/exchanges/{name}: the
// statistics the token may see, refused as a handshake would be (the same
// rate per address, the same 401).
func (s *Server) serveExchanges(w http.ResponseWriter, r *http.Request) {
	claims, ok := s.admitQuery(w, r)
	if !ok {
		return
	}
	var names []string
	if raw := r.PathValue("name"); raw != "" {
		name, err := protocol.NormalizeExchange(raw)
		if err != nil {
			writeHTTPError(w, http.StatusBadRequest, protocol.CodeBadRequest, publicText(err))
			return
		}
		names = []string{name}
	}
	res, err := s.stats(claims, names, r.URL.Query().Get("window"), time.Now(), 0)
	switch {
	case err == nil && len(names) == 1 && len(res.exchanges) == 0:
		writeHTTPError(w, http.StatusNotFound, protocol.CodeNotFound, publicText(errNoStats))
	case err == nil:
		writeJSON(w, http.StatusOK, statsBody{Window: res.window, Exchanges: res.exchanges})
	case errors.Is(err, ErrForbidden):
		writeHTTPError(w, http.StatusForbidden, protocol.CodeForbidden, publicText(err))
	default:
		writeHTTPError(w, http.StatusBadRequest, protocol.CodeBadRequest, publicText(err))
	}
}

// admitQuery lets an HTTP query of the /v1/exchanges endpoints in, or
// answers its refusal (429, 401) and reports false. Each request costs a
// token check and a read of the statistics or of Redis: it takes from
// the same bucket per address as a handshake.
func (s *Server) admitQuery(w http.ResponseWriter, r *http.Request) (auth.Claims, bool) {
	if ok, wait, _ := s.admission.allowHandshake(clientIP(r, s.opts.TrustedProxies), time.Now()); !ok {
		s.metrics.HandshakeRefusals.WithLabelValues("ip_rate").Inc()
		w.Header().Set("Retry-After", retryAfter(wait))
		writeHTTPError(w, http.StatusTooManyRequests, "rate_limited", "too many requests from this address; retry later")
		return auth.Claims{}, false
	}
	claims, err := s.authenticate(r)
	if err != nil {
		s.metrics.AuthFailures.WithLabelValues(auth.Reason(err)).Inc()
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeHTTPError(w, http.StatusUnauthorized, "invalid_token", publicText(err))
		return auth.Claims{}, false
	}
	return claims, true
}
