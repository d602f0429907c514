package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
	"github.com/pongcast/pongcast/protocol"
)

// distinctNames returns n valid, distinct exchange names.
func distinctNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "x" + strconv.Itoa(i)
	}
	return out
}

// getJSON makes a plain GET (no upgrade) with the token in the header and
// decodes the JSON refusal.
func getJSON(t *testing.T, rawURL, token string) (*http.Response, httpError) {
	t.Helper()
	var body httpError
	resp := getInto(t, rawURL, token, &body)
	return resp, body
}

// getInto is hubtest.GetJSON.
func getInto(t *testing.T, rawURL, token string, v any) *http.Response {
	t.Helper()
	return hubtest.GetJSON(t, rawURL, token, v)
}

// A list longer than any client may hold is refused before a name is
// looked at, over the socket and in ?exchanges= (both used to normalise
// thousands of names, in quadratic time, first).
func TestLongExchangeListsRefusedAtOnce(t *testing.T) {
	s := newTestServer(t, Options{MaxSubscriptions: 5})
	tok := hubtest.Token(t, "long", time.Hour, "gateio")
	long := distinctNames(1400) // about 11 KB: inside the message cap

	c := s.dial(t, "", "gateio")
	c.Send(map[string]any{"type": "subscribe", "exchanges": long, "id": 7})
	m := c.ReadType("error")
	if m.Code != "bad_request" || !strings.Contains(m.Message, "more than 6 names") || string(m.ID) != "7" {
		t.Fatalf("long subscribe: %s, want bad_request naming the cap of 6", m.Raw)
	}
	// Six names (the cap) of which five are repeats are fine.
	if set := c.Subscribe("gateio", "GATEIO", "gateio", "gateio", "gateio", "gateio"); strings.Join(set, ",") != "gateio" {
		t.Fatalf("set %v", set)
	}

	q := url.Values{ExchangesParam: {strings.Join(long, ",")}}
	resp, body := getJSON(t, s.url+"/?"+q.Encode(), tok)
	if resp.StatusCode != http.StatusBadRequest || body.Error != "bad_request" || !strings.Contains(body.Message, "more than 6 names") {
		t.Fatalf("long ?exchanges=: %s %+v, want 400 bad_request naming the cap", resp.Status, body)
	}
}

// Origins: a host-only pattern means https or http (it used to admit any
// scheme), a pattern with a scheme only that scheme; a refusal is JSON,
// counted as "origin" and logged at info.
func TestOriginPatterns(t *testing.T) {
	var logs syncLog
	s := newTestServer(t, Options{
		AllowedOrigins: []string{"app.example.com", "https://secure.example.com", "*.dev.example.com:*"},
		Logger:         slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	tok := hubtest.Token(t, "o", time.Hour, "*")
	host := strings.TrimPrefix(s.url, "http://")
	cases := []struct {
		origin string
		ok     bool
	}{
		{"https://app.example.com", true},
		{"http://app.example.com", true},
		{"ftp://app.example.com", false},
		{"https://App.Example.com", true},
		{"https://secure.example.com", true},
		{"http://secure.example.com", false},
		{"https://a.dev.example.com:8443", true},
		{"https://dev.example.com:8443", false},
		{"https://evil.example.net", false},
		{"null", false},
		{"http://" + host, true}, // same origin
		{"ws://" + host, false},
	}
	refused := 0
	for _, tc := range cases {
		c, resp, err := hubtest.Dial(t, s.wsURL(""), tok, http.Header{"Origin": {tc.origin}})
		if tc.ok {
			if err != nil {
				t.Errorf("Origin %s: %v %v, want allowed", tc.origin, resp, err)
				continue
			}
			c.Conn.CloseNow()
			continue
		}
		refused++
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("Origin %s: %v %v, want 403", tc.origin, resp, err)
			continue
		}
		var body httpError
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error != "origin_not_allowed" ||
			!strings.Contains(body.Message, "--allowed-origins (PONGCAST_ALLOWED_ORIGINS)") {
			t.Errorf("Origin %s: body %+v %v", tc.origin, body, err)
		}
		if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("Origin %s: headers %v", tc.origin, resp.Header)
		}
	}
	if got := testCounter(s.metrics.HandshakeRefusals.WithLabelValues("origin")); got != float64(refused) {
		t.Errorf("refusals{origin} = %v, want %d", got, refused)
	}
	if !strings.Contains(logs.String(), `level=INFO msg="handshake refused: Origin not allowed`) {
		t.Errorf("no info line for a refused Origin:\n%s", logs.String())
	}
	if _, err := NewServer(Options{Verifier: hubtest.Verifier(t), AllowedOrigins: []string{"app.example.com/path"}}); err == nil {
		t.Error("a pattern with a path was accepted")
	}
}

