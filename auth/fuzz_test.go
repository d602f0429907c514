package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary strings, seeded with valid tokens and near
// misses, to a Verifier. Whatever it accepts must carry a signature that
// an independent HMAC computation with the configured key agrees with, and
// claims that obey the contract.
func FuzzVerify(f *testing.F) {
	now := time.Now()
	s, _ := NewHMACSigner(testSecret, "HS256")
	good, _ := s.Issue(TokenSpec{Subject: "a", Exchanges: []string{"gateio"}, TTL: time.Hour, Now: now})
	s512, _ := NewHMACSigner(testSecret, "HS512")
	good512, _ := s512.Issue(TokenSpec{Subject: "b", Exchanges: []string{"*"}, TTL: time.Hour, Now: now})
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "x", "exp": now.Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, seed := range []string{good, good512, none, tamper(good), "a.b.c", "", "eyJhbGciOiJIUzI1NiJ9..", good + "x"} {
		f.Add(seed)
	}
	v, err := NewVerifier(VerifierConfig{HMACSecret: testSecret, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(token)
		if err != nil {
			if Reason(err) == "invalid" {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		parts := strings.Split(token, ".")
		if len(parts) != 3 || !signedWithTestSecret(parts) {
			t.Fatalf("accepted a token not signed with the configured key: %q", token)
		}
		if claims.Subject == "" || claims.ExpiresAt.IsZero() {
			t.Fatalf("accepted claims without sub or exp: %+v", claims)
		}
	})
}

func signedWithTestSecret(parts []string) bool {
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	for _, h := range []func() hash.Hash{sha256.New, sha512.New384, sha512.New} {
		mac := hmac.New(h, testSecret)
		mac.Write([]byte(parts[0] + "." + parts[1]))
		if hmac.Equal(mac.Sum(nil), sig) {
			return true
		}
	}
	return false
}
