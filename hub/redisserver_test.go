package hub

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// redisServer is a testServer run against Redis: pongs go in as a
// connector sends them, PUBLISH on the channel the server subscribes to,
// through the real feed.
type redisServer struct {
	*testServer
	redisURL, channel string
	// admin publishes and looks at the snapshot hash.
	admin *redis.Client
}

// newRedisServer starts a server on the test's Redis (the real one when
// PONGCAST_TEST_REDIS_URL is set, an embedded one otherwise), with a
// channel and key prefix of the test's own unless opts names them (their
// keys dropped when the test ends), and returns once its subscription is
// live.
func newRedisServer(t *testing.T, opts Options) *redisServer {
	t.Helper()
	if opts.RedisURL == "" {
		opts.RedisURL = hubtest.RedisURL(t)
	}
	if opts.Channel == "" {
		opts.Channel = hubtest.Channel(t)
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = hubtest.KeyPrefix(t)
	}
	admin := adminClient(t, opts.RedisURL)
	ts := newTestServer(t, opts)
	dropKeys(t, opts.RedisURL, opts.KeyPrefix)
	runServer(t, ts) // stopped before the Shutdown newTestServer registered
	waitFor(t, "the Redis subscription", ts.Ready)
	return &redisServer{testServer: ts, redisURL: opts.RedisURL, channel: opts.Channel, admin: admin}
}

// publishRedis publishes payload on the server's channel and fails the
// test unless the server is subscribed to it.
func (s *redisServer) publishRedis(t *testing.T, payload string) {
	t.Helper()
	n, err := s.admin.Publish(context.Background(), s.channel, payload).Result()
	if err != nil || n != 1 {
		t.Fatalf("PUBLISH %s: %d subscribers, %v; want the server", s.channel, n, err)
	}
}
