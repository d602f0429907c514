package hub

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/auth"
)

// Revocations live in Redis under the key prefix: one hash (cluster-safe:
// a single key) whose fields are the entries' keys (jti:<id>, sub:<sub>)
// and whose values are "<before ms> <until ms>", and one Pub/Sub channel
// on which pongctl announces each new entry. Every server subscribes to
// the channel on the pong feed's connection, loads the whole hash after
// each (re)subscription, so what was announced while it was away is
// applied when it is back, and closes the connections an entry covers.

// RevocationsKey is the Redis hash of the revocation list under prefix.
func RevocationsKey(prefix string) string { return prefix + "revoked" }

// RevocationsChannel is the Pub/Sub channel revocations are announced on.
func RevocationsChannel(prefix string) string { return prefix + "revocations" }

// revokeScript merges an entry into the hash: the later before and the
// later until of what is stored and what is given.
var revokeScript = redis.NewScript(`
local b, u = ARGV[2], ARGV[3]
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local cb, cu = string.match(cur, '^(%d+) (%d+)$')
  if cb then
    if tonumber(cb) > tonumber(b) then b = cb end
    if tonumber(cu) > tonumber(u) then u = cu end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], b .. ' ' .. u)
return 1
`)

// forgetScript deletes each field given whose value is still the one
// given: an entry renewed since it was read as expired stays.
var forgetScript = redis.NewScript(`
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i+1] then
    n = n + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return n
`)

// Revoke records r in the revocation list under prefix and announces it
// to every server; it returns how many servers' subscriptions Redis
// counted (those not connected load it when they are back).
func Revoke(ctx context.Context, client redis.Cmdable, prefix string, r auth.Revocation) (int64, error) {
	if err := r.Check(); err != nil {
		return 0, err
	}
	before, until, _ := splitStored(r.StoredValue())
	if err := revokeScript.Run(ctx, client, []string{RevocationsKey(prefix)}, r.Key(), before, until).Err(); err != nil {
		return 0, fmt.Errorf("record the revocation: %w", err)
	}
	n, err := client.Publish(ctx, RevocationsChannel(prefix), r.EncodeAnnouncement()).Result()
	if err != nil {
		return 0, fmt.Errorf("recorded, but not announced (servers apply it at their next reconnect or restart): %w", err)
	}
	return n, nil
}

func splitStored(v string) (before, until string, ok bool) {
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' {
			return v[:i], v[i+1:], true
		}
	}
	return v, "", false
}

// revocationList is the entries one server holds, by key, at most max.
// Expired entries are ignored, and swept when the list is full or loaded.
type revocationList struct {
	max     int
	metrics *Metrics
	log     *slog.Logger
	fullLog *logLimiter
	badLog  *logLimiter
	// appliedLog bounds the line each announcement gets: an operator
	// sees every one of a handful, a flood on the channel costs no more
	// than ten lines a second.
	appliedLog *logLimiter

	mu    sync.RWMutex
	byKey map[string]auth.Revocation
	// readyMu guards gen and loaded. loaded: the list has been loaded
	// from Redis since the control channel's subscription last became
	// live (readiness waits for it). gen counts those becomings-live: a
	// load that began before the latest one does not count, since what
	// was announced while the subscription was down may postdate it.
	readyMu sync.Mutex
	gen     uint64
	loaded  bool
}

// invalidate marks the list stale until a load that begins after it ends.
func (l *revocationList) invalidate() {
	l.readyMu.Lock()
	l.gen++
	l.loaded = false
	l.readyMu.Unlock()
}

// loadBegins returns the generation a load starting now is for.
func (l *revocationList) loadBegins() uint64 {
	l.readyMu.Lock()
	defer l.readyMu.Unlock()
	return l.gen
}

// loadEnded marks the list loaded if no invalidate came since the load
// of generation gen began.
func (l *revocationList) loadEnded(gen uint64) {
	l.readyMu.Lock()
	if gen == l.gen {
		l.loaded = true
	}
	l.readyMu.Unlock()
}

// isLoaded reports whether the list is loaded for the live subscription.
func (l *revocationList) isLoaded() bool {
	l.readyMu.Lock()
	defer l.readyMu.Unlock()
	return l.loaded
}

func newRevocationList(o Options) *revocationList {
	return &revocationList{max: o.MaxRevocations, metrics: o.Metrics, log: o.Logger,
		fullLog: newLogLimiter(time.Minute, 1), badLog: newLogLimiter(10*time.Second, 3),
		appliedLog: newLogLimiter(100*time.Millisecond, 20),
		byKey:      make(map[string]auth.Revocation)}
}

// revoked reports whether an entry held covers the token of c.
func (l *revocationList) revoked(c auth.Claims, now time.Time) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.byKey) == 0 {
		return false
	}
	if c.ID != "" {
		if r, ok := l.byKey[auth.Revocation{JTI: c.ID}.Key()]; ok && !r.Expired(now) && r.Covers(c) {
			return true
		}
	}
	r, ok := l.byKey[auth.Revocation{Subject: c.Subject}.Key()]
	return ok && !r.Expired(now) && r.Covers(c)
}

// add holds r, merged with what is held under its key. Past the bound
// (expired entries swept first) it is counted and logged, not held.
func (l *revocationList) add(r auth.Revocation, now time.Time) {
	if r.Expired(now) {
		return
	}
	key := r.Key()
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.byKey[key]; ok {
		l.byKey[key] = old.Merge(r)
		return
	}
	if len(l.byKey) >= l.max {
		l.sweepLocked(now)
	}
	if len(l.byKey) >= l.max {
		l.metrics.RevocationsOverflow.Inc()
		l.fullLog.log(l.log, slog.LevelError, "revocation list full: an entry is not held, so its tokens are refused only by instances with room; raise --max-revocations",
			"max_revocations", l.max)
		return
	}
	l.byKey[key] = r
	l.metrics.Revocations.Set(float64(len(l.byKey)))
}

