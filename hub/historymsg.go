package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/health"
	"github.com/pongcast/pongcast/hub/internal/wsconn"
	"github.com/pongcast/pongcast/protocol"
)

// historyRebuildSpan is how far back the statistics are rebuilt: their
// longest window.
const historyRebuildSpan = 24 * time.Hour

// queryHistory answers one history request of a holder of claims within
// budget bytes of pongs (0: historyHTTPBytes), bounded by
// historyQueryTimeout and by ctx: a requester gone away (its HTTP
// request, its connection) holds no Redis connection or slot for it.
func (s *Server) queryHistory(ctx context.Context, claims auth.Claims, q protocol.HistoryQuery, budget int) (historyPage, error) {
	switch {
	case !claims.Allows(q.Exchange):
		return historyPage{}, fmt.Errorf("%w: %s", ErrForbidden, q.Exchange)
	case s.history != nil:
	case s.feed == nil:
		return historyPage{}, errHistoryNoRedis
	default:
		return historyPage{}, errHistoryOff
	}
	if budget <= 0 {
		budget = historyHTTPBytes
	}
	qctx, cancel := context.WithTimeout(ctx, historyQueryTimeout)
	defer cancel()
	page, err := s.history.Range(qctx, q, budget)
	if err != nil && ctx.Err() != nil {
		return historyPage{}, ctx.Err() // nobody to answer: no fault of Redis
	}
	if err != nil {
		s.metrics.HistoryQueries.WithLabelValues("error").Inc()
		s.history.readLog.log(s.log, slog.LevelWarn, "history read failed", "exchange", q.Exchange, "error", err)
		return historyPage{}, errHistoryRedis // the details (address, key) are the operator's, in the log
	}
	s.metrics.HistoryQueries.WithLabelValues("ok").Inc()
	return page, nil
}

// historyErrorCode maps the refusals of a history request to wire codes,
// in one place.
func historyErrorCode(err error) string {
	switch {
	case errors.Is(err, ErrForbidden):
		return protocol.CodeForbidden
	case errors.Is(err, ErrHistoryUnavailable):
		return protocol.CodeUnavailable
	}
	return protocol.CodeInternal
}

// historyPending is the most history messages of one client in flight
// or waiting: past it one is refused at once (rate_limited), so a client
// costs at most this many small requests held, and one Redis read at a
// time.
const historyPending = 8

// historyInbox is a session's history messages waiting for its history
// goroutine, which runs while there are any, one at a time, in order.
type historyInbox struct {
	mu sync.Mutex
	// queue is oldest first; the first is the one being answered.
	queue   []protocol.ClientMessage
	running bool
	// ctx ends when the session does (tearDown calls cancel), so that a
	// read under way stops with it. Nil until the first history message.
	ctx    context.Context
	cancel context.CancelFunc
}

// end cancels the reads of a session that has ended.
func (in *historyInbox) end() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cancel != nil {
		in.cancel()
	}
}

var historyBusyHTTP = fmt.Sprintf("%d history requests are being served; retry later", historyHTTPSlots)

var historyBusyMessage = fmt.Sprintf("%d history requests are waiting for Redis: wait for their replies", historyPending)

// handleHistory takes a history message on the session's reader and
// hands it to the session's history goroutine (started if none runs), so
// that Redis, up to historyQueryTimeout a request, never holds the
// reader: the client's pings, pongs, close and other messages are read
// meanwhile. Replies come in the order asked, maybe after the replies
// to later messages of other types (the id tells them apart).
func (sess *session) handleHistory(msg protocol.ClientMessage) {
	in := &sess.history
	in.mu.Lock()
	if len(in.queue) == historyPending {
		in.mu.Unlock()
		sess.srv.metrics.HistoryQueries.WithLabelValues("busy").Inc()
		sess.reply(protocol.EncodeError(protocol.CodeRateLimited, historyBusyMessage, msg.ID))
		return
	}
	in.queue = append(in.queue, msg)
	if in.ctx == nil {
		in.ctx, in.cancel = context.WithCancel(context.Background())
	}
	start := !in.running
	in.running = true
	in.mu.Unlock()
	if start {
		sess.srv.wg.Add(1) // the reader holds a count: Shutdown waits for this too
		go sess.serveHistoryInbox()
	}
}

