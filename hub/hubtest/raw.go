package hubtest

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// WebSocket opcodes, for RawConn.
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
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
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialTimeout("tcp", u.Host, ReadTimeout)
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
	return &RawConn{t: t, Conn: conn, br: br}, nil
}

// Reset closes the connection with a TCP RST instead of a FIN, as a
// crashed client or a dropped network would.
func (c *RawConn) Reset() {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Conn.Close()
}

// WriteFrame writes one masked frame, as a client must.
func (c *RawConn) WriteFrame(fin bool, opcode byte, payload []byte) {
	c.t.Helper()
	var hdr []byte
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	hdr = append(hdr, b0)
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xFFFF:
		hdr = append(hdr, 0x80|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	mask := make([]byte, 4)
	_, _ = rand.Read(mask)
	hdr = append(hdr, mask...)
	masked := make([]byte, len(payload))
	for i, b := range payload {
		masked[i] = b ^ mask[i%4]
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(ReadTimeout))
	if _, err := c.Conn.Write(append(hdr, masked...)); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

// ReadClose reads frames until a close frame and returns its code, or -1
// if the connection ends without one.
func (c *RawConn) ReadClose() int {
	c.t.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(ReadTimeout))
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return -1
		}
		n := int64(h[1] & 0x7F)
		switch n {
		case 126:
			var ext [2]byte
			if _, err := io.ReadFull(c.br, ext[:]); err != nil {
				return -1
			}
			n = int64(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			if _, err := io.ReadFull(c.br, ext[:]); err != nil {
				return -1
			}
			n = int64(binary.BigEndian.Uint64(ext[:]))
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return -1
		}
		if h[0]&0x0F == OpClose {
			if len(payload) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(payload))
		}
	}
}
