package hubtest

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

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

// SignJSON signs header and claims, two JSON texts, byte for byte as
// written under HS256 with Secret: for tokens that no JSON encoder, and so
// no Signer, would produce (a claim name in upper case, a crit header).
func SignJSON(t testing.TB, header, claims string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(Secret))
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}
