package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pongcast/pongcast/protocol/wsframe"
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
		h, err := wsframe.Read(c.br)
		if err != nil {
			return nil, err
		}
		if h.Length > 1<<24 {
			return nil, fmt.Errorf("frame of %d bytes", h.Length)
		}
		n := int(h.Length)
		start := len(c.buf)
		if cap(c.buf)-start < n {
			grown := make([]byte, start, start+n+1024)
			copy(grown, c.buf)
			c.buf = grown
		}
		c.buf = c.buf[:start+n]
		if _, err := io.ReadFull(c.br, c.buf[start:]); err != nil {
			return nil, err
		}
		switch h.Opcode {
		case wsframe.OpClose:
			code, reason, err := wsframe.ParseClosePayload(c.buf[start:])
			if err != nil {
				code = wsframe.CloseProtocolError
			}
			ce := &closeError{code: code, reason: reason}
			c.writeFrame(wsframe.OpClose, c.buf[start:start+min(n, 2)])
			return nil, ce
		case wsframe.OpPing:
			c.writeFrame(wsframe.OpPong, c.buf[start:])
			c.buf = c.buf[:start]
			continue
		case wsframe.OpPong:
			c.buf = c.buf[:start]
			continue
		}
		if h.Fin {
			return c.buf, nil
		}
	}
}

// writeFrame writes one masked frame (clients must mask) with a payload
// of at most 125 bytes: control frames and small messages.
func (c *wsClient) writeFrame(op wsframe.Opcode, payload []byte) error {
	if len(payload) > wsframe.MaxControlPayload {
		return errors.New("writeFrame: payload too long")
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	var buf [wsframe.MaxHeaderLen + wsframe.MaxControlPayload]byte
	frame := wsframe.AppendFrame(buf[:0], op, payload, &mask)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(frame)
	return err
}

// close sends a normal close frame and closes the socket.
func (c *wsClient) close() {
	c.closing.Store(true)
	_ = c.writeFrame(wsframe.OpClose, wsframe.AppendClosePayload(nil, wsframe.CloseNormal, ""))
	c.conn.Close()
}
