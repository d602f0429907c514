package hub

import (
	"testing"
	"time"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/hubtest"
)

// A token already past exp but within the leeway is accepted, and its
// connection lives until exp plus the leeway (it used to get token_expired
// at once, and its client looped reconnecting until the leeway ran out). A
// token still valid at connect ends at exp.
func TestConnectionAcceptedWithinLeewayLivesUntilItsEnd(t *testing.T) {
	const leeway = 4 * time.Second
	v, err := auth.NewVerifier(auth.VerifierConfig{HMACSecret: []byte(hubtest.Secret), Leeway: leeway})
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, Options{Verifier: v})
	issued := time.Now().Add(-time.Hour - 1500*time.Millisecond)
	tok := hubtest.Sign(t, auth.TokenSpec{Subject: "late", Exchanges: []string{"*"}, TTL: time.Hour, Now: issued})
	claims, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("a token %s past exp, inside a %s leeway: %v", time.Since(claims.ExpiresAt), leeway, err)
	}
	c := hubtest.MustDial(t, s.wsURL(""), tok)
	// Past exp, the token_expiring warning is due at once.
	if m := c.Read(); m.Type != "token_expiring" || m.Timestamp != 0 {
		t.Fatalf("first message %s, want token_expiring", m.Raw)
	}
	c.Send(map[string]any{"type": "ping", "id": 1})
	if m := c.Read(); m.Type != "pong" {
		t.Fatalf("first message %s, want the pong reply: the connection must live on", m.Raw)
	}
	m, err := c.TryRead(leeway + hubtest.ReadTimeout)
	if err != nil || m.Code != "token_expired" {
		t.Fatalf("got %s %v, want token_expired", m.Raw, err)
	}
	if end := claims.ExpiresAt.Add(leeway); time.Now().Before(end) {
		t.Fatalf("token_expired %s before exp + leeway", time.Until(end))
	}
}

func TestDeadline(t *testing.T) {
	v, err := auth.NewVerifier(auth.VerifierConfig{HMACSecret: []byte(hubtest.Secret), Leeway: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(1_800_000_000, 0)
	c := auth.Claims{ExpiresAt: exp}
	if got := v.Deadline(c, exp.Add(-time.Minute)); !got.Equal(exp) {
		t.Errorf("accepted before exp: deadline %v, want exp", got)
	}
	if got := v.Deadline(c, exp.Add(9*time.Second)); !got.Equal(exp.Add(30 * time.Second)) {
		t.Errorf("accepted 9 s past exp: deadline %v, want exp + 30 s", got)
	}
}
