package wsconn

import "github.com/pongcast/pongcast/protocol/wsframe"

// Cause is why a connection ends: the close frame the peer is sent, and
// the label it is counted under. The first cause recorded for a Conn
// wins.
type Cause struct {
	// Code is the close code sent; zero means the socket is dropped
	// without a close frame (it could not get through, or the peer would
	// not answer).
	Code int
	// Reason is the close frame's reason, and the log's.
	Reason string
	// Label is the metric label, pongcast_client_closes_total{reason}.
	Label string
	// Flush sends the frames queued before the close first; otherwise
	// they are dropped and the close frame goes next.
	Flush bool
}

// The causes the connection itself finds; the session adds its own.
var (
	CauseSlowConsumer = Cause{Code: wsframe.ClosePolicyViolation, Reason: "slow consumer", Label: "slow_consumer"}
	// A socket that stopped draining gets no close frame: it would not
	// get through either.
	CauseWriteTimeout = Cause{Reason: "write timeout", Label: "write_timeout"}
	// A peer that does not answer pings will not answer a close.
	CauseKeepAlive      = Cause{Reason: "keep-alive timeout", Label: "keepalive"}
	CauseMessageTimeout = Cause{Code: wsframe.ClosePolicyViolation, Reason: "message not finished in time", Label: "message_timeout"}
	// Read-side ends, found from the read error when nothing else was
	// recorded first.
	CausePeerClosed = Cause{Reason: "closed by client", Label: "client"}
	CauseTooBig     = Cause{Reason: "message too big", Label: "too_big"}
	CauseConnError  = Cause{Reason: "connection error", Label: "error"}
)
