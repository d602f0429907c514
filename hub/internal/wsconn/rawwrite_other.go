//go:build !unix

package wsconn

import "net"

// rawWriter is unused here: without a portable non-blocking write, every
// frame goes through the writer goroutine.
type rawWriter struct{}

func newRawWriter(net.Conn) *rawWriter { return nil }

func (*rawWriter) tryWrite([]byte) (int, error) { return 0, nil }
