package hubtest

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/pongcast/pongcast/protocol/wsframe"
)

// RawConn is a hand-driven WebSocket client: it writes exactly the frames
// a test asks for, well-formed or not, which a real client library would
// refuse to send.
type RawConn struct {
	t    testing.TB
	Conn net.Conn
	br   *bufio.Reader
}

// RawDial opens a TCP connection to the ws:// URL and performs the
// handshake with the token in the Authorization header.
func RawDial(t testing.TB, wsURL, token string) *RawConn {
	t.Helper()
	c, err := TryRawDial(t, wsURL, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TryRawDial is RawDial that returns its error, for use off the test's
// goroutine.
func TryRawDial(t testing.TB, wsURL, token string) (*RawConn, error) {
	return TryRawDialWith(t, &net.Dialer{}, wsURL, token)
}

// TryRawDialWith is TryRawDial through d, whose Control may set socket
// options (a small receive buffer, say) before the connection is made.
func TryRawDialWith(t testing.TB, d *net.Dialer, wsURL, token string) (*RawConn, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	d.Timeout = ReadTimeout
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	t.Cleanup(func() { conn.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n",
		u.RequestURI(), u.Host, base64.StdEncoding.EncodeToString(key), token)
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(ReadTimeout))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("handshake: %s", resp.Status)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return &RawConn{t: t, Conn: conn, br: br}, nil
}

// Reader is what follows the handshake, the bytes already buffered
// included.
func (c *RawConn) Reader() io.Reader { return c.br }

// Reset closes the connection with a TCP RST instead of a FIN, as a
// crashed client or a dropped network would.
func (c *RawConn) Reset() {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Conn.Close()
}

// WriteFrame writes one masked frame, as a client must; with fin false it
// is a fragment.
func (c *RawConn) WriteFrame(fin bool, opcode wsframe.Opcode, payload []byte) {
	c.t.Helper()
	if err := c.TryWriteFrame(fin, opcode, payload); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

// TryWriteFrame is WriteFrame that returns its error, for use off the
// test's goroutine.
func (c *RawConn) TryWriteFrame(fin bool, opcode wsframe.Opcode, payload []byte) error {
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	frame := wsframe.AppendHeader(nil, wsframe.Header{Fin: fin, Opcode: opcode, Masked: true, Mask: mask, Length: int64(len(payload))})
	start := len(frame)
	frame = append(frame, payload...)
	wsframe.MaskBytes(mask, 0, frame[start:])
	_ = c.Conn.SetWriteDeadline(time.Now().Add(ReadTimeout))
	_, err := c.Conn.Write(frame)
	return err
}

// ReadClose reads frames until a close frame and returns its code, or -1
// if the connection ends without one.
func (c *RawConn) ReadClose() int {
	c.t.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(ReadTimeout))
	for {
		f, err := ReadServerFrame(c.br)
		if err != nil {
			return -1
		}
		if f.Opcode == wsframe.OpClose {
			code, _, _ := wsframe.ParseClosePayload(f.Payload)
			return code
		}
	}
}
