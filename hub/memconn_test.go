package hub

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"
)

// sinkConn is an in-memory connection for benchmarks: writes are counted
// and dropped at once, reads block until Close. It measures the hub and the
// WebSocket library without the kernel.
type sinkConn struct {
	writes *atomic.Int64 // shared by every sink of a benchmark
	closed chan struct{}
	once   sync.Once
}

func newSinkConn(writes *atomic.Int64) *sinkConn {
	return &sinkConn{writes: writes, closed: make(chan struct{})}
}

func (c *sinkConn) Read([]byte) (int, error) {
	<-c.closed
	return 0, net.ErrClosed
}

func (c *sinkConn) Write(p []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	c.writes.Add(1)
	return len(p), nil
}

// TryWrite makes the sink a socket that always has room, so deliveries
// take the direct path, as they do on a TCP socket that keeps up.
func (c *sinkConn) TryWrite(p []byte) (int, error) { return c.Write(p) }

func (c *sinkConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *sinkConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2808} }
func (c *sinkConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *sinkConn) SetDeadline(time.Time) error      { return nil }
func (c *sinkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *sinkConn) SetWriteDeadline(time.Time) error { return nil }

// sinkWriter is a ResponseWriter whose Hijack hands over a sinkConn, so
// the real handler and the real library run over memory.
type sinkWriter struct {
	*httptest.ResponseRecorder
	conn *sinkConn
}

func (w *sinkWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, bufio.NewReadWriter(bufio.NewReaderSize(w.conn, 16), bufio.NewWriterSize(w.conn, 256)), nil
}

// Unwrap lets http.ResponseController find Hijack.
func (w *sinkWriter) Unwrap() http.ResponseWriter { return w.ResponseRecorder }

// connectSink runs one real handshake through the server's handler and
// returns the client's in-memory connection.
func connectSink(s *Server, token, query string, writes *atomic.Int64) (*sinkConn, int) {
	r := httptest.NewRequest(http.MethodGet, "/ws?"+query, nil)
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	w := &sinkWriter{ResponseRecorder: httptest.NewRecorder(), conn: newSinkConn(writes)}
	s.ServeHTTP(w, r)
	return w.conn, w.Code
}
