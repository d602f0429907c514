package hub

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/hub/hubtest"
	"github.com/pongcast/pongcast/protocol"
)

// pongcastACL is the Redis user SECURITY.md recommends for pongcast: its
// keys and channel, and the commands it and its scripts run.
var pongcastACL = []string{"~pongcast:*", "resetchannels", "&exchange:pong", "&pongcast:revocations",
	"+subscribe", "+eval", "+evalsha", "+hget", "+hset", "+hlen", "+hscan", "+hdel", "+hkeys",
	"+time", "+zadd", "+zscore", "+zcard", "+zremrangebyscore", "+zremrangebyrank", "+pexpire", "+xadd", "+xrange", "+xrevrange",
	"+ping"}

// The user SECURITY.md recommends is enough for everything pongcast does
// in Redis: the subscription (pongs and revocations), the revocation
// list's load (readiness waits for it), the snapshot writes with their
// sweep of a full hash, the load that deletes what is past the horizon,
// and history written and read back. A user
// of the list it gave before (without HDEL and HKEYS) still writes and
// loads: nothing is deleted, and what is past the horizon is skipped.
func TestDocumentedACLSuffices(t *testing.T) {
	withoutDelete := slices.DeleteFunc(slices.Clone(pongcastACL), func(c string) bool { return c == "+hdel" || c == "+hkeys" })
	for _, tc := range []struct {
		name      string
		acl       []string
		mayDelete bool
	}{
		{"documented", pongcastACL, true},
		{"without hdel and hkeys", withoutDelete, false},
	} {
		t.Run(tc.name, func(t *testing.T) { aclRound(t, tc.acl, tc.mayDelete) })
	}
}

func aclRound(t *testing.T, acl []string, mayDelete bool) {
	r := hubtest.StartRedis(t, append([]string{"--user", "pongcast", "on", ">acl-test-password"}, acl...)...)
	opts := Options{RedisURL: "redis://pongcast:acl-test-password@" + r.Addr() + "/0",
		Channel: "exchange:pong", KeyPrefix: "pongcast:", MaxExchanges: 1}
	admin := redis.NewClient(&redis.Options{Addr: r.Addr()}) // the default user, with every right
	t.Cleanup(func() { _ = admin.Close() })
	ctx := context.Background()
	key := opts.KeyPrefix + snapshotKeySuffix
	old := -25 * time.Hour.Milliseconds()

	s := newRedisServer(t, opts)
	s.admin = admin
	admin.HSet(ctx, key, "old", snapValue("old", old, ""))
	s.publishRedis(t, pongJSON("gateio", 5, "connected"))
	waitFor(t, "the snapshot write", func() bool { return s.snaps.Counts().WritesOK == 1 })
	waitFor(t, "the history write", func() bool { return testCounter(s.metrics.HistoryWrites.WithLabelValues("ok")) == 1 })
	page, err := s.history.Range(ctx, protocol.HistoryQuery{Exchange: "gateio", Until: protocol.NoUntil, Limit: 10}, 1<<16)
	if err != nil || len(page.pongs) != 1 {
		t.Fatalf("history read back: %d pongs, %v; want the one", len(page.pongs), err)
	}
	c := s.snaps.Counts()
	if c.WritesFailed != 0 || admin.HExists(ctx, key, "gateio").Val() != mayDelete || (c.Forgotten == 1) != mayDelete {
		t.Fatalf("snapshot counts %+v, fields %v; want the old field swept: %v", c, admin.HKeys(ctx, key).Val(), mayDelete)
	}

	admin.HSet(ctx, key, "old", snapValue("old", old, ""), "gateio", snapValue("gateio", 0, ""))
	fresh := newRedisServer(t, opts)
	c = fresh.snaps.Counts()
	if !fresh.hub.health.Seen("gateio") || fresh.hub.health.Seen("old") || (c.Forgotten == 1) != mayDelete || (c.LoadSkipped["old"] == 1) == mayDelete {
		t.Fatalf("fresh instance: snapshot counts %+v, held %v; want gateio loaded, old deleted: %v, else skipped", c, fresh.hub.health.Held(nil), mayDelete)
	}
}
