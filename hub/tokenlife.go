package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/internal/wsconn"
	"github.com/pongcast/pongcast/protocol"
)

// The token lifecycle of a session: first-message auth, refresh, the
// token_expiring warning and the end at exp, all on the session's one
// timer (no goroutine per session: the timer's function runs only when it
// fires).

// expiringWarning is how long before exp token_expiring goes out, unless
// half the token's life is shorter.
const expiringWarning = 60 * time.Second

// authMessageSlack is what an auth message may hold besides its token:
// the type, the quotes, an id. A connection waiting for its auth message
// may send no more than that and the longest token accepted.
const authMessageSlack = 512

// tokenState is a session's token lifecycle. Guarded by mu, which also
// guards writes to session.claims; the reader, the only writer, reads
// both without it.
type tokenState struct {
	mu sync.Mutex
	// authed: claims hold a verified token. Until then the connection
	// waits for its auth message (deadline is the auth timeout).
	authed bool
	// deadline is when the timer ends the session; warnAt, when not zero,
	// is when token_expiring is due first.
	deadline, warnAt time.Time
	// stopped: tearDown has stopped the timer; a run that fired anyway
	// only gives its count back.
	stopped bool
	// waiting is the connection's place in the unauthenticated gate
	// while it waits for its auth message (nil once counted out). The
	// reader's only.
	waiting waitTicket
	// initial is what ?exchanges asked for, subscribed once the auth
	// message has come. The reader's only.
	initial []string
}

// subject is the token's sub, "" before first-message auth.
func (s *session) subject() string {
	s.token.mu.Lock()
	defer s.token.mu.Unlock()
	return s.claims.Subject
}

// currentClaims is the token held now, for a goroutine other than the
// reader.
func (s *session) currentClaims() auth.Claims {
	s.token.mu.Lock()
	defer s.token.mu.Unlock()
	return s.claims
}

// authenticated reports whether the session holds a verified token. The
// reader's view; others call it under token.mu.
func (s *session) authenticated() bool { return s.token.authed }

// armTimer starts the session's timer, before the reader starts: at the
// auth timeout for a connection without a token yet, else at the token's
// warning and end.
func (s *session) armTimer(now time.Time) {
	s.expiring.Add(1)
	s.token.mu.Lock()
	defer s.token.mu.Unlock()
	s.planLocked(now)
	s.expiry = time.AfterFunc(s.nextLocked().Sub(now), s.onTimer)
}

// planLocked sets when the timer is to act: the end at the auth timeout,
// or at the token's deadline (exp, or exp plus the leeway for a token
// accepted within it), with token_expiring due before it.
func (s *session) planLocked(now time.Time) {
	t := &s.token
	if !t.authed {
		t.deadline, t.warnAt = now.Add(s.srv.opts.AuthTimeout), time.Time{}
		return
	}
	t.deadline = s.srv.opts.Verifier.Deadline(s.claims, now)
	t.warnAt = warningTime(s.claims)
	if !t.warnAt.Before(t.deadline) {
		t.warnAt = time.Time{}
	}
}

// warningTime is when token_expiring is due for c: 60 s before exp, or
// half the token's life (exp - iat) before it if that is shorter; 60 s
// for a token without iat. It may be past already: the warning then goes
// at once, since the client has all the less time to refresh.
func warningTime(c auth.Claims) time.Time {
	ahead := expiringWarning
	if !c.IssuedAt.IsZero() {
		ahead = min(ahead, c.ExpiresAt.Sub(c.IssuedAt)/2)
	}
	return c.ExpiresAt.Add(-ahead)
}

func (s *session) nextLocked() time.Time {
	if !s.token.warnAt.IsZero() {
		return s.token.warnAt
	}
	return s.token.deadline
}

// rearmLocked moves the timer to the plan made now. A timer that has
// fired already is left alone: its run, waiting for the lock, plans again
// from what it finds, or has ended the session. A warning due already is
// the caller's to send, after its authenticated reply (warn reports it):
// the timer, firing at once, would overtake that reply.
func (s *session) rearmLocked(now time.Time) (warn bool) {
	s.planLocked(now)
	if w := s.token.warnAt; !w.IsZero() && !now.Before(w) {
		s.token.warnAt, warn = time.Time{}, true
	}
	if s.expiry.Stop() {
		s.expiry.Reset(s.nextLocked().Sub(now))
	}
	return warn
}

