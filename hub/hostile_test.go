package hub

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pongcast/pongcast/hub/hubtest"
	"github.com/pongcast/pongcast/protocol/wsframe"
)

func (s *testServer) wsURL(query string) string {
	u := "ws" + strings.TrimPrefix(s.url, "http") + "/"
	if query != "" {
		u += "?" + query
	}
	return u
}

func TestHostileFrames(t *testing.T) {
	s := newTestServer(t, Options{MaxMessageBytes: 4096})
	tok := hubtest.Token(t, "h", time.Hour, "*")
	cases := []struct {
		name  string
		send  func(c *hubtest.RawConn)
		close int
	}{
		{"one frame over the cap", func(c *hubtest.RawConn) {
			c.WriteFrame(true, wsframe.OpText, []byte(strings.Repeat(" ", 4097)))
		}, 1009},
		{"fragments adding up past the cap", func(c *hubtest.RawConn) {
			// Each fragment is small; the third takes the message past the
			// cap, and nothing is written after it (the server may be gone).
			c.WriteFrame(false, wsframe.OpText, []byte(strings.Repeat(" ", 1500)))
			c.WriteFrame(false, wsframe.OpContinuation, []byte(strings.Repeat(" ", 1500)))
			c.WriteFrame(false, wsframe.OpContinuation, []byte(strings.Repeat(" ", 1500)))
		}, 1009},
		{"binary frame", func(c *hubtest.RawConn) {
			c.WriteFrame(true, wsframe.OpBinary, []byte{0xde, 0xad})
		}, 1003},
		{"invalid UTF-8 text", func(c *hubtest.RawConn) {
			c.WriteFrame(true, wsframe.OpText, []byte("{\"type\":\"ping\",\"id\":\"\xc3\x28\"}"))
		}, 1007},
		{"continuation without a start", func(c *hubtest.RawConn) {
			c.WriteFrame(true, wsframe.OpContinuation, []byte(`{}`))
		}, 1002},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := hubtest.RawDial(t, s.wsURL(""), tok)
			tc.send(c)
			if got := c.ReadClose(); got != tc.close {
				t.Fatalf("close code %d, want %d", got, tc.close)
			}
		})
	}
	waitFor(t, "every hostile client to be forgotten", func() bool { return s.Clients() == 0 })
}

func TestCompressionIsNotNegotiated(t *testing.T) {
	s := newTestServer(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), hubtest.ReadTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, s.wsURL(""), &websocket.DialOptions{
		HTTPHeader:      http.Header{"Authorization": {"Bearer " + hubtest.Token(t, "z", time.Hour, "*")}},
		CompressionMode: websocket.CompressionContextTakeover,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("server negotiated %q; compression must stay off (compression bombs)", ext)
	}
}

func TestAbruptResetsAreCleanedUp(t *testing.T) {
	s := newTestServer(t, Options{})
	tok := hubtest.Token(t, "r", time.Hour, "*")
	stay := s.dial(t, "exchanges=gateio", "*")
	stay.ReadType("subscribed")
	for range 50 {
		c := hubtest.RawDial(t, s.wsURL("exchanges=gateio"), tok)
		_ = c.Conn.(*net.TCPConn).SetLinger(0) // close sends RST
		c.Conn.Close()
	}
	s.publish(t, "gateio", 1)
	if m := stay.ReadType("exchange:pong"); !strings.Contains(string(m.Data), `"latency":1`) {
		t.Fatalf("pong %s", m.Raw)
	}
	waitFor(t, "reset clients to be forgotten", func() bool { return s.Clients() == 1 })
}

func TestSubscribeToggleFloodIsClosed(t *testing.T) {
	s := newTestServer(t, Options{ClientRate: 10, ClientBurst: 20})
	c := s.dial(t, "", "*")
	for i := range 1000 {
		typ := "subscribe"
		if i%2 == 1 {
			typ = "unsubscribe"
		}
		msg := []byte(`{"type":"` + typ + `","exchanges":["gateio"]}`)
		if err := c.Conn.Write(context.Background(), websocket.MessageText, msg); err != nil {
			break // closed under us: that is the point
		}
	}
	if code, reason := c.ExpectClose(hubtest.ReadTimeout); code != websocket.StatusPolicyViolation || reason != "rate limit exceeded" {
		t.Fatalf("close %d %q", code, reason)
	}
}

