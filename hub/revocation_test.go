package hub

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/hubtest"
)

// A load (at start, after a reconnect) holds what Redis has that is
// still in force, deletes there what has expired, counts what is not an
// entry, and forgets the entries held in memory that have expired since:
// the gauge says what is held, and they take no room from new ones.
func TestRevocationLoad(t *testing.T) {
	ropts, err := redis.ParseURL(hubtest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(ropts)
	defer client.Close()
	ctx, prefix := context.Background(), hubtest.KeyPrefix(t)
	key := RevocationsKey(prefix)
	t.Cleanup(func() { client.Del(context.Background(), key) })
	now := time.Now()
	m := NewMetrics(prometheus.NewRegistry())
	l := newRevocationList(Options{MaxRevocations: 10, Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})

	l.add(auth.Revocation{JTI: "gone-soon", Until: now.Add(time.Second)}, now)
	live := auth.Revocation{Subject: "alice", Before: now, Until: now.Add(time.Hour)}
	stale := auth.Revocation{JTI: "stale", Until: now.Add(time.Second)}
	for _, r := range []auth.Revocation{live, stale} {
		if _, err := Revoke(ctx, client, prefix, r); err != nil {
			t.Fatal(err)
		}
	}
	client.HSet(ctx, key, "nonsense", "1 2")

	later := now.Add(2 * time.Second)
	n, err := l.load(ctx, client, prefix, later)
	if err != nil || n != 2 {
		t.Fatalf("load: %d entries, %v; want 2 read", n, err)
	}
	if !l.revoked(auth.Claims{Subject: "alice", IssuedAt: now.Add(-time.Minute)}, later) {
		t.Fatal("the live entry is not held")
	}
	if got := testGauge(m.Revocations); got != 1 {
		t.Fatalf("pongcast_revocations %v, want 1: the entry expired in memory is still counted", got)
	}
	if got := len(l.byKey); got != 1 {
		t.Fatalf("%d entries held, want 1", got)
	}
	if ok, _ := client.HExists(ctx, key, stale.Key()).Result(); ok {
		t.Fatal("the expired entry is still in Redis")
	}
	if got := testCounter(m.RevocationsInvalid); got != 1 {
		t.Fatalf("invalid entries counted %v, want 1", got)
	}
}

// onLog runs fn, on the logging goroutine, for each record with message
// msg: a way to act at a known point inside the server.
type onLog struct {
	msg string
	fn  func()
}

func (h onLog) Enabled(context.Context, slog.Level) bool { return true }
func (h onLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.fn()
	}
	return nil
}
func (h onLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onLog) WithGroup(string) slog.Handler      { return h }

// A token revoked after the handshake checked it, but before its session
// was registered (so the announcement's sweep missed it), is closed with
// token_revoked before anything is delivered: no connect-time
// subscription, no snapshot.
func TestRevokedDuringHandshakeGetsNothing(t *testing.T) {
	tok := hubtest.Token(t, "late", time.Hour, "*")
	claims, _ := hubtest.Verifier(t).Verify(tok)
	var srv *Server
	revoke := func() {
		srv.revocations.add(auth.Revocation{JTI: claims.ID, Until: time.Now().Add(time.Hour)}, time.Now())
	}
	s := newTestServer(t, Options{Logger: slog.New(onLog{msg: "client connected", fn: func() { revoke() }})})
	srv = s.Server
	c := hubtest.MustDial(t, s.wsURL("exchanges=gateio"), tok)
	if m := c.Read(); m.Type != "error" || m.Code != "token_revoked" {
		t.Fatalf("got %s first, want error token_revoked", m.Raw)
	}
	if code, _ := c.ExpectClose(hubtest.ReadTimeout); code != websocket.StatusPolicyViolation {
		t.Fatalf("close %d, want 1008", code)
	}
}

