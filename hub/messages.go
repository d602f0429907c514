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
	case protocol.TypeUnsubscribe:
		set := s.srv.hub.unsubscribe(s, msg.Exchanges)
		s.reply(protocol.EncodeSubscriptions(protocol.TypeUnsubscribed, set, msg.ID))
	}
}

// subscribe adds names to the client's set and answers with the whole
// set, or with why nothing changed.
func (s *session) subscribe(names []string, id json.RawMessage) {
	set, err := s.srv.hub.subscribe(s, names)
	if err != nil {
		s.reply(protocol.EncodeError(subscribeErrorCode(err), publicText(err), id))
		return
	}
	s.reply(protocol.EncodeSubscriptions(protocol.TypeSubscribed, set, id))
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

// packagePrefixes are how this module's errors name their package, for Go
// callers and logs; a client has no use for them.
var packagePrefixes = []string{"protocol: ", "hub: ", "auth: "}

// publicText is err's text as a client sees it: the same words, without
// package prefixes.
func publicText(err error) string {
	text := err.Error()
	for _, p := range packagePrefixes {
		text = strings.TrimPrefix(text, p)
		text = strings.ReplaceAll(text, ": "+p, ": ")
	}
	return text
}
