package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Signer issues pongcast tokens. It backs `pongctl token issue` and the
// dev-mode token.
type Signer struct {
	method jwt.SigningMethod
	key    any
}

// NewHMACSigner signs with secret; alg is HS256, HS384 or HS512 (empty
// means HS256).
func NewHMACSigner(secret []byte, alg string) (*Signer, error) {
	if alg == "" {
		alg = "HS256"
	}
	if !slices.Contains(hmacAlgorithms, alg) {
		return nil, fmt.Errorf("auth: %q is not an HMAC algorithm (want one of %v)", alg, hmacAlgorithms)
	}
	if err := checkHMACSecret(secret); err != nil {
		return nil, err
	}
	return &Signer{method: jwt.GetSigningMethod(alg), key: secret}, nil
}

// NewKeySigner signs with a PEM private key (PKCS#8, PKCS#1 or SEC 1),
// using RS256, ES256/384/512 or EdDSA as the key's type dictates.
func NewKeySigner(privatePEM []byte) (*Signer, error) {
	key, alg, err := parsePrivateKey(privatePEM)
	if err != nil {
		return nil, err
	}
	return &Signer{method: jwt.GetSigningMethod(alg), key: key}, nil
}

// Algorithm is the JWT alg this Signer writes.
func (s *Signer) Algorithm() string { return s.method.Alg() }

// TokenSpec describes a token to issue.
type TokenSpec struct {
	Subject   string
	Exchanges []string // names or "*"; normalised on issue
	TTL       time.Duration
	Issuer    string // optional
	Audience  string // optional
	// Now is the issue time. If zero, time.Now() is used.
	Now time.Time
	// ID is the token's jti, what `pongctl token revoke --jti` names. If
	// empty, a random one (128 bits from crypto/rand) is used.
	ID string
}

// Issue signs a token for spec. Subject and a positive TTL are required,
// and every exchange must be a valid name or "*".
func (s *Signer) Issue(spec TokenSpec) (string, error) {
	if spec.Subject == "" {
		return "", errors.New("auth: a subject is required")
	}
	if spec.TTL <= 0 {
		return "", fmt.Errorf("auth: ttl must be > 0, got %s", spec.TTL)
	}
	if err := checkRevocable(spec.Subject, spec.ID); err != nil {
		return "", err
	}
	exchanges, err := normalizeClaimExchanges(spec.Exchanges)
	if err != nil {
		return "", err
	}
	now := spec.Now
	if now.IsZero() {
		now = time.Now()
	}
	id := spec.ID
	if id == "" {
		id = NewTokenID()
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        id,
			Subject:   spec.Subject,
			Issuer:    spec.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(spec.TTL)),
		},
		Exchanges: exchanges,
	}
	if spec.Audience != "" {
		claims.Audience = jwt.ClaimStrings{spec.Audience}
	}
	token, err := jwt.NewWithClaims(s.method, claims).SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return token, nil
}

// NewTokenID returns a random jti: 128 bits from crypto/rand, in hex, so
// that no two issued tokens share one and none can be guessed.
func NewTokenID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand.Read's own promise)
	return hex.EncodeToString(b[:])
}
