package auth

import (
	"time"

	"github.com/pongcast/pongcast/protocol"
)

// Claims is what a verified token grants.
type Claims struct {
	// Subject is the token's sub: who holds it.
	Subject string
	// Exchanges holds the normalised names the holder may subscribe to, or
	// just protocol.Wildcard for all of them. Empty means none.
	Exchanges []string
	// ExpiresAt is the token's exp; a connection must not outlive it.
	ExpiresAt time.Time
	// IssuedAt is the token's iat; zero when the token has none.
	IssuedAt time.Time
	// ID is the token's jti, as decoded (so however the token's JSON
	// spells it); empty when the token has none.
	ID string
}

// AllowsAll reports whether the token allows every exchange.
func (c Claims) AllowsAll() bool {
	for _, e := range c.Exchanges {
		if e == protocol.Wildcard {
			return true
		}
	}
	return false
}

// Allows reports whether the token allows subscribing to exchange, a
// normalised name.
func (c Claims) Allows(exchange string) bool {
	for _, e := range c.Exchanges {
		if e == exchange || e == protocol.Wildcard {
			return true
		}
	}
	return false
}
