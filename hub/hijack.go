package hub

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Buffer sizes for a hijacked connection. net/http hands over its 4 KiB
// reader and a fresh 4 KiB writer, which the WebSocket library keeps for
// the life of the connection: 8 KiB per idle client. Client messages are
// small and rare, and a pong frame is a few hundred bytes, so smaller
// buffers cost nothing in practice; a larger message is still read or
// written whole, in more than one system call.
const (
	hijackReadBuffer  = 512
	hijackWriteBuffer = 1024
)

// smallBufferWriter is the ResponseWriter given to the WebSocket library:
// its Hijack returns the connection with small buffers instead of
// net/http's.
type smallBufferWriter struct {
	http.ResponseWriter
}

func (w smallBufferWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	n := brw.Reader.Buffered()
	if n > hijackReadBuffer {
		return conn, brw, nil // bytes already sent by the client must not be lost
	}
	// Carry over what the client sent after its handshake, in the new
	// buffer, where the library looks for it.
	pending, _ := brw.Reader.Peek(n)
	pending = bytes.Clone(pending)
	r := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(pending), conn), hijackReadBuffer)
	if n > 0 {
		if _, err := r.Peek(n); err != nil {
			return conn, brw, nil
		}
	}
	return conn, bufio.NewReadWriter(r, bufio.NewWriterSize(conn, hijackWriteBuffer)), nil
}

// Unwrap lets http.ResponseController reach the real writer.
func (w smallBufferWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