func TestConnectionLimits(t *testing.T) {
	s := newTestServer(t, Options{MaxConnections: 3, MaxConnectionsPerUser: 2})
	alice := hubtest.Token(t, "alice", time.Hour, "*")
	bob := hubtest.Token(t, "bob", time.Hour, "*")
	a1 := hubtest.MustDial(t, s.wsURL(""), alice)
	hubtest.MustDial(t, s.wsURL(""), alice)

	_, resp, err := hubtest.Dial(t, s.wsURL(""), alice, nil)
	if err == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third alice: %v %v, want 429 with Retry-After", err, resp)
	}
	hubtest.MustDial(t, s.wsURL(""), bob)
	_, resp, err = hubtest.Dial(t, s.wsURL(""), bob, nil)
	if err == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth connection: %v %v, want 503 with Retry-After", err, resp)
	}
	// A slot freed is a slot reusable.
	a1.Conn.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "alice's slot to be freed", func() bool { return s.Clients() == 2 })
	hubtest.MustDial(t, s.wsURL(""), alice)
	for reason, want := range map[string]float64{"user_full": 1, "server_full": 1} {
		if got := testCounter(s.metrics.HandshakeRefusals.WithLabelValues(reason)); got != want {
			t.Errorf("refusals{%s} = %v, want %v", reason, got, want)
		}
	}
}