// answerAuth answers an auth message, then sends the warning due
// already for its token, if any.
func (s *session) answerAuth(claims auth.Claims, warn bool, id json.RawMessage) {
	s.reply(protocol.EncodeAuthenticated(claims.Subject, claims.ExpiresAt.UnixMilli(), claims.Exchanges, id))
	if warn {
		s.reply(protocol.EncodeTokenExpiring(claims.ExpiresAt.UnixMilli()))
	}
}

// onTimer runs when the timer fires: it warns and sleeps on until the
// end, or ends the session (token_expired, or unauthorized for a
// connection that sent no auth message in time).
func (s *session) onTimer() {
	t := &s.token
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		s.expiring.Done()
		return
	}
	now := time.Now()
	if next := s.nextLocked(); now.Before(next) {
		// Planned again (a refresh) since it was set.
		s.expiry.Reset(next.Sub(now))
		t.mu.Unlock()
		return
	}
	if !t.warnAt.IsZero() && now.Before(t.deadline) {
		t.warnAt = time.Time{}
		exp := s.claims.ExpiresAt
		s.expiry.Reset(t.deadline.Sub(now))
		t.mu.Unlock()
		s.reply(protocol.EncodeTokenExpiring(exp.UnixMilli()))
		return
	}
	t.stopped = true // this run is the last
	authed := t.authed
	t.mu.Unlock()
	defer s.expiring.Done()
	if !authed {
		s.srv.metrics.AuthFailures.WithLabelValues(auth.Reason(auth.ErrTokenMissing)).Inc()
		s.reply(authTimeoutMessage)
		s.conn.Close(causeUnauthorized)
		return
	}
	s.reply(tokenExpiredMessage)
	s.conn.Close(causeTokenExpired)
}

var (
	tokenExpiredMessage = protocol.EncodeError(protocol.CodeTokenExpired, "the token has expired; reconnect with a fresh one", nil)
	authTimeoutMessage  = protocol.EncodeError(protocol.CodeUnauthorized, `no auth message in time: send {"type":"auth","token":"<jwt>"} first`, nil)
	authFirstMessage    = protocol.EncodeError(protocol.CodeUnauthorized, `the first message must be {"type":"auth","token":"<jwt>"}`, nil)
)

// stopTimer stops the timer for tearDown; a run under way finishes and
// gives its count back itself.
func (s *session) stopTimer() {
	s.token.mu.Lock()
	s.token.stopped = true
	stopped := s.expiry.Stop()
	s.token.mu.Unlock()
	if stopped {
		s.expiring.Done() // it will not run
	}
}

// releaseSlot gives back what the connection was counted under: its
// subject's connection slot, or its place among those waiting for their
// auth message.
func (s *session) releaseSlot() {
	if s.authenticated() {
		s.srv.admission.release(s.claims.Subject)
		return
	}
	s.srv.unauth.release(s.token.waiting)
}

// verifyToken checks a token as the handshake does: signature and claims,
// then the revocation list.
func (s *Server) verifyToken(token string, now time.Time) (auth.Claims, error) {
	claims, err := s.opts.Verifier.Verify(token)
	if err != nil {
		return claims, err
	}
	if s.revocations.revoked(claims, now) {
		return auth.Claims{}, fmt.Errorf("%w: revoked by pongctl token revoke", auth.ErrTokenRevoked)
	}
	return claims, nil
}

// authErrorCode is the wire code for a token refused in an auth message.
func authErrorCode(err error) string {
	switch {
	case errors.Is(err, auth.ErrTokenExpired):
		return protocol.CodeTokenExpired
	case errors.Is(err, auth.ErrTokenRevoked):
		return protocol.CodeTokenRevoked
	}
	return protocol.CodeUnauthorized
}

