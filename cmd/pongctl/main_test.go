package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub"
	"github.com/pongcast/pongcast/hub/hubtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) != "" {
		main() // the binary itself, for TestDeadRedisPrintsOnlyPongctlsError
	}
	hubtest.QuietRedisLogs() // as main does
	goleak.VerifyTestMain(m)
}

// mainEnv makes the test binary run main with its arguments.
const mainEnv = "PONGCTL_TEST_MAIN"

// TestDeadRedisPrintsOnlyPongctlsError runs the binary, whose stderr is
// go-redis's too: pongctl's own line says the publish failed, and none
// of go-redis's (with their pool.go prefix) come with it.
func TestDeadRedisPrintsOnlyPongctlsError(t *testing.T) {
	dead := hubtest.DeadAddr(t)
	cmd := exec.Command(os.Args[0], "publish", "--exchange", "gateio", "--redis-url", "redis://"+dead+"/0")
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitFail {
		t.Fatalf("exit: %v, want status %d\nstderr: %s", err, exitFail, &stderr)
	}
	got := stderr.String()
	if strings.Contains(got, "pool.go") || strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, "pongctl: publish to "+dead+": ") {
		t.Fatalf("stderr:\n%s\nwant one line, pongctl: publish to %s: ...", got, dead)
	}
}

