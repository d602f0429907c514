package protocol

import (
	"encoding/json"
	"strconv"
)

// Server message types.
const (
	TypeSubscribed     = "subscribed"
	TypeUnsubscribed   = "unsubscribed"
	TypePong           = "pong"
	TypeError          = "error"
	TypeExchangePong   = "exchange:pong"
	TypeExchangeStatus = "exchange:status"
	// TypeAuthenticated answers an auth message that was accepted.
	TypeAuthenticated = "authenticated"
	// TypeTokenExpiring warns that the token ends soon: refresh it.
	TypeTokenExpiring = "token_expiring"
	// TypeStats (in client.go) is also the type of the reply.
)

// Error codes carried by an error message.
const (
	CodeBadRequest   = "bad_request"
	CodeForbidden    = "forbidden"
	CodeRateLimited  = "rate_limited"
	CodeTokenExpired = "token_expired"
	CodeInternal     = "internal"
	// CodeUnauthorized: no token came, or the one that came is not valid.
	CodeUnauthorized = "unauthorized"
	// CodeTokenRevoked: the token was revoked (pongctl token revoke).
	CodeTokenRevoked = "token_revoked"
)

// Error codes only HTTP refusals carry (the "error" field of the JSON
// body), next to the ones above that HTTP endpoints use too.
const (
	// CodeNotFound: the exchange asked for has no statistics or history.
	CodeNotFound = "not_found"
	// CodeTooManyUnauthenticated: a token-less handshake refused, as
	// too many connections (from its address: 429; in all: 503) are
	// waiting for their auth message.
	CodeTooManyUnauthenticated = "too_many_unauthenticated"
)

// ReasonToken is the reason of an unsubscribed message the server sends
// by itself, after a refresh whose token no longer allows some of the set.
const ReasonToken = "token"

type authenticatedReply struct {
	Type      string          `json:"type"`
	Sub       string          `json:"sub"`
	Exp       int64           `json:"exp"`
	Exchanges []string        `json:"exchanges"`
	ID        json.RawMessage `json:"id,omitempty"`
}

type tokenExpiring struct {
	Type string `json:"type"`
	Exp  int64  `json:"exp"`
}

type droppedReply struct {
	Type      string   `json:"type"`
	Exchanges []string `json:"exchanges"`
	Reason    string   `json:"reason"`
}

// EncodeAuthenticated encodes the reply to an accepted auth message: who
// the token is for, its exp in Unix ms, and the exchanges it allows.
func EncodeAuthenticated(sub string, expMs int64, exchanges []string, id json.RawMessage) []byte {
	if exchanges == nil {
		exchanges = []string{}
	}
	return mustMarshal(authenticatedReply{Type: TypeAuthenticated, Sub: sub, Exp: expMs, Exchanges: exchanges, ID: id})
}

// EncodeTokenExpiring encodes the warning that the token ends at expMs.
func EncodeTokenExpiring(expMs int64) []byte {
	return mustMarshal(tokenExpiring{Type: TypeTokenExpiring, Exp: expMs})
}

// EncodeDropped encodes the unsubscribed message the server sends by
// itself when it drops subscriptions (reason ReasonToken), with the
// whole set now.
func EncodeDropped(exchanges []string, reason string) []byte {
	if exchanges == nil {
		exchanges = []string{}
	}
	return mustMarshal(droppedReply{Type: TypeUnsubscribed, Exchanges: exchanges, Reason: reason})
}

type subscriptionReply struct {
	Type      string          `json:"type"`
	Exchanges []string        `json:"exchanges"`
	Unseen    []string        `json:"unseen,omitempty"`
	ID        json.RawMessage `json:"id,omitempty"`
}

type statusMessage struct {
	Type     string `json:"type"`
	Exchange string `json:"exchange"`
	Status   string `json:"status"`
	Previous string `json:"previous,omitempty"`
	Since    int64  `json:"since"`
	Reason   string `json:"reason"`
}

type statsReply struct {
	Type      string                     `json:"type"`
	Window    string                     `json:"window"`
	Exchanges map[string]json.RawMessage `json:"exchanges"`
	More      bool                       `json:"more,omitempty"`
	ID        json.RawMessage            `json:"id,omitempty"`
}

