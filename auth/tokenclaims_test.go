package auth

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestClaimNamesAreExact: encoding/json would match "EXCHANGES", "Sub" or
// "exchangeſ" (U+017F folds to s) to the claims the server reads, so a
// token could grant what its issuer never wrote, or say two things at once.
// Each known name must be written exactly; another spelling of one, or the
// same name twice, is refused with reason claims.
func TestClaimNamesAreExact(t *testing.T) {
	now := time.Now()
	exp := now.Add(time.Hour).Unix()
	payload := func(extra string) string { return aliceJSON(now, extra) }
	raw := func(p string) string { return signRaw(t, hs256Header, p) }
	cases := []verifyCase{
		{"exact names", raw(payload("")), nil},
		{"unknown claims are ignored", raw(payload(`,"role":"admin","Role":"root","x":{"exchanges":["*"]}`)), nil},
		{"an escape that spells the exact name", raw(fmt.Sprintf(`{"sub":"alice","exp":%d,"\u0065xchanges":["gateio"]}`, exp)), nil},
		{"Exchanges alone", raw(fmt.Sprintf(`{"sub":"alice","exp":%d,"Exchanges":["*"]}`, exp)), ErrTokenClaims},
		{"EXCHANGES after exchanges", raw(payload(`,"EXCHANGES":["*"]`)), ErrTokenClaims},
		{"EXCHANGES before exchanges", raw(fmt.Sprintf(`{"EXCHANGES":["*"],"sub":"alice","exp":%d,"exchanges":["gateio"]}`, exp)), ErrTokenClaims},
		{"exchanges with U+017F", raw(fmt.Sprintf(`{"sub":"alice","exp":%d,"exchangeſ":["*"]}`, exp)), ErrTokenClaims},
		{"EXCHANGES written with an escape", raw(payload(`,"\u0045XCHANGES":["*"]`)), ErrTokenClaims},
		{"SUB and EXP for sub and exp", raw(fmt.Sprintf(`{"SUB":"alice","EXP":%d,"exchanges":["gateio"]}`, exp)), ErrTokenClaims},
		{"Sub after sub", raw(payload(`,"Sub":"mallory"`)), ErrTokenClaims},
		{"exchanges twice", raw(payload(`,"exchanges":["*"]`)), ErrTokenClaims},
		{"sub twice", raw(payload(`,"sub":"mallory"`)), ErrTokenClaims},
		{"exp twice", raw(payload(fmt.Sprintf(`,"exp":%d`, exp+86400))), ErrTokenClaims},
	}
	// Every claim the server reads, in upper case, with its first letter
	// upper, and with each s as U+017F: all refused.
	for _, name := range claimNames(t) {
		variants := []string{strings.ToUpper(name), strings.ToUpper(name[:1]) + name[1:]}
		if strings.Contains(name, "s") {
			variants = append(variants, strings.ReplaceAll(name, "s", "ſ"))
		}
		for _, k := range variants {
			cases = append(cases, verifyCase{"variant " + k, raw(payload(fmt.Sprintf(`,%q:%s`, k, plausibleValue(name, now)))), ErrTokenClaims})
		}
	}
	runVerifyCases(t, testVerifier(t), cases)
}

// plausibleValue is a value for claim name that the old, case-folding
// decoder would have taken without complaint.
func plausibleValue(name string, now time.Time) string {
	switch name {
	case "exp":
		return fmt.Sprint(now.Add(2 * time.Hour).Unix())
	case "nbf", "iat":
		return fmt.Sprint(now.Unix())
	case "exchanges":
		return `["*"]`
	}
	return `"mallory"`
}

// claimNames lists the JSON names of tokenClaims' fields, read from their
// tags, so that a claim added there is covered by the tests above and must
// be added to the decoder's list too.
func claimNames(t *testing.T) []string {
	t.Helper()
	var names []string
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for f := range typ.Fields() {
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.IsExported() && name != "-" && name != "" {
				names = append(names, name)
			}
		}
	}
	walk(reflect.TypeFor[tokenClaims]())
	if len(names) < 8 {
		t.Fatalf("claim names %v: fewer than the registered seven and exchanges", names)
	}
	return names
}

func TestClaimNamesListMatchesTokenClaims(t *testing.T) {
	got, want := slices.Sorted(slices.Values(knownClaims[:])), claimNames(t)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("decoder knows %v, tokenClaims has %v", got, want)
	}
}

// TestTimeClaimsAreNumbers: exp, nbf and iat are JSON numbers (RFC 7519
// section 2, NumericDate). jwt.NumericDate also reads a string of digits:
// refused, as malformed like any claim of the wrong type. null is read as
// absent, as jwt.NumericDate does.
func TestTimeClaimsAreNumbers(t *testing.T) {
	now := time.Now()
	exp, iat := now.Add(time.Hour).Unix(), now.Unix()
	v := testVerifier(t)
	raw := func(format string, args ...any) string { return signRaw(t, hs256Header, fmt.Sprintf(format, args...)) }
	runVerifyCases(t, v, []verifyCase{
		{"numbers", raw(`{"sub":"alice","exp":%d,"nbf":%d,"iat":%d,"exchanges":["gateio"]}`, exp, iat, iat), nil},
		{"a fraction and an exponent", raw(`{"sub":"alice","exp":%d.5e0,"nbf":%d.25,"exchanges":["gateio"]}`, exp, iat), nil},
		{"exp as a string of digits", raw(`{"sub":"alice","exp":"%d","exchanges":["gateio"]}`, exp), ErrTokenMalformed},
		{"nbf as a string of digits", raw(`{"sub":"alice","exp":%d,"nbf":"%d","exchanges":["gateio"]}`, exp, iat), ErrTokenMalformed},
		{"iat as a string of digits", raw(`{"sub":"alice","exp":%d,"iat":"%d","exchanges":["gateio"]}`, exp, iat), ErrTokenMalformed},
		// null is absent: some issuers write it for a claim they do not
		// set. exp is required, so a null one is missing.
		{"exp null", raw(`{"sub":"alice","exp":null,"exchanges":["gateio"]}`), ErrTokenClaims},
		{"nbf null", raw(`{"sub":"alice","exp":%d,"nbf":null,"exchanges":["gateio"]}`, exp), nil},
		{"iat null", raw(`{"sub":"alice","exp":%d,"iat":null,"exchanges":["gateio"]}`, exp), nil},
		{"exp as an array", raw(`{"sub":"alice","exp":[%d],"exchanges":["gateio"]}`, exp), ErrTokenMalformed},
		{"exp as true", raw(`{"sub":"alice","exp":true,"exchanges":["gateio"]}`), ErrTokenMalformed},
		// Past int64 seconds, the old conversion gave a time that depends
		// on the CPU: long expired on amd64, never expiring on arm64.
		{"exp past 2^53 seconds", raw(`{"sub":"alice","exp":1e300,"exchanges":["gateio"]}`), ErrTokenMalformed},
		{"exp past float64", raw(`{"sub":"alice","exp":1e400,"exchanges":["gateio"]}`), ErrTokenMalformed},
		{"payload not an object", raw(`["sub","alice"]`), ErrTokenMalformed},
		{"payload with trailing data", raw(`{"sub":"alice","exp":%d,"exchanges":["gateio"]}{}`, exp), ErrTokenMalformed},
	})
}