// pongctl runs the CLI in-process and returns its exit code and output.
func pongctl(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestTokenIssueAndVerify(t *testing.T) {
	env := map[string]string{"PONGCAST_JWT_SECRET": hubtest.Secret}
	code, out, errOut := pongctl(t, env, "token", "issue", "--sub", "alice", "--exchanges", "GateIO,binance", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("issue: exit %d: %s", code, errOut)
	}
	token := strings.TrimSpace(out)
	claims, err := hubtest.Verifier(t).Verify(token)
	if err != nil {
		t.Fatalf("issued token does not verify: %v", err)
	}
	if claims.Subject != "alice" || strings.Join(claims.Exchanges, ",") != "gateio,binance" {
		t.Fatalf("claims = %+v", claims)
	}
	if d := time.Until(claims.ExpiresAt); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("expires in %s, want 1h", d)
	}

	code, out, _ = pongctl(t, env, "token", "verify", token)
	if code != 0 || !strings.Contains(out, "valid: true") || !strings.Contains(out, "sub: alice") {
		t.Fatalf("verify: exit %d, output %q", code, out)
	}
	// Change a character well inside the signature: the last one holds
	// padding bits too, and a change there can decode to the same bytes
	// (the verifier still accepts such non-canonical base64), which made
	// this test fail about once in a thousand runs.
	tampered := []byte(token)
	i := len(tampered) - 5
	tampered[i] = map[bool]byte{true: 'B', false: 'A'}[tampered[i] == 'A']
	code, out, errOut = pongctl(t, env, "token", "verify", string(tampered))
	if code != 1 || !strings.Contains(out, "valid: false") || !strings.Contains(errOut, "signature") {
		t.Fatalf("verify tampered: exit %d, out %q, err %q", code, out, errOut)
	}
	// The secret may also come from a file, as for the server.
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(hubtest.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := pongctl(t, nil, "token", "verify", "--jwt-secret-file", file, token); code != 0 {
		t.Fatalf("verify with secret file: exit %d: %s", code, errOut)
	}
}

// TestVerifyWithinLeeway: a token past its exp but within the server's
// leeway still verifies (exit 0), and the output says so and when the
// server stops taking it, instead of a plain "valid: true".
func TestVerifyWithinLeeway(t *testing.T) {
	env := map[string]string{"PONGCAST_JWT_SECRET": hubtest.Secret}
	expired := func(ago time.Duration) string {
		return hubtest.Sign(t, auth.TokenSpec{Subject: "alice", Exchanges: []string{"gateio"}, TTL: time.Hour, Now: time.Now().Add(-time.Hour - ago)})
	}
	code, out, errOut := pongctl(t, env, "token", "verify", expired(10*time.Second))
	if code != 0 || !regexp.MustCompile(`(?m)^valid \(within leeway\): 1[0-2]s past exp; the server accepts it until \S+ \(exp \+ 30s leeway, in (1[89]|20)s\)`).MatchString(out) ||
		strings.Contains(out, "valid: true") || !regexp.MustCompile(`(?m)^expires: \S+ \(1[0-2]s ago\)$`).MatchString(out) ||
		!strings.Contains(out, "\nsub: alice\n") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	// Past the leeway: invalid, as before.
	code, out, errOut = pongctl(t, env, "token", "verify", expired(time.Minute))
	if code != 1 || !strings.Contains(out, "valid: false") || !strings.Contains(errOut, "expired") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
}

// TestIssueWithoutExchanges: a token for no exchange is still issued (a
// script gets it on stdout as ever), with a warning on stderr saying how to
// allow some.
func TestIssueWithoutExchanges(t *testing.T) {
	env := map[string]string{"PONGCAST_JWT_SECRET": hubtest.Secret}
	cases := []struct {
		name string
		args []string
	}{
		{"no flag", nil},
		{"empty", []string{"--exchanges", ""}},
		{"commas only", []string{"--exchanges", " , "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := pongctl(t, env, append([]string{"token", "issue", "--sub", "a"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			claims, err := hubtest.Verifier(t).Verify(strings.TrimSpace(out))
			if err != nil || len(claims.Exchanges) != 0 {
				t.Fatalf("stdout %q: claims %+v, %v; want a valid token for no exchanges", out, claims, err)
			}
			for _, want := range []string{"warning", "allows no exchanges", "--exchanges gateio,binance", "'*'"} {
				if !strings.Contains(errOut, want) {
					t.Fatalf("stderr %q does not say %q", errOut, want)
				}
			}
		})
	}
	// With exchanges: no warning.
	if code, _, errOut := pongctl(t, env, "token", "issue", "--sub", "a", "--exchanges", "gateio"); code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	env := map[string]string{"PONGCAST_JWT_SECRET": hubtest.Secret}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no command", env, nil, 2, "Usage: pongctl"},
		{"unknown command", env, []string{"frobnicate"}, 2, "unknown command"},
		{"issue without sub", env, []string{"token", "issue", "--exchanges", "gateio"}, 2, "--sub is required: who holds the token, for example --sub alice"},
		{"issue with a stray word", env, []string{"token", "issue", "alice"}, 2, `unexpected argument "alice": every value goes after its flag, as in --sub alice`},
		{"issue with zero ttl", env, []string{"token", "issue", "--sub", "a", "--ttl", "0s"}, 2, "--ttl must be more than 0, for example --ttl 24h"},
		{"issue with negative ttl", env, []string{"token", "issue", "--sub", "a", "--ttl", "-1h"}, 2, "--ttl must be more than 0"},
		{"issue with bad alg", env, []string{"token", "issue", "--sub", "a", "--alg", "RS256"}, 2, `--alg must be HS256, HS384 or HS512 with an HMAC secret, got "RS256"`},
		{"issue without key", nil, []string{"token", "issue", "--sub", "a"}, 2, "no signing key"},
		{"issue with bad exchange", env, []string{"token", "issue", "--sub", "a", "--exchanges", "gateio,bad name"}, 2, `--exchanges: invalid exchange name "bad name": want 1-64 of a-z`},
		{"issue with short secret", map[string]string{"PONGCAST_JWT_SECRET": "short"}, []string{"token", "issue", "--sub", "a"}, 1, "at least 32"},
		{"issue with bad ttl", env, []string{"token", "issue", "--sub", "a", "--ttl", "soon"}, 2, "invalid value"},
		{"verify without token", env, []string{"token", "verify"}, 2, "exactly one token argument, as in: pongctl token verify <jwt>"},
		{"publish without exchange", env, []string{"publish"}, 2, "--exchange is required, for example --exchange gateio"},
		{"publish bad status", env, []string{"publish", "--exchange", "gateio", "--status", "asleep"}, 2, "--status"},
		{"publish negative latency", env, []string{"publish", "--exchange", "gateio", "--latency", "-3"}, 2, "--latency"},
		{"watch without token", env, []string{"watch"}, 2, "no token: set PONGCAST_TOKEN=<jwt> (or give --token <jwt>)"},
		{"watch bad url", env, []string{"watch", "--token", "x", "--url", "http://x"}, 2, "ws://"},
		{"watch negative count", env, []string{"watch", "--token", "x", "--count", "-1"}, 2, "--count must be 0 (run until interrupted) or more"},
		{"watch negative timeout", env, []string{"watch", "--token", "x", "--timeout", "-1s"}, 2, "--timeout must be 0 (wait forever) or more"},
		{"watch bad exchange", env, []string{"watch", "--token", "x", "--exchanges", "gate io"}, 2, `--exchanges: invalid exchange name "gate io": want 1-64 of a-z`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := pongctl(t, tc.env, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.want)
			}
		})
	}
}

// TestHelp: asking for help, at any level, is no error: the usage goes to
// stdout (so it can be piped to a pager) and the exit code is 0.
func TestHelp(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "Usage: pongctl <command>"},
		{[]string{"-h"}, "Usage: pongctl <command>"},
		{[]string{"help"}, "Usage: pongctl <command>"},
		{[]string{"token", "--help"}, "Usage: pongctl token <subcommand>"},
		{[]string{"token", "-h"}, "Usage: pongctl token <subcommand>"},
		{[]string{"token", "issue", "--help"}, "Usage: pongctl token issue"},
		{[]string{"token", "verify", "-h"}, "Usage: pongctl token verify"},
		{[]string{"publish", "--help"}, "Usage: pongctl publish"},
		{[]string{"watch", "-h"}, "Usage: pongctl watch"},
		{[]string{"watch", "--exchanges", "gateio", "-help"}, "Usage: pongctl watch"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := pongctl(t, nil, tc.args...)
			if code != 0 || !strings.HasPrefix(out, tc.want) || errOut != "" {
				t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant exit 0, stdout starting %q, empty stderr", code, out, errOut, tc.want)
			}
		})
	}
}

