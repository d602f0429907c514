package hub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
	"github.com/pongcast/pongcast/protocol"
)

// blackholeRedis is an address that accepts connections and never
// answers: a Redis that hangs.
func blackholeRedis(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "redis://" + ln.Addr().String() + "/0"
}

// TestHistoryDoesNotHoldTheReader: with Redis hanging, a client's history
// messages wait on a goroutine of the session's, not on its reader: a
// ping sent after them is answered at once, and past historyPending
// waiting the next history message is refused at once (rate_limited),
// before the first of them times out.
func TestHistoryDoesNotHoldTheReader(t *testing.T) {
	s := newTestServer(t, Options{RedisURL: blackholeRedis(t), KeyPrefix: hubtest.KeyPrefix(t)})
	c := s.dial(t, "", "gateio")
	for i := range historyPending + 1 {
		c.Send(map[string]any{"type": "history", "exchange": "gateio", "id": fmt.Sprintf("h%d", i)})
	}
	c.Send(map[string]any{"type": "ping", "id": "p"})
	if m := c.Read(); m.Type != "error" || m.Code != "rate_limited" || string(m.ID) != fmt.Sprintf(`"h%d"`, historyPending) {
		t.Fatalf("first reply %s, want rate_limited for h%d", m.Raw, historyPending)
	}
	if m := c.Read(); m.Type != "pong" || string(m.ID) != `"p"` {
		t.Fatalf("second reply %s, want the pong, before any history reply", m.Raw)
	}
	if m := c.Read(); m.Code != "unavailable" || string(m.ID) != `"h0"` {
		t.Fatalf("third reply %s, want h0 unavailable", m.Raw)
	}
	if busy := testCounter(s.metrics.HistoryQueries.WithLabelValues("busy")); busy != 1 {
		t.Errorf("pongcast_history_queries_total{result=busy} %v, want 1", busy)
	}
}

// TestHistoryHTTPSlotsBounded: HTTP history requests served at once are
// bounded (each may hold megabytes until its reply is written): past
// historyHTTPSlots one is refused at once, 503 with Retry-After, and
// counted; with a slot free again it is served.
func TestHistoryHTTPSlotsBounded(t *testing.T) {
	s := newRedisTestServer(t, Options{})
	s.publish(t, "gateio", 1)
	tok := hubtest.Token(t, "h", time.Hour, "gateio")
	for range historyHTTPSlots {
		s.history.httpSlots <- struct{}{} // requests being served
	}
	var body map[string]any
	resp := getInto(t, s.url+"/v1/exchanges/gateio/history", tok, &body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || body["error"] != "unavailable" {
		t.Fatalf("GET history with every slot taken: %s %v %v, want 503 unavailable, Retry-After 1", resp.Status, resp.Header, body)
	}
	if busy := testCounter(s.metrics.HistoryQueries.WithLabelValues("busy")); busy != 1 {
		t.Errorf("busy %v, want 1", busy)
	}
	<-s.history.httpSlots
	waitFor(t, "the pong recorded", func() bool {
		resp = getInto(t, s.url+"/v1/exchanges/gateio/history", tok, &body)
		return resp.StatusCode == http.StatusOK
	})
	if len(s.history.httpSlots) != historyHTTPSlots-1 {
		t.Errorf("%d slots taken after the reply, want %d", len(s.history.httpSlots), historyHTTPSlots-1)
	}
}

// A history message that waited while the connection refreshed to a
// narrower token is answered under the token held when it is answered:
// forbidden for an exchange the new token no longer allows.
func TestQueuedHistoryUsesTheRefreshedToken(t *testing.T) {
	s := newRedisTestServer(t, Options{})
	c := s.dial(t, "", "gateio", "kraken")
	var sess *session
	waitFor(t, "the session registered", func() bool {
		all := s.hub.sessions(nil)
		if len(all) == 1 {
			sess = all[0]
		}
		return sess != nil
	})
	// As if a history goroutine were busy: the next message waits.
	sess.history.mu.Lock()
	sess.history.running = true
	sess.history.mu.Unlock()
	c.Send(map[string]any{"type": "history", "exchange": "kraken", "id": "h"})
	c.Send(authMsg(hubtest.Token(t, "tester", 2*time.Hour, "gateio")))
	c.ReadType("authenticated") // read after the history message: it waits
	s.wg.Add(1)
	sess.serveHistoryInbox()
	if m := c.Read(); m.Type != "error" || m.Code != "forbidden" || string(m.ID) != `"h"` {
		t.Fatalf("got %s, want forbidden for kraken under the refreshed token", m.Raw)
	}
}

// A history read whose requester went away (an HTTP client gone, a
// connection ended) stops with it instead of holding a slot and a Redis
// connection until historyQueryTimeout, and is no fault of Redis: not
// counted as an error.
func TestHistoryReadEndsWithItsRequester(t *testing.T) {
	s := newTestServer(t, Options{RedisURL: blackholeRedis(t), KeyPrefix: hubtest.KeyPrefix(t)})
	claims, err := s.opts.Verifier.Verify(hubtest.Token(t, "h", time.Hour, "*"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.queryHistory(ctx, claims, protocol.HistoryQuery{Exchange: "gateio"}, 0)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("read for a requester gone: %v, want context.Canceled", err)
	}
	if n := testCounter(s.metrics.HistoryQueries.WithLabelValues("error")); n != 0 {
		t.Errorf("history read errors %v, want 0", n)
	}
	// A session's reads end with it.
	var in historyInbox
	in.ctx, in.cancel = context.WithCancel(context.Background())
	in.end()
	if in.ctx.Err() == nil {
		t.Error("the inbox context outlives its session")
	}
}
