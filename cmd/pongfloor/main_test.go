package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pongcast/pongcast/hub/hubtest"
	"github.com/pongcast/pongcast/protocol/wsframe"
)

// startFloor runs pongfloor on a free port against the test Redis and
// returns its address and channel.
func startFloor(t *testing.T) (addr, redisURL, channel string) {
	t.Helper()
	redisURL, channel = hubtest.RedisURL(t), hubtest.Channel(t)
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--redis-url", redisURL, "--channel", channel}, io.Discard,
			func(a string) { addrs <- a })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("pongfloor did not start")
	}
	return addr, redisURL, channel
}

func TestBroadcastsEachPongToEveryClient(t *testing.T) {
	addr, redisURL, channel := startFloor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var conns []*websocket.Conn
	for range 3 {
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		conns = append(conns, c)
	}
	pong := `{"exchange":"gateio","latency":45,"sent_ns":123}`
	if n := hubtest.Publish(t, redisURL, channel, pong); n != 1 {
		t.Fatalf("PUBLISH reached %d subscribers, want 1", n)
	}
	for i, c := range conns {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		var env struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if typ != websocket.MessageText || json.Unmarshal(msg, &env) != nil {
			t.Fatalf("client %d: got %v %q, want a JSON text frame", i, typ, msg)
		}
		if env.Type != "exchange:pong" || string(env.Data) != pong {
			t.Fatalf("client %d: got %s, want the pong inside an exchange:pong envelope", i, msg)
		}
	}
}

func TestRejectsPlainHTTP(t *testing.T) {
	addr, _, _ := startFloor(t)
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "upgrade required") {
		t.Fatalf("got %d %q, want 400 saying an upgrade is required", resp.StatusCode, body)
	}
}

func TestFrameLengths(t *testing.T) {
	// RFC 6455 5.2: 7-bit length up to 125, then 16-bit, then 64-bit.
	for _, tc := range []struct{ payload, header int }{
		{0, 2}, {125, 2}, {126, 4}, {65535, 4}, {65536, 10},
	} {
		f := textFrame(make([]byte, tc.payload))
		h, n, err := wsframe.Parse(f)
		if err != nil || !h.Fin || h.Opcode != wsframe.OpText || h.Masked || n != tc.header || len(f) != tc.header+tc.payload {
			t.Errorf("payload %d: frame of %d bytes, header %+v of %d bytes (%v), want a %d-byte final text header",
				tc.payload, len(f), h, n, err, tc.header)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--workers", "0"}, {"--redis-url", "http://x"}, {"extra"}} {
		err := run(context.Background(), args, io.Discard, nil)
		if _, ok := err.(usageError); !ok {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
}