func (l *revocationList) sweepLocked(now time.Time) {
	for k, r := range l.byKey {
		if r.Expired(now) {
			delete(l.byKey, k)
		}
	}
	l.metrics.Revocations.Set(float64(len(l.byKey)))
}

// invalid counts and logs an entry or announcement that is not one.
func (l *revocationList) invalid(what string, err error) {
	l.metrics.RevocationsInvalid.Inc()
	l.badLog.log(l.log, slog.LevelWarn, "malformed revocation ignored", "from", what, "error", err)
}

// revocationLoadPage is the HSCAN page size of a load.
const revocationLoadPage = 1000

// load reads the whole list from Redis into l, and deletes the entries
// that have expired there. It returns the number of entries read.
func (l *revocationList) load(ctx context.Context, client redis.Cmdable, prefix string, now time.Time) (int, error) {
	key := RevocationsKey(prefix)
	var cursor uint64
	read := 0
	for {
		fields, next, err := client.HScan(ctx, key, cursor, "", revocationLoadPage).Result()
		if err != nil {
			return read, err
		}
		var expired []any
		for i := 0; i+1 < len(fields); i += 2 {
			r, err := auth.ParseStoredRevocation(fields[i], fields[i+1])
			if err != nil {
				l.invalid("redis hash "+key, err)
				continue
			}
			read++
			if r.Expired(now) {
				expired = append(expired, fields[i], fields[i+1])
				continue
			}
			l.add(r, now)
		}
		if len(expired) > 0 {
			if err := forgetScript.Run(ctx, client, []string{key}, expired...).Err(); err != nil {
				l.log.Warn("expired revocations not deleted from redis; they are ignored all the same", "error", err)
			}
		}
		if next == 0 {
			// What expired in memory since it was held goes too: the
			// gauge says what is held, and it takes no room.
			l.mu.Lock()
			l.sweepLocked(now)
			l.mu.Unlock()
			return read, nil
		}
		cursor = next
	}
}

// revocationLoadTimeout bounds one load of the list.
const revocationLoadTimeout = 10 * time.Second

// A load that failed is tried again while the subscription is live,
// after revocationRetryMin, doubling up to revocationRetryMax.
const (
	revocationRetryMin = time.Second
	revocationRetryMax = 30 * time.Second
)

// runRevocations loads the revocation list whenever the control channel
// subscription becomes live, until ctx ends, and closes the connections
// it covers. A load that fails is retried.
func (s *Server) runRevocations(ctx context.Context) {
	retry := (<-chan time.Time)(nil)
	backoff := revocationRetryMin
	failLog := newLogLimiter(time.Minute, 1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.reloadRevocations:
		case <-retry:
		}
		retry = nil
		gen := s.revocations.loadBegins()
		lctx, cancel := context.WithTimeout(ctx, revocationLoadTimeout)
		n, err := s.revocations.load(lctx, s.snapClient, s.opts.KeyPrefix, time.Now())
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Not ready until it loads: the operator must hear why.
			failLog.log(s.log, slog.LevelError, "revocation list not loaded (the server is not ready until it is); retrying",
				"key", RevocationsKey(s.opts.KeyPrefix), "error", err, "retry_in", backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, revocationRetryMax)
			continue
		}
		backoff = revocationRetryMin
		s.revocations.loadEnded(gen)
		s.log.Info("revocation list loaded", "entries", n)
		s.closeRevoked(func(c *session) bool { return c.revokedNow(s.revocations) })
	}
}

// controlLive is told by the feed that the control channel subscription
// is live (again): the list is loaded anew, for what was missed.
func (s *Server) controlLive() {
	// Not ready until then: what was announced while the subscription
	// was down is not known yet, and a load balancer should send new
	// clients elsewhere for that moment.
	s.revocations.invalidate()
	select {
	case s.reloadRevocations <- struct{}{}:
	default: // a load is due already
	}
}

// onRevocation applies one announcement from the control channel: the
// entry is held from now on, and the connections it covers are closed
// by the sweeper's next pass.
func (s *Server) onRevocation(payload []byte) {
	r, err := auth.DecodeAnnouncement(payload)
	if err != nil {
		s.revocations.invalid("channel "+RevocationsChannel(s.opts.KeyPrefix), err)
		return
	}
	s.revocations.add(r, time.Now())
	s.sweeper.queue(r) // the closes, off this goroutine (revsweep.go)
	s.revocations.appliedLog.log(s.log, slog.LevelInfo, "token revoked", "revocation", truncateForLog(r.Key()))
}

// closeRevoked closes every connection revoked reports true for, and
// returns how many. Closing never blocks: the sweep over all sessions
// costs a check each.
func (s *Server) closeRevoked(revoked func(*session) bool) int {
	n := 0
	for _, c := range s.hub.sessions(nil) {
		if !c.conn.Closing() && revoked(c) {
			c.revoke()
			n++
		}
	}
	s.metrics.RevokedCloses.Add(float64(n))
	return n
}

// revokedNow reports whether the list covers the session's token.
func (c *session) revokedNow(l *revocationList) bool {
	c.token.mu.Lock()
	defer c.token.mu.Unlock()
	return c.token.authed && l.revoked(c.claims, time.Now())
}
