package hub

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/hubtest"
	"github.com/pongcast/pongcast/protocol/wsframe"
)

// When every place for a connection waiting for its auth message is
// taken, a newcomer is upgraded all the same and the connection that has
// waited longest is closed: a good client sends its token at once, so the
// oldest are those that stall, and sockets held silent from a few
// addresses cannot lock first-message auth out for everyone.
func TestWaitingFullClosesTheLongestWaiting(t *testing.T) {
	s := newTestServer(t, Options{AuthTimeout: time.Minute, MaxPending: 2, MaxPendingPerIP: 10})
	oldest, second := s.dialBare(t, ""), s.dialBare(t, "")
	newcomer := s.dialBare(t, "")
	expectRefused(t, oldest, "unauthorized")
	newcomer.Send(authMsg(hubtest.Token(t, "n", time.Hour, "*")))
	newcomer.ReadType("authenticated")
	second.Send(authMsg(hubtest.Token(t, "n", time.Hour, "*")))
	second.ReadType("authenticated")
	waitFor(t, "the waiting count to drop to zero", func() bool { return waitingCount(s.unauth) == 0 })
	if got := testCounter(s.metrics.HandshakeRefusals.WithLabelValues(string(admitUnauthFull))); got != 1 {
		t.Fatalf("unauthenticated_full counted %v, want 1 for the one closed to make room", got)
	}
}

func waitingCount(g *unauthGate) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// A connection without a token that sends part of a frame and stops is
// still ended at the auth timeout: the timer does not wait for a read.
func TestAuthTimeoutEndsAPartialFrame(t *testing.T) {
	s := newTestServer(t, Options{AuthTimeout: 300 * time.Millisecond})
	addr := strings.TrimPrefix(s.url, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	frame := wsframe.AppendFrame(nil, wsframe.OpText, []byte(`{"type":"auth","token":"`+strings.Repeat("a", 200)+`"}`), &[4]byte{1, 2, 3, 4})
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), frame[:20]...)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(hubtest.ReadTimeout))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the connection was not closed (%v); got %q", err, got)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 101") || !strings.Contains(string(got), `"code":"unauthorized"`) {
		t.Fatalf("got %q, want the 101, then error unauthorized", got)
	}
}

// A token already inside its warning window gets token_expiring at once,
// but after the authenticated reply that answers the auth message (first
// message or refresh): the timer that sends it must not overtake it.
func TestAuthenticatedComesBeforeAnImmediateWarning(t *testing.T) {
	s := newTestServer(t, Options{AuthTimeout: 5 * time.Second})
	soon := func() string {
		return hubtest.Sign(t, auth.TokenSpec{Subject: "w", Exchanges: []string{"*"}, TTL: 110 * time.Second, Now: time.Now().Add(-100 * time.Second)})
	}
	c := s.dialBare(t, "")
	for i := range 20 {
		c.Send(authMsg(soon()))
		if m := c.Read(); m.Type != "authenticated" {
			t.Fatalf("auth %d: got %s first, want authenticated", i, m.Raw)
		}
		if m := c.Read(); m.Type != "token_expiring" {
			t.Fatalf("auth %d: got %s, want token_expiring", i, m.Raw)
		}
	}
}

// A connection given up for room just as it authenticates (acquire picked
// it, then its auth message came first) is not closed: giveWay sees it
// authenticated and leaves it be, so it never gets authenticated and then
// an unauthorized close.
func TestGiveWaySparesAnAuthenticatedConnection(t *testing.T) {
	s := newTestServer(t, Options{AuthTimeout: time.Minute})
	c := s.dialBare(t, "")
	c.Send(authMsg(hubtest.Token(t, "n", time.Hour, "*")))
	c.ReadType("authenticated")
	all := s.hub.sessions(nil)
	if len(all) != 1 {
		t.Fatalf("%d sessions, want 1", len(all))
	}
	all[0].giveWay()
	c.Send(map[string]any{"type": "ping"})
	if m := c.Read(); m.Type != "pong" {
		t.Fatalf("got %s, want pong: an authenticated connection was given up", m.Raw)
	}
	if got := testCounter(s.metrics.HandshakeRefusals.WithLabelValues(string(admitUnauthFull))); got != 0 {
		t.Fatalf("unauthenticated_full counted %v, want 0", got)
	}
}

// An auth message that arrives just after the timer gave up at the auth
// timeout (stopped, its unauthorized close not yet sent) is not answered
// authenticated: the close that follows would contradict it.
func TestAuthJustAfterTheTimeoutIsNotAnswered(t *testing.T) {
	s := newTestServer(t, Options{AuthTimeout: time.Minute})
	c := s.dialBare(t, "")
	all := s.hub.sessions(nil)
	if len(all) != 1 {
		t.Fatalf("%d sessions, want 1", len(all))
	}
	sess := all[0]
	sess.token.mu.Lock()
	sess.token.stopped = true // what onTimer does when the auth timeout has come
	sess.token.mu.Unlock()
	c.Send(authMsg(hubtest.Token(t, "late", time.Hour, "*")))
	c.Send(map[string]any{"type": "ping"}) // still not authenticated: refused
	if m := c.Read(); m.Type != "error" || m.Code != "unauthorized" {
		t.Fatalf("got %s, want error unauthorized, not authenticated", m.Raw)
	}
	s.admission.mu.Lock()
	held := s.admission.perUser["late"]
	s.admission.mu.Unlock()
	if held != 0 {
		t.Fatalf("%d connection slots held for late, want 0", held)
	}
}