// serveHistoryInbox answers the session's waiting history messages, one
// at a time, and ends when none waits; those of a closing connection are
// dropped unread.
func (sess *session) serveHistoryInbox() {
	defer sess.srv.wg.Done()
	in := &sess.history
	for {
		in.mu.Lock()
		if len(in.queue) == 0 {
			in.running = false
			in.mu.Unlock()
			return
		}
		r, ctx := in.queue[0], in.ctx // r stays until answered: it counts as pending
		in.mu.Unlock()
		if !sess.conn.Closing() {
			sess.answerHistory(ctx, r)
		}
		in.mu.Lock()
		n := copy(in.queue, in.queue[1:])
		in.queue[n] = protocol.ClientMessage{} // an idle session holds no old request
		in.queue = in.queue[:n]
		in.mu.Unlock()
	}
}

// answerHistory reads and sends the reply to one history message, under
// the token the connection holds now: one refreshed (narrower, say)
// while the message waited applies to it.
func (sess *session) answerHistory(ctx context.Context, msg protocol.ClientMessage) {
	s := sess.srv
	q := *msg.History
	budget := s.opts.MaxMessageBytes - protocol.HistoryOverhead(q.Exchange, msg.ID)
	page, err := s.queryHistory(ctx, sess.currentClaims(), q, max(1, budget))
	if err != nil {
		sess.reply(protocol.EncodeError(historyErrorCode(err), publicText(err), msg.ID))
		return
	}
	sess.reply(protocol.EncodeHistory(q.Exchange, page.pongs, page.more, page.cursor, msg.ID))
}

// serveHistory answers GET /v1/exchanges/{name}/history?since=&until=&limit=&after=,
// refused as GET /v1/exchanges is (the same rate per address, the same
// 401 and 403); 404 for an exchange without history.
func (s *Server) serveHistory(w http.ResponseWriter, r *http.Request) {
	claims, ok := s.admitQuery(w, r)
	if !ok {
		return
	}
	q, err := historyQueryOf(r)
	if err != nil {
		writeHTTPError(w, http.StatusBadRequest, protocol.CodeBadRequest, publicText(err))
		return
	}
	if s.history != nil {
		select {
		case s.history.httpSlots <- struct{}{}:
			defer func() { <-s.history.httpSlots }()
		default:
			s.metrics.HistoryQueries.WithLabelValues("busy").Inc()
			w.Header().Set("Retry-After", "1")
			writeHTTPError(w, http.StatusServiceUnavailable, protocol.CodeUnavailable, historyBusyHTTP)
			return
		}
	}
	page, err := s.queryHistory(r.Context(), claims, q, 0)
	switch {
	case errors.Is(err, ErrForbidden):
		writeHTTPError(w, http.StatusForbidden, protocol.CodeForbidden, publicText(err))
	case errors.Is(err, ErrHistoryUnavailable):
		if errors.Is(err, errHistoryRedis) {
			w.Header().Set("Retry-After", "1")
		}
		writeHTTPError(w, http.StatusServiceUnavailable, protocol.CodeUnavailable, publicText(err))
	case err != nil:
		writeHTTPError(w, http.StatusInternalServerError, protocol.CodeInternal, publicText(err))
	case !page.found:
		writeHTTPError(w, http.StatusNotFound, protocol.CodeNotFound, "no history for that exchange: no pong of it recorded")
	default:
		body := protocol.AppendHistory(nil, false, q.Exchange, page.pongs, page.more, page.cursor, nil)
		// Not supported by every ResponseWriter (a test's recorder): then
		// the reply is small and in memory anyway.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(historyHTTPWriteTimeout))
		writeRawJSON(w, http.StatusOK, body)
	}
}

