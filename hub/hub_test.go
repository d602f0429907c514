package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/pongcast/pongcast/hub/hubtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testServer is a Server without Redis behind a real HTTP server; pongs
// go in through Publish.
type testServer struct {
	*Server
	url string
}

func newTestServer(t testing.TB, opts Options) *testServer {
	t.Helper()
	if opts.Verifier == nil {
		opts.Verifier = hubtest.Verifier(t)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
	})
	return &testServer{Server: srv, url: hs.URL}
}

func (s *testServer) dial(t testing.TB, query string, exchanges ...string) *hubtest.Client {
	t.Helper()
	u := "ws" + strings.TrimPrefix(s.url, "http") + "/ws"
	if query != "" {
		u += "?" + query
	}
	return hubtest.MustDial(t, u, hubtest.Token(t, "tester", time.Hour, exchanges...))
}

func (s *testServer) publish(t *testing.T, exchange string, n int) {
	t.Helper()
	if err := s.Publish([]byte(fmt.Sprintf(`{"exchange":%q,"latency":%d}`, exchange, n))); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond, which reads state the test cannot wait on directly.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSubscriptionSetReplies(t *testing.T) {
	s := newTestServer(t, Options{MaxSubscriptions: 3})
	c := s.dial(t, "", "*")
	steps := []struct {
		send map[string]any
		typ  string
		set  string
		code string
	}{
		{map[string]any{"type": "subscribe", "exchanges": []string{"gateio"}, "id": 1}, "subscribed", "gateio", ""},
		{map[string]any{"type": "subscribe", "exchanges": []string{"Binance", "gateio"}}, "subscribed", "binance,gateio", ""},
		{map[string]any{"type": "subscribe", "exchanges": []string{"okx", "kraken"}}, "error", "", "bad_request"},
		{map[string]any{"type": "subscribe", "exchanges": []string{"*"}}, "subscribed", "*,binance,gateio", ""},
		{map[string]any{"type": "unsubscribe", "exchanges": []string{"gateio", "never"}}, "unsubscribed", "*,binance", ""},
		{map[string]any{"type": "unsubscribe", "exchanges": []string{"*"}}, "unsubscribed", "", ""},
		{map[string]any{"type": "subscribe", "exchanges": []string{"a", "b", "c"}}, "subscribed", "a,b,c", ""},
		{map[string]any{"type": "ping", "id": "p"}, "pong", "", ""},
		{map[string]any{"type": "jump"}, "error", "", "bad_request"},
	}
	for i, st := range steps {
		c.Send(st.send)
		m := c.ReadType(st.typ)
		if st.code != "" && m.Code != st.code {
			t.Fatalf("step %d: %s, want code %s", i, m.Raw, st.code)
		}
		if (st.typ == "subscribed" || st.typ == "unsubscribed") && strings.Join(m.Exchanges, ",") != st.set {
			t.Fatalf("step %d: set %v, want %s", i, m.Exchanges, st.set)
		}
		if id, ok := st.send["id"]; ok {
			if want, _ := json.Marshal(id); string(m.ID) != string(want) {
				t.Fatalf("step %d: id %s, want %s echoed", i, m.ID, want)
			}
		}
	}
	if got := testGauge(s.metrics.Subscriptions); got != 3 {
		t.Fatalf("subscriptions gauge = %v, want 3", got)
	}
	c.Conn.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "the client to be forgotten", func() bool { return s.Clients() == 0 })
	if got := testGauge(s.metrics.Subscriptions); got != 0 {
		t.Fatalf("subscriptions gauge after disconnect = %v, want 0", got)
	}
}

func TestPingAndErrorsEchoID(t *testing.T) {
	s := newTestServer(t, Options{})
	c := s.dial(t, "", "gateio")
	before := time.Now().UnixMilli()
	c.SendRaw([]byte(`{"type":"ping","id":"abc"}`))
	m := c.ReadType("pong")
	if string(m.ID) != `"abc"` || m.Timestamp < before {
		t.Fatalf("pong %s", m.Raw)
	}
	c.SendRaw([]byte(`{"type":"subscribe","exchanges":["no way"],"id":99}`))
	if m := c.ReadType("error"); m.Code != "bad_request" || string(m.ID) != "99" || !strings.Contains(m.Message, "no way") {
		t.Fatalf("error %s", m.Raw)
	}
	c.SendRaw([]byte(`not json at all`))
	if m := c.ReadType("error"); m.Code != "bad_request" {
		t.Fatalf("error %s", m.Raw)
	}
}

