package hubtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
)

// RedisEnv names the variable that points tests at a real Redis.
const RedisEnv = "PONGCAST_TEST_REDIS_URL"

// RedisURL returns the Redis a test should use: the one in
// PONGCAST_TEST_REDIS_URL, or else a fresh embedded one.
func RedisURL(t testing.TB) string {
	t.Helper()
	if url := os.Getenv(RedisEnv); url != "" {
		return url
	}
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		t.Fatalf("start embedded redis: %v", err)
	}
	t.Cleanup(m.Close)
	return "redis://" + m.Addr() + "/0"
}

var channelSeq atomic.Int64

// Channel returns a pong channel unique to this test, so tests sharing a
// Redis never see each other's pongs.
func Channel(t testing.TB) string {
	name := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	return fmt.Sprintf("pongcast-test:%d:%s:%d", os.Getpid(), name, channelSeq.Add(1))
}

// KeyPrefix returns a Redis key prefix unique to this test, so servers of
// different tests sharing a Redis never share snapshots. It is short: the
// server takes at most 64 bytes.
func KeyPrefix(t testing.TB) string {
	return fmt.Sprintf("pongcast-test:%d:%d:", os.Getpid(), channelSeq.Add(1))
}

// Publish publishes payload on channel and returns the number of
// subscribers Redis counted.
func Publish(t testing.TB, url, channel, payload string) int64 {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("redis url: %v", err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.Publish(ctx, channel, payload).Result()
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return n
}

// RedisProcess is a Redis the test owns and may stop and start again on
// the same port: a redis-server child process when the binary exists,
// else an embedded one. It is never the shared Redis on 6379.
type RedisProcess struct {
	t    testing.TB
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
	mini *miniredis.Miniredis
}

// StartRedis starts a private Redis on a free port. Extra args are
// redis-server settings (such as "--requirepass", "secret"); a test that
// gives any is skipped where there is no redis-server binary, since the
// embedded Redis would ignore them.
func StartRedis(t testing.TB, args ...string) *RedisProcess {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil && len(args) > 0 {
		t.Skip("needs redis-server for its settings:", args)
	}
	r := &RedisProcess{t: t, port: freePort(t), dir: t.TempDir(), args: args}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// URL is the Redis URL, stable across restarts.
func (r *RedisProcess) URL() string { return "redis://" + r.Addr() + "/0" }

// Addr is the server's host:port, for URLs of a test's own making.
func (r *RedisProcess) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

// Start starts the server and waits until it answers, if only with an
// error (NOAUTH, for a server with a password).
func (r *RedisProcess) Start() {
	r.t.Helper()
	addr := r.Addr()
	if path, err := exec.LookPath("redis-server"); err == nil {
		r.cmd = exec.Command(path, append([]string{"--port", fmt.Sprint(r.port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", r.dir,
			"--logfile", filepath.Join(r.dir, "redis.log")}, r.args...)...)
		if err := r.cmd.Start(); err != nil {
			r.t.Fatalf("start redis-server: %v", err)
		}
	} else {
		r.mini = miniredis.NewMiniRedis()
		if err := r.mini.StartAddr(addr); err != nil {
			r.t.Fatalf("start embedded redis on %s: %v", addr, err)
		}
	}
	opts, _ := redis.ParseURL(r.URL())
	c := redis.NewClient(opts)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	var reply redis.Error
	for err := c.Ping(context.Background()).Err(); err != nil && !errors.As(err, &reply); err = c.Ping(context.Background()).Err() {
		if time.Now().After(deadline) {
			r.t.Fatalf("redis on %s did not answer within 10s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (as a crash would) and waits for it to exit. Safe
// to call when stopped.
func (r *RedisProcess) Stop() {
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
	if r.mini != nil {
		r.mini.Close()
		r.mini = nil
	}
}

// DeadAddr returns a 127.0.0.1 address nothing listens on (a port that
// was free a moment ago), for a Redis that is down.
func DeadAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// QuietRedisLogs stops go-redis's own log lines (its dial failures, with
// a pool.go prefix, written straight to stderr), which would otherwise
// fill the test output whenever a test's Redis is down on purpose. Call
// it first in TestMain.
func QuietRedisLogs() { logging.Disable() }
