//go:build unix

package wsconn

import (
	"errors"
	"net"
	"syscall"
)

// rawWriter writes to a socket without waiting, from any goroutine.
type rawWriter struct{ rc syscall.RawConn }

// newRawWriter returns a writer for the kernel sockets whose Write is a
// plain write(2) of the same bytes; for anything else (TLS, a wrapped or
// in-memory connection) it returns nil, and every write goes through the
// writer goroutine.
func newRawWriter(conn net.Conn) *rawWriter {
	var sc syscall.Conn
	switch c := conn.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &rawWriter{rc: rc}
}

// tryWrite writes what the socket takes now and returns how much that
// was. A full socket is not an error; a failed one is, for the writer to
// act on.
func (w *rawWriter) tryWrite(p []byte) (int, error) {
	var n int
	var werr error
	err := w.rc.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), p)
			if !errors.Is(werr, syscall.EINTR) {
				return true // never wait: a full socket is the writer's business
			}
		}
	})
	if n < 0 {
		n = 0
	}
	if errors.Is(werr, syscall.EAGAIN) {
		werr = nil
	}
	if err != nil {
		return n, err
	}
	return n, werr
}
