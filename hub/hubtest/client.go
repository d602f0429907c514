package hubtest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// ReadTimeout bounds every read of a test client: long enough for a loaded
// CI machine, short enough that a missing message fails the test.
const ReadTimeout = 10 * time.Second

// Client is a WebSocket client for tests.
type Client struct {
	t    testing.TB
	Conn *websocket.Conn
}

// Message is a decoded server message, with the raw bytes kept.
type Message struct {
	Type      string          `json:"type"`
	Exchange  string          `json:"exchange"`
	Exchanges nameList        `json:"exchanges"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	ID        json.RawMessage `json:"id"`
	Data      json.RawMessage `json:"data"`
	Timestamp int64           `json:"timestamp"`
	Source    string          `json:"source"`
	// Exchange health: a snapshot envelope's mark, an exchange:status
	// message's fields, a subscribed reply's unseen names, a stats reply.
	Snapshot bool     `json:"snapshot"`
	Status   string   `json:"status"`
	Previous string   `json:"previous"`
	Since    int64    `json:"since"`
	Reason   string   `json:"reason"`
	Unseen   []string `json:"unseen"`
	Window   string   `json:"window"`
	// The token lifecycle: an authenticated reply's sub and exp, a
	// token_expiring message's exp.
	Sub string `json:"sub"`
	Exp int64  `json:"exp"`
	Raw []byte `json:"-"`
}

// nameList is the exchanges of a subscribed reply; in a stats reply the
// field is an object, read from Raw instead, and left nil here.
type nameList []string

func (l *nameList) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		*l = nil
		return nil
	}
	return json.Unmarshal(b, (*[]string)(l))
}

// WSURL turns an http:// base URL into the ws:// URL of path with query.
func WSURL(base, path string, query url.Values) string {
	u := "ws" + strings.TrimPrefix(base, "http") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

// Dial connects with the token in the Authorization header (if not empty)
// and returns the client, or the handshake response and error.
func Dial(t testing.TB, wsURL, token string, header http.Header) (*Client, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	for k, v := range header {
		h[k] = v
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ReadTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(1 << 20)
	c := &Client{t: t, Conn: conn}
	t.Cleanup(func() { conn.CloseNow() })
	return c, resp, nil
}

// MustDial is Dial that fails the test on error.
func MustDial(t testing.TB, wsURL, token string) *Client {
	t.Helper()
	c, resp, err := Dial(t, wsURL, token, nil)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("dial %s: %v %s", wsURL, err, status)
	}
	return c
}

// Send writes v as a JSON text message.
func (c *Client) Send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.SendRaw(b)
}

// SendRaw writes b as a text message.
func (c *Client) SendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ReadTimeout)
	defer cancel()
	if err := c.Conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Read returns the next message, failing the test if none comes in time.
func (c *Client) Read() Message {
	c.t.Helper()
	m, err := c.TryRead(ReadTimeout)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// TryRead returns the next message or the read error.
func (c *Client) TryRead(timeout time.Duration) (Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	typ, b, err := c.Conn.Read(ctx)
	if err != nil {
		return Message{}, err
	}
	if typ != websocket.MessageText {
		return Message{}, errors.New("binary message from server")
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return Message{}, err
	}
	m.Raw = b
	return m, nil
}

// ReadType reads the next message and fails unless it has type typ. It
// passes over what exchange health adds to the stream (snapshots,
// exchange:status) unless typ is exchange:status: a test of replies or of
// the pipe need not know when health speaks; a test of health reads with
// Read.
func (c *Client) ReadType(typ string) Message {
	c.t.Helper()
	for {
		m := c.Read()
		if typ != "exchange:status" && IsHealthMessage(m.Raw) {
			continue
		}
		if m.Type != typ {
			c.t.Fatalf("got %s, want a %q message", m.Raw, typ)
		}
		return m
	}
}

// IsHealthMessage reports whether a server message is one exchange
// health adds: an exchange:status message or a snapshot envelope.
func IsHealthMessage(payload []byte) bool {
	var m struct {
		Type     string `json:"type"`
		Snapshot bool   `json:"snapshot"`
	}
	if json.Unmarshal(payload, &m) != nil {
		return false
	}
	return m.Type == "exchange:status" || m.Type == "exchange:pong" && m.Snapshot
}

// Subscribe subscribes and returns the subscribed reply's set.
func (c *Client) Subscribe(exchanges ...string) []string {
	c.t.Helper()
	c.Send(map[string]any{"type": "subscribe", "exchanges": exchanges})
	return c.ReadType("subscribed").Exchanges
}

// ExpectClose reads until the connection ends and returns the close
// status and reason the server sent, failing if it does not close in time
// or ends without a close frame.
func (c *Client) ExpectClose(timeout time.Duration) (websocket.StatusCode, string) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, err := c.TryRead(time.Until(deadline))
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		c.t.Fatalf("connection ended without a close frame: %v", err)
	}
}

// GetJSON makes a plain GET with the token in the header (if any) and
// decodes the JSON body into v, failing if it is not JSON.
func GetJSON(t testing.TB, rawURL, token string, v any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: body is not JSON: %v", resp.Status, err)
	}
	return resp
}
