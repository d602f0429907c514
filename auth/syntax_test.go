package auth

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestTokenSyntaxIsStrict: one token must have one spelling. Go's base64
// skips CR and LF and, unless strict, ignores the unused low bits of the
// last character, so a signature could be rewritten and still verify. And
// crit names extensions this server does not implement: RFC 7515 section
// 4.1.11 says refuse.
func TestTokenSyntaxIsStrict(t *testing.T) {
	now := time.Now()
	good := sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(now, nil))
	parts := strings.Split(good, ".")
	edit := func(i int, f func(string) string) string {
		p := slices.Clone(parts)
		p[i] = f(p[i])
		return strings.Join(p, ".")
	}
	insert := func(s string) func(string) string {
		return func(seg string) string { return seg[:len(seg)/2] + s + seg[len(seg)/2:] }
	}
	payload := aliceJSON(now, "")
	withHeader := func(h string) string { return signRaw(t, h, payload) }
	cases := []verifyCase{
		{"canonical", good, nil},
		{"newline in the signature", edit(2, insert("\n")), ErrTokenMalformed},
		{"CR LF in the signature", edit(2, insert("\r\n")), ErrTokenMalformed},
		{"newline at the end", good + "\n", ErrTokenMalformed},
		{"newline in the payload", edit(1, insert("\n")), ErrTokenMalformed},
		{"newline in the header", edit(0, insert("\n")), ErrTokenMalformed},
		{"padding on the signature", edit(2, padded), ErrTokenMalformed},
		{"padding on the payload", respelled(t, hs256Header, payload, 1, padded), ErrTokenMalformed},
		{"padding on the header", respelled(t, hs256Header, payload, 0, padded), ErrTokenMalformed},
		{"standard alphabet's + and /", edit(2, insert("+/")), ErrTokenMalformed},
		{"tab in the signature", edit(2, insert("\t")), ErrTokenMalformed},
		{"NUL in the signature", edit(2, insert("\x00")), ErrTokenMalformed},
		{"signature's unused bits set", edit(2, flipUnusedBits), ErrTokenMalformed},
		{"payload's unused bits set", respelled(t, hs256Header, payload, 1, flipUnusedBits), ErrTokenMalformed},
		{"header's unused bits set", respelled(t, hs256Header, payload, 0, flipUnusedBits), ErrTokenMalformed},
		{"crit naming a claim", withHeader(`{"alg":"HS256","typ":"JWT","crit":["exp"]}`), ErrTokenMalformed},
		{"crit naming an extension", withHeader(`{"alg":"HS256","crit":["x-bind"],"x-bind":true}`), ErrTokenMalformed},
		{"crit empty", withHeader(`{"alg":"HS256","crit":[]}`), ErrTokenMalformed},
		{"crit null", withHeader(`{"alg":"HS256","crit":null}`), ErrTokenMalformed},
		{"Crit is not crit", withHeader(`{"alg":"HS256","Crit":["exp"]}`), nil},
	}
	runVerifyCases(t, testVerifier(t), cases)
}

// flipUnusedBits rewrites the last character of an unpadded base64url
// segment so that it decodes, leniently, to the same bytes: its lowest bit
// carries no data when the length is 2 or 3 modulo 4.
func flipUnusedBits(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(seg)%4 < 2 {
		panic("segment has no unused bits")
	}
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last^1])
}

// respelled signs a token whose segment i (0 header, 1 payload) is
// rewritten by respell after encoding, and signs it as written: a second
// spelling of the same bytes that only lenient decoding reads. The JSON
// gets trailing spaces until the segment's length leaves bits unused.
func respelled(t *testing.T, header, payload string, i int, respell func(string) string) string {
	t.Helper()
	json := []string{header, payload}
	for len(jwtEncode([]byte(json[i])))%4 == 0 {
		json[i] += " "
	}
	segs := []string{jwtEncode([]byte(json[0])), jwtEncode([]byte(json[1]))}
	segs[i] = respell(segs[i])
	sig, err := jwt.SigningMethodHS256.Sign(segs[0]+"."+segs[1], testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return segs[0] + "." + segs[1] + "." + jwtEncode(sig)
}

// padded adds the '=' padding that unpadded base64url leaves out.
func padded(seg string) string { return seg + strings.Repeat("=", (4-len(seg)%4)%4) }

// TestQueryTokenWithEncodedNewline: %0A in ?access_token= decodes to a
// newline, which lenient base64 skips; the token must be refused.
func TestQueryTokenWithEncodedNewline(t *testing.T) {
	v := testVerifier(t)
	good := sign(t, jwt.SigningMethodHS256, testSecret, claimsAt(time.Now(), nil))
	for _, tc := range []struct{ name, query string }{
		{"in the signature", good[:len(good)-10] + "%0A" + good[len(good)-10:]},
		{"at the end", good + "%0A"},
		{"CR LF", good[:len(good)-10] + "%0D%0A" + good[len(good)-10:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/?"+QueryParam+"="+tc.query, nil)
			token, err := TokenFromRequest(r)
			if err == nil {
				_, err = v.Verify(token)
			}
			if Reason(err) != "malformed" {
				t.Fatalf("err = %v, want reason malformed", err)
			}
		})
	}
}
