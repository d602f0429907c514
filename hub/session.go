package hub

import (
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/internal/wsconn"
	"github.com/pongcast/pongcast/protocol"
)

// session is one client: its token's claims, its rate limit and its
// token expiry, over a wsconn.Conn that owns the socket. What it is
// subscribed to lives in the Hub, which routes.
//
// Ownership: the reader goroutine runs for the whole session and is the
// only one that tears it down. Anyone may deliver to it or close it,
// through the Conn, without waiting.
type session struct {
	id     uint64
	srv    *Server
	conn   *wsconn.Conn
	claims auth.Claims
	remote string
	expiry *time.Timer // set before the reader starts; see tokenlife.go
	// expiring counts a run of the timer that tearDown must wait for:
	// one from arming the timer until it is stopped or has ended the
	// session.
	expiring sync.WaitGroup
	// token is the state of the token lifecycle (tokenlife.go); claims
	// above is written only by the reader, under token.mu, and read
	// elsewhere only under it.
	token tokenState
	// history holds the history messages read but not yet answered
	// (historymsg.go).
	history historyInbox

	// Reader goroutine only (client pings are counted there too).
	limiter      *rate.Limiter
	refusals     int
	refusalStart time.Time
}

// LogValue keeps session log lines uniform and free of the token.
func (s *session) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Uint64("id", s.id),
		slog.String("sub", s.subject()),
		slog.String("remote", s.remote),
	)
}

// deliver hands f to the client without waiting and reports whether it
// was sent or queued. A full queue closes the client as a slow consumer
// (with SlowClientConflate, only when conflating cannot make room). It
// is called under the hub's lock, so it logs nothing: tearDown logs the
// close.
func (s *session) deliver(f *wsconn.Frame) bool {
	switch s.conn.Deliver(f) {
	case wsconn.Sent, wsconn.Queued:
		return true
	case wsconn.SlowConsumer:
		s.srv.metrics.SlowConsumerCloses.Inc()
	}
	return false
}

// reply sends a reply to the client. Replies are built to fit the cap;
// the check is the last line of defence for that promise.
func (s *session) reply(data []byte) {
	if over := s.replyLocked(data); over > 0 {
		s.logOverCap(over)
	}
}

// replyLocked is reply for a caller holding the hub's lock: it logs
// nothing (a slow log handler would stall every publisher), and returns
// the size of a reply over the cap, for the caller to log once unlocked.
func (s *session) replyLocked(data []byte) (over int) {
	if len(data) > s.srv.opts.MaxMessageBytes {
		over, data = len(data), replyTooLarge
	}
	s.deliver(wsconn.TextFrame(data))
	return over
}

func (s *session) logOverCap(bytes int) {
	s.srv.log.Error("reply over the message cap", "client", s, "bytes", bytes)
}

var replyTooLarge = protocol.EncodeError(protocol.CodeInternal, "the reply would pass the message cap", nil)

// readLoop serves the client's messages until the connection ends, then
// tears the session down. It owns one count on srv.wg.
func (s *session) readLoop() {
	defer s.srv.wg.Done()
	for {
		typ, data, err := s.conn.Read()
		if err != nil {
			break
		}
		if s.conn.Closing() {
			continue // drain until the close handshake ends the read
		}
		if !s.authenticated() && (typ != websocket.MessageText || !utf8.Valid(data)) {
			// Before auth, anything but an auth message is refused
			// the one way the contract names, whatever the frame.
			s.refuseFirstMessage()
			continue
		}
		if typ != websocket.MessageText {
			s.conn.Close(causeBinary)
			continue
		}
		if !s.allowMessage() {
			continue
		}
		if !utf8.Valid(data) {
			// RFC 6455 8.1: a text message must be UTF-8; fail the
			// connection rather than guess.
			s.conn.Close(causeInvalidUTF8)
			continue
		}
		s.handle(data)
	}
	s.tearDown()
}

// allowMessage applies the token bucket to a client message: a refused
// one is discarded with a rate_limited error.
func (s *session) allowMessage() bool {
	ok, closed := s.takeToken("message")
	if !ok && !closed {
		s.reply(rateLimitedMessage)
	}
	return ok
}

// allowPing applies the same bucket to a WebSocket ping (or a pong that
// answers none of ours): a refused ping goes unanswered.
func (s *session) allowPing() bool {
	if s.conn.Closing() {
		return false
	}
	ok, _ := s.takeToken("ping")
	return ok
}

// takeToken takes one token from the client's bucket. Past the bucket,
// more than ClientBurst refusals within the refusal window close the
// client with 1008; closed reports that.
func (s *session) takeToken(kind string) (ok, closed bool) {
	if s.limiter.Allow() {
		return true, false
	}
	s.srv.metrics.RateLimited.Inc()
	now := time.Now()
	if now.Sub(s.refusalStart) > rateRefusalWindow {
		s.refusalStart, s.refusals = now, 0
	}
	s.refusals++
	if s.refusals <= s.srv.opts.ClientBurst {
		return false, false
	}
	if s.refusals == s.srv.opts.ClientBurst+1 {
		s.srv.metrics.RateLimitCloses.Inc()
		s.srv.log.Info("client closed for flooding", "client", s, "refusals", s.refusals, "kind", kind)
	}
	s.conn.Close(causeRateLimit)
	return false, true
}

var rateLimitedMessage = protocol.EncodeError(protocol.CodeRateLimited, "too many messages: slow down", nil)

// tearDown ends the session once its reader is done: the connection
// finishes (a close frame still on its way goes out), timers stop, and
// the hub forgets the client.
func (s *session) tearDown() {
	s.history.end()
	s.stopTimer()
	s.expiring.Wait() // it ran, or is running
	s.conn.Finish()
	cause := s.conn.Cause()
	s.srv.hub.unregister(s)
	s.releaseSlot()
	s.srv.metrics.ClientCloses.WithLabelValues(cause.Label).Inc()
	if cause == wsconn.CauseSlowConsumer {
		s.srv.log.Info("slow consumer closed", "client", s, "queue", s.srv.opts.SendQueue)
	}
	s.srv.log.Debug("client disconnected", "client", s, "cause", cause.Reason)
}