// writeRawJSON writes body, JSON already, as writeJSON writes a value:
// the envelopes in it go out byte for byte, as the live clients got them.
func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// historyQueryOf reads a history request from the path and query of r.
func historyQueryOf(r *http.Request) (protocol.HistoryQuery, error) {
	query := r.URL.Query()
	var nums [3]*int64
	for i, name := range []string{"since", "until", "limit"} {
		raw := query.Get(name)
		if raw == "" {
			continue
		}
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return protocol.HistoryQuery{}, fmt.Errorf("%w: %q must be an integer", protocol.ErrBadRequest, name)
		}
		nums[i] = &v
	}
	var after *string
	if raw := query.Get("after"); raw != "" {
		after = &raw
	}
	return protocol.NewHistoryQuery(r.PathValue("name"), nums[0], nums[1], nums[2], after)
}

// rebuildFromHistory rebuilds the rolling statistics of the exchanges in
// the shared snapshots from their history over the last day, before the
// feed delivers a live pong (so none is counted twice), within
// historyRebuildTimeout (so a slow Redis delays readiness that much at
// most). What it could not read in time is left out, and logged.
func (s *Server) rebuildFromHistory(ctx context.Context, known []StoredSnapshot) {
	s.rebuildWithin(ctx, known, historyRebuildTimeout)
}

// replay rebuilds exchange's health from its history (health.Replay)
// and sends the snapshot and status it leaves to the exchange's
// subscribers: the server accepts clients before the rebuild ends, and
// those that subscribed meanwhile were told unseen, or given the shared
// snapshot alone. Under the hub's write lock, as expire sends its
// transitions, so that no subscribe or pong cuts in between. It reports
// whether the history was taken.
func (h *Hub) replay(exchange string, past []health.PastPong, env []byte) bool {
	snap := sessionsPool.Get().(*[]*session)
	defer sessionsPool.Put(snap)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.health.Replay(exchange, past, env) {
		return false
	}
	targets := h.targetsLocked(exchange, (*snap)[:0])
	if len(targets) > 0 {
		var frames [2]*wsconn.Frame
		for _, f := range h.frames.appendLast(frames[:0], h.health, exchange) {
			deliverAll(targets, f)
		}
	}
	clear(targets)
	*snap = targets[:0]
	return true
}

// rebuildWithin is rebuildFromHistory within budget; it returns how many
// exchanges it rebuilt. Each exchange gets an equal share of the time
// left (what one leaves unused goes to those after it), and its read,
// newest first, stops at the end of its share, past its first page: when
// there is more history than time, every exchange gets its newest pongs
// (its short windows right), rather than the first ones all of theirs
// and the rest nothing, however slow the machine.
func (s *Server) rebuildWithin(ctx context.Context, known []StoredSnapshot, budget time.Duration) int {
	if s.history == nil || len(known) == 0 {
		return 0
	}
	deadline := time.Now().Add(budget)
	from := time.Now().Add(-historyRebuildSpan)
	var exchanges, pongs, skipped, cut, left int
	var lastErr error
	for i, sn := range known {
		if ctx.Err() != nil {
			left = len(known) - i
			break
		}
		// An equal share of the time left; past the budget, the newest
		// page alone, so that every exchange has its recent pongs.
		share := time.Now().Add(time.Until(deadline) / time.Duration(len(known)-i))
		past, env, bad, err := s.history.Recent(ctx, sn.Exchange, from, share)
		skipped += bad
		if s.hub.replay(sn.Exchange, past, env) {
			exchanges++
			pongs += len(past)
		}
		if err != nil {
			cut++
			lastErr = err
			if !errors.Is(err, errRebuildTime) {
				// Redis failed or did not answer a first page in time:
				// the others would fare no better.
				left = len(known) - i - 1
				break
			}
		}
	}
	if lastErr != nil || left > 0 {
		s.log.Warn("statistics rebuilt from history in part", "exchanges", exchanges, "pongs", pongs,
			"skipped", skipped, "exchanges_cut_short", cut, "exchanges_left", left, "error", lastErr)
		return exchanges
	}
	s.log.Info("statistics rebuilt from history", "exchanges", exchanges, "pongs", pongs, "skipped", skipped)
	return exchanges
}
