package auth

import (
	"testing"
	"time"
)

// BenchmarkVerifyHS256 is the per-handshake cost of authentication.
func BenchmarkVerifyHS256(b *testing.B) {
	s, _ := NewHMACSigner(testSecret, "HS256")
	tok, _ := s.Issue(TokenSpec{Subject: "a", Exchanges: []string{"gateio", "binance"}, TTL: time.Hour})
	v, _ := NewVerifier(VerifierConfig{HMACSecret: testSecret})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
