package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const secret = "0123456789abcdef0123456789abcdef"

func load(t *testing.T, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	return Load(args, func(k string) string { return env[k] }, io.Discard)
}

func TestDefaults(t *testing.T) {
	cfg, err := load(t, map[string]string{"PONGCAST_JWT_SECRET": secret})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":2808" || cfg.RedisURL != "redis://127.0.0.1:6379/0" || cfg.Channel != "exchange:pong" ||
		cfg.MaxMessageBytes != 16384 || cfg.ClientRate != 10 || cfg.ClientBurst != 20 || cfg.SendQueue != 256 ||
		cfg.LogLevel.String() != "INFO" || cfg.LogFormat != "text" || len(cfg.AllowedOrigins) != 0 || cfg.RedisURLSet ||
		cfg.SlowClient != "close" {
		t.Fatalf("defaults: %+v", cfg)
	}
	if string(cfg.JWTSecret) != secret {
		t.Fatal("secret not read from PONGCAST_JWT_SECRET")
	}
}

func TestFlagWinsOverEnv(t *testing.T) {
	env := map[string]string{
		"PONGCAST_JWT_SECRET": secret, "PONGCAST_CLIENT_RATE": "5", "PONGCAST_CLIENT_BURST": "7",
		"PONGCAST_ALLOWED_ORIGINS": "a.example.com, *.b.example.com", "PONGCAST_LOG_FORMAT": "json",
		"PONGCAST_PING_INTERVAL": "0", "PONGCAST_REDIS_URL": "redis://10.0.0.1:6380/2",
	}
	env["PONGCAST_MESSAGE_TIMEOUT"] = "3s"
	env["PONGCAST_SLOW_CLIENT"] = "bogus" // the flag wins: never read
	cfg, err := load(t, env, "--client-rate", "3.5", "--send-queue=64", "--slow-client", "conflate")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SlowClient != "conflate" {
		t.Fatalf("slow client policy: %q", cfg.SlowClient)
	}
	if cfg.MessageTimeout != 3*time.Second {
		t.Fatalf("message timeout from env: %s", cfg.MessageTimeout)
	}
	if cfg.ClientRate != 3.5 || cfg.ClientBurst != 7 || cfg.SendQueue != 64 || cfg.LogFormat != "json" || cfg.PingInterval != 0 {
		t.Fatalf("precedence: %+v", cfg)
	}
	if strings.Join(cfg.AllowedOrigins, "|") != "a.example.com|*.b.example.com" {
		t.Fatalf("origins %q", cfg.AllowedOrigins)
	}
	if !cfg.RedisURLSet || cfg.RedisURL != "redis://10.0.0.1:6380/2" {
		t.Fatalf("redis url from env: %q set=%v", cfg.RedisURL, cfg.RedisURLSet)
	}
}

