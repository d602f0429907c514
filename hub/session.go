package hub

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/pongcast/pongcast/protocol"
)

// Causes of a session's end that the client, not the server, brought
// about; reasons the server chose are the close reasons in client.go.
const (
	causePeer   = "closed by client"
	causeTooBig = "message too big"
	causeError  = "connection error"
)

var tokenExpiredMessage = protocol.EncodeError(protocol.CodeTokenExpired, "the token has expired; reconnect with a fresh one", nil)

// readLoop serves the client's messages until the connection ends, then
// tears the session down. It owns one count on srv.wg.
func (c *Client) readLoop() {
	defer c.srv.wg.Done()
	cause := c.serveMessages()
	c.tearDown(cause)
}

func (c *Client) serveMessages() string {
	// A Background context: the reader is ended by closing the connection,
	// which costs nothing per idle client, unlike a cancellable context.
	ctx := context.Background()
	for {
		typ, data, err := c.conn.Read(ctx)
		if err != nil {
			return readErrorCause(err)
		}
		if c.closing() {
			continue // drain until the close handshake ends the read
		}
		if typ != websocket.MessageText {
			c.requestClose(closeUnsupportedData, reasonBinary, true)
			continue
		}
		if !c.allowMessage() {
			continue
		}
		if !utf8.Valid(data) {
			// RFC 6455 8.1: a text message must be UTF-8; fail the
			// connection rather than guess.
			c.requestClose(closeInvalidPayload, reasonInvalidUTF8, true)
			continue
		}
		c.handle(data)
	}
}

func readErrorCause(err error) string {
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		return causeTooBig
	case websocket.CloseStatus(err) != -1:
		return causePeer
	}
	return causeError
}

func (c *Client) closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode != 0
}

// allowMessage applies the token bucket. A refused message is discarded
// with a rate_limited error; more than ClientBurst refusals within the
// refusal window close the client.
func (c *Client) allowMessage() bool {
	if c.limiter.Allow() {
		return true
	}
	c.srv.metrics.RateLimited.Inc()
	now := time.Now()
	if now.Sub(c.refusalStart) > rateRefusalWindow {
		c.refusalStart, c.refusals = now, 0
	}
	c.refusals++
	if c.refusals > c.srv.opts.ClientBurst {
		c.srv.metrics.RateLimitCloses.Inc()
		c.srv.log.Info("client closed for flooding", "client", c, "refusals", c.refusals)
		c.requestClose(closePolicyViolation, reasonRateLimit, true)
		return false
	}
	c.reply(rateLimitedMessage)
	return false
}

var rateLimitedMessage = protocol.EncodeError(protocol.CodeRateLimited, "too many messages: slow down", nil)

// handle acts on one client message.
func (c *Client) handle(data []byte) {
	msg, err := protocol.DecodeClientMessage(data)
	if err != nil {
		c.reply(protocol.EncodeError(protocol.CodeBadRequest, err.Error(), msg.ID))
		return
	}
	switch msg.Type {
	case protocol.TypePing:
		c.reply(protocol.EncodePong(time.Now().UnixMilli(), msg.ID))
	case protocol.TypeSubscribe:
		set, err := c.srv.hub.subscribe(c, msg.Exchanges)
		if err != nil {
			c.reply(protocol.EncodeError(subscribeErrorCode(err), err.Error(), msg.ID))
			return
		}
		c.reply(protocol.EncodeSubscriptions(protocol.TypeSubscribed, set, msg.ID))
	case protocol.TypeUnsubscribe:
		set := c.srv.hub.unsubscribe(c, msg.Exchanges)
		c.reply(protocol.EncodeSubscriptions(protocol.TypeUnsubscribed, set, msg.ID))
	}
}

// subscribeErrorCode maps hub errors to wire codes, in one place.
func subscribeErrorCode(err error) string {
	switch {
	case errors.Is(err, ErrForbidden):
		return protocol.CodeForbidden
	case errors.Is(err, ErrTooManySubs):
		return protocol.CodeBadRequest
	}
	return protocol.CodeInternal
}
