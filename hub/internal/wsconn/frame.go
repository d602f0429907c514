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
}

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
