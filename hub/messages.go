package hub

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/pongcast/pongcast/protocol"
)

// handle acts on one client message.
func (s *session) handle(data []byte) {
	if !s.authenticated() {
		s.firstMessage(data)
		return
	}
	msg, err := protocol.DecodeClientMessage(data, s.srv.maxListNames())
	if err != nil {
		s.reply(protocol.EncodeError(protocol.CodeBadRequest, publicText(err), msg.ID))
		return
	}
	switch msg.Type {
	case protocol.TypePing:
		s.reply(protocol.EncodePong(time.Now().UnixMilli(), msg.ID))
	case protocol.TypeSubscribe:
		s.subscribe(msg.Exchanges, msg.ID)
	case protocol.TypeStats:
		s.handleStats(msg)
	case protocol.TypeHistory:
		s.handleHistory(msg)
	case protocol.TypeAuth:
		s.refresh(msg)
	case protocol.TypeUnsubscribe:
		set := s.srv.hub.unsubscribe(s, msg.Exchanges)
		s.reply(protocol.EncodeSubscriptions(protocol.TypeUnsubscribed, set, nil, msg.ID))
	}
}

// subscribe adds names to the client's set; the hub answers with the
// whole set and what is known of each exchange added, or this says why
// nothing changed.
func (s *session) subscribe(names []string, id json.RawMessage) {
	if err := s.srv.hub.subscribe(s, names, id); err != nil {
		s.reply(protocol.EncodeError(subscribeErrorCode(err), publicText(err), id))
	}
}

// subscribeErrorCode maps hub errors to wire codes, in one place.
func subscribeErrorCode(err error) string {
	switch {
	case errors.Is(err, ErrForbidden):
		return protocol.CodeForbidden
	case errors.Is(err, ErrTooManySubs), errors.Is(err, ErrStats):
		return protocol.CodeBadRequest
	}
	return protocol.CodeInternal
}

// packagePrefixes are how this module's errors name their package, for Go
// callers and logs; a client has no use for them.
var packagePrefixes = []string{"protocol: ", "hub: ", "auth: ", "health: "}

// publicText is err's text as a client sees it: the same words, without
// the package prefixes that begin the text or follow a ": ". Quoted text
// (the client's own input, which errors quote with %q) is left as it is.
func publicText(err error) string {
	text := err.Error()
	var b strings.Builder
	quoted, escaped := false, false
	for i := 0; i < len(text); i++ {
		if !quoted && (i == 0 || strings.HasSuffix(text[:i], ": ")) {
			if p := prefixAt(text[i:]); p != "" {
				i += len(p) - 1
				continue
			}
		}
		c := text[i]
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		}
		b.WriteByte(c)
	}
	return b.String()
}

// prefixAt is the package prefix s begins with, or "".
func prefixAt(s string) string {
	for _, p := range packagePrefixes {
		if strings.HasPrefix(s, p) {
			return p
		}
	}
	return ""
}
