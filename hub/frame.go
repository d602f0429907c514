package hub

import "time"

// frame is one encoded server message. A pong's frame is built once and the
// same pointer is queued to every subscriber; nobody mutates it after.
type frame struct {
	data []byte
	// received is when the pong arrived from Redis, for the delivery
	// latency histogram; zero for replies to the client.
	received time.Time
}

func replyFrame(data []byte) *frame { return &frame{data: data} }
