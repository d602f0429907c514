package wsconn

import (
	"time"

	"github.com/pongcast/pongcast/protocol/wsframe"
)

// Frame is one encoded server message, WebSocket header included. A
// pong's frame is built once and the same pointer goes to every
// subscriber; nobody changes it after.
type Frame struct {
	Wire []byte // header and payload, ready for the socket
	// Received is when the pong arrived, for the delivery latency; zero
	// for replies, which are not counted as deliveries.
	Received time.Time
	// Conflate is what a newer frame of the same key supersedes in the
	// queue of a conflating Conn (Config.Conflate). The zero key, that of
	// replies, never conflates.
	Conflate ConflateKey
}

// ConflateKey names the frames a newer one makes pointless to send: of
// those waiting in a full queue with the same key, only the newest goes
// out. A key whose Kind is zero (the zero key among them) never
// conflates: such frames are neither dropped nor reordered.
type ConflateKey struct {
	Exchange string
	Kind     ConflateKind
}

// ConflateKind is what a frame says about its exchange: the newest frame
// of a kind says all the older ones did.
type ConflateKind uint8

const (
	// ConflatePong is an exchange:pong envelope, live or snapshot: only
	// the newest pong of an exchange is kept.
	ConflatePong ConflateKind = 1 + iota
	// ConflateStatus is an exchange:status message: only the newest
	// status of an exchange is kept. A kind of its own, so that a pong
	// never supersedes a status change, nor a status a pong.
	ConflateStatus
)

// TextFrame frames payload as one final, unmasked text frame.
func TextFrame(payload []byte) *Frame {
	wire := make([]byte, 0, wsframe.HeaderLen(len(payload))+len(payload))
	return &Frame{Wire: append(AppendTextHeader(wire, len(payload)), payload...)}
}

// AppendTextHeader appends the header of a final, unmasked text frame of
// n bytes, for a payload the caller appends itself.
func AppendTextHeader(dst []byte, n int) []byte {
	return wsframe.AppendHeader(dst, wsframe.Header{Fin: true, Opcode: wsframe.OpText, Length: int64(n)})
}

// closeFrame is the whole close frame for code and reason.
func closeFrame(code int, reason string) []byte {
	var payload [wsframe.MaxControlPayload]byte
	p := wsframe.AppendClosePayload(payload[:0], code, reason)
	return wsframe.AppendFrame(make([]byte, 0, 2+len(p)), wsframe.OpClose, p, nil)
}

// pingFrame is a ping with no payload, shared by every connection.
var pingFrame = wsframe.AppendFrame(nil, wsframe.OpPing, nil, nil)
