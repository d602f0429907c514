package auth

import (
	"fmt"
	"net/http"
	"strings"
)

// QueryParam is the URL query parameter browsers use to pass a token,
// since they cannot set headers on a WebSocket handshake.
const QueryParam = "access_token"

// TokenFromRequest returns the bearer token of r: the Authorization header
// when present, else the access_token query parameter. A header that is
// present but not a Bearer credential is an error, not a fall-through.
func TokenFromRequest(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", fmt.Errorf("%w: Authorization header is not a Bearer credential", ErrTokenMalformed)
		}
		token = strings.TrimSpace(token)
		if token == "" {
			return "", ErrTokenMissing
		}
		return token, nil
	}
	if token := r.URL.Query().Get(QueryParam); token != "" {
		return token, nil
	}
	return "", ErrTokenMissing
}
