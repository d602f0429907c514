package hub

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/pongcast/pongcast/auth"
	"github.com/pongcast/pongcast/protocol"
)

// Close codes and reasons the server sends.
const (
	closeGoingAway       = websocket.StatusGoingAway
	closePolicyViolation = websocket.StatusPolicyViolation
	closeUnsupportedData = websocket.StatusUnsupportedData
	closeInvalidPayload  = websocket.StatusInvalidFramePayloadData

	reasonSlowConsumer = "slow consumer"
	reasonRateLimit    = "rate limit exceeded"
	reasonTokenExpired = "token expired"
	reasonShutdown     = "server shutting down"
	reasonBinary       = "binary messages are not supported: send JSON text"
	reasonKeepAlive    = "keep-alive timeout"
	reasonInvalidUTF8  = "text message is not valid UTF-8"
	reasonWriteTimeout = "write timeout"
)

// Client is one WebSocket session: the token's claims, the subscription
// set, the send queue and the goroutines that serve it.
//
// Ownership: the reader goroutine runs for the whole session and is the
// only one that tears it down. Frames go straight into the socket from
// whoever delivers them when the client has no backlog; otherwise they
// queue for the writer goroutine, which exists while there is a backlog
// (it parks between frames and retires when idle). A close requested by
// anyone goes through the writer, so frames queued before it (a
// token_expired error, say) reach the client first.
type Client struct {
	id     uint64
	srv    *Server
	conn   *websocket.Conn
	raw    *frameConn // the same connection, for the server's own data frames
	claims auth.Claims
	remote string

	// Guarded by srv.hub.mu.
	subs     []string
	wildcard bool

	// writeStart is when the writer began its current batch (Unix ns), or
	// zero while it is not writing; the server's watchdog drops clients
	// whose batch outlives WriteTimeout.
	writeStart atomic.Int64
	// lastWrite is when the writer last finished a batch (Unix ns); the
	// watchdog retires writers parked for longer than writerIdle.
	lastWrite atomic.Int64
	// wake rouses a parked writer (capacity 1: a wake-up is never lost
	// and never blocks).
	wake chan struct{}
	// Keep-alive, in Unix ns: when the client connected, when the last
	// ping went out, when the last pong came back.
	connectedAt int64
	lastPing    atomic.Int64
	lastPong    atomic.Int64

	// Reader goroutine only.
	limiter      *rate.Limiter
	refusals     int
	refusalStart time.Time

	// Writer goroutine only: the system-call vector of a batch, reused,
	// and the view of it that writev consumes.
	iov     net.Buffers
	iovView net.Buffers

	mu          sync.Mutex // guards everything below
	queue       []*frame
	spare       []*frame // the writer's last batch, reused
	writer      writerState
	retire      bool // the parked writer is to exit rather than wait
	closeCode   websocket.StatusCode
	closeReason string
	discard     bool // drop queued frames instead of flushing them before the close
	done        bool // torn down: nothing more is queued or started
	expiry      *time.Timer
}

// LogValue keeps client log lines uniform and free of the token.
func (c *Client) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Uint64("id", c.id),
		slog.String("sub", c.claims.Subject),
		slog.String("remote", c.remote),
	)
}

// writerState is the life of a client's writer goroutine. A writer is
// started by the first frame, parks when the queue is empty, and exits when
// the session ends or after writerIdle parked: an active client keeps one
// goroutine (no start-up cost per frame), an idle one has none (no memory).
type writerState uint8

const (
	writerNone   writerState = iota // no goroutine
	writerActive                    // running, or about to look at the queue
	writerParked                    // waiting on wake
)

// writerIdle is how long a writer stays parked before it is retired.
const writerIdle = 5 * time.Second

// deliver hands f to c and reports whether it was sent or queued. When
// c has nothing queued and no writer busy, f goes straight into the socket
// from the caller's goroutine, without waiting (the socket nearly always
// has room): no hand-off, no goroutine to wake. Otherwise f joins the
// queue. A full queue makes c a slow consumer: its queue is dropped and it
// is closed with 1008, by its writer, never by the caller. deliver never
// blocks and, once the client is warm, never allocates.
func (c *Client) deliver(f *frame) bool {
	c.mu.Lock()
	if c.done || c.closeCode != 0 {
		c.mu.Unlock()
		c.srv.metrics.Dropped.Inc()
		return false
	}
	if len(c.queue) == 0 && c.writer != writerActive {
		n := c.raw.tryWrite(f.wire)
		if n == len(f.wire) {
			c.mu.Unlock()
			c.sent(f, time.Now())
			return true
		}
		if n > 0 {
			// The rest of the frame goes first, by the writer.
			f = &frame{wire: f.wire[n:], received: f.received}
		}
	}
	if len(c.queue) >= c.srv.opts.SendQueue {
		spawn := c.requestCloseLocked(closePolicyViolation, reasonSlowConsumer, true)
		c.mu.Unlock()
		c.srv.metrics.Dropped.Inc()
		c.srv.metrics.SlowConsumerCloses.Inc()
		c.srv.log.Info("slow consumer closed", "client", c, "queue", c.srv.opts.SendQueue)
		if spawn {
			c.spawnWriter()
		}
		return false
	}
	c.queue = append(c.queue, f)
	spawn := c.kickWriterLocked()
	c.mu.Unlock()
	if spawn {
		c.spawnWriter()
	}
	return true
}

