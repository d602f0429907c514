package main

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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

// TestRedisMistakesLoggedAsErrors: a Redis failure that retrying cannot
// mend is logged at error level, saying what is wrong and what to check,
// once however often it is retried; the server keeps retrying, stays not
// ready, and keeps serving its clients. The password is never shown.
func TestRedisMistakesLoggedAsErrors(t *testing.T) {
	const password, wrong = "the-right-password-2718", "not-the-password-3141"
	withPassword := hubtest.StartRedis(t, "--requirepass", password)
	// Settings of its own make it a real redis-server: the embedded one
	// takes any database number.
	plain := hubtest.StartRedis(t, "--databases", "16")
	acl := hubtest.StartRedis(t, "--user", "pongcast", "on", ">"+password, "~*", "resetchannels", "+@all")
	httpAddr := quietHTTPServer(t, false)
	httpsAddr := quietHTTPServer(t, true)

	cases := []struct {
		name, url, want string
		needsResolver   bool
	}{
		{"wrong password", "redis://:" + wrong + "@" + withPassword.Addr() + "/0",
			"redis: authentication failed (WRONGPASS): check the user and password in --redis-url (PONGCAST_REDIS_URL)", false},
		{"wrong user", "redis://nobody:" + wrong + "@" + withPassword.Addr() + "/0",
			"redis: authentication failed (WRONGPASS): check the user and password in --redis-url (PONGCAST_REDIS_URL)", false},
		{"no password", withPassword.URL(),
			"redis: the server wants a password (NOAUTH): give the user and password in --redis-url (PONGCAST_REDIS_URL), as redis://user:password@host:port/db", false},
		{"no such database", "redis://" + plain.Addr() + "/99",
			"redis: database 99 does not exist on this server (ERR DB index is out of range): use a smaller /db in --redis-url (PONGCAST_REDIS_URL)", false},
		{"no such host", "redis://no-such-host.invalid:6379/0",
			"redis: host no-such-host.invalid not found: check the host in --redis-url (PONGCAST_REDIS_URL)", true},
		{"channel not allowed", "redis://pongcast:" + password + "@" + acl.Addr() + "/0",
			"redis: the Redis user may not subscribe to channel ", false},
		{"not redis", "redis://" + httpAddr + "/0",
			"redis: " + httpAddr + " does not answer as a Redis server: check the host and port in --redis-url (PONGCAST_REDIS_URL)", false},
		{"tls to a plain server", "rediss://" + httpAddr + "/0",
			"redis: " + httpAddr + " does not answer in TLS: use redis:// instead of rediss:// in --redis-url (PONGCAST_REDIS_URL), or the server's TLS port", false},
		{"tls to a plain redis", "rediss://" + plain.Addr() + "/0?dial_timeout=300ms",
			"redis: " + plain.Addr() + " does not answer the TLS handshake: if it does not use TLS, use redis:// instead of rediss:// in --redis-url (PONGCAST_REDIS_URL)", false},
		{"untrusted certificate", "rediss://" + httpsAddr + "/0",
			"redis: the TLS certificate of " + httpsAddr + " is not trusted", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.needsResolver {
				needResolverNotFound(t, "no-such-host.invalid")
			}
			s := startServer(t, tc.url)
			line := s.waitLog(tc.want)
			if !strings.Contains(line, "level=ERROR") {
				t.Errorf("logged as %s, want level=ERROR", line)
			}
			s.waitStatus("/readyz", http.StatusServiceUnavailable)
			c := hubtest.MustDial(t, s.ws("exchanges=gateio"), hubtest.Token(t, "a", time.Hour, "*"))
			c.ReadType("subscribed")

			// Still retrying, and saying it once, not at every attempt.
			attempts, _ := strconv.ParseFloat(s.metric("pongcast_redis_reconnect_attempts_total"), 64)
			s.waitMetricAtLeast("pongcast_redis_reconnect_attempts_total", attempts+2)
			logs := s.logs.String()
			if n := strings.Count(logs, tc.want); n != 1 {
				t.Errorf("logged %d times, want once:\n%s", n, logs)
			}
			if strings.Contains(logs, "redis subscription lost") {
				t.Errorf("also logged as a passing failure:\n%s", logs)
			}
			for _, secret := range []string{password, wrong} {
				if strings.Contains(logs, secret) {
					t.Errorf("the log shows a password:\n%s", logs)
				}
			}
			s.waitStatus("/readyz", http.StatusServiceUnavailable)
			c.Send(map[string]any{"type": "ping"})
			c.ReadType("pong")
		})
	}
}

// TestRedisDownIsAWarning: a Redis that is down may come back: that is
// the usual warning, not an error.
func TestRedisDownIsAWarning(t *testing.T) {
	redis := hubtest.StartRedis(t)
	redis.Stop()
	s := startServer(t, redis.URL())
	line := s.waitLog("redis subscription lost; retrying")
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "connection refused") {
		t.Errorf("logged as %s, want a warning naming the refused connection", line)
	}
	s.waitMetricAtLeast("pongcast_redis_reconnect_attempts_total", 2)
	if logs := s.logs.String(); strings.Contains(logs, "level=ERROR") {
		t.Errorf("a Redis that is down logged an error:\n%s", logs)
	}
}

// waitLog waits until the server has logged a line containing text and
// returns that line.
func (s *server) waitLog(text string) string {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, line := range strings.Split(s.logs.String(), "\n") {
			if strings.Contains(line, text) {
				return line
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no log line with %q within 15s", text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quietHTTPServer starts an HTTP (or HTTPS) server that is no Redis, and
// returns its host:port. It logs nothing: the feed's attempts would
// otherwise fill the test's output with TLS handshake errors.
func quietHTTPServer(t *testing.T, tls bool) string {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// needResolverNotFound skips the test where the resolver does not say
// that host does not exist (no DNS at all, say).
func needResolverNotFound(t *testing.T, host string) {
	_, err := net.DefaultResolver.LookupHost(context.Background(), host)
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Skipf("the resolver does not say %s does not exist: %v", host, err)
	}
}
