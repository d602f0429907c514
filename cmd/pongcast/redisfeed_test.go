package main

import (
	"strconv"
	"testing"
	"time"

	"github.com/pongcast/pongcast/hub/hubtest"
)

// TestRedisReconnectsCountOutages: two outages are two reconnections,
// however many attempts each took; the attempts have a counter of their
// own.
func TestRedisReconnectsCountOutages(t *testing.T) {
	redis := hubtest.StartRedis(t)
	s := startServer(t, redis.URL())
	s.waitReady()
	if got := s.metric("pongcast_redis_reconnect_attempts_total"); got != "0" {
		t.Fatalf("attempts before any outage = %q, want 0", got)
	}
	for i := range 2 {
		redis.Stop()
		s.waitStatus("/readyz", 503)
		// Long enough an outage for more than one attempt each.
		s.waitMetricAtLeast("pongcast_redis_reconnect_attempts_total", float64(2*i+2))
		redis.Start()
		s.waitReady()
	}
	if got := s.metric("pongcast_redis_reconnects_total"); got != "2" {
		t.Errorf("reconnects after two outages = %q, want 2", got)
	}
	attempts, err := strconv.ParseFloat(s.metric("pongcast_redis_reconnect_attempts_total"), 64)
	if err != nil || attempts < 2 {
		t.Errorf("reconnect attempts after two outages = %v (%v), want at least 2", attempts, err)
	}
}

// waitMetricAtLeast waits until the sample's value reaches want.
func (s *server) waitMetricAtLeast(sample string, want float64) {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, err := strconv.ParseFloat(s.metric(sample), 64)
		if err == nil && v >= want {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s did not reach %v within 15s (last: %v, %v)", sample, want, v, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
