package hub

import "time"

// frame is one encoded server message, WebSocket framing included. A
// pong's frame is built once and the same pointer is queued to every
// subscriber; nobody mutates it after.
type frame struct {
	wire []byte // header and payload, ready for the socket
	// received is when the pong arrived from Redis, for the delivery
	// latency histogram; zero for replies to the client.
	received time.Time
}

func replyFrame(payload []byte) *frame { return &frame{wire: textFrame(payload)} }
