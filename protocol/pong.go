package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Reasons a pong from Redis is rejected; they label the rejection metric.
const (
	RejectTooLarge     = "too_large"
	RejectInvalidUTF8  = "invalid_utf8"
	RejectNotJSON      = "not_json"
	RejectNotObject    = "not_object"
	RejectBadExchange  = "bad_exchange"
	RejectBadLatency   = "bad_latency"
	RejectBadTimestamp = "bad_timestamp"
	RejectBadStatus    = "bad_status"
)

// RejectReasons lists every rejection reason, for pre-declaring metrics.
var RejectReasons = []string{
	RejectTooLarge, RejectInvalidUTF8, RejectNotJSON, RejectNotObject,
	RejectBadExchange, RejectBadLatency, RejectBadTimestamp, RejectBadStatus,
}

// Pong statuses a connector may report.
const (
	StatusConnected    = "connected"
	StatusDisconnected = "disconnected"
	StatusError        = "error"
)

// PongError says why a published pong was rejected.
type PongError struct {
	Reason string // one of the Reject constants
	Detail string
}

func (e *PongError) Error() string {
	return "protocol: pong rejected (" + e.Reason + "): " + e.Detail
}

// Pong is a validated pong ready to be wrapped in an envelope.
type Pong struct {
	// Exchange is the normalised exchange name.
	Exchange string
	// Data is the published object, surrounding white space trimmed,
	// otherwise exactly as received. It aliases the input.
	Data []byte
	// Status is the pong's status field ("" when it has none), and
	// Latency its latency in ms when HasLatency: what exchange health is
	// judged by.
	Status     string
	Latency    float64
	HasLatency bool
}

// ParsePong validates a payload published to the pong channel. maxBytes is
// the cap on the envelope the pong will be sent in (a pong too large to be
// wrapped under the cap is rejected). Errors are *PongError.
func ParsePong(raw []byte, maxBytes int) (Pong, error) {
	data := bytes.TrimSpace(raw)
	// Refuse the plainly oversized before parsing anything.
	if len(data) > maxBytes {
		return Pong{}, tooLarge(len(raw), maxBytes)
	}
	if !utf8.Valid(data) {
		// Browsers drop a WebSocket whose text frame is not UTF-8: such a
		// pong must never reach a client.
		return Pong{}, &PongError{RejectInvalidUTF8, "payload is not valid UTF-8"}
	}
	if len(data) == 0 || data[0] != '{' {
		if json.Valid(data) {
			return Pong{}, &PongError{RejectNotObject, "payload is JSON but not an object"}
		}
		return Pong{}, &PongError{RejectNotJSON, "payload is not JSON"}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return Pong{}, &PongError{RejectNotJSON, jsonErrorText(err)}
	}
	exchange, err := pongExchange(fields["exchange"])
	if err != nil {
		return Pong{}, err
	}
	pong := Pong{Exchange: exchange, Data: data}
	if v, ok := fields["latency"]; ok {
		f, ok := jsonNumber(v)
		if !ok || f < 0 || math.IsInf(f, 0) {
			return Pong{}, &PongError{RejectBadLatency, "latency must be a finite number >= 0"}
		}
		pong.Latency, pong.HasLatency = f, true
	}
	if v, ok := fields["timestamp"]; ok {
		if _, ok := jsonNumber(v); !ok {
			return Pong{}, &PongError{RejectBadTimestamp, "timestamp must be a number"}
		}
	}
	if v, ok := fields["status"]; ok {
		var s string
		if json.Unmarshal(v, &s) != nil || (s != StatusConnected && s != StatusDisconnected && s != StatusError) {
			return Pong{}, &PongError{RejectBadStatus, "status must be connected, disconnected or error"}
		}
		pong.Status = s
	}
	// The widest timestamp keeps the answer independent of the clock, and
	// the snapshot's mark must fit too.
	if EnvelopeLen(exchange, data, math.MinInt64)+len(snapshotMark) > maxBytes {
		return Pong{}, tooLarge(len(raw), maxBytes)
	}
	return pong, nil
}

func tooLarge(n, maxBytes int) error {
	return &PongError{RejectTooLarge, fmt.Sprintf("%d bytes: its envelope would pass the %d-byte cap", n, maxBytes)}
}

func pongExchange(v json.RawMessage) (string, error) {
	if v == nil {
		return "", &PongError{RejectBadExchange, "missing exchange"}
	}
	var name string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &name) != nil {
		return "", &PongError{RejectBadExchange, "exchange must be a string"}
	}
	norm, err := NormalizeExchange(name)
	if err != nil {
		return "", &PongError{RejectBadExchange, err.Error()}
	}
	return norm, nil
}

// jsonNumber reports the value of v when v is a JSON number (not null, not
// a string). Numbers beyond float64's range count as not numbers.
func jsonNumber(v json.RawMessage) (float64, bool) {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return 0, false
	}
	return f, true
}
