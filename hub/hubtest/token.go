package hubtest

import (
	"testing"
	"time"

	"github.com/pongcast/pongcast/auth"
)

// Secret is the HMAC key of test tokens.
const Secret = "pongcast-test-secret-0123456789abcdef"

// Verifier accepts tokens signed with Secret.
func Verifier(t testing.TB) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierConfig{HMACSecret: []byte(Secret)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Token signs a token for sub allowing exchanges, valid for ttl.
func Token(t testing.TB, sub string, ttl time.Duration, exchanges ...string) string {
	t.Helper()
	return Sign(t, auth.TokenSpec{Subject: sub, Exchanges: exchanges, TTL: ttl})
}

// Sign signs an arbitrary spec with Secret (for expired or odd tokens).
func Sign(t testing.TB, spec auth.TokenSpec) string {
	t.Helper()
	s, err := auth.NewHMACSigner([]byte(Secret), "HS256")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Issue(spec)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
