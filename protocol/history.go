package protocol

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// TypeHistory asks for the stored pongs of one exchange; the reply has
// the same type.
const TypeHistory = "history"

// CodeUnavailable is the error code of a request the server cannot serve
// now for want of a part it depends on (Redis down, history off); the
// message says which and whether retrying can help.
const CodeUnavailable = "unavailable"

// History request limits.
const (
	// DefaultHistoryLimit is the pongs a history request gets when it
	// names no limit.
	DefaultHistoryLimit = 100
	// MaxHistoryLimit is the most pongs one history request may ask for.
	MaxHistoryLimit = 1000
	// MaxHistoryMs bounds since and until: 15 decimal digits, as stored.
	MaxHistoryMs = 999_999_999_999_999
	// NoUntil is HistoryQuery.Until when the request gave none.
	NoUntil = math.MaxInt64
	// MaxCursorLen is the longest cursor: 15 digits of ms, a '-', 20 of
	// sequence.
	MaxCursorLen = 36
)

// HistoryQuery is one validated history request (a message's or an HTTP
// query's).
type HistoryQuery struct {
	// Exchange is the normalised name; never Wildcard.
	Exchange string
	// Since and Until bound the pongs by server receive time, Unix ms,
	// both inclusive; Until is NoUntil when none was given.
	Since, Until int64
	// Limit is the most pongs to return, 1 to MaxHistoryLimit.
	Limit int
	// After, when not empty, is the cursor of a reply: only pongs after
	// that one (exclusive) are wanted, in place of Since.
	After Cursor
}

// Cursor is the position of one pong in an exchange's history, as a
// history reply gives it for its last pong: "<ms>-<seq>", the stream
// entry's time and its sequence within that ms.
type Cursor struct {
	Ms, Seq uint64
	Set     bool
}

// String is the cursor as the wire carries it; "" when not set.
func (c Cursor) String() string {
	if !c.Set {
		return ""
	}
	return strconv.FormatUint(c.Ms, 10) + "-" + strconv.FormatUint(c.Seq, 10)
}

// ParseCursor reads "<ms>-<seq>" (ms at most 15 digits, seq a uint64).
func ParseCursor(s string) (Cursor, error) {
	ms, seq, ok := strings.Cut(s, "-")
	m, err1 := strconv.ParseUint(ms, 10, 64)
	q, err2 := strconv.ParseUint(seq, 10, 64)
	if !ok || err1 != nil || err2 != nil || m > MaxHistoryMs {
		return Cursor{}, fmt.Errorf("%w: \"after\" must be the cursor of a history reply, like \"1765738899920-0\"", ErrBadRequest)
	}
	return Cursor{Ms: m, Seq: q, Set: true}, nil
}

// historyWire is the fields of a history message beyond clientWire's.
type historyWire struct {
	Exchange *string `json:"exchange"`
	Since    *int64  `json:"since"`
	Until    *int64  `json:"until"`
	Limit    *int64  `json:"limit"`
	After    *string `json:"after"`
}

// decodeHistory reads the fields of a history message.
func decodeHistory(data []byte) (*HistoryQuery, error) {
	var w historyWire
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadRequest, jsonErrorText(err))
	}
	exchange := ""
	if w.Exchange != nil {
		exchange = *w.Exchange
	}
	if w.After != nil && *w.After == "" {
		w.After = nil // no cursor yet: the first page, as over HTTP
	}
	q, err := NewHistoryQuery(exchange, w.Since, w.Until, w.Limit, w.After)
	if err != nil {
		return nil, err
	}
	return &q, nil
}

