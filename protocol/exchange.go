package protocol

import (
	"errors"
	"fmt"
)

// Wildcard, in a subscribe or unsubscribe message or in a token's exchanges
// claim, stands for every exchange (the token allows), present and future.
const Wildcard = "*"

// ErrInvalidExchange reports a name outside ^[a-z0-9][a-z0-9_.-]{0,63}$
// after lower-casing.
var ErrInvalidExchange = errors.New("protocol: invalid exchange name")

// NormalizeExchange lower-cases name and checks it against the exchange-name
// rule. It returns the canonical name, or an error wrapping
// ErrInvalidExchange. It allocates only when name has upper-case letters.
func NormalizeExchange(name string) (string, error) {
	if len(name) == 0 || len(name) > MaxExchangeNameLen {
		return "", invalidExchange(name)
	}
	upper := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c >= 'A' && c <= 'Z':
			upper = true
		case (c == '_' || c == '.' || c == '-') && i > 0:
		default:
			return "", invalidExchange(name)
		}
	}
	if !upper {
		return name, nil
	}
	b := []byte(name)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b), nil
}

// NormalizeExchangeOrWildcard is NormalizeExchange that also accepts
// Wildcard.
func NormalizeExchangeOrWildcard(name string) (string, error) {
	if name == Wildcard {
		return Wildcard, nil
	}
	return NormalizeExchange(name)
}

func invalidExchange(name string) error {
	const show = MaxExchangeNameLen + 8
	if len(name) > show {
		name = name[:show] + "..."
	}
	return fmt.Errorf("%w %q: want 1-64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit", ErrInvalidExchange, name)
}