// sent accounts for a frame written whole at time now.
func (c *Client) sent(f *frame, now time.Time) {
	if !f.received.IsZero() {
		c.srv.metrics.Delivered.Inc()
		c.srv.metrics.DeliveryLatency.Observe(now.Sub(f.received).Seconds())
	}
}

// reply queues a reply to the client; a reply that finds the queue full
// closes the client like any other frame would. Replies are built to fit
// the cap; the check is the last line of defence for that promise.
func (c *Client) reply(data []byte) {
	if len(data) > c.srv.opts.MaxMessageBytes {
		c.srv.log.Error("reply over the message cap", "client", c, "bytes", len(data))
		data = replyTooLarge
	}
	c.deliver(replyFrame(data))
}

var replyTooLarge = protocol.EncodeError(protocol.CodeInternal, "the reply would pass the message cap", nil)

// requestClose asks the writer to close c with code once the frames queued
// now are written (or, with discard, at once). The first request wins.
func (c *Client) requestClose(code websocket.StatusCode, reason string, discard bool) {
	c.mu.Lock()
	spawn := c.requestCloseLocked(code, reason, discard)
	c.mu.Unlock()
	if spawn {
		c.spawnWriter()
	}
}

// replyAndClose queues data and then a close, atomically, so nothing else
// is queued between them.
func (c *Client) replyAndClose(data []byte, code websocket.StatusCode, reason string) {
	c.mu.Lock()
	if !c.done && c.closeCode == 0 {
		c.queue = append(c.queue, replyFrame(data))
	}
	spawn := c.requestCloseLocked(code, reason, false)
	c.mu.Unlock()
	if spawn {
		c.spawnWriter()
	}
}

// requestCloseLocked records a close request and reports whether the
// caller must spawn the writer.
func (c *Client) requestCloseLocked(code websocket.StatusCode, reason string, discard bool) bool {
	if c.done || c.closeCode != 0 {
		return false
	}
	c.closeCode, c.closeReason, c.discard = code, reason, discard
	if discard {
		clear(c.queue)
		c.queue = c.queue[:0]
	}
	return c.kickWriterLocked()
}

// kickWriterLocked makes sure a writer will look at the queue: it wakes a
// parked one, or reports that the caller must spawn one (after unlocking).
func (c *Client) kickWriterLocked() (spawn bool) {
	switch {
	case c.done:
		return false
	case c.writer == writerParked:
		c.writer = writerActive
		c.retire = false
		select {
		case c.wake <- struct{}{}:
		default:
		}
		return false
	case c.writer == writerNone:
		c.writer = writerActive
		// The reader holds a count on srv.wg until after it sets done, so
		// this Add never races with Shutdown's Wait on a zero counter.
		c.srv.wg.Add(1)
		return true
	}
	return false
}

func (c *Client) spawnWriter() { go c.writeLoop() }

// writeLoop drains the queue in batches, parks while it is empty, performs
// a requested close, and exits when the session ends or it is retired. It
// is the only caller of conn.Write and conn.Close.
func (c *Client) writeLoop() {
	defer c.srv.wg.Done()
	for {
		c.mu.Lock()
		switch {
		case c.closeCode != 0 && (c.discard || len(c.queue) == 0):
			code, reason := c.closeCode, c.closeReason
			clear(c.queue)
			c.queue = c.queue[:0]
			c.writer = writerNone
			c.mu.Unlock()
			c.closeConn(code, reason)
			return
		case c.done:
			c.writer = writerNone
			c.mu.Unlock()
			return
		case len(c.queue) == 0 && c.retire:
			c.retire = false
			c.writer = writerNone
			c.mu.Unlock()
			return
		case len(c.queue) == 0:
			c.writer = writerParked
			c.mu.Unlock()
			<-c.wake
			continue
		}
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		c.mu.Unlock()

		err := c.writeBatch(batch)
		clear(batch) // let the frames be collected
		c.mu.Lock()
		if c.spare == nil {
			c.spare = batch[:0]
		}
		if err != nil && c.closeCode == 0 {
			// The connection is broken: queue nothing more, close nothing
			// more; the reader sees the end and tears down.
			c.closeCode, c.closeReason, c.discard = websocket.StatusAbnormalClosure, causeError, true
		}
		if err != nil {
			c.writer = writerNone
		}
		c.mu.Unlock()
		if err != nil {
			c.conn.CloseNow()
			return
		}
	}
}

