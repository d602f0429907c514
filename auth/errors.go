package auth

import "errors"

// Errors returned by Verify and TokenFromRequest. Each wraps enough to tell
// an operator what was wrong, never the token itself.
var (
	ErrTokenMissing     = errors.New("auth: no token: send Authorization: Bearer <jwt> or ?access_token=<jwt>")
	ErrTokenMalformed   = errors.New("auth: token malformed")
	ErrTokenAlgorithm   = errors.New("auth: token algorithm not accepted")
	ErrTokenSignature   = errors.New("auth: token signature invalid")
	ErrTokenExpired     = errors.New("auth: token expired")
	ErrTokenNotYetValid = errors.New("auth: token not valid yet")
	ErrTokenIssuer      = errors.New("auth: token issuer not accepted")
	ErrTokenAudience    = errors.New("auth: token audience not accepted")
	ErrTokenClaims      = errors.New("auth: token claims invalid")
	// ErrTokenRevoked is not returned by Verify, which knows no
	// revocations: the server wraps it for a token revoked by pongctl.
	ErrTokenRevoked = errors.New("auth: token revoked")
)

// Reason names the class of a verification error in a few lower-case
// words, for metric labels and wire error codes.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTokenMissing):
		return "missing"
	case errors.Is(err, ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, ErrTokenAlgorithm):
		return "algorithm"
	case errors.Is(err, ErrTokenSignature):
		return "signature"
	case errors.Is(err, ErrTokenExpired):
		return "expired"
	case errors.Is(err, ErrTokenNotYetValid):
		return "not_yet_valid"
	case errors.Is(err, ErrTokenIssuer):
		return "issuer"
	case errors.Is(err, ErrTokenAudience):
		return "audience"
	case errors.Is(err, ErrTokenClaims):
		return "claims"
	case errors.Is(err, ErrTokenRevoked):
		return "revoked"
	}
	return "invalid"
}

// Reasons lists every value Reason returns for an error, for pre-declaring
// metric labels.
var Reasons = []string{"missing", "malformed", "algorithm", "signature", "expired",
	"not_yet_valid", "issuer", "audience", "claims", "revoked", "invalid"}
