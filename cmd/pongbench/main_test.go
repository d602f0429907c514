// pongbench reads through epoll, so its tests run on Linux only.

//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub"
	"github.com/pongcast/pongcast/hub/hubtest"
)

// startServer runs a pongcast hub fed by the test Redis and returns its
// WebSocket URL, the Redis URL and the channel.
func startServer(t *testing.T) (wsURL, redisURL, channel string) {
	t.Helper()
	redisURL, channel = hubtest.RedisURL(t), hubtest.Channel(t)
	srv, err := hub.NewServer(hub.Options{
		Verifier:  hubtest.Verifier(t),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		RedisURL:  redisURL,
		Channel:   channel,
		KeyPrefix: hubtest.KeyPrefix(t), // no other test's snapshots
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = srv.Run(ctx)
	}()
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		hs.Close()
		cancel()
		<-ran
	})
	for deadline := time.Now().Add(10 * time.Second); !srv.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("server not ready")
		}
	}
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", redisURL, channel
}

// TestLoadCountsEveryDelivery runs a short load against a real server: every
// pong published must be counted once per subscribed client, with a
// latency, and nothing lost.
func TestLoadCountsEveryDelivery(t *testing.T) {
	wsURL, redisURL, channel := startServer(t)
	r := runReport(t, "--url", wsURL, "--redis-url", redisURL, "--channel", channel,
		"--clients", "60", "--exchanges", "3", "--rate", "40", "--duration", "1s", "--drain", "5s",
		"--server-pid", strconv.Itoa(os.Getpid()))
	if r.Connected != 60 || r.Published < 30 {
		t.Fatalf("connected %d, published %d; want 60 and about 40", r.Connected, r.Published)
	}
	// Each pong goes to one exchange of 3, so to 20 clients.
	if r.Expected != int64(20*r.Published) || r.Received != r.Expected || r.Lost != 0 {
		t.Fatalf("expected %d, received %d, lost %d; want %d each and 0 lost", r.Expected, r.Received, r.Lost, 20*r.Published)
	}
	if r.P50Ms <= 0 || r.MaxMs < r.P99Ms || r.P99Ms < r.P50Ms {
		t.Fatalf("latencies p50 %v p99 %v max %v are not ordered and positive", r.P50Ms, r.P99Ms, r.MaxMs)
	}
	if r.PerWakeup < 1 || r.BenchCPUPerDelUs <= 0 {
		t.Fatalf("deliveries per wake-up %v, CPU per delivery %v; want >= 1 and > 0", r.PerWakeup, r.BenchCPUPerDelUs)
	}
}

// TestWildcardCountsEveryPong: clients subscribed to * expect every pong.
func TestWildcardCountsEveryPong(t *testing.T) {
	wsURL, redisURL, channel := startServer(t)
	r := runReport(t, "--url", wsURL, "--redis-url", redisURL, "--channel", channel,
		"--clients", "10", "--wildcard", "--rate", "20", "--duration", "500ms")
	if r.Expected != int64(10*r.Published) || r.Lost != 0 {
		t.Fatalf("expected %d, lost %d; want %d and 0", r.Expected, r.Lost, 10*r.Published)
	}
}

// TestSnapshotMode: every client's first message after subscribed is the
// snapshot published before it connected, and the time to it is reported;
// snapshots are not counted as deliveries.
func TestSnapshotMode(t *testing.T) {
	wsURL, redisURL, channel := startServer(t)
	r := runReport(t, "--url", wsURL, "--redis-url", redisURL, "--channel", channel,
		"--clients", "20", "--exchanges", "2", "--snapshot", "--rate", "20", "--duration", "500ms")
	if r.Connected != 20 || r.SnapshotP50Ms <= 0 || r.SnapshotP99Ms < r.SnapshotP50Ms {
		t.Fatalf("connected %d, dial to snapshot p50 %v p99 %v", r.Connected, r.SnapshotP50Ms, r.SnapshotP99Ms)
	}
	if r.Received != r.Expected || r.Lost != 0 {
		t.Fatalf("expected %d, received %d: snapshots must not count", r.Expected, r.Received)
	}
}

func TestBadOptions(t *testing.T) {
	for _, args := range [][]string{
		{"--mode", "nats"},
		{"--clients", "0"},
		{"--exchanges", "0"},
		{"--rate", "-1"},
		{"--mode", "pongcast"}, // no secret
		{"stray"},
		{"--mode", "seed", "--snapshot"},
	} {
		if _, err := parseOptions(args, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}

// runReport runs pongbench with args against the test's server, as the
// binary would with PONGCAST_JWT_SECRET set, and decodes its JSON report.
func runReport(t *testing.T, args ...string) loadReport {
	t.Helper()
	env := map[string]string{"PONGCAST_JWT_SECRET": hubtest.Secret}
	var out, log bytes.Buffer
	if err := run(context.Background(), append(args, "--json"), func(k string) string { return env[k] }, &out, &log); err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	var r loadReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("report %q: %v", out.String(), err)
	}
	return r
}
