package hub

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub/hubtest"
)

// A load (at start, after a reconnect) holds what Redis has that is
// still in force, deletes there what has expired, counts what is not an
// entry, and forgets the entries held in memory that have expired since:
// the gauge says what is held, and they take no room from new ones.
func TestRevocationLoad(t *testing.T) {
	ropts, err := redis.ParseURL(hubtest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(ropts)
	defer client.Close()
	ctx, prefix := context.Background(), hubtest.KeyPrefix(t)
	key := RevocationsKey(prefix)
	t.Cleanup(func() { client.Del(context.Background(), key) })
	now := time.Now()
	m := NewMetrics(prometheus.NewRegistry())
	l := newRevocationList(Options{MaxRevocations: 10, Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})

	l.add(auth.Revocation{JTI: "gone-soon", Until: now.Add(time.Second)}, now)
	live := auth.Revocation{Subject: "alice", Before: now, Until: now.Add(time.Hour)}
	stale := auth.Revocation{JTI: "stale", Until: now.Add(time.Second)}
	for _, r := range []auth.Revocation{live, stale} {
		if _, err := Revoke(ctx, client, prefix, r); err != nil {
			t.Fatal(err)
		}
	}
	client.HSet(ctx, key, "nonsense", "1 2")

	later := now.Add(2 * time.Second)
	n, err := l.load(ctx, client, prefix, later)
	if err != nil || n != 2 {
		t.Fatalf("load: %d entries, %v; want 2 read", n, err)
	}
	if !l.revoked(auth.Claims{Subject: "alice", IssuedAt: now.Add(-time.Minute)}, later) {
		t.Fatal("the live entry is not held")
	}
	if got := testGauge(m.Revocations); got != 1 {
		t.Fatalf("pongcast_revocations %v, want 1: the entry expired in memory is still counted", got)
	}
	if got := len(l.byKey); got != 1 {
		t.Fatalf("%d entries held, want 1", got)
	}
	if ok, _ := client.HExists(ctx, key, stale.Key()).Result(); ok {
		t.Fatal("the expired entry is still in Redis")
	}
	if got := testCounter(m.RevocationsInvalid); got != 1 {
		t.Fatalf("invalid entries counted %v, want 1", got)
	}
}
