//go:build unix

package wsconn

import (
	"errors"
	"net"
	"syscall"
)

// rawWriter writes to a kernel socket without waiting. The callback
// handed to RawConn.Write is bound once, and its arguments and results
// live in the struct, so a write allocates nothing. The Conn calls it
// only under its lock: one write at a time.
type rawWriter struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // w.write, bound once
	p   []byte
	n   int
	err error
}

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
	w := &rawWriter{rc: rc}
	w.fn = w.write
	return w
}

func (w *rawWriter) write(fd uintptr) bool {
	for {
		w.n, w.err = syscall.Write(int(fd), w.p)
		if !errors.Is(w.err, syscall.EINTR) {
			return true // never wait: a full socket is the writer's business
		}
	}
}

// tryWrite writes what the socket takes now and returns how much that
// was. A full socket is not an error; a failed one is, for the writer to
// act on.
func (w *rawWriter) tryWrite(p []byte) (int, error) {
	w.p, w.n, w.err = p, 0, nil
	err := w.rc.Write(w.fn)
	n, werr := max(w.n, 0), w.err
	w.p, w.err = nil, nil
	if err != nil {
		return n, err
	}
	if errors.Is(werr, syscall.EAGAIN) {
		werr = nil
	}
	return n, werr
}
