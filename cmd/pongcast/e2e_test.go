package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/hubtest"
)

// latencyOf returns the latency field of a pong envelope's data, the
// marker tests use to tell pongs apart.
func latencyOf(t *testing.T, m hubtest.Message) int {
	t.Helper()
	var d struct{ Latency int }
	if err := json.Unmarshal(m.Data, &d); err != nil {
		t.Fatalf("data of %s: %v", m.Raw, err)
	}
	return d.Latency
}

// expectPongs reads pongs and fails unless they are exactly want, as
// exchange/latency pairs, in order.
func expectPongs(t *testing.T, c *hubtest.Client, want ...string) {
	t.Helper()
	for _, w := range want {
		m := c.ReadType("exchange:pong")
		if got := fmt.Sprintf("%s/%d", m.Exchange, latencyOf(t, m)); got != w {
			t.Fatalf("got pong %s, want %s", got, w)
		}
	}
}

func TestFilteringBetweenExchangesAndWildcard(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t))
	s.waitReady()
	all := hubtest.Token(t, "all", time.Hour, "*")
	onlyGate := hubtest.Token(t, "gate", time.Hour, "gateio")

	gate := hubtest.MustDial(t, s.ws(""), all)
	gate.Subscribe("gateio")
	binance := hubtest.MustDial(t, s.ws("exchanges=binance"), all)
	binance.ReadType("subscribed")
	wild := hubtest.MustDial(t, s.ws(""), all)
	if set := wild.Subscribe("*", "gateio"); strings.Join(set, ",") != "*,gateio" {
		t.Fatalf("wildcard set = %v", set)
	}
	limitedWild := hubtest.MustDial(t, s.ws(""), onlyGate)
	if set := limitedWild.Subscribe("*"); strings.Join(set, ",") != "gateio" {
		t.Fatalf("wildcard under a gateio-only token = %v, want [gateio]", set)
	}

	s.publish(pong("gateio", 1))
	s.publish(pong("binance", 2))
	s.publish(pong("kraken", 3))
	s.publish(pong("GATEIO", 4))
	s.publish(pong("binance", 5))

	// Each client reads up to a pong it must get after the ones it must
	// not; anything misrouted would show up in between.
	expectPongs(t, gate, "gateio/1", "gateio/4")
	expectPongs(t, binance, "binance/2", "binance/5")
	expectPongs(t, wild, "gateio/1", "binance/2", "kraken/3", "gateio/4", "binance/5") // once each, despite *+gateio
	expectPongs(t, limitedWild, "gateio/1", "gateio/4")
}

func TestForbiddenSubscriptionChangesNothing(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t))
	s.waitReady()
	tok := hubtest.Token(t, "alice", time.Hour, "gateio", "binance")
	c := hubtest.MustDial(t, s.ws(""), tok)
	c.Subscribe("gateio")

	c.Send(map[string]any{"type": "subscribe", "exchanges": []string{"binance", "kraken"}, "id": "r1"})
	m := c.ReadType("error")
	if m.Code != "forbidden" || string(m.ID) != `"r1"` || !strings.Contains(m.Message, "kraken") {
		t.Fatalf("got %s, want a forbidden error naming kraken with id r1", m.Raw)
	}
	c.Send(map[string]any{"type": "unsubscribe", "exchanges": []string{"nothing"}, "id": 7})
	if m := c.ReadType("unsubscribed"); strings.Join(m.Exchanges, ",") != "gateio" || string(m.ID) != "7" {
		t.Fatalf("set after a refused subscribe = %s, want [gateio] with id 7", m.Raw)
	}
	s.publish(pong("binance", 1))
	s.publish(pong("gateio", 2))
	expectPongs(t, c, "gateio/2")

	// The same check at connect time refuses the handshake.
	_, resp, err := hubtest.Dial(t, s.ws("exchanges=gateio,kraken"), tok, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("?exchanges with a forbidden name: err=%v resp=%v, want 403", err, resp)
	}
	_, resp, err = hubtest.Dial(t, s.ws("exchanges=bad!name"), tok, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("?exchanges with an invalid name: err=%v resp=%v, want 400", err, resp)
	}
	// A token with no exchanges may subscribe to nothing, wildcard included.
	none := hubtest.MustDial(t, s.ws(""), hubtest.Token(t, "nobody", time.Hour))
	none.Send(map[string]any{"type": "subscribe", "exchanges": []string{"*"}})
	if m := none.ReadType("error"); m.Code != "forbidden" {
		t.Fatalf("got %s, want forbidden", m.Raw)
	}
}

