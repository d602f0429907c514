package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// wsClient is a minimal WebSocket client: just what a load generator
// needs, so that it measures the server rather than itself. It reads
// frames into one reused buffer, answers pings, and never allocates per
// message.
type wsClient struct {
	conn net.Conn
	br   *bufio.Reader
	buf  []byte // the current message; reused

	wmu sync.Mutex // guards writes: pong replies and the final close

	closing atomic.Bool // we sent the close: the server's echo is not its own close
}

// wsAcceptGUID is RFC 6455's constant for Sec-WebSocket-Accept.
const wsAcceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

var errHandshake = errors.New("handshake refused")

// dialWS connects to u from localAddr (nil: any) and performs the
// handshake, sending token as a Bearer credential when not empty.
func dialWS(ctx context.Context, u *url.URL, token string, localAddr net.Addr) (*wsClient, error) {
	d := net.Dialer{LocalAddr: localAddr, Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	var keyBytes [16]byte
	_, _ = rand.Read(keyBytes[:])
	key := base64.StdEncoding.EncodeToString(keyBytes[:])
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
		u.RequestURI(), u.Host, key)
	if token != "" {
		fmt.Fprintf(&req, "Authorization: Bearer %s\r\n", token)
	}
	req.WriteString("\r\n")
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if _, err := io.WriteString(conn, req.String()); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 4096)
	status, err := br.ReadString('\n')
	if err != nil {
		conn.Close()
		return nil, err
	}
	if !strings.HasPrefix(status, "HTTP/1.1 101") {
		conn.Close()
		return nil, fmt.Errorf("%w: %s", errHandshake, strings.TrimSpace(status))
	}
	sum := sha1.Sum([]byte(key + wsAcceptGUID))
	wantAccept := base64.StdEncoding.EncodeToString(sum[:])
	accepted := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			conn.Close()
			return nil, err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Sec-WebSocket-Accept") {
			accepted = strings.TrimSpace(v) == wantAccept
		}
	}
	if !accepted {
		conn.Close()
		return nil, fmt.Errorf("%w: bad Sec-WebSocket-Accept", errHandshake)
	}
	_ = conn.SetDeadline(time.Time{})
	return &wsClient{conn: conn, br: br, buf: make([]byte, 0, 1024)}, nil
}

// closeError is a close frame received from the server.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("closed by server: %d %s", e.code, e.reason) }

// next returns the next complete data message. The slice is valid until
// the following call. Pings are answered, pongs ignored; a close frame is
// returned as *closeError.
func (c *wsClient) next() ([]byte, error) {
	c.buf = c.buf[:0]
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0F
		n := uint64(h[1] & 0x7F)
		switch n {
		case 126:
			var ext [2]byte
			if _, err := io.ReadFull(c.br, ext[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			if _, err := io.ReadFull(c.br, ext[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(ext[:])
		}
		if n > 1<<24 {
			return nil, fmt.Errorf("frame of %d bytes", n)
		}
		start := len(c.buf)
		if cap(c.buf)-start < int(n) {
			grown := make([]byte, start, start+int(n)+1024)
			copy(grown, c.buf)
			c.buf = grown
		}
		c.buf = c.buf[:start+int(n)]
		if _, err := io.ReadFull(c.br, c.buf[start:]); err != nil {
			return nil, err
		}
		switch op {
		case 0x8: // close
			ce := &closeError{code: 1005}
			if n >= 2 {
				ce.code = int(binary.BigEndian.Uint16(c.buf[start:]))
				ce.reason = string(c.buf[start+2:])
			}
			c.writeFrame(0x8, c.buf[start:start+min(int(n), 2)])
			return nil, ce
		case 0x9: // ping
			c.writeFrame(0xA, c.buf[start:])
			c.buf = c.buf[:start]
			continue
		case 0xA: // pong
			c.buf = c.buf[:start]
			continue
		}
		if fin {
			return c.buf, nil
		}
	}
}

// writeFrame writes one masked frame (clients must mask) with a payload
// of at most 125 bytes: control frames and small messages.
func (c *wsClient) writeFrame(op byte, payload []byte) error {
	if len(payload) > 125 {
		return errors.New("writeFrame: payload too long")
	}
	var frame [2 + 4 + 125]byte
	frame[0] = 0x80 | op
	frame[1] = 0x80 | byte(len(payload))
	_, _ = rand.Read(frame[2:6])
	for i, b := range payload {
		frame[6+i] = b ^ frame[2+i%4]
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(frame[:6+len(payload)])
	return err
}

// close sends a normal close frame and closes the socket.
func (c *wsClient) close() {
	c.closing.Store(true)
	_ = c.writeFrame(0x8, []byte{0x03, 0xE8}) // 1000
	c.conn.Close()
}
