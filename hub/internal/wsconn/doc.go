// Package wsconn is the one owner of a client's socket. Every byte the
// server writes to a client goes through a Conn: the held-back 101, the
// pre-framed data frames shared by every receiver, the control frames the
// WebSocket library produces (ping replies, close), our keep-alive pings
// and our close frames.
//
// Guarantees:
//   - Frames never interleave: a frame written in part keeps its remainder
//     under the Conn's lock, and whoever writes next finishes it first.
//     Control frames go between frames, never inside one (RFC 6455 5.4).
//   - Nothing follows a close frame, from either writer.
//   - Deliver, Close and the library's writes never wait on the socket. On
//     a TCP or Unix socket a frame goes straight in with a non-blocking
//     write when nothing is queued; otherwise (a backlog, TLS, a wrapped
//     connection, Windows) it queues for the Conn's writer goroutine,
//     which exists while there is a backlog, writes each batch (with one
//     writev on a kernel socket), parks when idle and retires after a few
//     idle seconds. Closing the socket never waits either: under TLS only
//     the connection beneath is closed.
//   - A full queue closes the client as a slow consumer. With
//     Config.Conflate the client is kept instead: the queue drops the
//     frames that a newer one of the same ConflateKey supersedes. Frames
//     without a key are never dropped, nothing is reordered, and a queue
//     that frames without a key alone fill still closes the client.
//   - Time limits are enforced by Tick, which the owner calls for every
//     connection a few times a second: a batch stuck past WriteTimeout, a
//     close handshake past CloseTimeout, a client message left open past
//     MessageTimeout, and keep-alive pings. No timer per connection.
//
// Concurrency: one goroutine calls Read (the session's reader); Deliver,
// Close, CloseNow and Tick are safe from any goroutine.
package wsconn
