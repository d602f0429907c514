package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/config"
)

// devTokenTTL is how long the printed dev token lasts.
const devTokenTTL = 24 * time.Hour

// devEnv is what --dev adds: an embedded Redis, a throwaway secret unless
// one is configured, and a token.
type devEnv struct {
	redis *miniredis.Miniredis // nil when --redis-url was given
	token string               // empty when a public key is configured
	// secret is the random secret, empty when the user configured one;
	// secretFrom then names where it came from.
	secret     string
	secretFrom string
}

// startDev fills in what dev mode supplies and the user did not: an
// embedded Redis on 127.0.0.1:6379 (or a free port if that is taken) and a
// random HMAC secret. It edits cfg in place. getenv is the one config.Load
// read, so the banner can say where a configured secret came from.
func startDev(cfg *config.Config, getenv func(string) string, log *slog.Logger) (*devEnv, error) {
	d := &devEnv{}
	if !cfg.RedisURLSet {
		d.redis = miniredis.NewMiniRedis()
		if err := d.redis.StartAddr("127.0.0.1:6379"); err != nil {
			if err := d.redis.StartAddr("127.0.0.1:0"); err != nil {
				return nil, fmt.Errorf("pongcast: dev: start embedded redis: %w", err)
			}
		}
		cfg.RedisURL = "redis://" + d.redis.Addr() + "/0"
		log.Info("dev: embedded redis started", "addr", d.redis.Addr())
	}
	switch {
	case len(cfg.JWTPublicKey) > 0:
	case len(cfg.JWTSecret) == 0:
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		d.secret = hex.EncodeToString(b)
		cfg.JWTSecret = []byte(d.secret)
	case getenv("PONGCAST_JWT_SECRET") != "":
		d.secretFrom = "PONGCAST_JWT_SECRET from the environment"
	default:
		d.secretFrom = "the file of --jwt-secret-file (PONGCAST_JWT_SECRET_FILE)"
	}
	if len(cfg.JWTSecret) > 0 {
		signer, err := auth.NewHMACSigner(cfg.JWTSecret, "HS256")
		if err != nil {
			return nil, fmt.Errorf("pongcast: dev: %w", err)
		}
		d.token, err = signer.Issue(auth.TokenSpec{
			Subject: "dev", Exchanges: []string{"*"}, TTL: devTokenTTL,
			Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
		})
		if err != nil {
			return nil, fmt.Errorf("pongcast: dev: %w", err)
		}
	}
	return d, nil
}

// Close stops the embedded Redis, if one was started.
func (d *devEnv) Close() {
	if d.redis != nil {
		d.redis.Close()
	}
}

