package hub

import (
	"github.com/pongcast/pongcast/hub/internal/wsconn"
	"github.com/pongcast/pongcast/protocol/wsframe"
)

// The causes a session closes a client for; the connection's own (slow
// consumer, write timeout, keep-alive, message timeout, the client's
// close) are in wsconn. Each is the close code and reason the client
// sees and the label pongcast_client_closes_total counts it under.
var (
	causeRateLimit    = wsconn.Cause{Code: wsframe.ClosePolicyViolation, Reason: "rate limit exceeded", Label: "rate_limited"}
	causeTokenExpired = wsconn.Cause{Code: wsframe.ClosePolicyViolation, Reason: "token expired", Label: "token_expired", Flush: true}
	causeShutdown     = wsconn.Cause{Code: wsframe.CloseGoingAway, Reason: "server shutting down", Label: "shutdown", Flush: true}
	causeBinary       = wsconn.Cause{Code: wsframe.CloseUnsupportedData, Reason: "binary messages are not supported: send JSON text", Label: "binary"}
	causeInvalidUTF8  = wsconn.Cause{Code: wsframe.CloseInvalidPayload, Reason: "text message is not valid UTF-8", Label: "invalid_utf8"}
	// The token lifecycle's (tokenlife.go): no good auth message, a
	// revoked token, a connection limit met at first-message auth.
	causeUnauthorized    = wsconn.Cause{Code: wsframe.ClosePolicyViolation, Reason: "unauthorized", Label: "unauthorized", Flush: true}
	causeTokenRevoked    = wsconn.Cause{Code: wsframe.ClosePolicyViolation, Reason: "token revoked", Label: "token_revoked", Flush: true}
	causeConnectionLimit = wsconn.Cause{Code: wsframe.ClosePolicyViolation, Reason: "connection limit reached", Label: "connection_limit", Flush: true}
)