// A flood of announcements on the channel is applied, each one, but
// logged within a bound.
func TestRevocationFloodLogIsBounded(t *testing.T) {
	logs := &syncLog{}
	s := newTestServer(t, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	const n = 500
	until := time.Now().Add(time.Hour)
	for i := range n {
		s.onRevocation(auth.Revocation{JTI: "flood-" + strconv.Itoa(i), Until: until}.EncodeAnnouncement())
	}
	if !s.revocations.revoked(auth.Claims{ID: "flood-" + strconv.Itoa(n-1)}, time.Now()) {
		t.Fatal("the last announcement is not held")
	}
	if got := strings.Count(logs.String(), "token revoked"); got > 100 {
		t.Fatalf("%d log lines for %d announcements made at once", got, n)
	}
}

// After a refresh the connection is matched by its new token: revoking
// the one it held before changes nothing, revoking the new one closes it;
// a refresh with a revoked token is refused and changes nothing.
func TestRevocationAfterRefreshMatchesTheNewToken(t *testing.T) {
	s := newTestServer(t, Options{})
	old := hubtest.Token(t, "rr", time.Hour, "*")
	oc, _ := s.opts.Verifier.Verify(old)
	c := hubtest.MustDial(t, s.wsURL(""), old)
	fresh := hubtest.Token(t, "rr", 2*time.Hour, "*")
	fc, _ := s.opts.Verifier.Verify(fresh)
	revoked := hubtest.Token(t, "rr", 2*time.Hour, "*")
	rc, _ := s.opts.Verifier.Verify(revoked)
	until := time.Now().Add(3 * time.Hour)
	s.onRevocation(auth.Revocation{JTI: rc.ID, Until: until}.EncodeAnnouncement())
	c.Send(authMsg(revoked))
	if m := c.ReadType("error"); m.Code != "token_revoked" {
		t.Fatalf("refresh with a revoked token: %s, want token_revoked", m.Raw)
	}
	c.Send(authMsg(fresh))
	c.ReadType("authenticated")
	s.onRevocation(auth.Revocation{JTI: oc.ID, Until: until}.EncodeAnnouncement())
	waitFor(t, "the sweep of the old token's revocation", func() bool { return sweepsDone(s.Server) })
	c.Send(map[string]any{"type": "ping"})
	c.ReadType("pong")
	s.onRevocation(auth.Revocation{JTI: fc.ID, Until: until}.EncodeAnnouncement())
	expectRefused(t, c, "token_revoked")
}

// sweepsDone reports whether every announcement so far has been swept.
func sweepsDone(s *Server) bool {
	s.sweeper.mu.Lock()
	defer s.sweeper.mu.Unlock()
	return s.sweeper.swept == s.sweeper.queued
}

func sweepPasses(s *Server) int {
	s.sweeper.mu.Lock()
	defer s.sweeper.mu.Unlock()
	return s.sweeper.passes
}

// Announcements are applied without waiting for the sweep over the
// sessions (the feed's goroutine delivers the pongs too), and a burst is
// swept in one or two passes, not one each.
func TestRevocationBurstSweptInFewPasses(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := hubtest.Token(t, "burst", time.Hour, "*")
	tc, _ := s.opts.Verifier.Verify(tok)
	c := hubtest.MustDial(t, s.wsURL(""), tok)
	until := time.Now().Add(time.Hour)
	const n = 100
	s.hub.mu.Lock() // a sweep, which reads the sessions, waits
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		for i := range n - 1 {
			s.onRevocation(auth.Revocation{JTI: "other-" + strconv.Itoa(i), Until: until}.EncodeAnnouncement())
		}
		s.onRevocation(auth.Revocation{JTI: tc.ID, Until: until}.EncodeAnnouncement())
	}()
	select {
	case <-applied:
	case <-time.After(hubtest.ReadTimeout):
		s.hub.mu.Unlock()
		t.Fatal("announcements wait for the sweep over the sessions")
	}
	s.hub.mu.Unlock()
	expectRefused(t, c, "token_revoked")
	if got := sweepPasses(s.Server); got > 2 {
		t.Fatalf("%d passes for a burst of %d announcements, want at most 2", got, n)
	}
}

// A load that began before the control subscription became live again
// does not make the server ready: what was announced while it was down
// may postdate that load, so only the reload that follows counts.
func TestRevocationLoadBeforeReconnectDoesNotMakeReady(t *testing.T) {
	l := newRevocationList(Options{MaxRevocations: 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	l.invalidate() // the subscription becomes live at start
	early := l.loadBegins()
	l.invalidate() // a reconnect while that load runs
	l.loadEnded(early)
	if l.isLoaded() {
		t.Fatal("loaded after a load that began before the reconnect")
	}
	l.loadEnded(l.loadBegins())
	if !l.isLoaded() {
		t.Fatal("not loaded after the reload that follows the reconnect")
	}
}
