package hub

import (
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/pongcast/pongcast/hub/hubtest"
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