// Every response says not to sniff it, refusals quoting the client's
// input above all.
func TestResponsesAreNotSniffed(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := hubtest.Token(t, "n", time.Hour, "*")
	q := url.Values{ExchangesParam: {"<img src=x onerror=alert(1)>"}}
	for _, u := range []string{s.url + "/?" + q.Encode(), s.url + "/healthz", s.url + "/readyz", s.url + "/metrics"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %s without nosniff", u, resp.Status)
		}
	}
}

// syncLog collects log output written from several goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// What a client reads names no Go package ("hub: exchange not allowed by
// token" used to).
func TestClientMessagesCarryNoPackagePrefixes(t *testing.T) {
	s := newTestServer(t, Options{})
	c := s.dial(t, "", "gateio")
	var texts []string
	for _, names := range [][]string{{"kraken"}, {"bad name"}, {"*", "kraken"}} {
		c.Send(map[string]any{"type": "subscribe", "exchanges": names})
		texts = append(texts, c.ReadType("error").Message)
	}
	tok := hubtest.Token(t, "p", time.Hour, "gateio")
	for _, u := range []string{s.url + "/?exchanges=kraken", s.url + "/?exchanges=a%20b"} {
		_, body := getJSON(t, u, tok)
		texts = append(texts, body.Message)
	}
	_, body := getJSON(t, s.url+"/", "not-a-token")
	texts = append(texts, body.Message)
	for _, text := range texts {
		for _, p := range []string{"hub:", "protocol:", "auth:", "wsconn:"} {
			if strings.Contains(text, p) {
				t.Errorf("%q carries %q", text, p)
			}
		}
	}
}

// The client's own words are quoted back as they were, even when they look
// like a package prefix.
func TestPublicTextLeavesQuotedInputAlone(t *testing.T) {
	err := fmt.Errorf("%w: %w", protocol.ErrBadRequest, fmt.Errorf("%w %q: want ...", protocol.ErrInvalidExchange, `ok: hub: "fine`))
	want := `bad request: invalid exchange name "ok: hub: \"fine": want ...`
	if got := publicText(err); got != want {
		t.Fatalf("publicText = %s, want %s", got, want)
	}
}

// lockProbe is a log handler that records the lines of msg logged while
// the logging goroutine held the hub's lock (a slow log sink must not
// stall the publishers): it takes the lock from another goroutine, which
// gets it at once unless the logger holds it.
type lockProbe struct {
	slog.Handler
	msg    string
	hub    func() *Hub
	mu     sync.Mutex
	locked int
	logged chan struct{} // a value per line of msg, once probed
}

func (p *lockProbe) Handle(ctx context.Context, r slog.Record) error {
	if h := p.hub(); h != nil && r.Message == p.msg {
		got := make(chan struct{})
		go func() {
			h.mu.Lock()
			h.mu.Unlock()
			close(got)
		}()
		select {
		case <-got:
		case <-time.After(2 * time.Second): // held by this goroutine: never free while it logs
			p.mu.Lock()
			p.locked++
			p.mu.Unlock()
		}
		p.logged <- struct{}{}
	}
	return p.Handler.Handle(ctx, r)
}

// A subscribed reply over the message cap is replaced by an internal
// error and logged, but not under the hub's lock.
func TestReplyOverCapLoggedOutsideTheHubLock(t *testing.T) {
	var s *testServer
	var ready atomic.Bool
	probe := &lockProbe{Handler: slog.NewTextHandler(io.Discard, nil), msg: "reply over the message cap", logged: make(chan struct{}, 1), hub: func() *Hub {
		if !ready.Load() {
			return nil
		}
		return s.hub
	}}
	s = newTestServer(t, Options{MaxMessageBytes: 1024, MaxSubscriptions: 100, Logger: slog.New(probe)})
	ready.Store(true)
	c := s.dial(t, "", "*")
	var names []string
	for i := range 30 {
		names = append(names, fmt.Sprintf("exchange-with-a-long-name-%02d", i))
	}
	c.Send(map[string]any{"type": "subscribe", "exchanges": names})
	if m := c.ReadType("error"); m.Code != "internal" {
		t.Fatalf("got %s, want internal for a reply over the cap", m.Raw)
	}
	<-probe.logged
	probe.mu.Lock()
	defer probe.mu.Unlock()
	if probe.locked > 0 {
		t.Fatal("the reply over the cap was logged under the hub's lock")
	}
}
