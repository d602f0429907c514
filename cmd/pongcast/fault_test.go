package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pongcast/pongcast/hub/hubtest"
)

func TestRedisDownAtStartThenRestartedMidStream(t *testing.T) {
	redis := hubtest.StartRedis(t)
	redis.Stop()

	s := startServer(t, redis.URL())
	// Up and serving without Redis: healthy, not ready, clients welcome.
	s.waitStatus("/healthz", 200)
	s.waitStatus("/readyz", 503)
	c := hubtest.MustDial(t, s.ws("exchanges=gateio"), hubtest.Token(t, "a", time.Hour, "*"))
	c.ReadType("subscribed")

	redis.Start()
	s.waitReady()
	s.publish(pong("gateio", 1))
	expectPongs(t, c, "gateio/1")

	// Redis dies and comes back: readiness follows, delivery resumes with
	// nobody doing anything.
	redis.Stop()
	s.waitStatus("/readyz", 503)
	redis.Start()
	s.waitReady()
	s.publish(pong("gateio", 2))
	expectPongs(t, c, "gateio/2")
	if got := s.metric("pongcast_redis_reconnects_total"); got == "0" || got == "" {
		t.Fatalf("reconnects = %q, want > 0", got)
	}
}

func TestShutdownClosesEveryClientWithGoingAway(t *testing.T) {
	s := startServer(t, hubtest.RedisURL(t))
	s.waitReady()
	tok := hubtest.Token(t, "a", time.Hour, "*")
	var clients []*hubtest.Client
	for range 20 {
		c := hubtest.MustDial(t, s.ws("exchanges=gateio"), tok)
		c.ReadType("subscribed")
		clients = append(clients, c)
	}
	start := time.Now()
	go s.shutdown()
	for i, c := range clients {
		code, reason := c.ExpectClose(10 * time.Second)
		if code != websocket.StatusGoingAway {
			t.Fatalf("client %d: close %d %q, want 1001", i, code, reason)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("shutdown took %s", d)
	}
}

// TestBinaryExitsZeroOnSIGTERM runs the real binary under load: 200
// clients receiving a stream of pongs. SIGTERM closes every client with
// 1001 and the process exits 0 within 10 s.
func TestBinaryExitsZeroOnSIGTERM(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pongcast")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	redisURL := hubtest.RedisURL(t)
	channel := hubtest.Channel(t)
	cmd, addr := startBinary(t, bin, append(os.Environ(), "PONGCAST_JWT_SECRET="+hubtest.Secret),
		"--addr", "127.0.0.1:0", "--redis-url", redisURL, "--channel", channel, "--handshake-rate", "0", "--max-connections-per-user", "0")
	tok := hubtest.Token(t, "a", time.Hour, "*")
	const clients = 200
	codes := make(chan websocket.StatusCode, clients)
	var pongs atomic.Int64
	for range clients {
		c := hubtest.MustDial(t, "ws://"+addr+"/ws?exchanges=gateio", tok)
		c.ReadType("subscribed")
		go func() {
			for {
				_, err := c.TryRead(20 * time.Second)
				var ce websocket.CloseError
				switch {
				case err == nil:
					pongs.Add(1)
					continue
				case errors.As(err, &ce):
					codes <- ce.Code
				default:
					codes <- -1
				}
				return
			}
		}()
	}
	pub := redisClient(t, redisURL)
	stopPub := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; ; i++ {
			select {
			case <-stopPub:
				return
			case <-time.After(5 * time.Millisecond):
				pub.Publish(context.Background(), channel, seqPong("gateio", i))
			}
		}
	}()
	for pongs.Load() < clients*10 { // load is flowing
		time.Sleep(5 * time.Millisecond)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i := range clients {
		if code := <-codes; code != websocket.StatusGoingAway {
			t.Fatalf("client %d: close code %d, want 1001", i, code)
		}
	}
	close(stopPub)
	<-pubDone
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Fatalf("exit: %v, want status 0", err)
		}
	case <-ctx.Done():
		t.Fatal("process did not exit within 10s of SIGTERM")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("exit took %s", d)
	}
}
