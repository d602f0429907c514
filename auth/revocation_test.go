package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestRevocationRoundTrip(t *testing.T) {
	until := time.UnixMilli(1_900_000_000_123)
	for _, r := range []Revocation{
		{JTI: "9f2c", Until: until},
		{Subject: "alice: the one", Before: time.UnixMilli(1_800_000_000_000), Until: until},
	} {
		back, err := ParseStoredRevocation(r.Key(), r.StoredValue())
		if err != nil || back.Key() != r.Key() || !back.Before.Equal(r.Before) || !back.Until.Equal(r.Until) {
			t.Errorf("stored %+v came back %+v, %v", r, back, err)
		}
		ann, err := DecodeAnnouncement(r.EncodeAnnouncement())
		if err != nil || ann.Key() != r.Key() || !ann.Until.Equal(r.Until) {
			t.Errorf("announced %+v came back %+v, %v", r, ann, err)
		}
	}
	for _, bad := range []struct{ key, value string }{
		{"jti:", "0 1"}, {"sub:bob", "0 1"}, {"user:bob", "0 1"}, {"jti:a", "1"}, {"jti:a", "-1 5"}, {"jti:a", "0 0"}, {"jti:a", "x y"},
	} {
		if _, err := ParseStoredRevocation(bad.key, bad.value); err == nil {
			t.Errorf("%q = %q accepted", bad.key, bad.value)
		}
	}
}

// FuzzRevocation: whatever Redis holds, reading it never panics, and what
// is accepted reads back the same from its own encoding.
func FuzzRevocation(f *testing.F) {
	f.Add("jti:abc", "0 1900000000000")
	f.Add("sub:bob", "1800000000000 1900000000000")
	f.Add("sub:", "1 2")
	f.Add("jti:x", "99999999999999999999 1")
	f.Fuzz(func(t *testing.T, key, value string) {
		r, err := ParseStoredRevocation(key, value)
		if err != nil {
			return
		}
		back, err := ParseStoredRevocation(r.Key(), r.StoredValue())
		if err != nil || back != r {
			t.Fatalf("%q %q: %+v came back %+v, %v", key, value, r, back, err)
		}
		if _, err := DecodeAnnouncement(r.EncodeAnnouncement()); err != nil {
			t.Fatalf("announcement of %+v refused: %v", r, err)
		}
	})
}

// Every token accepted can be revoked: a sub or jti longer than a
// revocation entry may name is refused at verification (reason claims),
// and never issued.
func TestTokensAcceptedCanBeRevoked(t *testing.T) {
	now := time.Now()
	v, err := NewVerifier(VerifierConfig{HMACSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", MaxRevocationField+1)
	edge := strings.Repeat("a", MaxRevocationField)
	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   error
	}{
		{"sub at the bound", map[string]any{"sub": edge, "jti": edge}, nil},
		{"sub past it", map[string]any{"sub": long}, ErrTokenClaims},
		{"jti past it", map[string]any{"jti": long}, ErrTokenClaims},
	} {
		_, err := v.Verify(sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, tc.claims)))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), long) || Reason(err) != "claims") {
			t.Errorf("%s: error %q quotes the claim or has reason %s", tc.name, err, Reason(err))
		}
	}
	s, err := NewHMACSigner(testSecret, "HS256")
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []TokenSpec{{Subject: long, TTL: time.Hour}, {Subject: "a", ID: long, TTL: time.Hour}} {
		if _, err := s.Issue(spec); err == nil {
			t.Errorf("issued a token it could not revoke: sub %d bytes, jti %d bytes", len(spec.Subject), len(spec.ID))
		}
	}
}
