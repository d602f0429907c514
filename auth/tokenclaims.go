package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenClaims is the JSON shape of a pongcast token. Signer.Issue encodes
// it with encoding/json; Verify decodes it with UnmarshalJSON below, never
// with encoding/json's struct decoder.
type tokenClaims struct {
	jwt.RegisteredClaims
	Exchanges []string `json:"exchanges,omitempty"`
}

// knownClaims are the claim names tokenClaims reads, spelled as its field
// tags spell them (TestClaimNamesListMatchesTokenClaims keeps the two
// together).
var knownClaims = [...]string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "exchanges"}

// UnmarshalJSON decodes the claims with exact, case-sensitive names.
//
// encoding/json matches member names to struct fields case-insensitively,
// Unicode folding included, and lets the last match win: "EXCHANGES":["*"]
// after "exchanges":["gateio"], or "exchangeſ" (U+017F folds to s), would
// fill Exchanges, so a token could grant here what its issuer and other
// verifiers read otherwise. Here a known name written exactly is decoded
// into its field; the same known name twice, or a name that equals a known
// one only under folding, refuses the token with ErrTokenClaims; any other
// name is not a claim this server reads and is skipped.
//
// The members are found by one walk over the bytes (encoding/json hands an
// Unmarshaler a value it has already checked to be valid JSON), and each
// known claim is decoded once, on its own, as the walk reaches it. That
// costs fewer allocations than the struct decoder did (BenchmarkVerifyHS256:
// 44 a token, from 56). Decoding into a map[string]json.RawMessage first
// would cost more and keep only the last of a repeated name; a json.Decoder
// token scan allocates for every token it returns.
func (c *tokenClaims) UnmarshalJSON(data []byte) error {
	var seen [len(knownClaims)]bool
	return forEachMember(data, func(name, value []byte) error {
		i := slices.Index(knownClaims[:], string(name))
		if i < 0 {
			for _, known := range knownClaims {
				// bytes.EqualFold folds exactly as encoding/json's
				// field matching does (see its foldName).
				if bytes.EqualFold(name, []byte(known)) {
					return fmt.Errorf("%w: a claim name differs from %q only in case", ErrTokenClaims, known)
				}
			}
			return nil
		}
		if seen[i] {
			return fmt.Errorf("%w: claim %q appears twice", ErrTokenClaims, knownClaims[i])
		}
		seen[i] = true
		return c.decodeClaim(knownClaims[i], value)
	})
}

// decodeClaim decodes value, the JSON of claim name, into its field. A
// value of the wrong type is an error that Verify reports as malformed.
func (c *tokenClaims) decodeClaim(name string, value []byte) error {
	var err error
	switch name {
	case "iss":
		err = json.Unmarshal(value, &c.Issuer)
	case "sub":
		err = json.Unmarshal(value, &c.Subject)
	case "aud":
		err = json.Unmarshal(value, &c.Audience)
	case "exp":
		c.ExpiresAt, err = numericDate(value)
	case "nbf":
		c.NotBefore, err = numericDate(value)
	case "iat":
		c.IssuedAt, err = numericDate(value)
	case "jti":
		err = json.Unmarshal(value, &c.ID)
	case "exchanges":
		err = json.Unmarshal(value, &c.Exchanges)
	}
	if err != nil {
		return fmt.Errorf("claim %s: %w", name, err)
	}
	return nil
}

// maxSeconds bounds a NumericDate: beyond 2^53 seconds a float64 no
// longer holds every whole second, and the conversion to int64 for values
// past its range gives a different time on each CPU architecture.
const maxSeconds = 1 << 53

// numericDate reads a NumericDate (RFC 7519 section 2): a JSON number of
// seconds since the epoch. jwt.NumericDate's own UnmarshalJSON also takes
// a string holding a number ("exp":"1700000000"), a second spelling of the
// same token that no issuer needs; null counts as absent.
func numericDate(value []byte) (*jwt.NumericDate, error) {
	if string(value) == "null" {
		// Some issuers write null for a time claim they do not set: it is
		// absent (so a null exp is refused as missing).
		return nil, nil
	}
	if len(value) == 0 || value[0] != '-' && (value[0] < '0' || value[0] > '9') {
		return nil, errors.New("not a JSON number")
	}
	f, err := strconv.ParseFloat(string(value), 64)
	if err != nil || math.Abs(f) > maxSeconds {
		return nil, errors.New("not a number of seconds within 2^53")
	}
	// Whole seconds and the fraction apart, as jwt.NumericDate does.
	sec, frac := math.Modf(f)
	return jwt.NewNumericDate(time.Unix(int64(sec), int64(frac*1e9))), nil
}

// errNotObject says that forEachMember was given something other than one
// JSON object; encoding/json never hands an Unmarshaler such bytes, so it
// is a guard, not a path.
var errNotObject = errors.New("not a JSON object")

// forEachMember calls fn with the name, unescaped as encoding/json
// unescapes it, and the raw value of each member of the JSON object data,
// in order. It expects valid JSON and returns errNotObject, never panics,
// on bytes that are not.
func forEachMember(data []byte, fn func(name, value []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errNotObject
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return trailing(data, i+1)
	}
	for {
		end, escaped := stringEnd(data, i)
		if end < 0 {
			return errNotObject
		}
		name := data[i+1 : end-1]
		if escaped {
			var s string
			if err := json.Unmarshal(data[i:end], &s); err != nil {
				return errNotObject
			}
			name = []byte(s)
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return errNotObject
		}
		i = skipSpace(data, i+1)
		vend := valueEnd(data, i)
		if vend < 0 {
			return errNotObject
		}
		if err := fn(name, data[i:vend]); err != nil {
			return err
		}
		i = skipSpace(data, vend)
		switch {
		case i < len(data) && data[i] == ',':
			i = skipSpace(data, i+1)
		case i < len(data) && data[i] == '}':
			return trailing(data, i+1)
		default:
			return errNotObject
		}
	}
}

// trailing refuses anything but white space after the object's end at i.
func trailing(data []byte, i int) error {
	if skipSpace(data, i) != len(data) {
		return errNotObject
	}
	return nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the JSON string that starts at
// data[i], and whether it holds an escape; -1 if there is no string there.
func stringEnd(data []byte, i int) (int, bool) {
	if i >= len(data) || data[i] != '"' {
		return -1, false
	}
	escaped := false
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			escaped = true
			j++ // the escaped byte cannot end the string
		case '"':
			return j + 1, escaped
		}
	}
	return -1, false
}

// valueEnd returns the index just past the JSON value that starts at
// data[i], or -1. Nested objects and arrays are skipped whole, strings
// inside them included.
func valueEnd(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		end, _ := stringEnd(data, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end, _ := stringEnd(data, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	// A number, true, false or null: up to the next delimiter.
	j := i
	for j < len(data) {
		switch data[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return j
}
