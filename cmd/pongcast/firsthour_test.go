package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// An old client of the broadcaster adds only a token: with
// --subscribe-on-connect all it hears every exchange its token allows (it
// used to hear nothing), and still nothing else; naming exchanges at
// connect still means just those.
func TestSubscribeOnConnectAll(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t), "--subscribe-on-connect", "all")
	s.waitReady()
	old := hubtest.MustDial(t, s.ws(""), hubtest.Token(t, "old", time.Hour, "gateio", "okx"))
	if got := old.ReadType("subscribed").Exchanges; len(got) != 2 || got[0] != "gateio" || got[1] != "okx" {
		t.Fatalf("subscribed %v, want the token's gateio,okx", got)
	}
	named := hubtest.MustDial(t, s.ws("exchanges=okx"), hubtest.Token(t, "new", time.Hour, "*"))
	if got := named.ReadType("subscribed").Exchanges; len(got) != 1 || got[0] != "okx" {
		t.Fatalf("named at connect: subscribed %v, want okx alone", got)
	}
	s.publish(pong("binance", 1)) // allowed to neither
	s.publish(pong("gateio", 2))
	s.publish(pong("okx", 3))
	for _, want := range []string{"gateio", "okx"} {
		if m := old.ReadType("exchange:pong"); m.Exchange != want {
			t.Fatalf("old client got %s, want %s", m.Raw, want)
		}
	}
	if m := named.ReadType("exchange:pong"); m.Exchange != "okx" {
		t.Fatalf("named client got %s, want okx", m.Raw)
	}
}

// The default is none: a connection that names nothing gets nothing
// until it subscribes.
func TestSubscribeOnConnectNoneByDefault(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t))
	s.waitReady()
	c := hubtest.MustDial(t, s.ws(""), hubtest.Token(t, "quiet", time.Hour, "*"))
	s.publish(pong("gateio", 1))
	c.Send(map[string]any{"type": "ping", "id": "after"})
	if m := c.Read(); m.Type != "pong" {
		t.Fatalf("first message %s, want the pong reply: nothing was subscribed", m.Raw)
	}
}

// A connection that cannot get what it would be subscribed to at connect
// is refused at the handshake, saying why (it used to be upgraded and then
// hear nothing but an error an old client ignores).
func TestSubscribeOnConnectRefusedAtHandshake(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t), "--subscribe-on-connect", "all", "--max-subscriptions", "2")
	s.waitReady()
	cases := []struct {
		name      string
		query     string
		exchanges []string
		status    int
		code      string
	}{
		{"token allows more than the limit", "", []string{"a", "b", "c"}, http.StatusBadRequest, "bad_request"},
		{"token allows nothing", "", nil, http.StatusForbidden, "forbidden"},
		{"?exchanges past the limit", "exchanges=a,b,c", []string{"*"}, http.StatusBadRequest, "bad_request"},
	}
	for _, tc := range cases {
		_, resp, err := hubtest.Dial(t, s.ws(tc.query), hubtest.Token(t, "x", time.Hour, tc.exchanges...), nil)
		if err == nil || resp == nil || resp.StatusCode != tc.status {
			t.Errorf("%s: %v %v, want %d", tc.name, resp, err, tc.status)
			continue
		}
		var body struct{ Error, Message string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error != tc.code {
			t.Errorf("%s: body %+v %v, want %s", tc.name, body, err, tc.code)
		}
	}
	c := hubtest.MustDial(t, s.ws(""), hubtest.Token(t, "ok", time.Hour, "a", "b"))
	if got := c.ReadType("subscribed").Exchanges; len(got) != 2 {
		t.Fatalf("subscribed %v", got)
	}
}

// A pong received by one instance is the snapshot a client of a freshly
// started second instance gets: the snapshots are shared through Redis.
func TestSnapshotSharedWithAFreshInstance(t *testing.T) {
	redisURL := hubtest.RedisURL(t)
	channel, prefix := hubtest.Channel(t), hubtest.KeyPrefix(t)
	a := startServer(t, redisURL, "--channel", channel, "--key-prefix", prefix)
	a.waitReady()
	hubtest.Publish(t, redisURL, channel, pong("gateio", 42))
	waitFor(t, "the snapshot written to Redis", func() bool {
		v, _ := a.fetchMetric(`pongcast_snapshot_writes_total{result="ok"}`)
		return v == "1"
	})
	b := startServer(t, redisURL, "--channel", channel, "--key-prefix", prefix)
	b.waitReady() // ready once subscribed, and it loads the snapshots first
	c := hubtest.MustDial(t, b.ws("exchanges=gateio"), hubtest.Token(t, "b", time.Hour, "*"))
	c.ReadType("subscribed")
	if m := c.Read(); m.Type != "exchange:pong" || !m.Snapshot || !strings.Contains(string(m.Data), `"latency":42`) {
		t.Fatalf("client of the fresh instance: %s, want the snapshot of the pong instance A received", m.Raw)
	}
}

// waitFor polls cond, which reads state the test cannot wait on directly.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
