package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/config"
)

// devTokenTTL is how long the printed dev token lasts.
const devTokenTTL = 24 * time.Hour

// devEnv is what --dev adds: an embedded Redis and a throwaway secret.
type devEnv struct {
	redis  *miniredis.Miniredis
	token  string
	secret string
}

// startDev fills in what dev mode supplies and the user did not: an
// embedded Redis on 127.0.0.1:6379 (or a free port if that is taken) and a
// random HMAC secret. It edits cfg in place.
func startDev(cfg *config.Config, log *slog.Logger) (*devEnv, error) {
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
	if len(cfg.JWTSecret) == 0 && len(cfg.JWTPublicKey) == 0 {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		d.secret = hex.EncodeToString(b)
		cfg.JWTSecret = []byte(d.secret)
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

// printWelcome prints the token and copy-paste commands to stdout.
func (d *devEnv) printWelcome(w io.Writer, addr string, cfg *config.Config) {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	ws := "ws://" + net.JoinHostPort(host, port)
	redisAddr := strings.TrimPrefix(strings.TrimSuffix(cfg.RedisURL, "/0"), "redis://")
	rhost, rport, _ := net.SplitHostPort(redisAddr)
	var b strings.Builder
	fmt.Fprintf(&b, "\npongcast dev mode: listening on %s, Redis at %s, channel %q\n", ws, cfg.RedisURL, cfg.Channel)
	if d.token == "" {
		fmt.Fprintf(&b, "\nA public key is configured: issue tokens with your own key.\n")
	} else {
		if d.secret != "" {
			fmt.Fprintf(&b, "\nThrowaway HMAC secret (this run only):\n  export PONGCAST_JWT_SECRET=%s\n", d.secret)
		}
		fmt.Fprintf(&b, "\nToken (sub=dev, all exchanges, valid %s):\n  %s\n", devTokenTTL, d.token)
		fmt.Fprintf(&b, "\nConnect:\n  wscat -c '%s/?access_token=%s&exchanges=gateio'\n", ws, d.token)
		fmt.Fprintf(&b, "  go run ./cmd/pongctl watch --url %s --token %s --exchanges gateio\n", ws, d.token)
	}
	fmt.Fprintf(&b, "\nPublish a pong:\n  redis-cli -h %s -p %s PUBLISH %s '{\"exchange\":\"gateio\",\"latency\":45,\"timestamp\":%d,\"status\":\"connected\"}'\n",
		rhost, rport, cfg.Channel, time.Now().UnixMilli())
	fmt.Fprintf(&b, "  go run ./cmd/pongctl publish --redis-url %s --exchange gateio --latency 45 --status connected\n\n", cfg.RedisURL)
	_, _ = io.WriteString(w, b.String())
}
