package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

// sign makes a token with arbitrary claims and algorithm, for the cases a
// Signer refuses to produce.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func claimsAt(now time.Time, extra map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "exchanges": []string{"gateio"}}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func pemOf(t *testing.T, typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func publicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PUBLIC KEY", der)
}

// signRaw signs header and payload as written, byte for byte, with
// testSecret under HS256: the way to make tokens no JSON encoder would
// write (repeated names, names in another case, escapes).
func signRaw(t testing.TB, header, payload string) string {
	t.Helper()
	signing := jwtEncode([]byte(header)) + "." + jwtEncode([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + jwtEncode(sig)
}

const hs256Header = `{"alg":"HS256","typ":"JWT"}`

// aliceJSON is the payload of a token valid at now for alice, allowing
// gateio, with extra (",\"name\":value...") appended to its members.
func aliceJSON(now time.Time, extra string) string {
	return fmt.Sprintf(`{"sub":"alice","exp":%d,"iat":%d,"exchanges":["gateio"]%s}`, now.Add(time.Hour).Unix(), now.Unix(), extra)
}

// testVerifier accepts HMAC tokens signed with testSecret.
func testVerifier(t *testing.T) *Verifier {
	t.Helper()
	v, err := NewVerifier(VerifierConfig{HMACSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// verifyCase is a token and the sentinel Verify must return for it (nil:
// accepted, granting alice gateio only).
type verifyCase struct {
	name  string
	token string
	want  error
}

// runVerifyCases checks each case's outcome and reason, and that no error
// quotes its token.
func runVerifyCases(t *testing.T, v *Verifier, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims, err := v.Verify(tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if claims.Subject != "alice" || !claims.Allows("gateio") || claims.Allows("binance") {
					t.Fatalf("claims = %+v", claims)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v (claims %+v), want %v", err, claims, tc.want)
			}
			if got, want := Reason(err), Reason(tc.want); got != want {
				t.Fatalf("Reason = %q, want %q (err %v)", got, want, err)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Fatal("the error quotes the token")
			}
		})
	}
}

func TestVerifyHMAC(t *testing.T) {
	now := time.Now()
	v, err := NewVerifier(VerifierConfig{HMACSecret: testSecret, Issuer: "ops", Audience: "pongcast"})
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := map[string]any{"iss": "ops", "aud": "pongcast"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{"iss": "ops", "aud": "pongcast"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	unsigned, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claimsAt(now, good)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs256 := sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, good))

	cases := []verifyCase{
		{"HS256", hs256, nil},
		{"HS384", sign(t, jwt.SigningMethodHS384, testSecret, claimsAt(now, good)), nil},
		{"HS512", sign(t, jwt.SigningMethodHS512, testSecret, claimsAt(now, good)), nil},
		{"alg none", unsigned, ErrTokenAlgorithm},
		{"alg none with signature stripped", strings.Join(append(strings.Split(hs256, ".")[:2], ""), "."), ErrTokenSignature},
		{"RS256 where HMAC is configured", sign(t, jwt.SigningMethodRS256, rsaKey, claimsAt(now, good)), ErrTokenAlgorithm},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), claimsAt(now, good)), ErrTokenSignature},
		{"tampered payload", tamper(hs256), ErrTokenSignature},
		{"expired", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, with("exp", now.Add(-time.Minute).Unix()))), ErrTokenExpired},
		{"expired within leeway", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, with("exp", now.Add(-10*time.Second).Unix()))), nil},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, with("nbf", now.Add(time.Minute).Unix()))), ErrTokenNotYetValid},
		{"nbf within leeway", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, with("nbf", now.Add(10*time.Second).Unix()))), nil},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, with("iat", now.Add(time.Hour).Unix()))), ErrTokenNotYetValid},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, with("iss", "mallory"))), ErrTokenIssuer},
		{"missing issuer", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, map[string]any{"aud": "pongcast"})), ErrTokenClaims},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, with("aud", "billing"))), ErrTokenAudience},
		{"audience among several", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, with("aud", []string{"billing", "pongcast"}))), nil},
		{"missing sub", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, with("sub", nil))), ErrTokenClaims},
		{"missing exp", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, with("exp", nil))), ErrTokenClaims},
		{"exp as string", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, with("exp", "tomorrow"))), ErrTokenMalformed},
		{"exchanges not a list", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, with("exchanges", "gateio"))), ErrTokenMalformed},
		{"exchanges with a bad name", sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, with("exchanges", []string{"gate io"}))), ErrTokenClaims},
		{"empty", "", ErrTokenMissing},
		{"garbage", "not-a-token", ErrTokenMalformed},
		{"two parts", "a.b", ErrTokenMalformed},
		{"huge", strings.Repeat("a", MaxTokenBytes+1), ErrTokenMalformed},
	}
	runVerifyCases(t, v, cases)
}

func tamper(token string) string {
	parts := strings.Split(token, ".")
	claims := `{"sub":"mallory","exp":9999999999,"exchanges":["*"],"iss":"ops","aud":"pongcast"}`
	parts[1] = jwtEncode([]byte(claims))
	return strings.Join(parts, ".")
}

