// Package hub owns everything that moves pongs, in the order a pong
// travels: the Redis feed that receives them (feed.go), routing, which
// validates a pong and frames it once (route.go), the routing table from
// exchange to subscribers, which owns every subscription (hub.go,
// restrict.go for a refresh that narrows them), the fan-out (fanout.go),
// and client sessions with their rate limits (session.go, messages.go)
// and token lifecycle: first-message auth, refresh, expiry (tokenlife.go;
// unauth.go caps the connections still waiting for their auth message).
// Each session's socket belongs to a wsconn.Conn (internal/wsconn), the
// only code that writes to it. Around them: the HTTP/WebSocket endpoint
// (handler.go), connection limits (admission.go), health and metrics,
// the revocation list, loaded from Redis and announced on the feed's
// connection (revocation.go), with the sweeper that closes the
// connections it covers (revsweep.go), and the history of every pong in
// Redis Streams (history.go, historymsg.go).
//
// Concurrency: a Server, its Hub and its Feed are safe for concurrent use.
// Each client has exactly one reader goroutine, which alone tears its
// session down. The routing goroutines hand a pong's frame to every
// subscriber's connection, which writes it at once if the socket has room
// or queues it for its own writer goroutine; neither waits on a socket.
// Delivery happens under the hub's lock (pongs share it for reading), so
// that a pong is wholly before or after each subscribe and unsubscribe;
// nothing is logged under it. A full queue closes the client as a slow
// consumer.
//
// The other goroutines, each with its owner:
//   - NewServer starts, and Shutdown stops: the watchdog (watchdog.go,
//     every connection's time limits), the health timer (healthtimer.go,
//     staleness), and the revocation sweeper (revsweep.go), which closes
//     the connections of the entries announced, a burst in one pass, off
//     the feed's goroutine.
//   - Run runs the feed on the goroutine that calls it and starts, until
//     its ctx ends (it waits for them): the snapshot writer (snapstore.go),
//     the history writer (history.go: routing queues each pong for it
//     without waiting), and runRevocations (revocation.go),
//     which loads the revocation list each time the subscription becomes
//     live; readiness waits for it.
//   - A session's: its timer (tokenlife.go, a time.AfterFunc: no goroutine
//     until it fires; the auth timeout, token_expiring, the end at exp),
//     which tearDown waits for; and its history goroutine (historymsg.go),
//     started by the reader for waiting history messages and ending when
//     none waits, so that Redis never holds the reader; the server's wait
//     group counts it, so Shutdown waits for it too.
package hub