// retireIfIdle ends a writer that has been parked since before cutoff
// (Unix ns), so an idle client holds no goroutine.
func (c *Client) retireIfIdle(cutoff int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writer != writerParked || c.lastWrite.Load() >= cutoff {
		return
	}
	c.writer = writerActive
	c.retire = true
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeBatch writes frames in order, in one writev where it can. Its
// time limit is enforced by the server's watchdog rather than a deadline
// per write. Only the writer goroutine calls it.
func (c *Client) writeBatch(batch []*frame) error {
	c.writeStart.Store(time.Now().UnixNano())
	iov := c.iov[:0]
	for _, f := range batch {
		iov = append(iov, f.wire)
	}
	c.iov = iov
	// WriteTo consumes its receiver: hand it a view, keep the backing
	// array. Both live in c, so nothing is allocated per batch.
	c.iovView = iov
	err := c.raw.writeFrames(&c.iovView)
	c.iovView = nil
	clear(iov)
	c.writeStart.Store(0)
	now := time.Now()
	c.lastWrite.Store(now.UnixNano())
	if err != nil {
		c.srv.metrics.Dropped.Add(float64(len(batch)))
		return err
	}
	for _, f := range batch {
		c.sent(f, now)
	}
	return nil
}

// closeConn sends the close frame and waits (bounded by the library) for
// the handshake; the reader then sees the connection end and tears down.
func (c *Client) closeConn(code websocket.StatusCode, reason string) {
	c.srv.log.Debug("closing client", "client", c, "code", int(code), "reason", reason)
	_ = c.conn.Close(code, reason)
}

// tearDown ends the session: nothing more is queued, timers stop, and the
// hub forgets the client. Called once, by the reader, as it exits.
func (c *Client) tearDown(cause string) {
	c.mu.Lock()
	c.done = true
	clear(c.queue)
	c.queue = nil
	if c.writer == writerParked {
		c.writer = writerActive
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	if c.closeCode != 0 {
		cause = c.closeReason
	}
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.mu.Unlock()
	c.srv.hub.unregister(c)
	c.srv.admission.release(c.claims.Subject)
	c.conn.CloseNow()
	c.srv.metrics.ClientCloses.WithLabelValues(closeLabel(cause)).Inc()
	c.srv.log.Debug("client disconnected", "client", c, "cause", cause)
}

// expire runs at the token's exp: tell the client why, then close.
func (c *Client) expire() {
	c.replyAndClose(tokenExpiredMessage, closePolicyViolation, reasonTokenExpired)
}

// pingFrame is a WebSocket ping with no payload, shared by every client.
var pingFrame = &frame{wire: []byte{0x89, 0x00}}

// keepAlive is called by the watchdog: it drops c if c has not answered
// the previous ping, and otherwise sends the next one when it is due. No
// timer or goroutine per client: the ping goes out like any frame.
func (c *Client) keepAlive(now int64, interval time.Duration) {
	sent := c.lastPing.Load()
	since := sent
	if since == 0 {
		since = c.connectedAt
	}
	if now-since < int64(interval) {
		return
	}
	if sent != 0 && c.lastPong.Load() < sent {
		c.mu.Lock()
		alive := !c.done
		if alive && c.closeCode == 0 {
			// Recorded for tearDown's cause. No close handshake: a peer that
			// does not answer pings will not answer a close.
			c.closeCode, c.closeReason, c.discard = closeGoingAway, reasonKeepAlive, true
		}
		c.mu.Unlock()
		if alive {
			c.srv.log.Debug("client missed keep-alive", "client", c)
			c.conn.CloseNow()
		}
		return
	}
	c.lastPing.Store(now)
	c.deliver(pingFrame)
}

// closeLabel maps a close cause to a short metric label.
func closeLabel(cause string) string {
	switch cause {
	case reasonSlowConsumer:
		return "slow_consumer"
	case reasonRateLimit:
		return "rate_limited"
	case reasonTokenExpired:
		return "token_expired"
	case reasonShutdown:
		return "shutdown"
	case reasonBinary:
		return "binary"
	case reasonKeepAlive:
		return "keepalive"
	case reasonInvalidUTF8:
		return "invalid_utf8"
	case reasonWriteTimeout:
		return "write_timeout"
	case causeTooBig:
		return "too_big"
	case causePeer:
		return "client"
	}
	return "error"
}