func jwtEncode(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestPublicKeyFamilies(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()

	rsaDER := x509.MarshalPKCS1PrivateKey(rsaKey)
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	families := []struct {
		name    string
		pub     []byte
		private []byte
		alg     string
		other   string // a token of another family, to be refused
	}{
		{"RSA", publicPEM(t, &rsaKey.PublicKey), pemOf(t, "RSA PRIVATE KEY", rsaDER), "RS256", sign(t, jwt.SigningMethodES256, ecKey, claimsAt(now, nil))},
		{"ECDSA P-256", publicPEM(t, &ecKey.PublicKey), pemOf(t, "EC PRIVATE KEY", ecDER), "ES256", sign(t, jwt.SigningMethodES384, ec384, claimsAt(now, nil))},
		{"Ed25519", publicPEM(t, edPub), pemOf(t, "PRIVATE KEY", edDER), "EdDSA", sign(t, jwt.SigningMethodRS256, rsaKey, claimsAt(now, nil))},
	}
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			v, err := NewVerifier(VerifierConfig{PublicKeyPEM: fam.pub})
			if err != nil {
				t.Fatal(err)
			}
			signer, err := NewKeySigner(fam.private)
			if err != nil {
				t.Fatal(err)
			}
			if signer.Algorithm() != fam.alg {
				t.Fatalf("signer alg %s, want %s", signer.Algorithm(), fam.alg)
			}
			tok, err := signer.Issue(TokenSpec{Subject: "svc", Exchanges: []string{"*"}, TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if c, err := v.Verify(tok); err != nil || !c.AllowsAll() {
				t.Fatalf("Verify own token: %+v, %v", c, err)
			}
			if _, err := v.Verify(fam.other); !errors.Is(err, ErrTokenAlgorithm) {
				t.Fatalf("token of another family: err = %v, want ErrTokenAlgorithm", err)
			}
			// HS/RS confusion: an HMAC token keyed with the public key's
			// own PEM bytes must be refused.
			confused := sign(t, jwt.SigningMethodHS256, fam.pub, claimsAt(now, nil))
			if _, err := v.Verify(confused); !errors.Is(err, ErrTokenAlgorithm) {
				t.Fatalf("HMAC token keyed with the public key: err = %v, want ErrTokenAlgorithm", err)
			}
		})
	}
}

func TestNewVerifierRefusesBadKeys(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	cases := []struct {
		name string
		cfg  VerifierConfig
		want string
	}{
		{"nothing", VerifierConfig{}, "no key"},
		{"both", VerifierConfig{HMACSecret: testSecret, PublicKeyPEM: []byte("x")}, "not both"},
		{"short secret", VerifierConfig{HMACSecret: []byte("short")}, "at least 32"},
		{"not PEM", VerifierConfig{PublicKeyPEM: []byte("hello")}, "no PEM block"},
		{"private key given as public", VerifierConfig{PublicKeyPEM: pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small))}, "not a public key"},
		{"weak RSA", VerifierConfig{PublicKeyPEM: publicPEM(t, &small.PublicKey)}, "at least 2048"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewVerifier(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestIssueRoundTrip(t *testing.T) {
	s, err := NewHMACSigner(testSecret, "HS512")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier(VerifierConfig{HMACSecret: testSecret, Issuer: "ops", Audience: "web"})
	tok, err := s.Issue(TokenSpec{Subject: "bob", Exchanges: []string{"GateIO", "binance", "gateio"}, TTL: time.Hour, Issuer: "ops", Audience: "web"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "bob" || strings.Join(c.Exchanges, ",") != "gateio,binance" || c.AllowsAll() {
		t.Fatalf("claims %+v", c)
	}
	for _, bad := range []TokenSpec{{Exchanges: []string{"a"}, TTL: time.Hour}, {Subject: "a", TTL: 0}, {Subject: "a", TTL: time.Hour, Exchanges: []string{"no way"}}} {
		if _, err := s.Issue(bad); err == nil {
			t.Errorf("Issue(%+v) succeeded", bad)
		}
	}
	if _, err := NewHMACSigner(testSecret, "RS256"); err == nil {
		t.Error("NewHMACSigner accepted RS256")
	}
}

func TestTokenFromRequest(t *testing.T) {
	cases := []struct {
		name, header, query, want string
		err                       error
	}{
		{"bearer header", "Bearer abc", "", "abc", nil},
		{"scheme case-insensitive", "bearer abc", "", "abc", nil},
		{"query", "", "access_token=q1", "q1", nil},
		{"header wins", "Bearer h", "access_token=q", "h", nil},
		{"basic refused", "Basic dXNlcjpwdw==", "", "", ErrTokenMalformed},
		{"empty bearer", "Bearer ", "", "", ErrTokenMissing},
		{"nothing", "", "", "", ErrTokenMissing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/?"+tc.query, nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			got, err := TokenFromRequest(r)
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestReasonCoversEverySentinel(t *testing.T) {
	for _, err := range []error{ErrTokenMissing, ErrTokenMalformed, ErrTokenAlgorithm, ErrTokenSignature, ErrTokenExpired,
		ErrTokenNotYetValid, ErrTokenIssuer, ErrTokenAudience, ErrTokenClaims} {
		r := Reason(err)
		if r == "invalid" || r == "" {
			t.Errorf("Reason(%v) = %q", err, r)
		}
	}
}
