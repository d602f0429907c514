// Package hub owns everything that moves pongs: the Redis feed that
// receives them, the routing table from exchange to subscribers, client
// sessions with their queues, rate limits and token expiry, and the
// HTTP/WebSocket endpoint with health and metrics.
//
// Concurrency: a Server, its Hub and its Feed are safe for concurrent use.
// Each client connection has exactly one reader goroutine and at most one
// writer goroutine, which exists only while the client has messages queued.
// Fan-out never blocks on a client: it appends to the client's bounded
// queue or closes the client as a slow consumer.
package hub