func TestEveryBadValueReportedAtOnce(t *testing.T) {
	env := map[string]string{"PONGCAST_JWT_SECRET": secret, "PONGCAST_CLIENT_RATE": "-1", "PONGCAST_SEND_QUEUE": "lots"}
	_, err := load(t, env, "--client-burst", "0", "--addr", "nowhere", "--redis-url", "http://x", "--log-level", "loud",
		"--max-message-bytes", "10", "--allowed-origins", "[bad", "--ping-interval", "5ms", "--channel", " ",
		"--message-timeout", "1ms")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"pongcast: PONGCAST_CLIENT_RATE (--client-rate): must be > 0, got -1",
		`pongcast: PONGCAST_SEND_QUEUE (--send-queue): "lots" is not a whole number; must be between 1 and 1048576`,
		"pongcast: --client-burst (PONGCAST_CLIENT_BURST): must be >= 1, got 0",
		"pongcast: --addr (PONGCAST_ADDR):",
		"pongcast: --redis-url (PONGCAST_REDIS_URL):",
		"pongcast: --log-level (PONGCAST_LOG_LEVEL):",
		"pongcast: --max-message-bytes (PONGCAST_MAX_MESSAGE_BYTES):",
		"pongcast: --allowed-origins (PONGCAST_ALLOWED_ORIGINS): bad pattern",
		"pongcast: --ping-interval (PONGCAST_PING_INTERVAL):",
		"pongcast: --channel (PONGCAST_CHANNEL): must not be empty",
		"pongcast: --message-timeout (PONGCAST_MESSAGE_TIMEOUT): must be at least 100ms, got 1ms",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestKeyConfiguration(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)
	emptyFile := filepath.Join(dir, "empty")
	os.WriteFile(emptyFile, nil, 0o600)
	keyFile := filepath.Join(dir, "key.pem")
	os.WriteFile(keyFile, []byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"), 0o600)

	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string // substring of the error; empty means success
	}{
		{"no key", nil, nil, "no JWT key configured: set PONGCAST_JWT_SECRET"},
		{"no key in dev mode", nil, []string{"--dev"}, ""},
		{"secret file", nil, []string{"--jwt-secret-file", secretFile}, ""},
		{"secret file from env", map[string]string{"PONGCAST_JWT_SECRET_FILE": secretFile}, nil, ""},
		{"missing secret file", nil, []string{"--jwt-secret-file", filepath.Join(dir, "nope")}, "no such file"},
		{"empty secret file", nil, []string{"--jwt-secret-file", emptyFile}, "is empty"},
		{"secret twice", map[string]string{"PONGCAST_JWT_SECRET": secret}, []string{"--jwt-secret-file", secretFile}, "not both"},
		{"secret and public key", map[string]string{"PONGCAST_JWT_SECRET": secret}, []string{"--jwt-public-key-file", keyFile}, "configure one JWT key"},
		{"public key", nil, []string{"--jwt-public-key-file", keyFile}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.env, tc.args...)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDevModeStaysOnLoopback(t *testing.T) {
	cases := map[string]string{":2808": "127.0.0.1:2808", "0.0.0.0:9000": "127.0.0.1:9000", "127.0.0.1:0": "127.0.0.1:0", "[::1]:7": "[::1]:7"}
	for in, want := range cases {
		cfg, err := load(t, nil, "--dev", "--addr", in)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Addr != want {
			t.Errorf("--dev --addr %s listens on %s, want %s", in, cfg.Addr, want)
		}
	}
}

func TestSubscriptionLimitFitsTheCap(t *testing.T) {
	if _, err := load(t, map[string]string{"PONGCAST_JWT_SECRET": secret}, "--max-subscriptions", "1000"); err == nil ||
		!strings.Contains(err.Error(), "so a subscribed reply fits") {
		t.Fatalf("err = %v", err)
	}
}

func TestHelpAndStrayArguments(t *testing.T) {
	if _, err := load(t, nil, "--help"); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	if _, err := load(t, map[string]string{"PONGCAST_JWT_SECRET": secret}, "serve"); err == nil || !strings.Contains(err.Error(), `unexpected argument "serve"`) {
		t.Fatalf("stray argument: %v", err)
	}
	if EnvName("client-burst") != "PONGCAST_CLIENT_BURST" || EnvName("jwt-secret-file") != "PONGCAST_JWT_SECRET_FILE" {
		t.Fatal("EnvName")
	}
}

func TestConnectionLimitSettings(t *testing.T) {
	env := map[string]string{"PONGCAST_JWT_SECRET": secret, "PONGCAST_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7 ,::1"}
	cfg, err := load(t, env, "--max-connections", "0", "--handshake-rate", "2.5")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConnections != 0 || cfg.MaxConnectionsPerUser != DefaultMaxPerUser || cfg.HandshakeRate != 2.5 || cfg.HandshakeTimeout != DefaultHandshakeTimeout {
		t.Fatalf("limits: %+v", cfg)
	}
	var got []string
	for _, p := range cfg.TrustedProxies {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "10.0.0.0/8 192.168.1.7/32 ::1/128" {
		t.Fatalf("trusted proxies %v", got)
	}
	_, err = load(t, map[string]string{"PONGCAST_JWT_SECRET": secret}, "--max-connections", "-1", "--max-connections-per-user", "-2",
		"--handshake-rate", "-1", "--handshake-timeout", "1ms", "--trusted-proxies", "10.0.0.0/33,lan", "--debug-addr", "6060")
	for _, want := range []string{"--max-connections (PONGCAST_MAX_CONNECTIONS): must be >= 0", "--max-connections-per-user (PONGCAST_MAX_CONNECTIONS_PER_USER): must be >= 0",
		"--handshake-rate (PONGCAST_HANDSHAKE_RATE): must be >= 0", "--handshake-timeout (PONGCAST_HANDSHAKE_TIMEOUT): must be at least 100ms",
		`--trusted-proxies (PONGCAST_TRUSTED_PROXIES): want CIDRs like 10.0.0.0/8 or addresses, got "10.0.0.0/33"`,
		`got "lan"`, "--debug-addr (PONGCAST_DEBUG_ADDR): want host:port"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

func TestRedactRedisURL(t *testing.T) {
	cases := map[string]string{
		"redis://user:S3cret@10.0.0.1:6379/0":       "redis://10.0.0.1:6379",
		"rediss://redis.internal":                   "rediss://redis.internal",
		"redis://[::1]:6380/2?dial_timeout=3s":      "redis://[::1]:6380",
		"redis://user:S3cret%zzPw@127.0.0.1:6410/0": "redis://127.0.0.1:6410",
		"redis://u:a/b@c@host:7000/0":               "redis://host:7000", // unescaped / and @ in the password
		"redis://user:S3cret":                       "redis://",          // the host forgotten: no port to show
		"user:S3cret@127.0.0.1:6400":                "127.0.0.1:6400",    // no scheme
		"127.0.0.1:6400":                            "127.0.0.1:6400",
		"S3cret!":                                   "",
		"fe80::1%S3cret":                            "", // an IPv6 zone is free text
		"[fe80::1%S3cret]:6379":                     "",
		"redis://[fe80::1%25S3cret]:6379/0":         "redis://",
	}
	for in, want := range cases {
		if got := RedactRedisURL(in); got != want {
			t.Errorf("RedactRedisURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRedisURLErrorsHideCredentials: an error about a Redis URL shows its
// scheme, host and port, never the user, the password or the raw value.
func TestRedisURLErrorsHideCredentials(t *testing.T) {
	cases := []struct{ url, want string }{
		{"redis://user:S3cret%zzPw@127.0.0.1:6410/0", "redis://127.0.0.1:6410 (the rest not shown) has a bad %-escape"},
		{"rediss://user:S3cret@db.internal:6380/zero", "rediss://db.internal:6380 (the rest not shown) has a database that is not a number"},
		{"redis://:S3cret/x@127.0.0.1:6379/0", "redis://127.0.0.1:6379 (the rest not shown) is not a valid URL"},
		{"redis://user:S3cret", "redis:// (the rest not shown) is not a valid URL"},
		{"http://user:S3cret@example.com:80/", "http://example.com:80 (the rest not shown) has scheme http"},
		{"redis://user:S3cret@127.0.0.1:6379/0?password=S3cret", "has a query option go-redis does not take"},
	}
	for _, tc := range cases {
		_, err := ParseRedisURL(tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "S3cret") || strings.Contains(err.Error(), "user") {
			t.Errorf("ParseRedisURL(%q): %v, want %q and no credentials", tc.url, err, tc.want)
		}
	}
	env := map[string]string{"PONGCAST_JWT_SECRET": secret, "PONGCAST_REDIS_URL": cases[0].url}
	_, err := load(t, env)
	if err == nil || !strings.Contains(err.Error(), "PONGCAST_REDIS_URL (--redis-url): "+cases[0].want) || strings.Contains(err.Error(), "S3cret") {
		t.Fatalf("Load: %v", err)
	}
}

// TestRedisURLErrorSaysWhatIsWanted: a value that is no URL at all is
// called that, with the forms that are.
func TestRedisURLErrorSaysWhatIsWanted(t *testing.T) {
	cases := []struct{ url, want string }{
		{"127.0.0.1:6400", `"127.0.0.1:6400" is not a URL; want redis://host:port/db (rediss:// for TLS, unix:///path/to/redis.sock for a socket), e.g. redis://127.0.0.1:6400/0`},
		{"localhost", `"localhost" is not a URL; want redis://host:port/db`},
		{"user:S3cret@127.0.0.1:6400", "127.0.0.1:6400 (the rest not shown) is not a URL; want redis://host:port/db (rediss:// for TLS, unix:///path/to/redis.sock for a socket)"},
		{"http://x", `"http://x" has scheme http; want redis://host:port/db`},
	}
	for _, tc := range cases {
		_, err := load(t, map[string]string{"PONGCAST_JWT_SECRET": secret}, "--redis-url", tc.url)
		if err == nil || !strings.Contains(err.Error(), "--redis-url (PONGCAST_REDIS_URL): "+tc.want) || strings.Contains(err.Error(), "S3cret") {
			t.Errorf("--redis-url %s: %v, want %q", tc.url, err, tc.want)
		}
	}
}

// TestSubscriptionLimitFollowsASmallCap: a cap too small for the default
// limit lowers the limit instead of refusing to start; a limit that is set
// and does not fit is still refused.
func TestSubscriptionLimitFollowsASmallCap(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want int    // the limit; 0 when refused
		err  string // the refusal
	}{
		{"default cap", nil, nil, DefaultMaxSubscriptions, ""},
		{"smallest cap from env", map[string]string{"PONGCAST_MAX_MESSAGE_BYTES": "1024"}, nil, 11, ""},
		{"small cap from flag", nil, []string{"--max-message-bytes", "4096"}, 57, ""},
		{"large cap keeps the default", nil, []string{"--max-message-bytes", "65536"}, DefaultMaxSubscriptions, ""},
		{"limit set by flag", nil, []string{"--max-message-bytes", "1024", "--max-subscriptions", "50"}, 0,
			"--max-subscriptions (PONGCAST_MAX_SUBSCRIPTIONS): must be between 1 and 11 (so a subscribed reply fits --max-message-bytes), got 50"},
		{"limit set by env", map[string]string{"PONGCAST_MAX_MESSAGE_BYTES": "1024", "PONGCAST_MAX_SUBSCRIPTIONS": "100"}, nil, 0,
			"PONGCAST_MAX_SUBSCRIPTIONS (--max-subscriptions): must be between 1 and 11 (so a subscribed reply fits --max-message-bytes), got 100"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"PONGCAST_JWT_SECRET": secret}
			for k, v := range tc.env {
				env[k] = v
			}
			cfg, err := load(t, env, tc.args...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MaxSubscriptions != tc.want {
				t.Fatalf("MaxSubscriptions = %d, want %d", cfg.MaxSubscriptions, tc.want)
			}
		})
	}
}

// TestEachBadSettingOnce: a value that does not parse is reported once,
// naming the flag and its variable and what a good value looks like, and
// no other setting is refused for it; reading goes on past it, so every
// bad setting, of the command line and of the environment, is reported at
// once. Load writes nothing: the caller prints the list.
func TestEachBadSettingOnce(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want []string // every line of the error
	}{
		{"duration without a unit", nil, []string{"--ping-interval", "5"},
			[]string{`pongcast: --ping-interval (PONGCAST_PING_INTERVAL): "5" needs a unit, e.g. 5s; must be 0 (off) or at least 1s`}},
		{"no duration at all", map[string]string{"PONGCAST_WRITE_TIMEOUT": "soon"}, nil,
			[]string{`pongcast: PONGCAST_WRITE_TIMEOUT (--write-timeout): "soon" is not a duration, e.g. 10s, 500ms or 1m; must be at least 100ms`}},
		{"number that is not", map[string]string{"PONGCAST_SEND_QUEUE": "abc"}, nil,
			[]string{`pongcast: PONGCAST_SEND_QUEUE (--send-queue): "abc" is not a whole number; must be between 1 and 1048576`}},
		{"cap out of range", nil, []string{"--max-message-bytes", "10"},
			[]string{"pongcast: --max-message-bytes (PONGCAST_MAX_MESSAGE_BYTES): must be between 1024 and 1048576, got 10"}},
		{"cap and limit both unread", nil, []string{"--max-message-bytes", "lots", "--max-subscriptions", "many"}, []string{
			`pongcast: --max-message-bytes (PONGCAST_MAX_MESSAGE_BYTES): "lots" is not a whole number; must be between 1024 and 1048576`,
			`pongcast: --max-subscriptions (PONGCAST_MAX_SUBSCRIPTIONS): "many" is not a whole number`}},
		{"rate unread, burst not judged by it", nil, []string{"--handshake-rate", "fast", "--handshake-burst", "0"},
			[]string{`pongcast: --handshake-rate (PONGCAST_HANDSHAKE_RATE): "fast" is not a number; must be >= 0 (0: no limit)`}},
		{"dev unread, no missing key", map[string]string{"PONGCAST_DEV": "yes", "PONGCAST_JWT_SECRET": ""}, nil,
			[]string{`pongcast: PONGCAST_DEV (--dev): "yes" is not true or false`}},
		{"every kind at once", map[string]string{"PONGCAST_CLIENT_RATE": "-1", "PONGCAST_MESSAGE_TIMEOUT": "3"},
			[]string{"--ping-interval", "5", "--send-queue", "abc", "--client-burst=0"}, []string{
				"pongcast: PONGCAST_CLIENT_RATE (--client-rate): must be > 0, got -1",
				"pongcast: --client-burst (PONGCAST_CLIENT_BURST): must be >= 1, got 0",
				`pongcast: --send-queue (PONGCAST_SEND_QUEUE): "abc" is not a whole number; must be between 1 and 1048576`,
				`pongcast: PONGCAST_MESSAGE_TIMEOUT (--message-timeout): "3" needs a unit, e.g. 3s; must be at least 100ms`,
				`pongcast: --ping-interval (PONGCAST_PING_INTERVAL): "5" needs a unit, e.g. 5s; must be 0 (off) or at least 1s`}},
		{"slow client policy", nil, []string{"--slow-client", "bogus"},
			[]string{"pongcast: --slow-client (PONGCAST_SLOW_CLIENT): must be close or conflate, got bogus"}},
		{"slow client policy from the environment", map[string]string{"PONGCAST_SLOW_CLIENT": "Conflate"}, nil,
			[]string{"pongcast: PONGCAST_SLOW_CLIENT (--slow-client): must be close or conflate, got Conflate"}},
		{"unknown flag", nil, []string{"--ping-interval", "5", "--bogus"}, []string{"pongcast: unknown flag --bogus"}},
		{"flag without its value", nil, []string{"--addr"}, []string{"pongcast: --addr needs a value"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"PONGCAST_JWT_SECRET": secret}
			for k, v := range tc.env {
				env[k] = v
			}
			var out strings.Builder
			_, err := Load(tc.args, func(k string) string { return env[k] }, &out)
			var settings *SettingsError
			if !errors.As(err, &settings) {
				t.Fatalf("err = %v, want a *SettingsError", err)
			}
			if got, want := err.Error(), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			if out.Len() > 0 {
				t.Errorf("Load wrote %q", out.String())
			}
		})
	}
}