// TestHelpShowsNoSecrets: the usage tells where the token and the Redis
// URL may come from without printing what the environment holds (a Redis
// URL may carry a password).
func TestHelpShowsNoSecrets(t *testing.T) {
	env := map[string]string{"PONGCAST_TOKEN": "secret-token-value", "PONGCAST_REDIS_URL": "redis://:secret-password@127.0.0.1:6379/0"}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "PONGCAST_TOKEN"},
		{[]string{"watch", "--help"}, "env PONGCAST_TOKEN"},
		{[]string{"publish", "--help"}, "env PONGCAST_REDIS_URL"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := pongctl(t, env, tc.args...)
			if code != 0 || !strings.Contains(out, tc.want) || strings.Contains(out+errOut, "secret-") {
				t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant exit 0, %q and no secret", code, out, errOut, tc.want)
			}
		})
	}
}

// TestFlagError: a wrong flag gets the command's usage and then the error,
// once, on stderr, and exit 2.
func TestFlagError(t *testing.T) {
	code, out, errOut := pongctl(t, nil, "token", "issue", "--sub", "a", "--ttl", "soon")
	if code != 2 || out != "" || !strings.HasPrefix(errOut, "Usage: pongctl token issue") ||
		strings.Count(errOut, `invalid value "soon" for flag -ttl`) != 1 ||
		!strings.HasSuffix(errOut, "pongctl: token issue: invalid value \"soon\" for flag -ttl: parse error\n") {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}
}

// TestIssueConnectPublishReceive is the operator's whole path: issue a
// token, watch with it, publish a pong, see it arrive.
func TestIssueConnectPublishReceive(t *testing.T) {
	env, wsURL := startServer(t)
	_, out, _ := pongctl(t, env, "token", "issue", "--sub", "ops", "--exchanges", "gateio", "--ttl", "10m")
	token := strings.TrimSpace(out)
	pong := watchOnePong(t, env, []string{"--url", wsURL, "--token", token, "--exchanges", "gateio"},
		"--exchange", "gateio", "--latency", "45")
	if !strings.HasPrefix(pong, `{"type":"exchange:pong","exchange":"gateio","data":{"exchange":"gateio","latency":45`) {
		t.Fatalf("pong %s", pong)
	}
}