// firstMessage handles the first message of a connection made without a
// token: it must be an auth message with a good token; anything else
// ends the connection (1008). The token is never logged.
func (s *session) firstMessage(data []byte) {
	msg, err := protocol.DecodeClientMessage(data, s.srv.maxListNames())
	if err != nil || msg.Type != protocol.TypeAuth {
		s.refuseFirstMessage()
		return
	}
	now := time.Now()
	claims, err := s.srv.verifyToken(msg.Token, now)
	if err != nil {
		s.srv.metrics.AuthFailures.WithLabelValues(auth.Reason(err)).Inc()
		s.srv.refusalLog.log(s.srv.log, slog.LevelDebug, "auth message refused", "reason", auth.Reason(err), "remote", s.remote, "error", err)
		code := authErrorCode(err)
		s.reply(protocol.EncodeError(code, publicText(err), msg.ID))
		s.conn.Close(closeCauseFor(code))
		return
	}
	if reason := s.srv.admission.acquire(claims.Subject); reason != admitOK {
		s.srv.metrics.HandshakeRefusals.WithLabelValues(string(reason)).Inc()
		s.reply(protocol.EncodeError(protocol.CodeRateLimited, admitText(reason, s.srv.opts), msg.ID))
		s.conn.Close(causeConnectionLimit)
		return
	}
	s.srv.unauth.release(s.token.waiting)
	s.token.waiting = nil
	s.token.mu.Lock()
	if s.token.stopped {
		// The timer gave up on it at the auth timeout, just now: its
		// unauthorized close is on the way, and an authenticated reply
		// before it would be a lie.
		s.token.mu.Unlock()
		s.srv.admission.release(claims.Subject)
		return
	}
	s.claims, s.token.authed = claims, true
	warn := s.rearmLocked(now)
	s.token.mu.Unlock()
	if s.conn.Closing() {
		// Given up for room (giveWay) before authed was set: it has
		// been told unauthorized; its slot goes back at tearDown.
		return
	}
	s.conn.SetReadLimit(s.srv.opts.MaxMessageBytes)
	if s.srv.revokedSince(claims, s) {
		return
	}
	s.srv.log.Debug("client authenticated", "client", s, "exchanges", claims.Exchanges)
	s.answerAuth(claims, warn, msg.ID)
	if initial := s.token.initial; len(initial) > 0 {
		s.token.initial = nil
		s.subscribe(initial, nil)
	}
}

// refuseFirstMessage ends a connection that has not authenticated and
// sent something other than an auth message: error unauthorized, 1008.
func (s *session) refuseFirstMessage() {
	s.srv.metrics.AuthFailures.WithLabelValues(auth.Reason(auth.ErrTokenMissing)).Inc()
	s.reply(authFirstMessage)
	s.conn.Close(causeUnauthorized)
}

// refresh handles an auth message on an authenticated connection: a good
// token of the same sub replaces the one held (its exp and exchanges
// apply at once); anything else is refused and changes nothing.
func (s *session) refresh(msg protocol.ClientMessage) {
	now := time.Now()
	claims, err := s.srv.verifyToken(msg.Token, now)
	if err != nil {
		s.srv.metrics.AuthFailures.WithLabelValues(auth.Reason(err)).Inc()
		s.reply(protocol.EncodeError(authErrorCode(err), publicText(err)+"; the connection keeps its token", msg.ID))
		return
	}
	if claims.Subject != s.claims.Subject {
		s.reply(protocol.EncodeError(protocol.CodeForbidden,
			"the token is for another subject: a refresh keeps the connection's sub; connect again to change it", msg.ID))
		return
	}
	s.token.mu.Lock()
	s.claims = claims
	warn := s.rearmLocked(now)
	s.token.mu.Unlock()
	if s.srv.revokedSince(claims, s) {
		return
	}
	set, dropped := s.srv.hub.restrict(s, claims)
	s.srv.metrics.TokenRefreshes.Inc()
	s.answerAuth(claims, warn, msg.ID)
	if dropped {
		s.reply(protocol.EncodeDropped(set, protocol.ReasonToken))
	}
}

// revokedSince closes c if its token, verified before c held it, was
// revoked in between: an announcement's sweep may have run before c
// held the token, and missed it. It reports whether it closed c.
func (s *Server) revokedSince(claims auth.Claims, c *session) bool {
	if !s.revocations.revoked(claims, time.Now()) {
		return false
	}
	s.metrics.RevokedCloses.Inc()
	c.revoke()
	return true
}

// revoke ends the session for its revoked token.
func (s *session) revoke() {
	s.reply(tokenRevokedMessage)
	s.conn.Close(causeTokenRevoked)
}

var tokenRevokedMessage = protocol.EncodeError(protocol.CodeTokenRevoked, "the token has been revoked", nil)

// closeCauseFor is the close cause for a refused auth message's code.
func closeCauseFor(code string) wsconn.Cause {
	switch code {
	case protocol.CodeTokenExpired:
		return causeTokenExpired
	case protocol.CodeTokenRevoked:
		return causeTokenRevoked
	}
	return causeUnauthorized
}

// admitText says why acquire refused, as the handshake's refusals do.
func admitText(reason admitReason, o Options) string {
	if reason == admitUserFull {
		return fmt.Sprintf("this token's subject already has %d connections", o.MaxConnectionsPerUser)
	}
	return "the server is at its connection limit; retry later or elsewhere"
}
