package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/hub"
	"github.com/pongcast/pongcast/hub/hubtest"
)

// token revoke writes the entry the servers read, with the end its rule
// gives, and refuses command lines that name no one thing to revoke.
func TestTokenRevoke(t *testing.T) {
	url, prefix := hubtest.RedisURL(t), hubtest.KeyPrefix(t)
	env := map[string]string{"PONGCAST_REDIS_URL": url, "PONGCAST_KEY_PREFIX": prefix, "PONGCAST_JWT_SECRET": hubtest.Secret}
	tok := hubtest.Token(t, "alice", time.Hour, "*")
	claims, _ := hubtest.Verifier(t).Verify(tok)
	opts, _ := redis.ParseURL(url)
	client := redis.NewClient(opts)
	defer client.Close()
	stored := func(field string) auth.Revocation {
		t.Helper()
		v, err := client.HGet(context.Background(), hub.RevocationsKey(prefix), field).Result()
		if err != nil {
			t.Fatalf("HGET %s: %v", field, err)
		}
		r, err := auth.ParseStoredRevocation(field, v)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	if code, out, errOut := pongctl(t, env, "token", "revoke", tok); code != exitOK || !strings.Contains(out, "revoked jti:"+claims.ID) {
		t.Fatalf("revoke <jwt>: %d %q %q", code, out, errOut)
	}
	if r := stored("jti:" + claims.ID); !r.Until.Equal(claims.ExpiresAt.Add(auth.DefaultLeeway)) {
		t.Errorf("a token's entry ends %v, want its exp + leeway", r.Until)
	}
	before := time.Unix(1_900_000_000, 0)
	if code, _, errOut := pongctl(t, env, "token", "revoke", "--sub", "bob", "--before", "1900000000", "--keep", "1h"); code != exitOK {
		t.Fatalf("revoke --sub: %d %q", code, errOut)
	}
	if r := stored("sub:bob"); !r.Before.Equal(before) || !r.Until.Equal(before.Add(time.Hour+auth.DefaultLeeway)) {
		t.Errorf("sub entry %+v, want before %v until before + keep + leeway", r, before)
	}
	if code, out, _ := pongctl(t, env, "token", "revoke", "--jti", "old", "--exp", "2020-01-01T00:00:00Z"); code != exitOK || !strings.Contains(out, "nothing to revoke") {
		t.Errorf("a jti whose token has expired: %d %q", code, out)
	}
	expired := hubtest.Sign(t, auth.TokenSpec{Subject: "alice", Exchanges: []string{"*"}, TTL: time.Hour, Now: time.Now().Add(-2 * time.Hour)})
	if code, out, errOut := pongctl(t, env, "token", "revoke", expired); code != exitOK || !strings.Contains(out, "nothing to revoke") {
		t.Errorf("an expired token: %d %q %q, want exit 0, nothing to revoke", code, out, errOut)
	}
	for _, args := range [][]string{
		{}, {"--jti", "a", "--sub", "b"}, {"--sub", "b", "--exp", "1"}, {"--jti", "a", "--before", "1"},
		{"--sub", "b", "--before", "yesterday"}, {"--jti", "a", "--keep", "0s"},
	} {
		if code, _, _ := pongctl(t, env, append([]string{"token", "revoke"}, args...)...); code != exitUsage {
			t.Errorf("revoke %v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// token issue sets iat and a random jti, so every token can be revoked
// by its own id.
func TestTokenIssueSetsIatAndRandomJTI(t *testing.T) {
	env := map[string]string{"PONGCAST_JWT_SECRET": hubtest.Secret}
	seen := map[string]bool{}
	for range 2 {
		code, out, errOut := pongctl(t, env, "token", "issue", "--sub", "alice", "--exchanges", "*", "--ttl", "1h")
		if code != exitOK {
			t.Fatalf("issue: %d %s", code, errOut)
		}
		claims, err := hubtest.Verifier(t).Verify(strings.TrimSpace(out))
		if err != nil || claims.IssuedAt.IsZero() || len(claims.ID) != 32 || seen[claims.ID] {
			t.Fatalf("claims %+v %v: want iat and a fresh 128-bit jti", claims, err)
		}
		seen[claims.ID] = true
	}
}
