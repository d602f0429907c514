package hub

import (
	"net"
	"sync"
	"syscall"
)

// The server writes data frames itself, pre-framed: a pong's frame is
// built once and the same bytes go to every subscriber. The routing
// goroutine writes them straight into each socket that has room, without
// waiting; a client whose socket is full, or who has a backlog, is served
// by its own writer goroutine, in one writev per batch. The WebSocket library still reads, and still writes its control
// frames (ping replies, close); frameConn keeps the two writers from ever
// interleaving inside a frame.

// frameConn is the connection handed to the WebSocket library. Every
// Write (the library flushes each control frame in one Write) and every
// batch of our frames holds wmu, so frames from the two never mix.
type frameConn struct {
	net.Conn
	wmu     sync.Mutex
	rc      syscall.RawConn // nil for connections without a file descriptor
	pending []byte          // the held-back 101, sent before the first frame; guarded by wmu
}

func newFrameConn(conn net.Conn) *frameConn {
	c := &frameConn{Conn: conn}
	if sc, ok := conn.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	return c
}

// tryWrite writes as much of p as the socket takes right now, without
// waiting, and returns how much that was: len(p) when the socket had room
// (nearly always), less when it is full or busy with a control frame, or
// when the connection has failed (the writer then finds out why).
func (c *frameConn) tryWrite(p []byte) int {
	if !c.wmu.TryLock() {
		return 0
	}
	defer c.wmu.Unlock()
	if c.pending != nil {
		n, _ := c.writeWithPending(p)
		return n
	}
	if c.rc == nil {
		n, _ := c.Conn.Write(p) // in-memory connections never block
		return n
	}
	var n int
	err := c.rc.Write(func(fd uintptr) bool {
		n, _ = syscall.Write(int(fd), p)
		return true // never wait: a full socket is the writer's business
	})
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func (c *frameConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.pending != nil {
		return c.writeWithPending(p)
	}
	return c.Conn.Write(p)
}

// writeFrames writes whole frames in one system call where it can.
// bufs is consumed.
func (c *frameConn) writeFrames(bufs *net.Buffers) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.pending != nil {
		*bufs = append(net.Buffers{c.pending}, *bufs...)
		c.pending = nil
	}
	_, err := bufs.WriteTo(c.Conn)
	return err
}

// writeWithPending writes the held-back 101 and p in one write, waiting
// if it must (once per connection, into an empty socket), and returns how
// much of p went out. The caller holds wmu.
func (c *frameConn) writeWithPending(p []byte) (int, error) {
	head := len(c.pending)
	n, err := c.Conn.Write(append(c.pending, p...))
	c.pending = nil
	return max(0, n-head), err
}

// flushPending sends the held-back 101 if no frame has taken it yet: the
// handshake is complete once the client has it.
func (c *frameConn) flushPending() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.pending == nil {
		return nil
	}
	_, err := c.Conn.Write(c.pending)
	c.pending = nil
	return err
}

// textFrameHeaderLen is the size of a server (unmasked) text frame
// header for a payload of n bytes.
func textFrameHeaderLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xFFFF:
		return 4
	}
	return 10
}

// appendTextFrameHeader appends a final, unmasked text frame header for
// a payload of n bytes (RFC 6455 5.2).
func appendTextFrameHeader(dst []byte, n int) []byte {
	const finText = 0x81
	switch {
	case n < 126:
		return append(dst, finText, byte(n))
	case n <= 0xFFFF:
		return append(dst, finText, 126, byte(n>>8), byte(n))
	}
	return append(dst, finText, 127,
		byte(uint64(n)>>56), byte(uint64(n)>>48), byte(uint64(n)>>40), byte(uint64(n)>>32),
		byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// textFrame frames payload as one text message.
func textFrame(payload []byte) []byte {
	b := make([]byte, 0, textFrameHeaderLen(len(payload))+len(payload))
	return append(appendTextFrameHeader(b, len(payload)), payload...)
}
