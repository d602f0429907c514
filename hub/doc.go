// Package hub owns everything that moves pongs, in the order a pong
// travels: the Redis feed that receives them (feed.go), routing, which
// validates a pong and frames it once (route.go), the routing table from
// exchange to subscribers, which owns every subscription (hub.go), the
// fan-out (fanout.go), and client sessions with their rate limits and
// token expiry (session.go, messages.go). Each session's socket belongs
// to a wsconn.Conn (internal/wsconn), the only code that writes to it.
// Around them: the HTTP/WebSocket endpoint (handler.go), connection
// limits (admission.go), health and metrics, and the history of every
// pong in Redis Streams (history.go, historymsg.go): routing queues each
// pong for its one writer goroutine, which Run owns, without waiting.
//
// Concurrency: a Server, its Hub and its Feed are safe for concurrent use.
// Each client has exactly one reader goroutine, which alone tears its
// session down. The routing goroutines hand a pong's frame to every
// subscriber's connection, which writes it at once if the socket has room
// or queues it for its own writer goroutine; neither waits on a socket.
// Delivery happens under the hub's lock (pongs share it for reading), so
// that a pong is wholly before or after each subscribe and unsubscribe;
// nothing is logged under it. A full queue closes the client as a slow
// consumer. One watchdog goroutine applies every
// connection's time limits.
package hub
