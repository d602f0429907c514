// Package hub owns everything that moves pongs: the Redis feed that
// receives them, the routing table from exchange to subscribers, client
// sessions with their queues, rate limits and token expiry, and the
// HTTP/WebSocket endpoint with health and metrics.
//
// Concurrency: a Server, its Hub and its Feed are safe for concurrent use.
// Each client connection has exactly one reader goroutine. A pong is
// encoded and framed once; the routing goroutines write it straight into
// every subscriber's socket that has room, without waiting. A client whose
// socket is full, or who already has a backlog, gets the frame in its
// bounded queue, drained by its own writer goroutine, which parks while
// the queue is empty and exits after a few idle seconds. A full queue
// closes the client as a slow consumer. Nothing on the fan-out path blocks
// on a client or holds the hub's lock while writing.
package hub
