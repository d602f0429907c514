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
// small and rare, and the library writes only control frames (at most 127
// bytes) once the server writes its data frames itself, so smaller buffers
// cost nothing; a larger message is still read whole, in more reads.
const (
	hijackReadBuffer  = 512
	hijackWriteBuffer = 1024
)

// hijackWriter is the ResponseWriter given to the WebSocket library: its
// Hijack hands over the connection wrapped in a frameConn (kept in conn for
// the server's own writes), with small buffers instead of net/http's.
type hijackWriter struct {
	http.ResponseWriter
	conn      *frameConn
	switching bool // the library has written its 101, which we hold back
}

// WriteHeader holds back the 101 that completes an upgrade: the
// connection sends it with its first frame (usually the subscribed
// reply), in one write instead of two, and the client wakes once. Other
// statuses (the library's refusals) go out as usual.
func (w *hijackWriter) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols {
		w.switching = true
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	var response bytes.Buffer
	if w.switching {
		response.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
		_ = w.Header().Write(&response)
		response.WriteString("\r\n")
	}
	raw, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	conn := newFrameConn(raw)
	conn.pending = response.Bytes()
	w.conn = conn
	bw := bufio.NewWriterSize(conn, hijackWriteBuffer)
	n := brw.Reader.Buffered()
	if n > hijackReadBuffer {
		// Keep net/http's reader: bytes the client already sent must not
		// be lost.
		return conn, bufio.NewReadWriter(brw.Reader, bw), nil
	}
	// Carry over what the client sent after its handshake, in the new
	// buffer, where the library looks for it.
	pending, _ := brw.Reader.Peek(n)
	pending = bytes.Clone(pending)
	r := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(pending), raw), hijackReadBuffer)
	if n > 0 {
		if _, err := r.Peek(n); err != nil {
			return conn, bufio.NewReadWriter(brw.Reader, bw), nil
		}
	}
	return conn, bufio.NewReadWriter(r, bw), nil
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