func TestEnvelopeKeepsPublishedBytes(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t))
	s.waitReady()
	c := hubtest.MustDial(t, s.ws("exchanges=gateio"), hubtest.Token(t, "a", time.Hour, "*"))
	c.ReadType("subscribed")

	published := `{"exchange":"GateIO","latency":45.5,"timestamp":1765738899909,"status":"connected","extra":{"region":"eu","n":[1,2.5e3,null]},"note":"caf\u00e9 é"}`
	before := time.Now().UnixMilli()
	s.publish("  " + published + "\n")
	m := c.ReadType("exchange:pong")
	after := time.Now().UnixMilli()

	want := fmt.Sprintf(`{"type":"exchange:pong","exchange":"gateio","data":%s,"timestamp":%d,"source":"exchange"}`, published, m.Timestamp)
	if string(m.Raw) != want {
		t.Fatalf("envelope\n got %s\nwant %s", m.Raw, want)
	}
	if m.Timestamp < before || m.Timestamp > after {
		t.Fatalf("envelope timestamp %d outside [%d, %d]", m.Timestamp, before, after)
	}
}

func TestInvalidPongsAreDroppedAndCounted(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t))
	s.waitReady()
	c := hubtest.MustDial(t, s.ws("exchanges=*"), hubtest.Token(t, "a", time.Hour, "*"))
	c.ReadType("subscribed")

	bad := map[string]string{
		"not_json":      `{"exchange":"gateio",`,
		"not_object":    `["gateio"]`,
		"bad_exchange":  `{"exchange":"gate io","latency":1}`,
		"bad_latency":   `{"exchange":"gateio","latency":-1}`,
		"bad_timestamp": `{"exchange":"gateio","timestamp":"yesterday"}`,
		"bad_status":    `{"exchange":"gateio","status":"sleepy"}`,
		"invalid_utf8":  "{\"exchange\":\"gateio\",\"note\":\"\xff\xfe\"}",
		"too_large":     `{"exchange":"gateio","pad":"` + strings.Repeat("x", 17000) + `"}`,
	}
	for _, payload := range bad {
		s.publish(payload)
	}
	s.publish(pong("gateio", 42))
	expectPongs(t, c, "gateio/42")
	for reason := range bad {
		if got := s.metric(`pongcast_pongs_rejected_total{reason="` + reason + `"}`); got != "1" {
			t.Errorf("rejected{reason=%s} = %q, want 1", reason, got)
		}
	}
	if !strings.Contains(s.logs.String(), "pong rejected") {
		t.Error("rejections were not logged")
	}
}

func TestMessageCapBothWays(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t))
	s.waitReady()
	tok := hubtest.Token(t, "a", time.Hour, "*")

	// Server to client: the largest pong whose envelope fits, its snapshot
	// form included, is delivered, one byte more is dropped.
	c := hubtest.MustDial(t, s.ws("exchanges=gateio"), tok)
	c.ReadType("subscribed")
	fit := func(total int) string {
		// Envelope overhead for "gateio" and a 13-digit timestamp.
		overhead := len(`{"type":"exchange:pong","exchange":"gateio","data":,"timestamp":1765738899920,"source":"exchange"}`)
		// ParsePong reserves room for the widest timestamp (20 digits)
		// and the snapshot mark.
		dataLen := total - overhead - 7 - len(`,"snapshot":true`)
		prefix := `{"exchange":"gateio","latency":7,"pad":"`
		return prefix + strings.Repeat("p", dataLen-len(prefix)-2) + `"}`
	}
	s.publish(fit(16384 + 1))
	s.publish(fit(16384))
	m := c.ReadType("exchange:pong")
	if len(m.Raw) > 16384 || len(m.Raw) < 16384-7-len(`,"snapshot":true`) {
		t.Fatalf("delivered envelope is %d bytes, want just under the 16384 cap", len(m.Raw))
	}
	if got := s.metric(`pongcast_pongs_rejected_total{reason="too_large"}`); got != "1" {
		t.Fatalf("too_large rejections = %q, want 1", got)
	}

	// Client to server: a message of exactly the cap is served, one byte
	// more closes with 1009.
	msg := func(size int) []byte {
		b := []byte(`{"type":"ping","id":"x"}`)
		return append(b, []byte(strings.Repeat(" ", size-len(b)))...)
	}
	c.SendRaw(msg(16384))
	c.ReadType("pong")
	c.SendRaw(msg(16385))
	if code, _ := c.ExpectClose(hubtest.ReadTimeout); code != websocket.StatusMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
}

