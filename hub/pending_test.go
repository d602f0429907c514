package hub

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
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