func TestBinaryMessageClosesWithUnsupportedData(t *testing.T) {
	s := newTestServer(t, Options{})
	c := s.dial(t, "", "*")
	if err := c.Conn.Write(context.Background(), websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.ExpectClose(hubtest.ReadTimeout); code != websocket.StatusUnsupportedData {
		t.Fatalf("close %d, want 1003", code)
	}
}

func TestKeepAliveDropsSilentClient(t *testing.T) {
	s := newTestServer(t, Options{PingInterval: 250 * time.Millisecond})
	// The library answers pings only while the application reads: the
	// reading client stays, the silent one goes.
	alive := s.dial(t, "exchanges=gateio", "*")
	alive.ReadType("subscribed")
	silent := s.dial(t, "exchanges=gateio", "*")
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, err := alive.TryRead(time.Minute); err != nil {
				readErr <- err
				return
			}
		}
	}()
	waitFor(t, "the silent client to be dropped", func() bool { return s.Clients() == 1 })
	time.Sleep(750 * time.Millisecond) // several more ping periods for the live one
	if s.Clients() != 1 {
		t.Fatal("the client that answers pings was dropped too")
	}
	_ = silent
	alive.Conn.Close(websocket.StatusNormalClosure, "")
	<-readErr
}

func TestShutdownFlushesQueueThenGoingAway(t *testing.T) {
	s := newTestServer(t, Options{})
	c := s.dial(t, "exchanges=gateio", "*")
	c.ReadType("subscribed")
	for i := range 50 {
		s.publish(t, "gateio", i)
	}
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	for i := range 50 {
		m := c.ReadType("exchange:pong")
		if !strings.Contains(string(m.Data), fmt.Sprintf(`"latency":%d}`, i)) {
			t.Fatalf("pong %d: %s", i, m.Data)
		}
	}
	if code, _ := c.ExpectClose(hubtest.ReadTimeout); code != websocket.StatusGoingAway {
		t.Fatalf("close %d, want 1001", code)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// After shutdown the endpoint refuses new clients.
	_, resp, err := hubtest.Dial(t, "ws"+strings.TrimPrefix(s.url, "http")+"/", hubtest.Token(t, "late", time.Hour, "*"), nil)
	if err == nil || resp == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("dial after shutdown: %v %v, want 503 with Retry-After", err, resp)
	}
}

func TestPublishRejectsInvalid(t *testing.T) {
	s := newTestServer(t, Options{})
	if err := s.Publish([]byte(`{"exchange":""}`)); err == nil {
		t.Fatal("accepted an empty exchange")
	}
	if got := testCounter(s.metrics.PongsRejected.WithLabelValues("bad_exchange")); got != 1 {
		t.Fatalf("rejected = %v", got)
	}
}

func TestManyClientsConnectAndLeave(t *testing.T) {
	s := newTestServer(t, Options{})
	const n = 200
	clients := make([]*hubtest.Client, n)
	for i := range clients {
		clients[i] = s.dial(t, "exchanges=gateio", "*")
		clients[i].ReadType("subscribed")
	}
	s.publish(t, "gateio", 1)
	for _, c := range clients {
		c.ReadType("exchange:pong")
	}
	for _, c := range clients {
		c.Conn.CloseNow()
	}
	waitFor(t, "every client to be forgotten", func() bool { return s.Clients() == 0 })
	if got := testGauge(s.metrics.ClientsConnected); got != 0 {
		t.Fatalf("clients gauge %v", got)
	}
}

func TestForbiddenErrorStaysSmall(t *testing.T) {
	s := newTestServer(t, Options{})
	c := s.dial(t, "", "gateio")
	names := make([]string, 0, 101) // the longest list allowed
	for i := range 101 {
		names = append(names, fmt.Sprintf("exchange%04d", i))
	}
	c.Send(map[string]any{"type": "subscribe", "exchanges": names})
	m := c.ReadType("error")
	if m.Code != "forbidden" || len(m.Raw) > 512 || !strings.Contains(m.Message, "and 96 more") {
		t.Fatalf("%d-byte error: %s", len(m.Raw), m.Raw)
	}
}