func TestRateLimitRefusesThenCloses(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t), "--client-rate", "1", "--client-burst", "3")
	s.waitReady()
	c := hubtest.MustDial(t, s.ws(""), hubtest.Token(t, "flood", time.Hour, "*"))
	for i := range 3 {
		c.Send(map[string]any{"type": "ping", "id": i})
		c.ReadType("pong")
	}
	c.Send(map[string]any{"type": "ping", "id": "over"})
	if m := c.ReadType("error"); m.Code != "rate_limited" {
		t.Fatalf("got %s, want rate_limited", m.Raw)
	}
	// More than burst refusals within 10 s: closed with 1008.
	for range 10 {
		c.Send(map[string]any{"type": "ping"})
	}
	code, reason := c.ExpectClose(hubtest.ReadTimeout)
	if code != websocket.StatusPolicyViolation || reason != "rate limit exceeded" {
		t.Fatalf("close %d %q, want 1008 rate limit exceeded", code, reason)
	}
	if got := s.metric("pongcast_rate_limit_closes_total"); got != "1" {
		t.Fatalf("rate limit closes = %q, want 1", got)
	}
}

func TestSlowConsumerClosedWithoutHurtingOthers(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t), "--send-queue", "64")
	s.waitReady()
	tok := hubtest.Token(t, "a", time.Hour, "*")
	slow := hubtest.MustDial(t, s.ws("exchanges=gateio"), tok)
	slow.ReadType("subscribed")
	fast := hubtest.MustDial(t, s.ws("exchanges=gateio"), tok)
	fast.ReadType("subscribed")

	// The fast client reads as pongs come; the slow one reads nothing until
	// the server has decided to close it, then drains. The publisher keeps
	// at most a window of pongs ahead of the fast reader, so only the slow
	// client can fall behind, however loaded the machine is. 8 KB pongs
	// fill socket buffers fast.
	const n, window = 3000, 16
	pad := strings.Repeat("x", 8000)
	progress := make(chan int, n)
	failed := make(chan error, 1)
	go func() {
		defer close(progress)
		for i := 0; i < n; i++ {
			m, err := fast.TryRead(hubtest.ReadTimeout)
			if err != nil {
				failed <- fmt.Errorf("fast client, pong %d: %w", i, err)
				return
			}
			if hubtest.IsHealthMessage(m.Raw) {
				i-- // the exchange's first status, after its first pong
				continue
			}
			if want := fmt.Sprintf(`"latency":%d,`, i); !strings.Contains(string(m.Data), want) {
				failed <- fmt.Errorf("fast client: pong %d is %.60s", i, m.Data)
				return
			}
			progress <- i
		}
	}()
	// The slow client waits for the event (the close counted), not for a
	// time: its close frame goes out once it reads, within --write-timeout.
	slowClosed := make(chan error, 1)
	go func() {
		// A bound for a server that never decides, not for a slow one.
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
			if v, _ := s.fetchMetric("pongcast_slow_consumer_closes_total"); v == "1" {
				break
			}
			if time.Now().After(deadline) {
				slowClosed <- errors.New("the slow client was never closed as a slow consumer")
				return
			}
		}
		for {
			_, err := slow.TryRead(hubtest.ReadTimeout)
			if err == nil {
				continue
			}
			var ce websocket.CloseError
			switch {
			case !errors.As(err, &ce):
				slowClosed <- fmt.Errorf("slow client: connection ended without a close frame: %w", err)
			case ce.Code != websocket.StatusPolicyViolation || ce.Reason != "slow consumer":
				slowClosed <- fmt.Errorf("slow client closed with %d %q, want 1008 slow consumer", ce.Code, ce.Reason)
			default:
				slowClosed <- nil
			}
			return
		}
	}()
	received := -1
	for i := range n {
		for received < i-window {
			select {
			case received = <-progress:
			case err := <-failed:
				t.Fatal(err)
			}
		}
		s.publish(fmt.Sprintf(`{"exchange":"gateio","latency":%d,"pad":%q}`, i, pad))
	}
	for range progress {
	}
	select {
	case err := <-failed:
		t.Fatal(err)
	default:
	}
	if err := <-slowClosed; err != nil {
		t.Fatal(err)
	}
	if got := s.metric("pongcast_slow_consumer_closes_total"); got != "1" {
		t.Fatalf("slow consumer closes = %q, want 1", got)
	}
}

