package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Client message types.
const (
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypePing        = "ping"
	// TypeStats asks for rolling statistics; its exchanges are optional
	// (none: every exchange the token allows), its window too.
	TypeStats = "stats"
	// TypeAuth carries a token: the first message of a connection made
	// without one, or a refresh on an authenticated connection.
	TypeAuth = "auth"
)

// clientTypes lists the client message types, for refusals.
const clientTypes = "auth, subscribe, unsubscribe, stats, history or ping"

// ErrBadRequest wraps every reason a client message is refused before it is
// acted on; the server answers it with an error of code CodeBadRequest.
var ErrBadRequest = errors.New("protocol: bad request")

// ClientMessage is one decoded, validated client frame.
type ClientMessage struct {
	Type string
	// Exchanges holds normalised, de-duplicated names, possibly Wildcard.
	// Empty for TypePing.
	Exchanges []string
	// ID is the client's request id as raw JSON (a string or a number), or
	// nil when the client sent none. It is echoed back verbatim.
	ID json.RawMessage
	// Window is a stats message's window as sent ("" when none was).
	Window string
	// History is a history message's request; nil for other types.
	History *HistoryQuery
	// Token is an auth message's token, not yet verified. It must never
	// be logged.
	Token string
}

type clientWire struct {
	Type      string          `json:"type"`
	Exchanges []string        `json:"exchanges"`
	Window    string          `json:"window"`
	Token     string          `json:"token"`
	ID        json.RawMessage `json:"id"`
}

// DecodeClientMessage parses and validates one client frame; a list of more
// than maxNames exchanges is refused before any name is looked at (see
// NormalizeExchangeList). Errors wrap ErrBadRequest and say what is wrong
// in words fit for the client. When the id itself was readable it is
// returned with the error, so the refusal can still be correlated.
func DecodeClientMessage(data []byte, maxNames int) (ClientMessage, error) {
	var w clientWire
	if err := json.Unmarshal(data, &w); err != nil {
		return ClientMessage{}, fmt.Errorf("%w: not a JSON object with type, exchanges and id: %s", ErrBadRequest, jsonErrorText(err))
	}
	msg := ClientMessage{Type: w.Type}
	if err := checkID(w.ID); err != nil {
		return msg, err
	}
	if !bytes.Equal(w.ID, []byte("null")) {
		msg.ID = w.ID // an explicit null is no id: nothing to echo
	}
	switch w.Type {
	case TypePing:
		return msg, nil
	case TypeAuth:
		if w.Token == "" {
			return msg, fmt.Errorf("%w: an auth message needs \"token\": the JWT", ErrBadRequest)
		}
		msg.Token = w.Token
		return msg, nil
	case TypeStats:
		if len(w.Window) > 8 {
			return msg, fmt.Errorf("%w: unknown window %.8q... (want 1m, 5m, 1h or 24h)", ErrBadRequest, w.Window)
		}
		msg.Window = w.Window
		if len(w.Exchanges) == 0 {
			return msg, nil // every exchange the token allows
		}
	case TypeHistory:
		q, err := decodeHistory(data)
		msg.History = q
		return msg, err
	case TypeSubscribe, TypeUnsubscribe:
	case "":
		return msg, fmt.Errorf("%w: missing \"type\" (want %s)", ErrBadRequest, clientTypes)
	default:
		return msg, fmt.Errorf("%w: unknown type %.32q (want %s)", ErrBadRequest, w.Type, clientTypes)
	}
	names, err := NormalizeExchangeList(w.Exchanges, maxNames)
	if err != nil {
		return msg, err
	}
	msg.Exchanges = names
	return msg, nil
}

// NormalizeExchangeList normalises a list of names as a subscribe message
// does: each name valid or Wildcard, duplicates dropped, order kept, at
// least one name and at most maxNames (counted before duplicates are
// dropped, so a long list costs nothing: no client can hold more names
// than its subscription limit, plus the wildcard, anyway). It runs in time
// linear in the list. Errors wrap ErrBadRequest.
func NormalizeExchangeList(raw []string, maxNames int) ([]string, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: \"exchanges\" must be a non-empty array of names", ErrBadRequest)
	}
	if len(raw) > maxNames {
		return nil, fmt.Errorf("%w: \"exchanges\" lists more than %d names (the subscription limit, plus \"*\")", ErrBadRequest, maxNames)
	}
	names := make([]string, 0, len(raw))
	var seen map[string]struct{}
	if len(raw) > 1 {
		seen = make(map[string]struct{}, len(raw))
	}
	for _, r := range raw {
		name, err := NormalizeExchangeOrWildcard(r)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		if _, dup := seen[name]; dup {
			continue
		}
		if seen != nil {
			seen[name] = struct{}{}
		}
		names = append(names, name)
	}
	return names, nil
}

func checkID(id json.RawMessage) error {
	if len(id) == 0 || bytes.Equal(id, []byte("null")) {
		return nil
	}
	if len(id) > MaxIDBytes {
		return fmt.Errorf("%w: \"id\" longer than %d bytes", ErrBadRequest, MaxIDBytes)
	}
	switch c := id[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return nil
	}
	return fmt.Errorf("%w: \"id\" must be a string or a number", ErrBadRequest)
}

// jsonErrorText keeps decoder errors short and free of the client's bytes.
func jsonErrorText(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q has the wrong type", typ.Field)
		}
		return "want a JSON object"
	}
	return "invalid JSON"
}
