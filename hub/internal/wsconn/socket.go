package wsconn

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/pongcast/pongcast/protocol/wsframe"
)

// Buffer sizes for a hijacked connection. net/http hands over a 4 KiB
// reader and a 4 KiB writer, which the WebSocket library keeps for the
// life of the connection. Client messages are small and rare, and the
// library writes only control frames (at most 127 bytes), so smaller
// buffers cost nothing; a larger message is still read whole, in more
// reads.
const (
	hijackReadBuffer  = 512
	hijackWriteBuffer = 256
)

// libConn is the connection the WebSocket library is given. Its reads
// are the socket's; its writes (whole control frames: the library flushes
// each one in one Write) join the Conn's output and never wait; its Close
// lets a close frame still on its way finish first.
type libConn struct {
	net.Conn // the socket, for reads and addresses
	c        *Conn
}

func (l *libConn) Write(p []byte) (int, error) {
	c := l.c
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	n := len(p)
	if len(c.libIn) > 0 {
		c.libIn = append(c.libIn, p...)
		p = c.libIn
	}
	for len(p) > 0 {
		h, hl, err := wsframe.Parse(p)
		if errors.Is(err, wsframe.ErrShort) || err == nil && int64(len(p)-hl) < h.Length {
			break
		}
		if err != nil {
			// Not a frame: the library would never write this. Fail the
			// connection rather than send garbage.
			first := c.markDeadLocked()
			c.mu.Unlock()
			if first {
				c.closeSocket()
			}
			return 0, err
		}
		end := hl + int(h.Length)
		c.writeControlLocked(p[:end], h.Opcode == wsframe.OpClose)
		p = p[end:]
	}
	// Keep a frame cut between two writes for the next one.
	c.libIn = append(c.libIn[:0], p...)
	c.mu.Unlock()
	return n, nil
}

// Close is the library ending the connection: after answering a peer's
// close, on a protocol error, or from Finish. A close frame still queued
// goes out first (the writer closes the socket after it); otherwise the
// socket closes now.
func (l *libConn) Close() error {
	c := l.c
	c.mu.Lock()
	first := c.finishLocked()
	c.mu.Unlock()
	if first {
		c.closeSocket()
	}
	return nil
}

// Deadlines belong to the Conn's own checks, not the library's.
func (l *libConn) SetDeadline(time.Time) error      { return nil }
func (l *libConn) SetWriteDeadline(time.Time) error { return nil }

// hijackWriter is the ResponseWriter given to the library: it holds the
// 101 back, so that it goes out with the first frame, and its Hijack
// hands the library a libConn with small buffers.
type hijackWriter struct {
	http.ResponseWriter
	conn      *Conn
	switching bool // the library has written its 101, which we hold back
}

// WriteHeader holds back the 101 that completes an upgrade. Other
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
	sock, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c := w.conn
	c.sock = sock
	c.raw = nonBlocking(sock)
	c.lib = &libConn{Conn: sock, c: c}
	if response.Len() > 0 {
		c.head = response.Bytes()
	}
	bw := bufio.NewWriterSize(c.lib, hijackWriteBuffer)
	n := brw.Reader.Buffered()
	if n > hijackReadBuffer {
		// Keep net/http's reader: bytes the client already sent must not
		// be lost.
		return c.lib, bufio.NewReadWriter(brw.Reader, bw), nil
	}
	// Carry what the client sent after its handshake over into the new
	// buffer, where the library looks for it.
	pending, _ := brw.Reader.Peek(n)
	pending = bytes.Clone(pending)
	r := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(pending), c.lib), hijackReadBuffer)
	if n > 0 {
		if _, err := r.Peek(n); err != nil {
			return c.lib, bufio.NewReadWriter(brw.Reader, bw), nil
		}
	}
	return c.lib, bufio.NewReadWriter(r, bw), nil
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
