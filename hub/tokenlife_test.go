package hub

import (
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/hubtest"
)

// dialBare connects without any token.
func (s *testServer) dialBare(t *testing.T, query string) *hubtest.Client {
	t.Helper()
	c, resp, err := hubtest.Dial(t, s.wsURL(query), "", nil)
	if err != nil {
		t.Fatalf("dial without a token: %v %v", err, resp)
	}
	return c
}

func authMsg(token string) map[string]any { return map[string]any{"type": "auth", "token": token} }

// expectRefused reads the error the server ends with (past any
// token_expiring), then its close.
func expectRefused(t *testing.T, c *hubtest.Client, code string) {
	t.Helper()
	m := c.Read()
	for m.Type == "token_expiring" {
		m = c.Read()
	}
	if m.Type != "error" || m.Code != code {
		t.Fatalf("got %s, want error %s", m.Raw, code)
	}
	if got, _ := c.ExpectClose(hubtest.ReadTimeout); got != websocket.StatusPolicyViolation {
		t.Fatalf("close %d, want 1008", got)
	}
}

// First-message auth: a connection made without a token sends its token
// first; ?exchanges applies once it has come, checked against it.
func TestFirstMessageAuth(t *testing.T) {
	logs := &syncLog{}
	s := newTestServer(t, Options{AuthTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	tok := hubtest.Token(t, "first", time.Hour, "gateio")
	claims, _ := s.opts.Verifier.Verify(tok)
	c := s.dialBare(t, "exchanges=gateio")
	c.Send(map[string]any{"type": "auth", "token": tok, "id": 7})
	m := c.ReadType("authenticated")
	if m.Sub != "first" || m.Exp != claims.ExpiresAt.UnixMilli() || !slices.Equal(m.Exchanges, []string{"gateio"}) || string(m.ID) != "7" {
		t.Fatalf("got %s", m.Raw)
	}
	if got := c.ReadType("subscribed").Exchanges; !slices.Equal(got, []string{"gateio"}) {
		t.Fatalf("subscribed %v, want the ?exchanges set", got)
	}
	s.publish(t, "gateio", 1)
	if m := c.ReadType("exchange:pong"); m.Exchange != "gateio" {
		t.Fatalf("got %s", m.Raw)
	}
	// ?exchanges beyond the token: refused once the token is known, the
	// connection stays.
	c2 := s.dialBare(t, "exchanges=binance")
	c2.Send(authMsg(tok))
	c2.ReadType("authenticated")
	if m := c2.ReadType("error"); m.Code != "forbidden" {
		t.Fatalf("got %s, want forbidden for ?exchanges=binance", m.Raw)
	}
	c2.Send(map[string]any{"type": "ping"})
	c2.ReadType("pong")
	if strings.Contains(logs.String(), tok) {
		t.Fatal("the token is in the log")
	}
}

// Anything but an auth message first, a token that is no good, or
// silence past the timeout: an error, then close 1008. The token is
// never logged, refused or not.
func TestFirstMessageAuthRefusals(t *testing.T) {
	logs := &syncLog{}
	// A timeout no send can miss on a slow machine, and a short one for
	// the silence alone, on a server of its own.
	s := newTestServer(t, Options{AuthTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	quick := newTestServer(t, Options{AuthTimeout: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	expired := hubtest.Sign(t, auth.TokenSpec{Subject: "x", Exchanges: []string{"*"}, TTL: time.Hour, Now: time.Now().Add(-2 * time.Hour)})
	revoked := hubtest.Token(t, "x", time.Hour, "*")
	rc, _ := s.opts.Verifier.Verify(revoked)
	s.revocations.add(auth.Revocation{JTI: rc.ID, Until: time.Now().Add(time.Hour)}, time.Now())
	forged := hubtest.Token(t, "x", time.Hour, "*")
	forged = forged[:len(forged)-4] + "AAAA"
	cases := []struct {
		name string
		send any
		code string
	}{
		{"ping first", map[string]any{"type": "ping"}, "unauthorized"},
		{"subscribe first", map[string]any{"type": "subscribe", "exchanges": []string{"gateio"}}, "unauthorized"},
		{"not JSON", "hello", "unauthorized"},
		{"auth without token", map[string]any{"type": "auth"}, "unauthorized"},
		{"forged", authMsg(forged), "unauthorized"},
		{"expired", authMsg(expired), "token_expired"},
		{"revoked", authMsg(revoked), "token_revoked"},
		{"silence", nil, "unauthorized"},
		{"binary", []byte(`{"type":"auth"}`), "unauthorized"},
		{"invalid UTF-8", "\xff\xfe", "unauthorized"},
	}
	missing := func() float64 {
		return testCounter(s.metrics.AuthFailures.WithLabelValues(auth.Reason(auth.ErrTokenMissing))) +
			testCounter(quick.metrics.AuthFailures.WithLabelValues(auth.Reason(auth.ErrTokenMissing)))
	}
	failures := missing()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := s
			if tc.send == nil {
				srv = quick
			}
			c := srv.dialBare(t, "")
			switch v := tc.send.(type) {
			case nil:
			case string:
				c.SendRaw([]byte(v))
			case []byte:
				if err := c.Conn.Write(t.Context(), websocket.MessageBinary, v); err != nil {
					t.Fatal(err)
				}
			default:
				c.Send(v)
			}
			expectRefused(t, c, tc.code)
		})
	}
	// Every refusal for want of an auth message first is counted, the
	// binary and invalid UTF-8 frames too.
	if got := missing() - failures; got != 7 {
		t.Errorf("%v auth failures for a missing token, want 7", got)
	}
	for _, tok := range []string{expired, revoked, forged} {
		if strings.Contains(logs.String(), tok) {
			t.Fatal("a refused token is in the log")
		}
	}
}

// With first-message auth off, a handshake without a token is refused
// as before; and one with an empty access_token is a token, refused with
// it on.
func TestNoTokenRefusedWhenFirstMessageAuthIsOff(t *testing.T) {
	off := newTestServer(t, Options{})
	on := newTestServer(t, Options{AuthTimeout: time.Second})
	for _, tc := range []struct {
		s     *testServer
		query string
	}{{off, ""}, {on, "access_token="}} {
		_, resp, err := hubtest.Dial(t, tc.s.wsURL(tc.query), "", nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("?%s: %v %v, want 401", tc.query, err, resp)
		}
	}
}

// Connections waiting for their auth message are capped per address;
// one that authenticates frees its place. The first message is capped
// at a token's size.
func TestWaitingConnectionsAreBounded(t *testing.T) {
	s := newTestServer(t, Options{AuthTimeout: 10 * time.Second, MaxPending: 8, MaxPendingPerIP: 2})
	a, b := s.dialBare(t, ""), s.dialBare(t, "")
	_, resp, err := hubtest.Dial(t, s.wsURL(""), "", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third waiting connection: %v %v, want 429", err, resp)
	}
	a.Send(authMsg(hubtest.Token(t, "w", time.Hour, "*")))
	a.ReadType("authenticated")
	c := s.dialBare(t, "")
	c.SendRaw([]byte(`{"type":"auth","token":"` + strings.Repeat("a", auth.MaxTokenBytes+authMessageSlack) + `"}`))
	if code, _ := c.ExpectClose(hubtest.ReadTimeout); code != websocket.StatusMessageTooBig {
		t.Fatalf("oversized first message: close %d, want 1009", code)
	}
	b.Send(authMsg(hubtest.Token(t, "w", time.Hour, "*")))
	b.ReadType("authenticated")
}

// A token in the handshake authenticates; an auth message after it is a
// refresh (also with first-message auth off): the same sub gets the new
// token's exchanges at once, subscriptions it does not allow dropped;
// another sub is forbidden and changes nothing; a bad token changes
// nothing either.
func TestRefresh(t *testing.T) {
	s := newTestServer(t, Options{})
	c := hubtest.MustDial(t, s.wsURL("exchanges=gateio,binance"), hubtest.Token(t, "r", time.Hour, "*"))
	c.ReadType("subscribed")
	narrow := hubtest.Token(t, "r", 2*time.Hour, "gateio")
	nc, _ := s.opts.Verifier.Verify(narrow)

	c.Send(authMsg(hubtest.Token(t, "someone-else", time.Hour, "*")))
	if m := c.ReadType("error"); m.Code != "forbidden" {
		t.Fatalf("other sub: %s, want forbidden", m.Raw)
	}
	c.Send(authMsg("not.a.token"))
	if m := c.ReadType("error"); m.Code != "unauthorized" {
		t.Fatalf("bad token: %s, want unauthorized", m.Raw)
	}
	s.publish(t, "binance", 1)
	if m := c.ReadType("exchange:pong"); m.Exchange != "binance" {
		t.Fatalf("got %s: refusals must change nothing", m.Raw)
	}

	c.Send(authMsg(narrow))
	if m := c.ReadType("authenticated"); m.Exp != nc.ExpiresAt.UnixMilli() || !slices.Equal(m.Exchanges, []string{"gateio"}) {
		t.Fatalf("got %s", m.Raw)
	}
	m := c.ReadType("unsubscribed")
	if !slices.Equal(m.Exchanges, []string{"gateio"}) || m.Reason != "token" {
		t.Fatalf("got %s, want unsubscribed [gateio] reason token", m.Raw)
	}
	s.publish(t, "binance", 2)
	s.publish(t, "gateio", 3)
	if m := c.ReadType("exchange:pong"); m.Exchange != "gateio" {
		t.Fatalf("got %s, want gateio's pong: binance was dropped", m.Raw)
	}
	c.Send(map[string]any{"type": "subscribe", "exchanges": []string{"binance"}})
	if m := c.ReadType("error"); m.Code != "forbidden" {
		t.Fatalf("got %s: the new token's exchanges apply", m.Raw)
	}

	// A wildcard under a token that allows all, refreshed to a list.
	w := hubtest.MustDial(t, s.wsURL("exchanges=*"), hubtest.Token(t, "r", time.Hour, "*"))
	w.ReadType("subscribed")
	w.Send(authMsg(narrow))
	w.ReadType("authenticated")
	if m := w.ReadType("unsubscribed"); len(m.Exchanges) != 0 || m.Reason != "token" {
		t.Fatalf("got %s, want the wildcard dropped", m.Raw)
	}
}

// A refresh takes the connection past the old token's end: a witness
// connection on the old token alone is closed, the refreshed one lives on.
// token_expiring comes first (half the token's life before exp for a
// short one), and again for the new token.
func TestRefreshExtendsAndWarningRearms(t *testing.T) {
	s := newTestServer(t, Options{AuthTimeout: 5 * time.Second})
	// The refresh goes out at the warning, half the life (3 s) before
	// exp: room for a slow machine.
	short := hubtest.Token(t, "e", 6*time.Second, "*")
	sc, _ := s.opts.Verifier.Verify(short)
	witness := hubtest.MustDial(t, s.wsURL(""), short)
	c := s.dialBare(t, "")
	c.Send(authMsg(short))
	c.ReadType("authenticated")
	m := c.ReadType("token_expiring")
	if m.Exp != sc.ExpiresAt.UnixMilli() {
		t.Fatalf("got %s, want exp %d", m.Raw, sc.ExpiresAt.UnixMilli())
	}
	if time.Now().After(sc.ExpiresAt) {
		t.Fatal("token_expiring came after exp")
	}
	next := hubtest.Token(t, "e", 8*time.Second, "*")
	nc, _ := s.opts.Verifier.Verify(next)
	c.Send(authMsg(next))
	c.ReadType("authenticated")

	if m := c.Read(); m.Type != "token_expiring" || m.Exp != nc.ExpiresAt.UnixMilli() {
		t.Fatalf("got %s, want the warning for the new exp %d", m.Raw, nc.ExpiresAt.UnixMilli())
	}
	expectRefused(t, witness, "token_expired")
	expectRefused(t, c, "token_expired")
	if time.Now().Before(nc.ExpiresAt) || !nc.ExpiresAt.After(sc.ExpiresAt) {
		t.Fatalf("refreshed connection ended %s before its new exp", time.Until(nc.ExpiresAt))
	}
}

func TestWarningTime(t *testing.T) {
	exp := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name string
		iat  time.Time
		want time.Duration // before exp
	}{
		{"long token", exp.Add(-time.Hour), time.Minute},
		{"short token", exp.Add(-40 * time.Second), 20 * time.Second},
		{"no iat", time.Time{}, time.Minute},
	} {
		if got := exp.Sub(warningTime(auth.Claims{ExpiresAt: exp, IssuedAt: tc.iat})); got != tc.want {
			t.Errorf("%s: warned %s before exp, want %s", tc.name, got, tc.want)
		}
	}
}

// Revocations held cover by jti (the decoded claim), or by sub and iat
// (a token without iat counted as earlier), until they expire.
func TestRevocationListCovers(t *testing.T) {
	l := newRevocationList(Options{MaxRevocations: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}.withDefaults())
	now := time.Now()
	cut := now.Add(-time.Minute)
	l.add(auth.Revocation{JTI: "j1", Until: now.Add(time.Hour)}, now)
	l.add(auth.Revocation{Subject: "bob", Before: cut, Until: now.Add(time.Hour)}, now)
	l.add(auth.Revocation{JTI: "over", Until: now.Add(time.Hour)}, now) // past the bound
	for _, tc := range []struct {
		name string
		c    auth.Claims
		want bool
	}{
		{"jti", auth.Claims{Subject: "a", ID: "j1"}, true},
		{"other jti", auth.Claims{Subject: "a", ID: "j2"}, false},
		{"sub issued before", auth.Claims{Subject: "bob", IssuedAt: cut.Add(-time.Second)}, true},
		{"sub issued after", auth.Claims{Subject: "bob", IssuedAt: cut.Add(time.Second)}, false},
		{"sub without iat", auth.Claims{Subject: "bob"}, true},
		{"past the bound", auth.Claims{Subject: "a", ID: "over"}, false},
	} {
		if got := l.revoked(tc.c, now); got != tc.want {
			t.Errorf("%s: revoked %v, want %v", tc.name, got, tc.want)
		}
	}
	if l.revoked(auth.Claims{Subject: "a", ID: "j1"}, now.Add(2*time.Hour)) {
		t.Error("an expired entry still revokes")
	}
	if got := testCounter(l.metrics.RevocationsOverflow); got != 1 {
		t.Errorf("overflow counted %v, want 1", got)
	}
}

// A jti is matched as decoded: the same id written with a JSON escape is
// the same token id, refused at the handshake with the usual 401.
func TestRevokedJTIMatchedAsDecoded(t *testing.T) {
	s := newTestServer(t, Options{})
	s.revocations.add(auth.Revocation{JTI: "abc", Until: time.Now().Add(time.Hour)}, time.Now())
	exp := time.Now().Add(time.Hour).Unix()
	for _, claims := range []string{
		`{"sub":"j","exp":%d,"jti":"abc","exchanges":["*"]}`,
		`{"sub":"j","exp":%d,"jti":"\u0061bc","exchanges":["*"]}`,
	} {
		tok := hubtest.SignJSON(t, `{"alg":"HS256","typ":"JWT"}`, strings.Replace(claims, "%d", strconv.FormatInt(exp, 10), 1))
		_, resp, err := hubtest.Dial(t, s.wsURL(""), tok, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: %v %v, want 401", claims, err, resp)
		}
	}
	if got := testCounter(s.metrics.AuthFailures.WithLabelValues("revoked")); got != 2 {
		t.Fatalf("revoked refusals counted %v, want 2", got)
	}
	hubtest.MustDial(t, s.wsURL(""), hubtest.Token(t, "j", time.Hour, "*")) // another jti
}
