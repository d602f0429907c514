package hub

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/health"
	"github.com/pongcast/pongcast/hub/hubtest"
)

// An exchange without a pong for the horizon is forgotten: its
// subscribers were told stale, the gauges and the caches drop it, and its
// slot under --max-exchanges goes to a new exchange, tracked from its
// first pong. A later subscribe shows it unseen; the subscribers it had
// keep their subscription and get its pongs, untracked now.
func TestForgottenExchangeFreesItsSlot(t *testing.T) {
	s := newRedisServer(t, Options{MaxExchanges: 1, StaleAfter: time.Minute})
	ctx := context.Background()
	c := s.dial(t, "exchanges=gateio,binance", "*")
	c.ReadType("subscribed")
	s.publishRedis(t, pongJSON("gateio", 5, "connected"))
	c.ReadType("exchange:pong")
	if m := c.Read(); m.Type != "exchange:status" || m.Status != "up" {
		t.Fatalf("%s, want gateio up", m.Raw)
	}
	waitFor(t, "gateio's snapshot in Redis", func() bool { return s.admin.HExists(ctx, s.snaps.Key(), "gateio").Val() })

	// A day and a minute later, one tick of the timer: stale at the
	// deadline, then forgotten.
	s.expireHealth(time.Now().Add(health.DefaultForgetAfter + time.Minute))
	if m := c.Read(); m.Type != "exchange:status" || m.Exchange != "gateio" || m.Status != "stale" {
		t.Fatalf("%s, want gateio stale", m.Raw)
	}
	for _, st := range health.Statuses {
		if got := exchangesGauge(t, s.metrics, string(st)); got != 0 {
			t.Errorf("exchanges{%s} = %v after gateio was forgotten, want 0", st, got)
		}
	}
	if got := testCounter(s.metrics.ExchangesForgotten); got != 1 {
		t.Errorf("forgotten = %v, want 1", got)
	}
	s.hub.frames.mu.Lock()
	cached := len(s.hub.frames.snapshots) + len(s.hub.frames.statuses)
	s.hub.frames.mu.Unlock()
	s.snaps.mu.Lock()
	slots := len(s.snaps.slots)
	s.snaps.mu.Unlock()
	if cached != 0 || slots != 0 {
		t.Errorf("%d cached frames and %d snapshot slots left of a forgotten exchange", cached, slots)
	}

	// The slot is free: binance is tracked, from a first status.
	s.publishRedis(t, pongJSON("binance", 7, "connected"))
	if m := c.ReadType("exchange:pong"); m.Exchange != "binance" {
		t.Fatalf("%s, want binance's pong", m.Raw)
	}
	if m := c.Read(); m.Type != "exchange:status" || m.Exchange != "binance" || m.Status != "up" || m.Previous != "" {
		t.Fatalf("%s, want binance's first status", m.Raw)
	}
	if got := exchangesGauge(t, s.metrics, "up"); got != 1 {
		t.Errorf("exchanges{up} = %v, want 1", got)
	}

	// gateio is past the bound now: unseen to a new subscribe, and still
	// delivered to the client that held it.
	late := s.dial(t, "", "*")
	late.Send(map[string]any{"type": "subscribe", "exchanges": []string{"gateio"}})
	if m := late.Read(); m.Type != "subscribed" || strings.Join(m.Unseen, ",") != "gateio" {
		t.Fatalf("%s, want gateio unseen", m.Raw)
	}
	late.Send(map[string]any{"type": "ping", "id": 1})
	if m := late.Read(); m.Type != "pong" {
		t.Fatalf("%s, want no snapshot of a forgotten exchange", m.Raw)
	}
	s.publishRedis(t, pongJSON("gateio", 9, "connected"))
	if m := c.Read(); m.Type != "exchange:pong" || m.Exchange != "gateio" || m.Snapshot {
		t.Fatalf("%s, want gateio's pong, live", m.Raw)
	}
	// Counted after the delivery the client has seen.
	waitFor(t, "gateio's pong counted as untracked", func() bool { return testCounter(s.metrics.ExchangesUntracked) == 1 })
}

// A fresh instance does not serve snapshots older than the horizon left
// in the Redis hash: it deletes them as it loads, and their exchanges are
// unseen.
func TestFreshInstanceDropsOldSnapshots(t *testing.T) {
	url, prefix := hubtest.RedisURL(t), hubtest.KeyPrefix(t)
	const dayAndHour = 25 * time.Hour
	s := newRedisServer(t, Options{RedisURL: url, KeyPrefix: prefix, MaxExchanges: 2})
	// The server has loaded the (empty) hash; a second instance, started
	// after the hash is filled, is the fresh one.
	key := prefix + snapshotKeySuffix
	if err := s.admin.HSet(context.Background(), key,
		"gateio", snapValue("gateio", 0, "fresh"),
		"oldex", snapValue("oldex", -dayAndHour.Milliseconds(), "old")).Err(); err != nil {
		t.Fatal(err)
	}
	fresh := newRedisServer(t, Options{RedisURL: url, KeyPrefix: prefix, MaxExchanges: 2})
	c := fresh.dial(t, "", "*")
	c.Send(map[string]any{"type": "subscribe", "exchanges": []string{"gateio", "oldex"}})
	if m := c.Read(); m.Type != "subscribed" || strings.Join(m.Unseen, ",") != "oldex" {
		t.Fatalf("%s, want oldex unseen", m.Raw)
	}
	if m := c.Read(); !m.Snapshot || m.Exchange != "gateio" {
		t.Fatalf("%s, want gateio's snapshot", m.Raw)
	}
	c.Send(map[string]any{"type": "ping", "id": 1})
	if m := c.Read(); m.Type != "pong" {
		t.Fatalf("%s, want nothing of oldex", m.Raw)
	}
	if fresh.admin.HExists(context.Background(), key, "oldex").Val() {
		t.Error("the old snapshot is still in the hash")
	}
	if n := fresh.snaps.Counts().Forgotten; n != 1 {
		t.Errorf("forgotten %d, want 1", n)
	}
}

// Servers sharing one Metrics (tests, a restart in the same process):
// pongcast_exchanges counts the exchanges of the servers running, and a
// server that shuts down takes its own with it.
func TestExchangeGaugesPerServer(t *testing.T) {
	m := NewMetrics(nil)
	a := newTestServer(t, Options{Metrics: m})
	a.publishPong(t, "gateio", 5, "connected")
	b := newTestServer(t, Options{Metrics: m})
	b.publishPong(t, "binance", 5, "connected")
	b.publishPong(t, "kraken", 5, "disconnected")
	if up, down := exchangesGauge(t, m, "up"), exchangesGauge(t, m, "down"); up != 2 || down != 1 {
		t.Fatalf("exchanges{up} = %v, {down} = %v with both running; want 2 and 1", up, down)
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if up, down := exchangesGauge(t, m, "up"), exchangesGauge(t, m, "down"); up != 1 || down != 1 {
		t.Fatalf("exchanges{up} = %v, {down} = %v after the first shut down; want b's 1 and 1", up, down)
	}
}
