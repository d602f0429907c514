package hub

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/hubtest"
)

// A sweep pass is logged only when it closed connections, on a limiter
// of its own (not the announcements'): a pass that closes nothing leaves
// no line.
func TestRevocationSweepLoggedOnlyWhenItCloses(t *testing.T) {
	logs := &syncLog{}
	s := newTestServer(t, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	tok := hubtest.Token(t, "swept", time.Hour, "*")
	tc, _ := s.opts.Verifier.Verify(tok)
	c := hubtest.MustDial(t, s.wsURL(""), tok)
	until := time.Now().Add(time.Hour)
	const line = "revoked tokens' connections closed"

	s.onRevocation(auth.Revocation{JTI: "nobody-holds-it", Until: until}.EncodeAnnouncement())
	waitFor(t, "the sweep of an entry that covers no connection", func() bool { return sweepsDone(s.Server) })
	if strings.Contains(logs.String(), line) {
		t.Fatalf("a pass that closed nothing was logged:\n%s", logs.String())
	}
	if s.sweeper.closedLog == s.revocations.appliedLog {
		t.Fatal("the sweeper shares the announcements' log limiter")
	}

	s.onRevocation(auth.Revocation{JTI: tc.ID, Until: until}.EncodeAnnouncement())
	expectRefused(t, c, "token_revoked")
	waitFor(t, "the sweep that closed the connection", func() bool { return sweepsDone(s.Server) })
	if got := logs.String(); !strings.Contains(got, line) || !strings.Contains(got, "closed=1") || !strings.Contains(got, "level=INFO msg=\""+line) {
		t.Fatalf("the pass that closed a connection: no info line %q with closed=1 in\n%s", line, got)
	}
}