func TestHandshakeRatePerIP(t *testing.T) {
	s := newTestServer(t, Options{HandshakeRate: 0.01, HandshakeBurst: 2})
	tok := hubtest.Token(t, "x", time.Hour, "*")
	hubtest.MustDial(t, s.wsURL(""), tok)
	hubtest.MustDial(t, s.wsURL(""), tok)
	_, resp, err := hubtest.Dial(t, s.wsURL(""), tok, nil)
	if err == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third handshake: %v %v, want 429 with Retry-After", err, resp)
	}
	// Refused before the token is even looked at.
	_, resp, _ = hubtest.Dial(t, s.wsURL(""), "not-a-token", nil)
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("bad token past the limit: %v, want 429", resp)
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	cases := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "203.0.113.7:5000", nil, "203.0.113.7"},
		{"untrusted peer's header ignored", "203.0.113.7:5000", []string{"1.2.3.4"}, "203.0.113.7"},
		{"trusted proxy", "10.1.2.3:80", []string{"198.51.100.9"}, "198.51.100.9"},
		{"chain: right-most untrusted", "10.1.2.3:80", []string{"6.6.6.6, 198.51.100.9, 10.9.9.9"}, "198.51.100.9"},
		{"several headers", "10.1.2.3:80", []string{"6.6.6.6", "198.51.100.9"}, "198.51.100.9"},
		{"mangled chain falls back to peer", "10.1.2.3:80", []string{"not-an-ip"}, "10.1.2.3"},
		{"all trusted", "10.1.2.3:80", []string{"10.4.4.4"}, "10.1.2.3"},
		{"IPv6 proxy", "[::1]:80", []string{"2001:db8::5"}, "2001:db8::5"},
		{"mapped IPv4", "[::ffff:203.0.113.7]:1", nil, "203.0.113.7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientIP(r, trusted).String(); got != tc.want {
				t.Fatalf("clientIP = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestStuckSocketDroppedAfterWriteTimeout(t *testing.T) {
	// A queue long enough that the socket fills before the queue does: the
	// writer blocks in the kernel, and only the watchdog can end it.
	s := newTestServer(t, Options{WriteTimeout: 300 * time.Millisecond, SendQueue: 100_000, MaxMessageBytes: 1 << 20})
	stuck := hubtest.RawDial(t, s.wsURL("exchanges=gateio"), hubtest.Token(t, "s", time.Hour, "*"))
	_ = stuck // never reads
	waitFor(t, "the client to register", func() bool { return s.Clients() == 1 })
	pad := strings.Repeat("x", 60_000)
	for i := 0; s.Clients() == 1; i++ {
		if i > 20_000 {
			t.Fatal("the stuck client was never dropped")
		}
		if err := s.Publish([]byte(`{"exchange":"gateio","pad":"` + pad + `"}`)); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(t, "the close to be counted", func() bool {
		return testCounter(s.metrics.ClientCloses.WithLabelValues("write_timeout")) == 1
	})
}

// A client may send its first frame right behind the handshake, before the
// 101 arrives; those bytes must survive the switch to small buffers.
func TestFramePipelinedBehindHandshake(t *testing.T) {
	s := newTestServer(t, Options{})
	addr := strings.TrimPrefix(s.url, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ping := []byte(`{"type":"ping","id":"early"}`)
	frame := wsframe.AppendFrame(nil, wsframe.OpText, ping, &[4]byte{1, 2, 3, 4})
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Authorization: Bearer " + hubtest.Token(t, "p", time.Hour, "*") + "\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(hubtest.ReadTimeout))
	got := make([]byte, 0, 1024)
	buf := make([]byte, 1024)
	for !strings.Contains(string(got), `"id":"early"`) {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no reply to the pipelined ping; got %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 101") || !strings.Contains(string(got), `{"type":"pong"`) {
		t.Fatalf("got %q", got)
	}
}

// rawHandshake sends a WebSocket handshake for query and returns what one
// read brings back.
func rawHandshake(t *testing.T, s *testServer, query string) string {
	t.Helper()
	addr := strings.TrimPrefix(s.url, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET /ws" + query + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Authorization: Bearer " + hubtest.Token(t, "h", time.Hour, "*") + "\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(hubtest.ReadTimeout))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no handshake response: %v", err)
	}
	return string(buf[:n])
}

// The 101 is held back and sent with the subscribed reply, in one write,
// so a single read returns both.
func TestHandshakeResponseAndSubscribedReplyInOneWrite(t *testing.T) {
	s := newTestServer(t, Options{})
	got := rawHandshake(t, s, "?exchanges=gateio")
	head, body, ok := strings.Cut(got, "\r\n\r\n")
	if !ok || !strings.HasPrefix(head, "HTTP/1.1 101 Switching Protocols\r\n") ||
		!strings.Contains(head, "Sec-Websocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {
		t.Fatalf("response head %q, want a 101 with the RFC 6455 example accept key", head)
	}
	if !strings.Contains(body, `{"type":"subscribed"`) {
		t.Fatalf("after the 101 in the same read: %q, want the subscribed reply", body)
	}
}

// Without a connect-time subscription there is no reply to carry the 101,
// so it goes out alone at the end of the handshake.
func TestHandshakeResponseWithoutReplyIsNotHeldBack(t *testing.T) {
	s := newTestServer(t, Options{})
	got := rawHandshake(t, s, "")
	if !strings.HasPrefix(got, "HTTP/1.1 101 Switching Protocols\r\n") || !strings.HasSuffix(got, "\r\n\r\n") {
		t.Fatalf("got %q, want the 101 response alone", got)
	}
}

// With ?exchanges=, what a client is owed on connecting (the reply, then
// each exchange's snapshot and status) goes out in the write that carries
// the 101, so a single read returns all of it.
func TestHandshakeCarriesSnapshotsInOneWrite(t *testing.T) {
	s := newTestServer(t, Options{})
	s.publishPong(t, "gateio", 45, "connected")
	s.publishPong(t, "binance", 60, "connected")
	got := rawHandshake(t, s, "?exchanges=gateio,binance")
	head, body, ok := strings.Cut(got, "\r\n\r\n")
	if !ok || !strings.HasPrefix(head, "HTTP/1.1 101 Switching Protocols\r\n") {
		t.Fatalf("response head %q, want a 101", head)
	}
	var order []string
	for _, part := range []string{`{"type":"subscribed"`, `"exchange":"binance","data"`, `{"type":"exchange:status","exchange":"binance"`,
		`"exchange":"gateio","data"`, `{"type":"exchange:status","exchange":"gateio"`} {
		i := strings.Index(body, part)
		if i < 0 {
			t.Fatalf("the read after the 101: %q, want %s in it", body, part)
		}
		order = append(order, body[i:])
	}
	for i := 1; i < len(order); i++ {
		if len(order[i]) >= len(order[i-1]) {
			t.Fatalf("the read after the 101: %q, want the reply, then each exchange's snapshot and status, in name order", body)
		}
	}
}