type pongReply struct {
	Type      string          `json:"type"`
	Timestamp int64           `json:"timestamp"`
	ID        json.RawMessage `json:"id,omitempty"`
}

type errorReply struct {
	Type    string          `json:"type"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	ID      json.RawMessage `json:"id,omitempty"`
}

// EncodeSubscriptions encodes a subscribed or unsubscribed reply (typ is
// TypeSubscribed or TypeUnsubscribed) carrying the whole subscription set,
// and the named exchanges of it no pong has been seen for (left out when
// empty).
func EncodeSubscriptions(typ string, exchanges, unseen []string, id json.RawMessage) []byte {
	if exchanges == nil {
		exchanges = []string{}
	}
	return mustMarshal(subscriptionReply{Type: typ, Exchanges: exchanges, Unseen: unseen, ID: id})
}

// EncodeStatus encodes an exchange:status message: the exchange's status
// now, the one before it (left out when there was none), since when, in
// Unix ms, and why.
func EncodeStatus(exchange, status, previous string, sinceMs int64, reason string) []byte {
	return mustMarshal(statusMessage{Type: TypeExchangeStatus, Exchange: exchange, Status: status,
		Previous: previous, Since: sinceMs, Reason: reason})
}

// EncodeStats encodes the reply to a stats message: each exchange's
// statistics (already JSON) over window; more says that some were left
// out to keep the reply within the message cap.
func EncodeStats(window string, exchanges map[string]json.RawMessage, more bool, id json.RawMessage) []byte {
	if exchanges == nil {
		exchanges = map[string]json.RawMessage{}
	}
	return mustMarshal(statsReply{Type: TypeStats, Window: window, Exchanges: exchanges, More: more, ID: id})
}

// EncodePong encodes the reply to a client ping; timestampMs is server time
// in Unix milliseconds.
func EncodePong(timestampMs int64, id json.RawMessage) []byte {
	return mustMarshal(pongReply{Type: TypePong, Timestamp: timestampMs, ID: id})
}

// EncodeError encodes an error message. message is for humans; code is one
// of the Code constants.
func EncodeError(code, message string, id json.RawMessage) []byte {
	return mustMarshal(errorReply{Type: TypeError, Code: code, Message: message, ID: id})
}

// AppendEnvelope appends the pong envelope for one validated pong to dst:
// data is embedded byte for byte, exchange must already be normalised (it
// needs no escaping), timestampMs is the server's receive time.
func AppendEnvelope(dst []byte, exchange string, data []byte, timestampMs int64) []byte {
	dst = append(dst, `{"type":"exchange:pong","exchange":"`...)
	dst = append(dst, exchange...)
	dst = append(dst, `","data":`...)
	dst = append(dst, data...)
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, timestampMs, 10)
	dst = append(dst, `,"source":"exchange"}`...)
	return dst
}

// snapshotMark is what makes an envelope a snapshot: the last value known,
// sent on subscribe, its timestamp when it was first received.
const snapshotMark = `,"snapshot":true`

// AppendSnapshot appends the snapshot form of an envelope (as
// AppendEnvelope made it) to dst: the same, with "snapshot":true.
func AppendSnapshot(dst, envelope []byte) []byte {
	if len(envelope) == 0 || envelope[len(envelope)-1] != '}' {
		return append(dst, envelope...) // not an envelope: no place for the mark
	}
	dst = append(dst, envelope[:len(envelope)-1]...)
	dst = append(dst, snapshotMark...)
	return append(dst, '}')
}

// SnapshotLen is the length AppendSnapshot adds for an envelope of n bytes.
func SnapshotLen(n int) int { return n + len(snapshotMark) }

// EnvelopeLen is the length AppendEnvelope adds for these arguments.
func EnvelopeLen(exchange string, data []byte, timestampMs int64) int {
	const fixed = len(`{"type":"exchange:pong","exchange":"","data":,"timestamp":,"source":"exchange"}`)
	var digits [20]byte
	return fixed + len(exchange) + len(data) + len(strconv.AppendInt(digits[:0], timestampMs, 10))
}

// encodeFailed stands in for a reply that could not be encoded. The reply
// structs above cannot fail to marshal (ids are checked JSON on the way in),
// but a server must answer something rather than panic.
var encodeFailed = []byte(`{"type":"error","code":"internal","message":"reply could not be encoded"}`)

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return encodeFailed
	}
	return b
}
