package auth

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pongcast/pongcast/protocol"
)

// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
const DefaultLeeway = 30 * time.Second

// MaxTokenBytes bounds the token a client may present; real tokens are a
// few hundred bytes, and parsing is not free.
const MaxTokenBytes = 8192

// VerifierConfig says which tokens a Verifier accepts. Exactly one of
// HMACSecret and PublicKeyPEM must be set.
type VerifierConfig struct {
	// HMACSecret accepts HS256, HS384 and HS512 tokens signed with it.
	HMACSecret []byte
	// PublicKeyPEM accepts tokens of the key's family: RS*/PS* for RSA,
	// ES256/384/512 for the matching ECDSA curve, EdDSA for Ed25519.
	PublicKeyPEM []byte
	// Issuer, if set, must equal the token's iss.
	Issuer string
	// Audience, if set, must be among the token's aud.
	Audience string
	// Leeway is the allowed clock skew. If zero, DefaultLeeway is used.
	Leeway time.Duration
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

// Verifier checks tokens against one configured key.
type Verifier struct {
	key        any
	algorithms []string
	parser     *jwt.Parser
	leeway     time.Duration
}

// NewVerifier builds a Verifier, refusing a key that is missing, weak or of
// an unsupported type.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	v := &Verifier{}
	switch {
	case len(cfg.HMACSecret) > 0 && len(cfg.PublicKeyPEM) > 0:
		return nil, errors.New("auth: configure an HMAC secret or a public key, not both")
	case len(cfg.HMACSecret) > 0:
		if err := checkHMACSecret(cfg.HMACSecret); err != nil {
			return nil, err
		}
		v.key, v.algorithms = cfg.HMACSecret, hmacAlgorithms
	case len(cfg.PublicKeyPEM) > 0:
		key, algs, err := parsePublicKey(cfg.PublicKeyPEM)
		if err != nil {
			return nil, err
		}
		v.key, v.algorithms = key, algs
	default:
		return nil, errors.New("auth: no key configured")
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	opts := []jwt.ParserOption{
		// Strict base64 refuses a last character with its unused low bits
		// set; checkAlphabet refuses the rest of what lenient decoding
		// skips or allows. Together: one token, one spelling.
		jwt.WithStrictDecoding(),
		jwt.WithLeeway(leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	v.leeway = leeway
	return v, nil
}

// Deadline is when a connection accepted at now on c must end: at exp, or,
// for a token already past exp and accepted within the leeway, at exp plus
// the leeway. The leeway is for clock skew, so a token it admits gets the
// whole of it; ending such a connection at once would only make its client
// reconnect, be admitted, and be cut again until the leeway runs out.
func (v *Verifier) Deadline(c Claims, now time.Time) time.Time {
	if now.After(c.ExpiresAt) {
		return c.ExpiresAt.Add(v.leeway)
	}
	return c.ExpiresAt
}

// Algorithms lists the JWT algorithms this Verifier accepts.
func (v *Verifier) Algorithms() []string { return slices.Clone(v.algorithms) }

// Verify checks the token's algorithm, signature and claims and returns what
// it grants. Errors wrap one of the ErrToken sentinels.
func (v *Verifier) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, ErrTokenMissing
	}
	if len(token) > MaxTokenBytes {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrTokenMalformed, MaxTokenBytes)
	}
	if err := checkAlphabet(token); err != nil {
		return Claims{}, err
	}
	var tc tokenClaims
	_, err := v.parser.ParseWithClaims(token, &tc, v.keyFor)
	if err != nil {
		return Claims{}, classify(err)
	}
	if tc.Subject == "" {
		return Claims{}, fmt.Errorf("%w: sub is required", ErrTokenClaims)
	}
	if err := checkRevocable(tc.Subject, tc.ID); err != nil {
		return Claims{}, err
	}
	exchanges, err := normalizeClaimExchanges(tc.Exchanges)
	if err != nil {
		return Claims{}, err
	}
	c := Claims{Subject: tc.Subject, Exchanges: exchanges, ExpiresAt: tc.ExpiresAt.Time, ID: tc.ID}
	if tc.IssuedAt != nil {
		c.IssuedAt = tc.IssuedAt.Time
	}
	return c, nil
}

// checkAlphabet refuses a token holding any byte but the base64url
// alphabet and the dots between segments. Go's base64 decoding skips CR
// and LF wherever they stand, so without this a signature with a newline
// inside (%0A in ?access_token=) would still verify.
func checkAlphabet(token string) error {
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return fmt.Errorf("%w: byte %d is not base64url (no padding, line breaks or spaces)", ErrTokenMalformed, i)
		}
	}
	return nil
}

// keyFor refuses any algorithm outside the configured family before the
// signature is looked at: alg "none" and HS/RS confusion stop here. So
// does a crit header: it names extensions the token must not be accepted
// without (RFC 7515 section 4.1.11), and this server implements none.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	alg, _ := t.Header["alg"].(string)
	if !slices.Contains(v.algorithms, alg) || t.Method == nil || t.Method.Alg() != alg {
		return nil, fmt.Errorf("%w: %.16q (accepted: %v)", ErrTokenAlgorithm, alg, v.algorithms)
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, fmt.Errorf("%w: the header names critical extensions (crit), and none is supported", ErrTokenMalformed)
	}
	return v.key, nil
}

// classify maps the jwt library's errors onto this package's sentinels.
func classify(err error) error {
	mapped := []struct{ lib, ours error }{
		// Ours, from keyFor and tokenClaims.UnmarshalJSON, come first:
		// the library wraps them in its own.
		{ErrTokenAlgorithm, ErrTokenAlgorithm},
		{ErrTokenClaims, ErrTokenClaims},
		{ErrTokenMalformed, ErrTokenMalformed},
		{jwt.ErrTokenMalformed, ErrTokenMalformed},
		{jwt.ErrTokenSignatureInvalid, ErrTokenSignature},
		{jwt.ErrTokenRequiredClaimMissing, ErrTokenClaims},
		{jwt.ErrTokenExpired, ErrTokenExpired},
		{jwt.ErrTokenNotValidYet, ErrTokenNotYetValid},
		{jwt.ErrTokenUsedBeforeIssued, ErrTokenNotYetValid},
		{jwt.ErrTokenInvalidIssuer, ErrTokenIssuer},
		{jwt.ErrTokenInvalidAudience, ErrTokenAudience},
		{jwt.ErrTokenInvalidClaims, ErrTokenClaims},
		{jwt.ErrInvalidType, ErrTokenClaims},
		{jwt.ErrTokenUnverifiable, ErrTokenAlgorithm}, // unknown alg, or refused by keyFor
	}
	for _, m := range mapped {
		if errors.Is(err, m.lib) {
			if m.lib == m.ours {
				return err
			}
			return fmt.Errorf("%w: %s", m.ours, err.Error())
		}
	}
	return fmt.Errorf("%w: %s", ErrTokenMalformed, err.Error())
}

// normalizeClaimExchanges checks the exchanges claim: each entry a valid
// name or the wildcard. A token naming an invalid exchange is refused
// rather than trimmed, so an issuing mistake shows at once.
func normalizeClaimExchanges(raw []string) ([]string, error) {
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		name, err := protocol.NormalizeExchangeOrWildcard(r)
		if err != nil {
			return nil, fmt.Errorf("%w: exchanges: %w", ErrTokenClaims, err)
		}
		if name == protocol.Wildcard {
			return []string{protocol.Wildcard}, nil
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}
