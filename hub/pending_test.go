package hub

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// serveGated serves a Server on a gated loopback listener, as the binary
// does.
func serveGated(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	opts.Verifier = hubtest.Verifier(t)
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: time.Minute}
	gated := srv.Listen(ln, hs)
	go func() { _ = hs.Serve(gated) }()
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		_ = hs.Close()
	})
	return srv, ln.Addr().String()
}

// Upgraded connections leave the pending count (MaxConnections bounds
// them); connections still in HTTP stay in it until they close.
func TestPendingCountsOnlyConnectionsNotUpgraded(t *testing.T) {
	srv, addr := serveGated(t, Options{MaxPending: 100, MaxPendingPerIP: 2})
	tok := hubtest.Token(t, "p", time.Hour, "*")
	for i := range 5 {
		c := hubtest.MustDial(t, "ws://"+addr+"/ws?exchanges=gateio", tok)
		c.ReadType("subscribed")
		if i == 0 {
			defer c.Conn.CloseNow()
		}
	}
	waitFor(t, "upgraded connections to leave the count", func() bool { return srv.pending.pending() == 0 })

	idle := make([]net.Conn, 2)
	for i := range idle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle[i] = c
	}
	waitFor(t, "two idle connections counted", func() bool { return srv.pending.pending() == 2 })
	// A third from the address is answered 503 before it says a word,
	// and closed.
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	_ = third.SetReadDeadline(time.Now().Add(hubtest.ReadTimeout))
	resp, err := http.ReadResponse(bufio.NewReader(third), nil)
	if err != nil {
		t.Fatalf("third connection: %v, want a 503", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"error":"too_many_pending"`) {
		t.Fatalf("third connection: %s %v %s", resp.Status, resp.Header, body)
	}
	if got := testCounter(srv.metrics.HandshakeRefusals.WithLabelValues("pending_ip")); got != 1 {
		t.Fatalf("refusals{pending_ip} = %v, want 1", got)
	}
	idle[0].Close()
	waitFor(t, "a closed connection to leave the count", func() bool { return srv.pending.pending() == 1 })
	c := hubtest.MustDial(t, "ws://"+addr+"/ws?exchanges=gateio", tok)
	c.ReadType("subscribed")
}

// A pool filled from several addresses cannot lock a newcomer out: the
// connection waiting longest is closed to make room (the newcomer, and
// every health check after it, used to be refused).
func TestPendingFullClosesTheLongestWaiting(t *testing.T) {
	srv, addr := serveGated(t, Options{MaxPending: 4, MaxPendingPerIP: 2})
	var idle []net.Conn
	for i, local := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
		waitFor(t, "the connection counted", func() bool { return srv.pending.pending() == i+1 })
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz with the pool full: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz with the pool full: %s", resp.Status)
	}
	_ = idle[0].SetReadDeadline(time.Now().Add(hubtest.ReadTimeout))
	if n, err := idle[0].Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the oldest connection: read %d, %v; want it closed", n, err)
	}
	if got := testCounter(srv.metrics.HandshakeRefusals.WithLabelValues("pending_full")); got != 1 {
		t.Fatalf("refusals{pending_full} = %v, want 1", got)
	}
}

// Behind TLS the server sees the TLS connection, not the one the gate
// counted; it must still find and release it (it leaked, and after
// MaxPending connections every client was refused).
func TestPendingReleasedBehindTLS(t *testing.T) {
	opts := Options{MaxPending: 3, MaxPendingPerIP: -1, Verifier: hubtest.Verifier(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.Listener = srv.Listen(ts.Listener, ts.Config)
	ts.StartTLS() // wraps the gated listener in TLS
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		ts.Close()
	})
	client := ts.Client()
	client.Transport.(*http.Transport).DisableKeepAlives = true
	for i := range 8 {
		resp, err := client.Get(ts.URL + "/healthz")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %s", i, resp.Status)
		}
	}
	waitFor(t, "every connection released", func() bool { return srv.pending.pending() == 0 })
}
