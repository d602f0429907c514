package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary strings, seeded with valid tokens and near
// misses, to a Verifier. Whatever it accepts must carry a signature that
// an independent HMAC computation with the configured key agrees with, be
// the one canonical spelling of its bytes, carry no crit header and no
// known claim in another case, and obey the contract.
func FuzzVerify(f *testing.F) {
	now := time.Now()
	s, _ := NewHMACSigner(testSecret, "HS256")
	good, _ := s.Issue(TokenSpec{Subject: "a", Exchanges: []string{"gateio"}, TTL: time.Hour, Now: now})
	s512, _ := NewHMACSigner(testSecret, "HS512")
	good512, _ := s512.Issue(TokenSpec{Subject: "b", Exchanges: []string{"*"}, TTL: time.Hour, Now: now})
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "x", "exp": now.Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, seed := range []string{good, good512, none, tamper(good), "a.b.c", "", "eyJhbGciOiJIUzI1NiJ9..", good + "x",
		good[:len(good)-8] + "\n" + good[len(good)-8:], flipSignatureBits(good), good + "=",
		signRaw(f, `{"alg":"HS256","crit":["exp"]}`, aliceJSON(now, "")),
		signRaw(f, hs256Header, aliceJSON(now, `,"EXCHANGES":["*"]`)),
		signRaw(f, hs256Header, aliceJSON(now, `,"exchangeſ":["*"]`)),
		signRaw(f, hs256Header, fmt.Sprintf(`{"sub":"a","exp":"%d"}`, now.Add(time.Hour).Unix())),
	} {
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
		var segs [3][]byte
		for i, part := range parts {
			// Lenient decoding, as the check of the spelling.
			b, err := base64.RawURLEncoding.DecodeString(part)
			if err != nil || base64.RawURLEncoding.EncodeToString(b) != part {
				t.Fatalf("accepted a token whose segment %d is not canonical base64url: %q", i, token)
			}
			segs[i] = b
		}
		var header map[string]any
		if err := json.Unmarshal(segs[0], &header); err != nil {
			t.Fatalf("accepted a header that is not JSON: %s", segs[0])
		}
		if _, crit := header["crit"]; crit {
			t.Fatalf("accepted a header with crit: %s", segs[0])
		}
		names, _ := memberNames(segs[1])
		for _, name := range names {
			for _, known := range knownClaims {
				if name != known && strings.EqualFold(name, known) {
					t.Fatalf("accepted claim name %q for %q: %s", name, known, segs[1])
				}
			}
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

// FuzzClaimsJSON checks tokenClaims.UnmarshalJSON against encoding/json:
// it refuses with ErrTokenClaims exactly the objects that name a known
// claim twice or in another case (found here by a json.Decoder scan), and
// whatever it accepts, encoding/json's own struct decoder reads the same
// way. What it decodes encodes the same way again after a round trip.
func FuzzClaimsJSON(f *testing.F) {
	for _, seed := range []string{
		`{"sub":"a","exp":1700000000,"exchanges":["gateio"]}`,
		`{"sub":"a","exp":1.7e9,"nbf":-1,"iat":0.5,"aud":["x","y"],"iss":"i","jti":"j","exchanges":null}`,
		`{"EXCHANGES":["*"]}`,
		`{"exchanges":[],"exchanges":["*"]}`,
		`{"exchangeſ":["*"]}`,
		`{"\u0065xchanges":["a"],"\u0045xp":1}`,
		`{"exp":"1700000000"}`,
		`{"x":{"exchanges":["*"],"y":[1,"]}\"",{}]},"sub":"\"\\"}`,
		` { } `,
		`{"sub":1}`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	type plain tokenClaims // encoding/json's struct decoding, folding names
	f.Fuzz(func(t *testing.T, data []byte) {
		var got tokenClaims
		err := json.Unmarshal(data, &got)
		names, isObject := memberNames(data)
		ambiguous := false
		for i, name := range names {
			for _, known := range knownClaims {
				if strings.EqualFold(name, known) && (name != known || slices.Contains(names[:i], name)) {
					ambiguous = true
				}
			}
		}
		// Another error (a claim of the wrong type) may come first and
		// says nothing about the names.
		switch {
		case errors.Is(err, ErrTokenClaims) && !ambiguous:
			t.Fatalf("%s: refused (%v) without a repeated or folded claim name", data, err)
		case err == nil && !isObject:
			t.Fatalf("%s: accepted, but not one JSON object", data)
		case err == nil && ambiguous:
			t.Fatalf("%s: accepted with a repeated or folded claim name", data)
		case err != nil:
			return
		}
		var want tokenClaims
		if err := json.Unmarshal(data, (*plain)(&want)); err != nil {
			t.Fatalf("%s: accepted, but encoding/json says %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: decoded %+v, encoding/json %+v", data, got, want)
		}
		enc, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var again tokenClaims
		if err := json.Unmarshal(enc, &again); err != nil {
			t.Fatalf("%s: encoded as %s, which is refused: %v", data, enc, err)
		}
		if enc2, _ := json.Marshal(again); !bytes.Equal(enc2, enc) {
			t.Fatalf("%s: encoded as %s, then as %s", data, enc, enc2)
		}
	})
}

// memberNames lists the member names of a JSON object, unescaped, in
// order, by json.Decoder; false if data is not one valid JSON object.
func memberNames(data []byte) ([]string, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var names []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		names = append(names, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, false
		}
	}
	return names, true
}

// flipSignatureBits is flipUnusedBits on a token's signature segment
// alone: the whole token's length varies with its random jti.
func flipSignatureBits(token string) string {
	i := strings.LastIndexByte(token, '.') + 1
	return token[:i] + flipUnusedBits(token[i:])
}