// printWelcome prints the token and copy-paste commands to stdout. Each
// command works as printed from the repository root (bin/pongctl is built
// by make run and make build), except that a Redis password is never
// printed: the commands then hold a <password> to fill in.
func (d *devEnv) printWelcome(w io.Writer, addr string, cfg *config.Config) {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	ws := "ws://" + net.JoinHostPort(host, port)
	pub := newPublishCommands(cfg.RedisURL)
	redisIs := " (embedded)"
	if d.redis == nil {
		redisIs = ""
		if pub.credentials {
			redisIs = " (its user name and password not shown)"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\npongcast dev mode: listening on %s, Redis at %s%s, channel %q\n", ws, pub.shown, redisIs, cfg.Channel)
	fmt.Fprintf(&b, "Run these commands from the repository root: bin/pongctl is built by make run and make build.\n")
	switch {
	case d.token == "":
		fmt.Fprintf(&b, "\nA public key is configured: issue tokens with your own private key.\n")
	case d.secret != "":
		fmt.Fprintf(&b, "\nJWT secret: random, made for this run (set PONGCAST_JWT_SECRET to choose one). To sign more tokens with it:\n")
		fmt.Fprintf(&b, "  export PONGCAST_JWT_SECRET=%s\n", d.secret)
		fmt.Fprintf(&b, "  bin/pongctl token issue --sub me --exchanges '*'%s\n", issuerFlags(cfg))
	default:
		fmt.Fprintf(&b, "\nJWT secret: %s.\n", d.secretFrom)
	}
	if d.token != "" {
		fmt.Fprintf(&b, "\nToken (sub=dev, all exchanges, valid %s):\n  %s\n", devTokenTTL, d.token)
		fmt.Fprintf(&b, "\nConnect:\n  wscat -c '%s/?access_token=%s&exchanges=gateio'\n", ws, d.token)
		fmt.Fprintf(&b, "  PONGCAST_TOKEN=%s bin/pongctl watch --url %s --exchanges gateio\n", d.token, ws)
	}
	fmt.Fprintf(&b, "\nPublish a pong")
	if pub.credentials {
		fmt.Fprintf(&b, " (put in your Redis URL's user name and password)")
	}
	fmt.Fprintf(&b, ":\n  %s PUBLISH %s '{\"exchange\":\"gateio\",\"latency\":45,\"timestamp\":%d,\"status\":\"connected\"}'\n",
		pub.redisCLI, shellQuote(cfg.Channel), time.Now().UnixMilli())
	channel := ""
	if cfg.Channel != config.DefaultChannel {
		channel = " --channel " + shellQuote(cfg.Channel)
	}
	fmt.Fprintf(&b, "  bin/pongctl publish --redis-url %s%s --exchange gateio --latency 45 --status connected\n\n", pub.url, channel)
	_, _ = io.WriteString(w, b.String())
}

// issuerFlags are the pongctl token issue flags that give a token the
// issuer and audience the server checks.
func issuerFlags(cfg *config.Config) string {
	var s string
	if cfg.JWTIssuer != "" {
		s += " --iss " + shellQuote(cfg.JWTIssuer)
	}
	if cfg.JWTAudience != "" {
		s += " --aud " + shellQuote(cfg.JWTAudience)
	}
	return s
}

// publishCommands are what the banner shows of the Redis URL: the URL
// redacted, and the parts of the publish commands that depend on it (the
// redis-cli command without its arguments, and the URL for pongctl, both
// shell-quoted).
type publishCommands struct {
	shown       string
	redisCLI    string
	url         string
	credentials bool // the URL has a user name or password, left out of both
}

// newPublishCommands builds the commands from the parsed URL: the host
// and port of a URL with credentials are not where string trimming finds
// them, and the credentials are shown as placeholders.
func newPublishCommands(raw string) publishCommands {
	opts, err := config.ParseRedisURL(raw)
	if err != nil { // config.Load checked it; a URL made here parses
		return publishCommands{shown: config.RedactRedisURL(raw), redisCLI: "redis-cli", url: "'<your Redis URL>'"}
	}
	p := publishCommands{
		shown:       config.RedactRedisURL(raw),
		url:         shellQuote(raw),
		credentials: opts.Username != "" || opts.Password != "",
	}
	cli := []string{"redis-cli"}
	if opts.Password != "" {
		cli = []string{"REDISCLI_AUTH='<password>'", "redis-cli"}
	}
	if opts.Network == "unix" {
		p.shown = "unix://" + opts.Addr // a path: RedactRedisURL shows no path
		cli = append(cli, "-s", shellQuote(opts.Addr))
	} else {
		h, port, _ := net.SplitHostPort(opts.Addr)
		cli = append(cli, "-h", shellQuote(h), "-p", port)
	}
	if opts.Username != "" {
		cli = append(cli, "--user", "'<user>'")
	}
	if opts.TLSConfig != nil {
		cli = append(cli, "--tls")
	}
	p.redisCLI = strings.Join(cli, " ")
	if p.credentials {
		scheme, _, _ := strings.Cut(raw, "://")
		p.url = "'" + placeholderURL(scheme, opts) + "'"
	}
	return p
}

// placeholderURL is a Redis URL for the server and database of opts,
// with <user> and <password> where opts has them: it quotes nothing of
// the URL's user information, whatever that holds.
func placeholderURL(scheme string, opts *redis.Options) string {
	var cred string
	if opts.Username != "" {
		cred = "<user>"
	}
	if opts.Password != "" {
		cred += ":<password>"
	}
	if opts.Network == "unix" {
		return "unix://" + cred + "@" + opts.Addr + "?db=" + strconv.Itoa(opts.DB)
	}
	return scheme + "://" + cred + "@" + opts.Addr + "/" + strconv.Itoa(opts.DB)
}

// shellQuote returns s as one word for a POSIX shell: as it is when it
// holds nothing a shell would treat specially, else in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,:/@%+=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
