package hubtest

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/pongcast/pongcast/protocol/wsframe"
)

// ServerFrame is one frame read from the server by ReadServerFrame.
type ServerFrame struct {
	Opcode  wsframe.Opcode
	Payload []byte
}

// ReadServerFrame reads one frame from r and checks it as RFC 6455 and
// pongcast promise a server frame to be: a valid header, no reserved
// bits, unmasked, final (pongcast never fragments), a text frame's
// payload one whole JSON value, a close payload well formed.
func ReadServerFrame(r io.Reader) (ServerFrame, error) {
	h, err := wsframe.Read(r)
	if err != nil {
		return ServerFrame{}, fmt.Errorf("frame header: %w", err)
	}
	if h.Masked {
		return ServerFrame{}, fmt.Errorf("server frame is masked: %+v", h)
	}
	if !h.Fin {
		return ServerFrame{}, fmt.Errorf("server frame is fragmented: %+v", h)
	}
	if h.Length > 1<<24 {
		return ServerFrame{}, fmt.Errorf("server frame of %d bytes", h.Length)
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(r, payload); err != nil {
		return ServerFrame{}, fmt.Errorf("frame payload: %w", err)
	}
	switch h.Opcode {
	case wsframe.OpText:
		if !json.Valid(payload) {
			return ServerFrame{}, fmt.Errorf("text frame is not one JSON value: %q", Truncate(payload))
		}
	case wsframe.OpClose:
		if _, _, err := wsframe.ParseClosePayload(payload); err != nil {
			return ServerFrame{}, fmt.Errorf("close frame % x: %w", payload, err)
		}
	case wsframe.OpPing, wsframe.OpPong:
	default:
		return ServerFrame{}, fmt.Errorf("unexpected opcode %#x from the server", byte(h.Opcode))
	}
	return ServerFrame{Opcode: h.Opcode, Payload: payload}, nil
}

// Truncate shortens b for an error message: its start and its end.
func Truncate(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:100:100], append([]byte(" ... "), b[len(b)-100:]...)...)
	}
	return b
}
