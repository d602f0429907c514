package hub

import (
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
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
}

func waitingCount(g *unauthGate) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}
