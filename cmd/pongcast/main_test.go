package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// childModes are ways a test runs this test binary again as a child
// process (selected by PONGCAST_TEST_CHILD), for what needs a process of
// its own, such as a lowered file limit.
var childModes = map[string]func() int{}

func TestMain(m *testing.M) {
	// As main does: go-redis's own lines go to the server's log at debug
	// (a test's, while one runs), not to the test output.
	redis.SetLogger(&redisLog)
	if mode := os.Getenv("PONGCAST_TEST_CHILD"); mode != "" {
		child, ok := childModes[mode]
		if !ok {
			fmt.Fprintf(os.Stderr, "no child mode %q\n", mode)
			os.Exit(2)
		}
		os.Exit(child())
	}
	goleak.VerifyTestMain(m)
}

// server is one pongcast started in-process by run, as the binary runs.
type server struct {
	t       *testing.T
	base    string // http://127.0.0.1:port
	redis   string
	channel string
	stop    context.CancelFunc
	done    chan error
	logs    *syncBuffer
	once    sync.Once
}

// syncBuffer collects the server's log output for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs pongcast on a free port against redisURL with a channel
// of the test's own, plus extra flags, and waits until it listens. It is
// shut down, and its exit checked, at cleanup.
func startServer(t *testing.T, redisURL string, extra ...string) *server {
	t.Helper()
	s := &server{t: t, redis: redisURL, channel: hubtest.Channel(t), done: make(chan error, 1), logs: &syncBuffer{}}
	// A key prefix of the test's own too: the shared snapshots of one
	// test must not reach another's clients.
	args := append([]string{"--addr", "127.0.0.1:0", "--redis-url", redisURL, "--channel", s.channel,
		"--key-prefix", hubtest.KeyPrefix(t), "--log-level", "debug"}, extra...)
	env := map[string]string{"PONGCAST_JWT_SECRET": hubtest.Secret}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	started := make(chan string, 1)
	go func() {
		s.done <- run(ctx, args, func(k string) string { return env[k] }, io.Discard, s.logs, func(addr string) { started <- addr })
	}()
	select {
	case addr := <-started:
		s.base = "http://" + addr
	case err := <-s.done:
		t.Fatalf("server did not start: %v\n%s", err, s.logs)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start within 10s")
	}
	t.Cleanup(func() { s.shutdown() })
	return s
}

// shutdown stops the server as SIGTERM would and checks it exits cleanly
// within the contract's 10 s. Safe to call twice, and concurrently.
func (s *server) shutdown() {
	s.once.Do(s.shutdownOnce)
}

func (s *server) shutdownOnce() {
	s.stop()
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("server exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		s.t.Errorf("server did not exit within 10s")
	}
	if s.t.Failed() {
		s.t.Logf("server log:\n%s", s.logs)
	}
}

// waitReady waits until /readyz answers want.
func (s *server) waitStatus(path string, want int) {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(s.base + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s did not answer %d within 15s (last: %v %v)", path, want, resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) waitReady() { s.waitStatus("/readyz", http.StatusOK) }

func (s *server) ws(query string) string {
	u := "ws" + strings.TrimPrefix(s.base, "http") + "/"
	if query != "" {
		u += "?" + query
	}
	return u
}

// publish publishes a payload on the server's channel.
func (s *server) publish(payload string) {
	s.t.Helper()
	hubtest.Publish(s.t, s.redis, s.channel, payload)
}

// pong builds a valid pong payload for exchange with a latency marker.
func pong(exchange string, latency int) string {
	return fmt.Sprintf(`{"exchange":%q,"latency":%d,"timestamp":1765738899909,"status":"connected"}`, exchange, latency)
}

// metric returns the value of one sample line from /metrics, or "" when
// the sample is absent.
func (s *server) metric(sample string) string {
	s.t.Helper()
	v, err := s.fetchMetric(sample)
	if err != nil {
		s.t.Fatal(err)
	}
	return v
}

// fetchMetric is metric that returns its error, for use off the test's
// goroutine.
func (s *server) fetchMetric(sample string) (string, error) {
	return fetchSample(http.DefaultClient, s.base, sample)
}

// fetchSample reads one sample line from base's /metrics, or "" when the
// sample is absent.
func fetchSample(client *http.Client, base, sample string) (string, error) {
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return v, nil
		}
	}
	return "", nil
}
