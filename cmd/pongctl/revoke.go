package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/config"
	"github.com/pongcast/pongcast/hub"
)

// defaultKeep is how long a revocation whose tokens' exp is unknown is
// kept: it must be at least the longest TTL issued.
const defaultKeep = 30 * 24 * time.Hour

const revokeSynopsis = `token revoke --jti <id> [--exp TIME] | --sub <subject> [--before TIME] | <jwt>  [flags]

Revokes tokens on every pongcast server sharing the Redis and key prefix:
connected servers close the connections made with them within a second
(error token_revoked, close 1008) and refuse them from then on; a server
cut off from Redis applies it when it is back, and a restarted one loads it.

  --jti ID          the token whose jti is ID (pongctl token issue sets one)
  --sub SUB         every token of SUB issued (iat) before --before; a token
                    without iat is covered too
  <jwt>             the token itself: its jti and exp are read from it,
                    once verified with the key

The entry is kept in Redis until the tokens it covers have expired: until
--exp (plus the 30 s leeway) when the exp is known (--exp, or <jwt>), else
for --keep after the token was issued at the latest (now for --jti,
--before for --sub): --keep must be at least the longest --ttl you issue.`

func (e env) tokenRevoke(ctx context.Context, args []string) error {
	fs := e.flagSet("token revoke", revokeSynopsis)
	jti := fs.String("jti", "", "revoke the token with this jti")
	sub := fs.String("sub", "", "revoke the tokens of this subject issued before --before")
	before := fs.String("before", "", "with --sub: RFC 3339 time or Unix seconds (default now)")
	exp := fs.String("exp", "", "with --jti: the token's exp, RFC 3339 or Unix seconds, so the entry ends with it")
	keep := fs.Duration("keep", defaultKeep, "how long to keep an entry whose tokens' exp is unknown: at least the longest TTL issued")
	// No default from the environment: --help would print a password in it.
	redisURL := fs.String("redis-url", "", "Redis URL (if not given: env PONGCAST_REDIS_URL, else "+config.DefaultRedisURL+")")
	prefix := fs.String("key-prefix", e.envOr("PONGCAST_KEY_PREFIX", config.DefaultKeyPrefix), "Redis key prefix the servers use (env PONGCAST_KEY_PREFIX)")
	iss := fs.String("iss", e.getenv("PONGCAST_JWT_ISSUER"), "with <jwt>: required issuer (env PONGCAST_JWT_ISSUER)")
	aud := fs.String("aud", e.getenv("PONGCAST_JWT_AUDIENCE"), "with <jwt>: required audience (env PONGCAST_JWT_AUDIENCE)")
	secretFile := fs.String("jwt-secret-file", e.getenv("PONGCAST_JWT_SECRET_FILE"), "with <jwt>: file with the HMAC secret (env PONGCAST_JWT_SECRET_FILE, or the secret in PONGCAST_JWT_SECRET)")
	keyFile := fs.String("jwt-public-key-file", e.getenv("PONGCAST_JWT_PUBLIC_KEY_FILE"), "with <jwt>: PEM public key (env PONGCAST_JWT_PUBLIC_KEY_FILE)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	now := time.Now()
	leeway := auth.DefaultLeeway
	var r auth.Revocation
	given := 0
	for _, v := range []bool{*jti != "", *sub != "", fs.NArg() > 0} {
		if v {
			given++
		}
	}
	switch {
	case given != 1 || fs.NArg() > 1:
		return usagef("token revoke: give one of --jti ID, --sub SUBJECT or the token itself")
	case *keep <= 0:
		return usagef("token revoke: --keep must be more than 0, for example --keep 720h, got %s", *keep)
	case *before != "" && *sub == "":
		return usagef("token revoke: --before goes with --sub")
	case *exp != "" && *jti == "":
		return usagef("token revoke: --exp goes with --jti")
	case *jti != "":
		r.JTI = *jti
		r.Until = now.Add(*keep + leeway)
		if *exp != "" {
			t, err := parseTime(*exp)
			if err != nil {
				return usagef("token revoke: --exp: %v", err)
			}
			r.Until = t.Add(leeway)
		}
	case *sub != "":
		r.Subject, r.Before = *sub, now
		if *before != "" {
			t, err := parseTime(*before)
			if err != nil {
				return usagef("token revoke: --before: %v", err)
			}
			r.Before = t
		}
		r.Until = r.Before.Add(*keep + leeway)
	default:
		claims, err := e.verifyForRevoke(strings.TrimSpace(fs.Arg(0)), *secretFile, *keyFile, *iss, *aud)
		if errors.Is(err, auth.ErrTokenExpired) {
			// Signed with the key, and refused by every server already
			// (the same leeway): what the operator wants holds.
			fmt.Fprintln(e.stdout, "nothing to revoke: the token has expired (past its exp and the 30 s leeway)")
			return nil
		}
		if err != nil {
			return err
		}
		if claims.ID == "" {
			return fmt.Errorf("token revoke: the token has no jti: revoke its subject instead, with --sub %s", claims.Subject)
		}
		r.JTI, r.Until = claims.ID, claims.ExpiresAt.Add(leeway)
	}
	if err := r.Check(); err != nil {
		return usagef("token revoke: %s", strings.TrimPrefix(err.Error(), "auth: "))
	}
	if !r.Until.After(now) {
		fmt.Fprintf(e.stdout, "nothing to revoke: every token %s covers has expired (entry would end %s)\n", r.Key(), r.Until.UTC().Format(time.RFC3339))
		return nil
	}
	if *redisURL == "" {
		*redisURL = e.envOr("PONGCAST_REDIS_URL", config.DefaultRedisURL)
	}
	opts, err := config.ParseRedisURL(*redisURL)
	if err != nil {
		return usagef("token revoke: --redis-url: %v", err)
	}
	opts.DialTimeout = 3 * time.Second
	client := redis.NewClient(opts)
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := hub.Revoke(ctx, client, *prefix, r)
	if err != nil {
		return fmt.Errorf("token revoke on %s: %w", opts.Addr, err)
	}
	fmt.Fprintf(e.stdout, "revoked %s until %s; announced to %d server(s)\n", r.Key(), r.Until.UTC().Format(time.RFC3339), n)
	return nil
}

// verifyForRevoke verifies a token given to revoke, with the server's key:
// only a token that was valid needs revoking, and its claims are then
// what the servers decode.
func (e env) verifyForRevoke(token, secretFile, keyFile, iss, aud string) (auth.Claims, error) {
	verifier, err := e.verifier(secretFile, keyFile, iss, aud)
	if err != nil {
		return auth.Claims{}, err
	}
	claims, err := verifier.Verify(token)
	if err != nil {
		return auth.Claims{}, fmt.Errorf("token revoke: %w", err)
	}
	return claims, nil
}

// parseTime reads RFC 3339 or Unix seconds.
func parseTime(v string) (time.Time, error) {
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(secs, 0), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 (2026-12-01T13:00:00Z) or Unix seconds, got %q", v)
	}
	return t, nil
}