// TestPublishWithoutLatency: a pong published without --latency has no
// latency field (0 would be a made-up reading), and the server delivers it.
func TestPublishWithoutLatency(t *testing.T) {
	env, wsURL := startServer(t)
	token := hubtest.Token(t, "ops", time.Hour, "gateio")
	pong := watchOnePong(t, env, []string{"--url", wsURL, "--token", token, "--exchanges", "gateio"},
		"--exchange", "gateio", "--status", "disconnected")
	var envelope struct{ Data map[string]any }
	if err := json.Unmarshal([]byte(pong), &envelope); err != nil {
		t.Fatalf("pong %s: %v", pong, err)
	}
	if _, ok := envelope.Data["latency"]; ok || envelope.Data["status"] != "disconnected" || envelope.Data["timestamp"] == nil {
		t.Fatalf("data %v; want a timestamp, status disconnected and no latency", envelope.Data)
	}
	// A latency given as 0 is a reading, and is sent.
	if code, out, errOut := pongctl(t, env, "publish", "--exchange", "gateio", "--latency", "0"); code != 0 || !strings.Contains(out, `"latency":0,`) {
		t.Fatalf("publish --latency 0: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestWatchTokenFromEnv: watch takes its token from PONGCAST_TOKEN, so it
// need not show in ps; --token, when given, wins.
func TestWatchTokenFromEnv(t *testing.T) {
	env, wsURL := startServer(t)
	token := hubtest.Token(t, "ops", time.Hour, "gateio")
	env["PONGCAST_TOKEN"] = token
	watchOnePong(t, env, []string{"--url", wsURL, "--exchanges", "gateio"}, "--exchange", "gateio")

	env["PONGCAST_TOKEN"] = "not-a-token"
	watchOnePong(t, env, []string{"--url", wsURL, "--token", token, "--exchanges", "gateio"}, "--exchange", "gateio")
}

// startServer starts a pongcast hub on the test Redis and returns the
// environment pongctl needs to publish to it (and sign for it), and its
// WebSocket URL.
func startServer(t *testing.T) (map[string]string, string) {
	t.Helper()
	redisURL := hubtest.RedisURL(t)
	channel := hubtest.Channel(t)
	srv, err := hub.NewServer(hub.Options{Verifier: hubtest.Verifier(t), RedisURL: redisURL, Channel: channel, KeyPrefix: hubtest.KeyPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	ctx, cancel := context.WithCancel(context.Background())
	feedDone := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(feedDone) }()
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		ts.Close()
		cancel()
		<-feedDone
	})
	env := map[string]string{"PONGCAST_JWT_SECRET": hubtest.Secret, "PONGCAST_REDIS_URL": redisURL, "PONGCAST_CHANNEL": channel}
	return env, "ws" + strings.TrimPrefix(ts.URL, "http")
}

// watchOnePong runs pongctl watch with watchArgs until it prints one pong,
// running pongctl publish with publishArgs meanwhile (until the server has
// subscribed to Redis and the watcher to the exchange, pongs are lost), and
// returns the pong's line.
func watchOnePong(t *testing.T, env map[string]string, watchArgs []string, publishArgs ...string) string {
	t.Helper()
	type result struct {
		code     int
		out, err string
	}
	watched := make(chan result, 1)
	go func() {
		code, out, errOut := pongctl(t, env, append([]string{"watch", "--count", "1", "--timeout", "10s"}, watchArgs...)...)
		watched <- result{code, out, errOut}
	}()
	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-watched:
			for _, line := range strings.Split(r.out, "\n") {
				if r.code == 0 && strings.HasPrefix(line, `{"type":"exchange:pong"`) {
					return line
				}
			}
			t.Fatalf("watch: exit %d\nstdout %s\nstderr %s", r.code, r.out, r.err)
		case <-tick.C:
			if code, _, errOut := pongctl(t, env, append([]string{"publish"}, publishArgs...)...); code != 0 {
				t.Fatalf("publish: exit %d: %s", code, errOut)
			}
		case <-deadline:
			t.Fatal("watch did not receive a pong within 15s")
		}
	}
}

func TestWatchReportsRefusal(t *testing.T) {
	srv, err := hub.NewServer(hub.Options{Verifier: hubtest.Verifier(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Shutdown(context.Background())
	token := hubtest.Token(t, "a", time.Hour, "gateio")
	code, _, errOut := pongctl(t, nil, "watch", "--url", "ws"+strings.TrimPrefix(ts.URL, "http"), "--token", token, "--exchanges", "kraken")
	if code != 1 || !strings.Contains(errOut, "403") || !strings.Contains(errOut, "kraken") {
		t.Fatalf("exit %d, stderr %q; want 1 and a 403 naming kraken", code, errOut)
	}
}
