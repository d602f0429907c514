package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// Defaults, as the contract gives them.
const (
	DefaultAddr             = ":2808"
	DefaultDevHost          = "127.0.0.1"
	DefaultRedisURL         = "redis://127.0.0.1:6379/0"
	DefaultChannel          = "exchange:pong"
	DefaultKeyPrefix        = "pongcast:"
	DefaultMaxMessageBytes  = 16384
	DefaultClientRate       = 10.0
	DefaultClientBurst      = 20
	DefaultSendQueue        = 256
	DefaultSlowClient       = "close"
	DefaultMaxSubscriptions = 100
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMessageTimeout   = 10 * time.Second
	DefaultPingInterval     = 25 * time.Second
	DefaultMaxConnections   = 10000
	DefaultMaxPerUser       = 100
	DefaultHandshakeRate    = 20.0
	DefaultHandshakeBurst   = 40
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultIPv6Prefix       = 64
	DefaultSubscribeOnConn  = "none"
	DefaultStaleAfter       = 120 * time.Second
	DefaultLatencyAlertMs   = 1000
	DefaultMaxExchanges     = 1000
	DefaultHistoryLen       = 10000
	DefaultAuthTimeout      = 5 * time.Second
	DefaultMaxRevocations   = 100_000
	DefaultLogLevel         = "info"
	DefaultLogFormat        = "text"
)

// subscriptionReplyBytesPerName is the most one exchange name adds to a
// subscribed reply: 64 bytes, two quotes and a comma.
const subscriptionReplyBytesPerName = 67

// Config is the validated configuration of one pongcast server.
type Config struct {
	Addr     string
	RedisURL string
	// RedisURLSet reports whether the Redis URL was given explicitly; dev
	// mode starts an embedded Redis only when it was not.
	RedisURLSet bool
	Channel     string
	// KeyPrefix begins the name of every Redis key pongcast writes
	// (snapshots, later history and revocations).
	KeyPrefix string

	// JWTSecret is the HMAC key, read from PONGCAST_JWT_SECRET or the
	// secret file. Empty when a public key is configured, or in dev mode
	// before a secret is generated.
	JWTSecret []byte
	// JWTPublicKey is the PEM read from the public key file.
	JWTPublicKey []byte
	JWTIssuer    string
	JWTAudience  string

	// AllowedOrigins are path.Match patterns for browser Origins; empty
	// means same origin only, and "*" any origin.
	AllowedOrigins []string

	MaxMessageBytes  int
	ClientRate       float64
	ClientBurst      int
	SendQueue        int
	SlowClient       string // "close" or "conflate": what becomes of a client whose queue is full
	MaxSubscriptions int
	WriteTimeout     time.Duration
	MessageTimeout   time.Duration
	PingInterval     time.Duration

	// Connection limits; zero turns each off.
	MaxConnections        int
	MaxConnectionsPerUser int
	HandshakeRate         float64
	HandshakeBurst        int
	// HandshakeIPv6Prefix is how many leading bits of an IPv6 address
	// make one client for the handshake rate and the pending cap.
	HandshakeIPv6Prefix int
	// MaxPending and MaxPendingPerIP cap the connections not yet
	// upgraded; zero means derived from the file limit.
	MaxPending      int
	MaxPendingPerIP int
	// SubscribeOnConnect is "none" or "all": what a connection that names
	// no exchanges at connect is subscribed to.
	SubscribeOnConnect string
	// Exchange health: how long without a pong makes an exchange stale,
	// the latency over which it is slow, and how many are tracked.
	StaleAfter     time.Duration
	LatencyAlertMs int
	MaxExchanges   int
	// HistoryLen is about how many pongs each exchange's history stream
	// keeps; 0 turns history off.
	HistoryLen int
	// HandshakeTimeout bounds reading a handshake's headers (slowloris).
	HandshakeTimeout time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// AuthTimeout is how long a connection made without a token has to
	// send its auth message; zero turns first-message auth off.
	AuthTimeout time.Duration
	// MaxRevocations bounds the revocation entries one server holds.
	MaxRevocations int

	LogLevel  slog.Level
	LogFormat string // "text" or "json"

	// DebugAddr, if set, serves net/http/pprof there (keep it on loopback).
	DebugAddr string

	Dev bool
}