// NewHistoryQuery validates the parts of a history request; a nil part
// was not given. Errors wrap ErrBadRequest.
func NewHistoryQuery(exchange string, since, until, limit *int64, after *string) (HistoryQuery, error) {
	if exchange == "" {
		return HistoryQuery{}, fmt.Errorf("%w: \"exchange\" must name one exchange", ErrBadRequest)
	}
	name, err := NormalizeExchange(exchange)
	if err != nil {
		return HistoryQuery{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	q := HistoryQuery{Exchange: name, Until: NoUntil, Limit: DefaultHistoryLimit}
	for _, b := range []struct {
		name string
		v    *int64
		dst  *int64
	}{{"since", since, &q.Since}, {"until", until, &q.Until}} {
		if b.v == nil {
			continue
		}
		if *b.v < 0 || *b.v > MaxHistoryMs {
			return HistoryQuery{}, fmt.Errorf("%w: %q must be a time in Unix ms, 0 to %d", ErrBadRequest, b.name, int64(MaxHistoryMs))
		}
		*b.dst = *b.v
	}
	if q.Since > q.Until {
		return HistoryQuery{}, fmt.Errorf("%w: \"since\" (%d) is after \"until\" (%d)", ErrBadRequest, q.Since, q.Until)
	}
	if limit != nil {
		if *limit < 1 || *limit > MaxHistoryLimit {
			return HistoryQuery{}, fmt.Errorf("%w: \"limit\" must be 1 to %d", ErrBadRequest, MaxHistoryLimit)
		}
		q.Limit = int(*limit)
	}
	if after != nil {
		if since != nil {
			return HistoryQuery{}, fmt.Errorf("%w: give \"since\" or \"after\", not both", ErrBadRequest)
		}
		if q.After, err = ParseCursor(*after); err != nil {
			return HistoryQuery{}, err
		}
	}
	return q, nil
}

// historyFixed is what a history reply holds beside its exchange, its
// pongs (and the commas between them), its cursor and its id.
const historyFixed = len(`{"type":"history","exchange":"","pongs":[],"more":false,"cursor":"","id":}`)

// HistoryOverhead is the most a history reply for exchange with id adds
// to its pongs and the commas between them: a reply is within a cap when
// the pongs and commas are within cap minus this.
func HistoryOverhead(exchange string, id json.RawMessage) int {
	return historyFixed + len(exchange) + MaxCursorLen + len(id)
}

// EncodeHistory encodes the reply to a history message: the pongs (each
// an envelope, embedded byte for byte), whether more follow, and the
// cursor where the reply stopped (left out when not set).
func EncodeHistory(exchange string, pongs [][]byte, more bool, cursor Cursor, id json.RawMessage) []byte {
	return AppendHistory(nil, true, exchange, pongs, more, cursor, id)
}

// AppendHistory appends a history reply to dst: with its "type" for the
// wire, or without (withType false, and no id) for the HTTP body.
// exchange is normalised (it needs no escaping); id is checked JSON.
func AppendHistory(dst []byte, withType bool, exchange string, pongs [][]byte, more bool, cursor Cursor, id json.RawMessage) []byte {
	n := historyFixed + len(exchange) + MaxCursorLen + len(id)
	for _, p := range pongs {
		n += len(p) + 1
	}
	dst = growBytes(dst, n)
	if withType {
		dst = append(dst, `{"type":"history","exchange":"`...)
	} else {
		dst = append(dst, `{"exchange":"`...)
	}
	dst = append(dst, exchange...)
	dst = append(dst, `","pongs":[`...)
	for i, p := range pongs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, p...)
	}
	dst = append(dst, `],"more":`...)
	dst = strconv.AppendBool(dst, more)
	if cursor.Set {
		dst = append(dst, `,"cursor":"`...)
		dst = append(dst, cursor.String()...)
		dst = append(dst, '"')
	}
	if len(id) > 0 {
		dst = append(dst, `,"id":`...)
		dst = append(dst, id...)
	}
	return append(dst, '}')
}

// growBytes makes room for n more bytes in b.
func growBytes(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

// EnvelopeDataOffset is where the data begins in an envelope of exchange
// that AppendEnvelope made: what history hashes to know a pong again.
func EnvelopeDataOffset(exchange string) int {
	return len(`{"type":"exchange:pong","exchange":"","data":`) + len(exchange)
}
