package hub

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// replyError is an error reply of a Redis server, as go-redis returns it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

// TestDiagnoseRedis: the failures retrying cannot mend are told from
// those it may; the ones the end-to-end tests cannot easily bring about
// are here.
func TestDiagnoseRedis(t *testing.T) {
	plain := &redis.Options{Addr: "redis.example:6379", DB: 3, Password: "hunter2"}
	withTLS := &redis.Options{Addr: "redis.example:6380", TLSConfig: &tls.Config{}, Password: "hunter2"}
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	cases := []struct {
		name string
		opts *redis.Options
		err  error
		kind string // "" for a failure that may pass
	}{
		{"wrongpass", plain, fmt.Errorf("failed to authenticate: %w", replyError("WRONGPASS invalid username-password pair or user is disabled.")), "auth_failed"},
		{"old invalid password", plain, replyError("ERR invalid password"), "auth_failed"},
		{"noauth", plain, replyError("NOAUTH Authentication required."), "auth_required"},
		{"old server, no password set", plain, replyError("ERR Client sent AUTH, but no password is set"), "no_password_set"},
		{"no password configured", plain, replyError("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"), "no_password_set"},
		{"db index", plain, fmt.Errorf("failed to initialize connection options: %w", replyError("ERR DB index is out of range")), "db_out_of_range"},
		{"noperm", plain, replyError("NOPERM this user has no permissions to run the 'subscribe' command"), "no_permission"},
		{"unknown command", plain, replyError("ERR unknown command 'SUBSCRIBE', with args beginning with: 'exchange:pong'"), "unknown_command"},
		{"no such host", plain, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "redis.example", IsNotFound: true}}, "host_not_found"},
		{"tls handshake unanswered", withTLS, context.DeadlineExceeded, "tls_no_answer"},
		{"not tls", withTLS, tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, "not_tls"},
		{"certificate", withTLS, &tls.CertificateVerificationError{Err: errors.New("x509: certificate signed by unknown authority")}, "tls_certificate"},
		{"not redis", plain, errors.New(`redis: invalid reply: "<!DOCTYPE HTML>\n"`), "not_redis"},

		{"refused", plain, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}, ""},
		{"dial timeout", plain, timeout, ""},
		{"tls dial timeout", withTLS, timeout, ""},
		{"resolver down", plain, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "server misbehaving", Name: "redis.example", IsTemporary: true}}, ""},
		{"loading", plain, replyError("LOADING Redis is loading the dataset in memory"), ""},
		{"max clients", plain, replyError("ERR max number of clients reached"), ""},
		{"eof", plain, errors.New("EOF"), ""},
		{"unanswered ping", plain, errors.New("redis did not answer a ping on the subscription"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := diagnoseRedis(tc.err, tc.opts, "exchange:pong")
			if p.kind != tc.kind || ok != (tc.kind != "") {
				t.Fatalf("diagnosed %q (%v), want %q", p.kind, ok, tc.kind)
			}
			if strings.Contains(p.text, "hunter2") {
				t.Fatalf("the advice shows the password: %s", p.text)
			}
			if ok && !strings.HasPrefix(p.text, "redis: ") {
				t.Fatalf("advice %q does not begin with redis:", p.text)
			}
		})
	}
}

// TestFeedProblemLoggedOncePerMinute: a problem that lasts is logged
// again after a minute, another problem at once, and the same problem at
// once after the subscription has been live in between.
func TestFeedProblemLoggedOncePerMinute(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	f := newFeed(nil, log, NewMetrics(nil), &redis.Options{Addr: "127.0.0.1:6379"}, "exchange:pong")
	wrongPass := replyError("WRONGPASS invalid username-password pair or user is disabled.")
	noAuth := replyError("NOAUTH Authentication required.")
	count := func(text string) int { return strings.Count(buf.String(), text) }

	f.reportFailure(wrongPass, time.Second)
	f.reportFailure(wrongPass, time.Second)
	if n := count("problem=auth_failed"); n != 1 {
		t.Fatalf("logged %d times at once, want once:\n%s", n, &buf)
	}
	f.reportFailure(noAuth, time.Second)
	if n := count("problem=auth_required"); n != 1 {
		t.Fatalf("another problem logged %d times, want once:\n%s", n, &buf)
	}
	for text := range f.problemLogged {
		f.problemLogged[text] = time.Now().Add(-feedProblemEvery)
	}
	f.reportFailure(wrongPass, time.Second)
	if n := count("problem=auth_failed"); n != 2 {
		t.Fatalf("logged %d times after a minute, want twice:\n%s", n, &buf)
	}
	f.setReady(true)
	f.setReady(false)
	f.reportFailure(wrongPass, time.Second)
	if n := count("problem=auth_failed"); n != 3 {
		t.Fatalf("logged %d times after the subscription was live again, want 3 times:\n%s", n, &buf)
	}
	if n := count("level=ERROR"); n != 4 {
		t.Fatalf("%d error lines, want 4:\n%s", n, &buf)
	}
}