// Load reads settings from args (without the program name) and getenv, and
// validates them. For -h or --help it writes the usage to output and
// returns flag.ErrHelp. Any other failure is a *SettingsError that lists
// every bad setting once; Load writes nothing then.
func Load(args []string, getenv func(string) string, output io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("pongcast", flag.ContinueOnError)
	fs.SetOutput(output)
	var (
		addr          = fs.String("addr", DefaultAddr, "listen `address` for WebSocket, health and metrics (env PONGCAST_ADDR)")
		redisURL      = fs.String("redis-url", DefaultRedisURL, "Redis to subscribe to, a `URL` like redis://[user:password@]host:port/db (rediss:// for TLS, unix:///path/to/redis.sock for a socket) (env PONGCAST_REDIS_URL)")
		channel       = fs.String("channel", DefaultChannel, "Redis Pub/Sub `channel` the connectors publish pongs to (env PONGCAST_CHANNEL)")
		keyPrefix     = fs.String("key-prefix", DefaultKeyPrefix, "`prefix` of every Redis key pongcast keeps (the snapshot hash is <prefix>snapshots); 1-64 printable ASCII characters, no spaces; instances that share snapshots share it (env PONGCAST_KEY_PREFIX)")
		secretFile    = fs.String("jwt-secret-file", "", "`file` holding the HMAC secret for HS256/384/512 tokens (env PONGCAST_JWT_SECRET_FILE; or the secret itself in PONGCAST_JWT_SECRET)")
		publicKeyFile = fs.String("jwt-public-key-file", "", "PEM `file` with the public key for RS256/ES256/EdDSA tokens (env PONGCAST_JWT_PUBLIC_KEY_FILE)")
		issuer        = fs.String("jwt-issuer", "", "required token iss, checked when set (env PONGCAST_JWT_ISSUER)")
		audience      = fs.String("jwt-audience", "", "required token aud, checked when set (env PONGCAST_JWT_AUDIENCE)")
		origins       = fs.String("allowed-origins", "", "comma-separated browser Origin `patterns`: host (https or http), scheme://host (that scheme only), with path.Match wildcards, e.g. app.example.com,https://*.example.com:8443; * for any; empty: same origin only (env PONGCAST_ALLOWED_ORIGINS)")
		maxBytes      = fs.Int("max-message-bytes", DefaultMaxMessageBytes, "cap on every message, both directions, in `bytes` (env PONGCAST_MAX_MESSAGE_BYTES)")
		rate          = fs.Float64("client-rate", DefaultClientRate, "client messages per second allowed per connection (token bucket rate) (env PONGCAST_CLIENT_RATE)")
		burst         = fs.Int("client-burst", DefaultClientBurst, "token bucket burst per connection (env PONGCAST_CLIENT_BURST)")
		sendQueue     = fs.Int("send-queue", DefaultSendQueue, "per-client outbound queue in `messages`; a full queue closes the client as a slow consumer, unless --slow-client conflate (env PONGCAST_SEND_QUEUE)")
		slowClient    = fs.String("slow-client", DefaultSlowClient, "close, or conflate: a client whose send queue is full is closed with 1008 slow consumer, or kept, its queue keeping only the newest pong of each exchange and every reply, up to twice --send-queue (replies alone filling it still close it) (env PONGCAST_SLOW_CLIENT)")
		maxSubs       = fs.Int("max-subscriptions", DefaultMaxSubscriptions, "most exchanges one connection may subscribe to by name; unless set, lowered to what a subscribed reply under --max-message-bytes can list (env PONGCAST_MAX_SUBSCRIPTIONS)")
		writeTimeout  = fs.Duration("write-timeout", DefaultWriteTimeout, "longest a write to one client may take before it is dropped (env PONGCAST_WRITE_TIMEOUT)")
		msgTimeout    = fs.Duration("message-timeout", DefaultMessageTimeout, "longest a client message may take to arrive once begun (fragments trickling in); past it the client is closed with 1008 (env PONGCAST_MESSAGE_TIMEOUT)")
		pingInterval  = fs.Duration("ping-interval", DefaultPingInterval, "WebSocket keep-alive ping period; a client that does not answer within it is closed; 0 disables (env PONGCAST_PING_INTERVAL)")
		maxConns      = fs.Int("max-connections", DefaultMaxConnections, "most clients connected at once; more get 503 with Retry-After; 0 means no limit (env PONGCAST_MAX_CONNECTIONS)")
		maxPerUser    = fs.Int("max-connections-per-user", DefaultMaxPerUser, "most connections per token subject (sub); more get 429; 0 means no limit (env PONGCAST_MAX_CONNECTIONS_PER_USER)")
		hsRate        = fs.Float64("handshake-rate", DefaultHandshakeRate, "WebSocket handshakes per second allowed from one client IP; more get 429; 0 means no limit (env PONGCAST_HANDSHAKE_RATE)")
		hsBurst       = fs.Int("handshake-burst", DefaultHandshakeBurst, "burst of handshakes allowed from one client IP (env PONGCAST_HANDSHAKE_BURST)")
		v6Prefix      = fs.Int("handshake-ipv6-prefix", DefaultIPv6Prefix, "leading `bits` of an IPv6 address that make one client for --handshake-rate and --max-pending-per-ip (env PONGCAST_HANDSHAKE_IPV6_PREFIX)")
		maxPending    = fs.Int("max-pending", 0, "most connections not yet upgraded to WebSockets (plain HTTP, handshakes in progress); more are answered 503 at accept; 0: an eighth of the file limit, 16 to 1024 (env PONGCAST_MAX_PENDING)")
		maxPendingIP  = fs.Int("max-pending-per-ip", 0, "most of those from one client address (trusted proxies excepted); 0: a quarter of --max-pending (env PONGCAST_MAX_PENDING_PER_IP)")
		subOnConnect  = fs.String("subscribe-on-connect", DefaultSubscribeOnConn, "none, or all: a connection that names no exchanges at connect is subscribed to every exchange its token allows, as the old broadcaster sent everything (env PONGCAST_SUBSCRIBE_ON_CONNECT)")
		staleAfter    = fs.Duration("stale-after", DefaultStaleAfter, "an exchange with no pong for this long is stale (exchange:status) (env PONGCAST_STALE_AFTER)")
		latencyAlert  = fs.Int("latency-alert-ms", DefaultLatencyAlertMs, "an exchange whose pong reports a latency over this many `ms` is slow (env PONGCAST_LATENCY_ALERT_MS)")
		maxExchanges  = fs.Int("max-exchanges", DefaultMaxExchanges, "most exchanges whose health is tracked; pongs of others are delivered, not tracked, and counted (env PONGCAST_MAX_EXCHANGES)")
		historyLen    = fs.Int("history-len", DefaultHistoryLen, "about how many pongs each exchange's history keeps in Redis (a stream per exchange, written once across instances; history message, GET /v1/exchanges/{name}/history, statistics rebuilt at start); 0 turns history off (env PONGCAST_HISTORY_LEN)")
		hsTimeout     = fs.Duration("handshake-timeout", DefaultHandshakeTimeout, "longest a client may take to send its handshake headers (env PONGCAST_HANDSHAKE_TIMEOUT)")
		authTimeout   = fs.Duration("auth-timeout", DefaultAuthTimeout, "how long a connection made without a token has to send {\"type\":\"auth\",\"token\":\"<jwt>\"} as its first message; 0 turns first-message auth off (a handshake without a token then gets 401) (env PONGCAST_AUTH_TIMEOUT)")
		maxRevoked    = fs.Int("max-revocations", DefaultMaxRevocations, "most revocation entries (pongctl token revoke) one server holds; past it new entries are counted and logged, not held (env PONGCAST_MAX_REVOCATIONS)")
		proxies       = fs.String("trusted-proxies", "", "comma-separated `CIDRs` of proxies whose X-Forwarded-For is believed for the client IP (env PONGCAST_TRUSTED_PROXIES)")
		debugAddr     = fs.String("debug-addr", "", "if set, serve Go profiling (net/http/pprof) on this `address`; keep it on loopback (env PONGCAST_DEBUG_ADDR)")
		logLevel      = fs.String("log-level", DefaultLogLevel, "debug, info, warn or error (env PONGCAST_LOG_LEVEL)")
		logFormat     = fs.String("log-format", DefaultLogFormat, "text or json (env PONGCAST_LOG_FORMAT)")
		dev           = fs.Bool("dev", false, "dev mode: listen on 127.0.0.1, embedded Redis unless --redis-url is given, a random secret unless PONGCAST_JWT_SECRET or --jwt-secret-file is set, print a token (env PONGCAST_DEV)")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pongcast [flags]\n\npongcast fans exchange pongs from Redis out to authenticated WebSocket clients.\nEvery flag has a PONGCAST_* environment variable; a flag wins over its variable.\n\nFlags:\n")
		fs.PrintDefaults()
	}

	// The command line and the variables are read through stand-ins that
	// keep a bad value instead of stopping at it.
	lenient := lenientFlags(fs)
	switch err := lenient.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return nil, err
	case err != nil:
		return nil, &SettingsError{[]error{fmt.Errorf("pongcast: %s", syntaxProblem(err))}}
	case lenient.NArg() > 0:
		return nil, &SettingsError{[]error{fmt.Errorf("pongcast: unexpected argument %q (every setting is a --flag)", lenient.Arg(0))}}
	}
	// A flag given on the command line wins; otherwise its variable, if set,
	// goes through the same parser as the flag would.
	fromArgs := map[string]bool{}
	lenient.Visit(func(f *flag.Flag) { fromArgs[f.Name] = true })
	lenient.VisitAll(func(f *flag.Flag) {
		if v := getenv(EnvName(f.Name)); v != "" && !fromArgs[f.Name] {
			_ = lenient.Set(f.Name, v)
		}
	})
	explicit := map[string]bool{} // by flag or variable
	lenient.Visit(func(f *flag.Flag) { explicit[f.Name] = true })

	var errs []error
	// unread holds what is wrong with each value that did not parse, and
	// refused each setting reported: no other setting is refused for a
	// value that one did not get.
	unread := map[string]string{}
	lenient.VisitAll(func(f *flag.Flag) {
		if v := f.Value.(*lenientValue); v.refused {
			unread[f.Name] = formProblem(v.Value, v.raw)
		}
	})
	refused := map[string]bool{}
	bad := func(name, format string, args ...any) {
		refused[name] = true
		from := "--" + name + " (" + EnvName(name) + ")"
		if !fromArgs[name] && explicit[name] {
			from = EnvName(name) + " (--" + name + ")"
		}
		errs = append(errs, fmt.Errorf("pongcast: %s: "+format, append([]any{from}, args...)...))
	}

	cfg := &Config{
		Addr:                  *addr,
		RedisURL:              *redisURL,
		RedisURLSet:           explicit["redis-url"],
		Channel:               *channel,
		KeyPrefix:             *keyPrefix,
		JWTIssuer:             *issuer,
		JWTAudience:           *audience,
		MaxMessageBytes:       *maxBytes,
		ClientRate:            *rate,
		ClientBurst:           *burst,
		SendQueue:             *sendQueue,
		SlowClient:            *slowClient,
		MaxSubscriptions:      *maxSubs,
		WriteTimeout:          *writeTimeout,
		MessageTimeout:        *msgTimeout,
		PingInterval:          *pingInterval,
		MaxConnections:        *maxConns,
		MaxConnectionsPerUser: *maxPerUser,
		HandshakeRate:         *hsRate,
		HandshakeBurst:        *hsBurst,
		HandshakeTimeout:      *hsTimeout,
		HandshakeIPv6Prefix:   *v6Prefix,
		MaxPending:            *maxPending,
		MaxPendingPerIP:       *maxPendingIP,
		SubscribeOnConnect:    *subOnConnect,
		StaleAfter:            *staleAfter,
		LatencyAlertMs:        *latencyAlert,
		MaxExchanges:          *maxExchanges,
		HistoryLen:            *historyLen,
		AuthTimeout:           *authTimeout,
		MaxRevocations:        *maxRevoked,
		LogFormat:             *logFormat,
		DebugAddr:             *debugAddr,
		Dev:                   *dev,
	}

	if host, port, err := net.SplitHostPort(cfg.Addr); err != nil {
		bad("addr", "want host:port or :port, got %q", cfg.Addr)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		bad("addr", "port must be a number 0-65535, got %q", port)
	} else if cfg.Dev && !isLoopback(host) {
		// Dev mode has a printed throwaway secret: never expose it.
		cfg.Addr = net.JoinHostPort(DefaultDevHost, port)
	}
	if _, err := ParseRedisURL(cfg.RedisURL); err != nil {
		bad("redis-url", "%v", err)
	}
	if strings.TrimSpace(cfg.Channel) == "" {
		bad("channel", "must not be empty")
	}
	if problem := keyPrefixProblem(cfg.KeyPrefix); problem != "" {
		bad("key-prefix", "%s", problem)
	}

	secret, err := SecretFromEnvOrFile(getenv("PONGCAST_JWT_SECRET"), *secretFile)
	if err != nil {
		bad("jwt-secret-file", "%v", err)
	}
	cfg.JWTSecret = secret
	if *publicKeyFile != "" {
		pem, err := os.ReadFile(*publicKeyFile)
		if err != nil {
			bad("jwt-public-key-file", "%v", err)
		}
		cfg.JWTPublicKey = pem
	}
	switch {
	case len(cfg.JWTSecret) > 0 && *publicKeyFile != "":
		errs = append(errs, errors.New("pongcast: configure one JWT key: an HMAC secret (PONGCAST_JWT_SECRET or --jwt-secret-file) or a public key (--jwt-public-key-file), not both"))
	case len(cfg.JWTSecret) == 0 && *publicKeyFile == "" && !cfg.Dev && err == nil && unread["dev"] == "":
		errs = append(errs, errors.New("pongcast: no JWT key configured: set PONGCAST_JWT_SECRET (at least 32 bytes, e.g. `openssl rand -hex 32`), --jwt-secret-file, or --jwt-public-key-file; or run with --dev for a throwaway secret"))
	}

	if *origins != "" {
		for _, o := range strings.Split(*origins, ",") {
			o = strings.TrimSpace(o)
			if o == "" {
				continue
			}
			_, host, hasScheme := strings.Cut(o, "://")
			if !hasScheme {
				host = o
			}
			if _, err := path.Match(host, ""); err != nil || host == "" || strings.Contains(host, "/") {
				if err == nil {
					err = errors.New("want host, *.host, host:port or scheme://host")
				}
				bad("allowed-origins", "bad pattern %q: %v", o, err)
				continue
			}
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, o)
		}
	}

	// Every reply must fit the cap too, and a subscribed reply lists the
	// whole set: a small cap lowers the default limit, and refuses only a
	// limit that is set.
	bytesOK := unread["max-message-bytes"] == "" && cfg.MaxMessageBytes >= 1024 && cfg.MaxMessageBytes <= 1<<20
	most := (cfg.MaxMessageBytes - 256) / subscriptionReplyBytesPerName
	if !explicit["max-subscriptions"] && bytesOK {
		cfg.MaxSubscriptions = min(DefaultMaxSubscriptions, most)
	}
	// Each bounded setting: what a good value is, the setting its bound
	// depends on, if any (listed before it: while that one is refused, this
	// one is not checked), and whether its value is good.
	for _, r := range []struct {
		name, want, on string
		ok             bool
	}{
		{"max-message-bytes", "between 1024 and 1048576", "", bytesOK},
		{"client-rate", "> 0", "", cfg.ClientRate > 0},
		{"client-burst", ">= 1", "", cfg.ClientBurst >= 1},
		{"send-queue", "between 1 and 1048576", "", cfg.SendQueue >= 1 && cfg.SendQueue <= 1<<20},
		{"slow-client", "close or conflate", "", cfg.SlowClient == "close" || cfg.SlowClient == "conflate"},
		{"max-subscriptions", fmt.Sprintf("between 1 and %d (so a subscribed reply fits --max-message-bytes)", most), "max-message-bytes",
			cfg.MaxSubscriptions >= 1 && cfg.MaxSubscriptions <= most},
		{"message-timeout", "at least 100ms", "", cfg.MessageTimeout >= 100*time.Millisecond},
		{"write-timeout", "at least 100ms", "", cfg.WriteTimeout >= 100*time.Millisecond},
		{"ping-interval", "0 (off) or at least 1s", "", cfg.PingInterval == 0 || cfg.PingInterval >= time.Second},
		{"max-connections", ">= 0 (0: no limit)", "", cfg.MaxConnections >= 0},
		{"max-connections-per-user", ">= 0 (0: no limit)", "", cfg.MaxConnectionsPerUser >= 0},
		{"handshake-rate", ">= 0 (0: no limit)", "", cfg.HandshakeRate >= 0},
		{"handshake-burst", ">= 1 while --handshake-rate is set", "handshake-rate", cfg.HandshakeRate <= 0 || cfg.HandshakeBurst >= 1},
		{"handshake-timeout", "at least 100ms", "", cfg.HandshakeTimeout >= 100*time.Millisecond},
		{"handshake-ipv6-prefix", "between 1 and 128", "", cfg.HandshakeIPv6Prefix >= 1 && cfg.HandshakeIPv6Prefix <= 128},
		{"max-pending", ">= 0 (0: from the file limit)", "", cfg.MaxPending >= 0},
		{"max-pending-per-ip", ">= 0 (0: a quarter of --max-pending)", "", cfg.MaxPendingPerIP >= 0},
		{"subscribe-on-connect", "none or all", "", cfg.SubscribeOnConnect == "none" || cfg.SubscribeOnConnect == "all"},
		{"stale-after", "at least 1s", "", cfg.StaleAfter >= time.Second},
		{"latency-alert-ms", ">= 1", "", cfg.LatencyAlertMs >= 1},
		{"max-exchanges", "between 1 and 100000", "", cfg.MaxExchanges >= 1 && cfg.MaxExchanges <= 100_000},
		{"history-len", "between 0 (off) and 10000000", "", cfg.HistoryLen >= 0 && cfg.HistoryLen <= 10_000_000},
		{"auth-timeout", "0 (off) or between 100ms and 1m", "", cfg.AuthTimeout == 0 || cfg.AuthTimeout >= 100*time.Millisecond && cfg.AuthTimeout <= time.Minute},
		{"max-revocations", "between 1 and 10000000", "", cfg.MaxRevocations >= 1 && cfg.MaxRevocations <= 10_000_000},
	} {
		switch {
		case refused[r.on]:
		case unread[r.name] != "":
			bad(r.name, "%s; must be %s", unread[r.name], r.want)
		case !r.ok:
			bad(r.name, "must be %s, got %s", r.want, lenient.Lookup(r.name).Value.String())
		}
	}
	for _, p := range strings.Split(*proxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			// A bare address means just that host.
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				bad("trusted-proxies", "want CIDRs like 10.0.0.0/8 or addresses, got %q", p)
				continue
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, prefix.Masked())
	}
	if cfg.DebugAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.DebugAddr); err != nil {
			bad("debug-addr", "want host:port, got %q", cfg.DebugAddr)
		}
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		bad("log-level", "want debug, info, warn or error, got %q", *logLevel)
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		bad("log-format", "want text or json, got %q", cfg.LogFormat)
	}
	// The values of the other kinds that did not parse (--dev=maybe).
	lenient.VisitAll(func(f *flag.Flag) {
		if unread[f.Name] != "" && !refused[f.Name] {
			bad(f.Name, "%s", unread[f.Name])
		}
	})
	if len(errs) > 0 {
		return nil, &SettingsError{errs}
	}
	return cfg, nil
}