func TestTokenExpiryClosesConnection(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t))
	s.waitReady()
	// JWT times have whole-second precision: a 2 s token expires in 1-2 s.
	c := hubtest.MustDial(t, s.ws("exchanges=gateio"), hubtest.Token(t, "brief", 2*time.Second, "*"))
	c.ReadType("subscribed")
	start := time.Now()
	// token_expiring comes first, half the short token's life before exp.
	if m := c.ReadType("token_expiring"); m.Exp == 0 {
		t.Fatalf("got %s, want the warning with its exp", m.Raw)
	}
	if m := c.ReadType("error"); m.Code != "token_expired" {
		t.Fatalf("got %s, want token_expired", m.Raw)
	}
	code, _ := c.ExpectClose(hubtest.ReadTimeout)
	if code != websocket.StatusPolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("closed %s after connect, want about 2s", waited)
	}
}

func TestAuthRefusalsBeforeUpgrade(t *testing.T) {
	// First-message auth off: a handshake without a token gets 401.
	s := startServer(t, hubtest.RedisURL(t), "--allowed-origins", "https://app.example.com", "--auth-timeout", "0")
	s.waitReady()
	good := hubtest.Token(t, "a", time.Hour, "*")
	expired := hubtest.Sign(t, auth.TokenSpec{Subject: "a", Exchanges: []string{"*"}, TTL: time.Hour, Now: time.Now().Add(-2 * time.Hour)})
	exp := time.Now().Add(time.Hour).Unix()
	hs256 := `{"alg":"HS256","typ":"JWT"}`
	claims := func(format string) string { return fmt.Sprintf(format, exp) } // format's one %d is exp
	bearer := func(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }
	upperExchanges := hubtest.SignJSON(t, hs256, claims(`{"sub":"a","exp":%d,"EXCHANGES":["*"]}`))
	secondExchanges := hubtest.SignJSON(t, hs256, claims(`{"sub":"a","exp":%d,"exchanges":["gateio"],"EXCHANGES":["*"]}`))
	crit := hubtest.SignJSON(t, `{"alg":"HS256","crit":["exp"]}`, claims(`{"sub":"a","exp":%d,"exchanges":["*"]}`))
	expString := hubtest.SignJSON(t, hs256, claims(`{"sub":"a","exp":"%d","exchanges":["*"]}`))
	cases := []struct {
		name   string
		url    string
		header http.Header
		status int
		reason string
	}{
		{"no token", s.ws(""), nil, 401, "missing"},
		{"garbage", s.ws(""), http.Header{"Authorization": {"Bearer not.a.jwt"}}, 401, "malformed"},
		{"basic auth", s.ws(""), http.Header{"Authorization": {"Basic dXNlcjpwdw=="}}, 401, "malformed"},
		{"expired", s.ws(""), http.Header{"Authorization": {"Bearer " + expired}}, 401, "expired"},
		{"bearer without token", s.ws(""), http.Header{"Authorization": {"Bearer"}}, 401, "malformed"},
		{"token in the wrong parameter", s.ws("token=" + good), nil, 401, "missing"},
		{"four segments", s.ws(""), http.Header{"Authorization": {"Bearer " + good + ".extra"}}, 401, "malformed"},
		{"space inside", s.ws(""), http.Header{"Authorization": {"Bearer " + good[:20] + " " + good[20:]}}, 401, "malformed"},
		// 43 characters cut to 40: canonical base64url still (a cut that
		// leaves unused bits set is malformed), just the wrong signature.
		{"signature cut", s.ws(""), http.Header{"Authorization": {"Bearer " + good[:len(good)-3]}}, 401, "signature"},
		{"9 KB token", s.ws(""), http.Header{"Authorization": {"Bearer " + strings.Repeat("a", 9000)}}, 401, "malformed"},
		{"alg none", s.ws(""), http.Header{"Authorization": {"Bearer " + noneToken(t)}}, 401, "algorithm"},
		{"EXCHANGES for exchanges", s.ws(""), bearer(upperExchanges), 401, "claims"},
		{"EXCHANGES after exchanges", s.ws("access_token=" + secondExchanges), nil, 401, "claims"},
		{"%0A in the query token", s.ws("access_token=" + good[:len(good)-10] + "%0A" + good[len(good)-10:]), nil, 401, "malformed"},
		{"crit header", s.ws(""), bearer(crit), 401, "malformed"},
		{"exp as a string", s.ws(""), bearer(expString), 401, "malformed"},
		{"headers past 16 KB", s.ws(""), http.Header{"Authorization": {"Bearer " + strings.Repeat("a", 30000)}}, 431, ""},
		{"lower-case scheme", s.ws(""), http.Header{"Authorization": {"bearer " + good}}, 101, ""},
		{"query token", s.ws("access_token=" + url.QueryEscape(good)), nil, 101, ""},
		{"foreign origin", s.ws("access_token=" + good), http.Header{"Origin": {"https://evil.example.net"}}, 403, ""},
		{"allowed origin", s.ws("access_token=" + good), http.Header{"Origin": {"https://app.example.com"}}, 101, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, resp, err := hubtest.Dial(t, tc.url, "", tc.header)
			if tc.status == 101 {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				c.Conn.Close(websocket.StatusNormalClosure, "")
				return
			}
			if err == nil || resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("err=%v resp=%v, want HTTP %d", err, resp, tc.status)
			}
			if tc.status != 401 {
				return
			}
			if h := resp.Header.Get("WWW-Authenticate"); h != `Bearer error="invalid_token"` {
				t.Errorf("WWW-Authenticate = %q", h)
			}
			var body struct{ Error, Message string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error != "invalid_token" || body.Message == "" {
				t.Errorf("body = %+v (%v), want error invalid_token with a message", body, err)
			}
			if got := s.metric(`pongcast_auth_failures_total{reason="` + tc.reason + `"}`); got == "0" || got == "" {
				t.Errorf("auth failure %s not counted", tc.reason)
			}
		})
	}
	if strings.Contains(s.logs.String(), good) || strings.Contains(s.logs.String(), expired) {
		t.Fatal("a token appears in the server log")
	}
}

// noneToken is a well-formed unsigned token (alg none) with valid claims.
func noneToken(t *testing.T) string {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	claims := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"sub":"x","exp":%d,"exchanges":["*"]}`, time.Now().Add(time.Hour).Unix())))
	return header + "." + claims + "."
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t))
	s.waitReady()
	for path, want := range map[string]string{"/healthz": `"status":"ok"`, "/readyz": `"status":"ready"`} {
		resp, err := http.Get(s.base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	c := hubtest.MustDial(t, s.ws("exchanges=gateio,binance"), hubtest.Token(t, "a", time.Hour, "*"))
	c.ReadType("subscribed")
	s.publish(pong("gateio", 1))
	c.ReadType("exchange:pong")
	for sample, want := range map[string]string{
		"pongcast_clients_connected":              "1",
		"pongcast_subscriptions":                  "2",
		"pongcast_pongs_received_total":           "1",
		"pongcast_deliveries_total":               "1",
		"pongcast_redis_subscription_up":          "1",
		"pongcast_delivery_latency_seconds_count": "1",
	} {
		if got := s.metric(sample); got != want {
			t.Errorf("%s = %q, want %s", sample, got, want)
		}
	}
}