// EnvName is the environment variable of a flag: --client-rate is
// PONGCAST_CLIENT_RATE.
func EnvName(flagName string) string {
	return "PONGCAST_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// SecretFromEnvOrFile returns the HMAC secret given directly (value, from
// PONGCAST_JWT_SECRET) or in a file, with surrounding white space trimmed
// so that `echo secret > file` works. Giving both is an error.
func SecretFromEnvOrFile(value, file string) ([]byte, error) {
	if value != "" && file != "" {
		return nil, errors.New("set PONGCAST_JWT_SECRET or a secret file, not both")
	}
	if value != "" {
		return []byte(strings.TrimSpace(value)), nil
	}
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) == 0 {
		return nil, fmt.Errorf("secret file %s is empty", file)
	}
	return secret, nil
}

// MaxKeyPrefixLen bounds --key-prefix: a prefix is part of every key, and
// an instance's keys should stay short.
const MaxKeyPrefixLen = 64

// keyPrefixProblem says what is wrong with a Redis key prefix, or "" when
// nothing is. A prefix is 1-64 printable ASCII characters without spaces,
// so that it shows as typed in redis-cli and in logs; braces are allowed,
// for a Redis Cluster hash tag.
func keyPrefixProblem(p string) string {
	switch {
	case p == "":
		return "must not be empty"
	case len(p) > MaxKeyPrefixLen:
		return fmt.Sprintf("must be at most %d bytes, got %d", MaxKeyPrefixLen, len(p))
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c > '~' {
			return fmt.Sprintf("must be printable ASCII without spaces; byte %d is %q", i, p[i:i+1])
		}
	}
	return ""
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
