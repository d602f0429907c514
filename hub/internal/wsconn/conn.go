package wsconn

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Config is shared by every Conn of a server. Zero durations turn their
// check off, except WriteTimeout and CloseTimeout, which must be set.
type Config struct {
	// SendQueue is how many frames may wait for one client; one more
	// closes it as a slow consumer, unless Conflate.
	SendQueue int
	// Conflate keeps a client whose queue is full instead of closing it:
	// of the frames waiting with the same ConflateKey only the newest
	// stays (see Deliver). If false, a full queue closes the client.
	Conflate bool
	// WriteTimeout bounds one batch of writes to a client (at most
	// maxBatchBytes of data frames, or one larger frame).
	WriteTimeout time.Duration
	// CloseTimeout is how long a close handshake may take once our close
	// frame is out.
	CloseTimeout time.Duration
	// PingInterval is the keep-alive period: a ping goes out this often,
	// and a client that has not answered the previous one is dropped.
	PingInterval time.Duration
	// MessageTimeout bounds how long a client message may stay open, its
	// fragments trickling in.
	MessageTimeout time.Duration
	// MaxMessageBytes caps a client message.
	MaxMessageBytes int
	// Observer counts deliveries; nil counts nothing.
	Observer Observer
}

// Observer is told of every pong frame once: written whole, dropped, or
// conflated. A batch whose write fails counts as dropped whole, although
// part of it may have reached the client; a batch cut short for a slow
// consumer counts the frames before the cut as delivered, those after it
// as dropped, and the frame it was in when that is finished or dropped.
type Observer interface {
	Delivered(f *Frame, at time.Time)
	Dropped(n int)
	// Conflated is told of n frames taken out of a conflating queue for
	// a newer frame of the same key: superseded, not lost, so they are
	// not counted as dropped.
	Conflated(n int)
}

// Result is what Deliver did with a frame.
type Result uint8

const (
	Sent         Result = iota // written into the socket
	Queued                     // waiting for the writer
	Dropped                    // the connection is closing
	SlowConsumer               // the queue was full: dropped, and the connection closes
)

type writerState uint8

const (
	writerNone   writerState = iota // no goroutine
	writerActive                    // running, or about to look at the output
	writerParked                    // waiting on wake
)

// writerIdle is how long a writer stays parked before it is retired: an
// active client keeps one goroutine, an idle one has none.
const writerIdle = 5 * time.Second

// maxBatchBytes bounds the data frames of one batch (one writev), so
// that WriteTimeout is how long a client may take to drain that much.
const maxBatchBytes = 256 << 10

// maxJoinBytes bounds what FinishHandshake copies into one buffer behind
// the 101: about what a fresh socket's send buffer takes at once.
const maxJoinBytes = 64 << 10

// Conn is one client connection. The library reads and produces its
// control frames; the Conn writes everything.
type Conn struct {
	cfg  *Config
	ws   *websocket.Conn
	sock net.Conn       // the socket itself
	raw  tryWriter      // non-blocking writes; nil when the socket has none
	lib  *libConn       // what the library reads from and writes to
	wg   sync.WaitGroup // the writer goroutine
	wake chan struct{}  // rouses a parked writer; capacity 1

	// Atomics read by Tick without the lock, in Unix ns; zero when unset.
	writeStart  atomic.Int64 // the writer began its current batch
	lastWrite   atomic.Int64 // the writer last finished a batch
	closeSentAt atomic.Int64 // our close frame was written whole
	readStart   atomic.Int64 // a client message began arriving
	lastPing    atomic.Int64
	lastPong    atomic.Int64
	connectedAt int64

	// allowControl is asked, on the reader goroutine, before a client's
	// ping is answered; set before the first Read.
	allowControl func() bool
	readErr      error // the reader's last error; reader goroutine only

	mu sync.Mutex // guards everything below
	// The output, in the order it goes out: the remainder of a frame
	// begun (or the held-back 101), control frames, data frames, then
	// the close frame. Only one goroutine writes at a time: the writer
	// while it is active, otherwise whoever holds mu.
	head         []byte // the held-back 101, not yet tried
	partial      []byte
	partialFrame *Frame // the data frame partial ends, for accounting
	ctrl         []byte // whole control frames
	ctrlSpare    []byte
	queue        []*Frame
	spare        []*Frame
	limit        int    // the queue length that overflows: SendQueue, up to twice that (conflateLocked)
	burst        int    // frames still to be let in past the limit (Burst)
	closeOut     []byte // our close frame, or the library's
	libIn        []byte // a library write cut inside a frame (never seen)
	iov          net.Buffers
	iovView      net.Buffers

	writer       writerState
	retire       bool // the parked writer is to exit
	closeQueued  bool // a close frame is on its way: nothing more is queued
	closeWritten bool // ... and it is out
	abandon      bool // the writer's batch is being cut short (abandonLocked)
	finishing    bool // the reader is done: close the socket once flushed
	dead         bool // the socket is closed
	cause        Cause
	hasCause     bool
}

// TryWriter is a connection that can write without waiting: TryWrite
// writes what fits now and returns how much that was. Kernel sockets are
// written this way without it; an in-memory connection may offer it. Its
// Write must survive a write deadline, which the Conn uses to cut a
// blocked write short (see abandonLocked).
type TryWriter interface {
	TryWrite(p []byte) (int, error)
}

type tryWriter interface {
	tryWrite(p []byte) (int, error)
}

type tryWriterFunc func([]byte) (int, error)

func (f tryWriterFunc) tryWrite(p []byte) (int, error) { return f(p) }

// nonBlocking returns how to write to conn without waiting, or nil.
func nonBlocking(conn net.Conn) tryWriter {
	if tw, ok := conn.(TryWriter); ok {
		return tryWriterFunc(tw.TryWrite)
	}
	if w := newRawWriter(conn); w != nil {
		return w
	}
	return nil
}

// Accept upgrades the request, holding the 101 back so that it goes out
// with the first frame in one write. opts is the library's; its ping and
// pong hooks are the Conn's.
func Accept(w http.ResponseWriter, r *http.Request, opts websocket.AcceptOptions, cfg *Config) (*Conn, error) {
	c := &Conn{cfg: cfg, limit: cfg.SendQueue, wake: make(chan struct{}, 1), connectedAt: time.Now().UnixNano()}
	hw := &hijackWriter{ResponseWriter: w, conn: c}
	opts.OnPingReceived = c.onPing
	opts.OnPongReceived = c.onPong
	ws, err := websocket.Accept(hw, r, &opts)
	if err != nil {
		if c.sock != nil {
			c.sock.Close()
		}
		return nil, err
	}
	ws.SetReadLimit(int64(cfg.MaxMessageBytes))
	c.ws = ws
	return c, nil
}

// SetReadLimit caps the client's next messages at n bytes (one over it
// closes with 1009), as MaxMessageBytes does at first. Only the reader
// calls it, between reads.
func (c *Conn) SetReadLimit(n int) { c.ws.SetReadLimit(int64(n)) }

// AllowControl sets the check made before a client's ping is answered
// (and before an unsolicited pong is read): false leaves it unanswered.
// It runs on the reader goroutine. Call before the first Read.
func (c *Conn) AllowControl(allow func() bool) { c.allowControl = allow }

func (c *Conn) onPing(context.Context, []byte) bool {
	return c.allowControl == nil || c.allowControl()
}

func (c *Conn) onPong(context.Context, []byte) {
	if c.lastPong.Load() >= c.lastPing.Load() && c.allowControl != nil {
		c.allowControl() // not an answer to our ping: it counts like a message
	}
	c.lastPong.Store(time.Now().UnixNano())
}

// RemoteAddr is the socket's peer.
func (c *Conn) RemoteAddr() net.Addr { return c.sock.RemoteAddr() }

// Read returns the next client message. Only the session's reader calls
// it; after an error the Conn is finished with Finish.
func (c *Conn) Read() (websocket.MessageType, []byte, error) {
	// A Background context: with a cancellable one the library arms an
	// AfterFunc per read. The reader is ended by closing the socket.
	typ, r, err := c.ws.Reader(context.Background())
	if err != nil {
		c.readErr = err
		return 0, nil, err
	}
	c.readStart.Store(time.Now().UnixNano())
	data, err := io.ReadAll(r)
	c.readStart.Store(0)
	if err != nil {
		c.readErr = err
		return 0, nil, err
	}
	return typ, data, nil
}

// Cause is why the connection ended: the first cause recorded, else what
// the reader's error says. Call after Read has failed.
func (c *Conn) Cause() Cause {
	c.mu.Lock()
	cause, ok := c.cause, c.hasCause
	c.mu.Unlock()
	switch {
	case ok:
		return cause
	case errors.Is(c.readErr, websocket.ErrMessageTooBig):
		return CauseTooBig
	case websocket.CloseStatus(c.readErr) != -1:
		return CausePeerClosed
	}
	return CauseConnError
}

// Closing reports whether the connection is on its way out: a close frame
// queued or sent, or the socket dropped.
func (c *Conn) Closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeQueued || c.dead || c.finishing
}

// Deliver hands f to the connection without waiting. With nothing queued
// and no writer busy, f goes straight into the socket; otherwise it joins
// the queue. A full queue makes the client a slow consumer: the queue is
// dropped and the client closed with 1008, by the writer; with
// Config.Conflate, room is made instead (see conflateLocked) unless the
// frames without a key alone fill the queue. Deliver never blocks and,
// once the connection is warm, never allocates while the queue has room.
func (c *Conn) Deliver(f *Frame) Result {
	c.mu.Lock()
	if c.closeQueued || c.dead || c.finishing {
		c.mu.Unlock()
		c.dropped(f)
		return Dropped
	}
	owed := c.burst > 0 // one of a Burst: let in whatever the queue holds
	if owed {
		c.burst--
	}
	if c.head == nil && c.raw != nil && c.idleLocked() {
		return c.writeOrHoldLocked(f.Wire, f)
	}
	if len(c.queue) >= c.limit && !owed {
		return c.overflowLocked(f)
	}
	c.queue = append(c.queue, f)
	if c.head == nil {
		c.kickLocked()
	} // else the frame waits for the 101: FinishHandshake sends them together
	c.mu.Unlock()
	return Queued
}

// Burst lets the next n frames delivered in beyond the queue's limit, and
// leaves room for SendQueue more behind them until the writer next empties
// the queue: what a subscribe owes a client at once (a snapshot and a
// status for each of many exchanges) is owed, not a sign that it reads
// too slowly. The frames themselves are shared, so the room costs a
// pointer each. The writer may drain part of the burst meanwhile; the
// frames still to come are let in all the same.
func (c *Conn) Burst(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.burst += n
	c.limit = max(c.limit, len(c.queue)+n+c.cfg.SendQueue)
}

// overflowLocked is Deliver with the queue at its limit, and unlocks: a
// conflating Conn makes room for f; otherwise, or if no room can be
// made, the client is a slow consumer.
func (c *Conn) overflowLocked(f *Frame) Result {
	superseded, ok := 0, false
	if c.cfg.Conflate {
		superseded, ok = c.conflateLocked(f)
	}
	if ok {
		c.queue = append(c.queue, f)
		c.kickLocked()
		c.mu.Unlock()
		c.conflated(superseded)
		return Queued
	}
	n := c.queueCloseLocked(CauseSlowConsumer)
	c.abandonLocked() // the close frame need not wait for the batch
	c.mu.Unlock()
	c.conflated(superseded)
	c.count(n)
	c.dropped(f)
	return SlowConsumer
}

// conflateLocked makes room in the queue for f: it drops every keyed
// frame that a newer one of the same key, f included, supersedes. One
// walk from the back keeps the newest frame of each key, and the queue
// closes up in order, so what is left is what was queued, minus the
// superseded frames: per key, the newest frame still goes out after the
// older ones already written, and frames without a key keep their place
// among all the others. The frame being written and the writer's batch
// are no longer in the queue, so they are never touched.
//
// It returns how many frames it dropped, and whether f may join: whether
// the frames without a key, which nothing supersedes, f among them, fit
// SendQueue, and all of them fit the new limit. The queue then holds
// those (u) and one frame per key (k), and the limit becomes SendQueue
// plus k, k counting at most SendQueue: the queue never holds more than
// SendQueue frames plus one per key, nor more than twice SendQueue, also
// for a client of "*" while a publisher makes up exchange names. While k
// is below SendQueue, the next SendQueue - u deliveries at least just
// append, so a walk of u + k frames is shared by that many.
func (c *Conn) conflateLocked(f *Frame) (superseded int, ok bool) {
	seen := seenPool.Get().(map[ConflateKey]struct{})
	unkeyed := 0
	if f.Conflate.Kind == 0 {
		unkeyed++
	} else {
		seen[f.Conflate] = struct{}{}
	}
	q := c.queue
	for i := len(q) - 1; i >= 0; i-- {
		k := q[i].Conflate
		if k.Kind == 0 {
			unkeyed++
			continue
		}
		if _, newer := seen[k]; newer {
			q[i] = nil
			superseded++
			continue
		}
		seen[k] = struct{}{}
	}
	keys := len(seen)
	clear(seen)
	seenPool.Put(seen)
	if superseded > 0 {
		c.queue = slices.DeleteFunc(q, func(f *Frame) bool { return f == nil })
	}
	c.limit = c.cfg.SendQueue + min(keys, c.cfg.SendQueue)
	return superseded, unkeyed <= c.cfg.SendQueue && len(c.queue) < c.limit
}

// seenPool holds conflateLocked's sets of keys, so that a walk allocates
// nothing once warm and an idle Conn holds no set.
var seenPool = sync.Pool{New: func() any { return make(map[ConflateKey]struct{}) }}

// idleLocked reports whether nothing is waiting to go out and no writer
// is writing: the caller may write to the socket itself.
func (c *Conn) idleLocked() bool {
	return c.writer != writerActive && c.partial == nil && len(c.ctrl) == 0 &&
		len(c.queue) == 0 && c.closeOut == nil
}

// writeOrHoldLocked writes wire (f's frame, or the 101 and f's frame)
// into the socket without waiting, keeps what did not fit as the partial
// frame for the writer, and unlocks. The caller found the Conn idle.
func (c *Conn) writeOrHoldLocked(wire []byte, f *Frame) Result {
	n := c.tryWriteLocked(wire)
	if n == len(wire) {
		c.mu.Unlock()
		if f != nil && c.cfg.Observer != nil && !f.Received.IsZero() {
			c.cfg.Observer.Delivered(f, time.Now())
		}
		return Sent
	}
	c.partial, c.partialFrame = wire[n:], f
	c.kickLocked()
	c.mu.Unlock()
	return Queued
}

// Close sends cause's close frame after what is queued (Flush) or in
// place of it, then waits for the peer's close, at most CloseTimeout. A
// cause without a code drops the socket at once. The first cause wins.
func (c *Conn) Close(cause Cause) {
	if cause.Code == 0 {
		c.CloseNow(cause)
		return
	}
	c.mu.Lock()
	if c.hasCause || c.closeQueued || c.dead {
		c.mu.Unlock()
		return
	}
	n := c.queueCloseLocked(cause)
	c.mu.Unlock()
	c.count(n)
}

// queueCloseLocked records cause if it is the first, drops the queue
// unless cause flushes it, and queues cause's close frame. It returns the
// pong frames dropped, for the caller to count once unlocked.
func (c *Conn) queueCloseLocked(cause Cause) int {
	if !c.hasCause {
		c.cause, c.hasCause = cause, true
	}
	n := 0
	if !cause.Flush {
		n = c.dropQueueLocked()
	}
	c.queueCloseFrameLocked(closeFrame(cause.Code, cause.Reason))
	return n
}

// queueCloseFrameLocked puts frame last in the output; nothing may
// follow it.
func (c *Conn) queueCloseFrameLocked(frame []byte) {
	c.closeQueued = true
	c.closeOut = frame
	c.kickLocked()
}

// dropQueueLocked empties the data queue and returns how many pong
// frames it held.
func (c *Conn) dropQueueLocked() int {
	n := 0
	for _, f := range c.queue {
		if !f.Received.IsZero() {
			n++
		}
	}
	clear(c.queue)
	c.queue = c.queue[:0]
	return n
}

// CloseNow drops the socket without a close handshake, recording cause
// if it is the first. The reader then sees its read fail.
func (c *Conn) CloseNow(cause Cause) {
	c.mu.Lock()
	if !c.hasCause {
		c.cause, c.hasCause = cause, true
	}
	n := c.dropQueueLocked()
	first := c.markDeadLocked()
	c.mu.Unlock()
	c.count(n)
	if first {
		c.closeSocket()
	}
}

// markDeadLocked marks the socket closed, drops (and counts) what was
// still to go out, and lets a parked writer exit. It reports whether this
// was the first time: the caller then closes the socket with closeSocket,
// after unlocking, since a close may wait (TLS sends an alert).
func (c *Conn) markDeadLocked() bool {
	if c.dead {
		return false
	}
	c.dead = true
	n := c.dropQueueLocked()
	if f := c.partialFrame; f != nil && !f.Received.IsZero() {
		n++
	}
	c.count(n)
	c.partial, c.partialFrame, c.head, c.closeOut = nil, nil, nil, nil
	c.ctrl = c.ctrl[:0]
	c.wakeLocked()
	return true
}

// closeSocket closes the socket; call it without the lock. Under TLS
// only the connection beneath is closed: the close_notify alert that
// tls.Conn.Close sends would wait on a full socket, and after a WebSocket
// close it tells the peer nothing.
func (c *Conn) closeSocket() {
	if tc, ok := c.sock.(*tls.Conn); ok {
		_ = tc.NetConn().Close()
		return
	}
	_ = c.sock.Close()
}

// FinishHandshake sends the held-back 101, joined in one write by the
// frames delivered since Accept (a connect-time subscription's reply,
// snapshots and statuses), as many as fit in maxJoinBytes: a client gets
// what it is owed on connecting in one segment, without a wake-up of the
// writer. A live pong among them ends the join (the writer accounts for
// it), and so does anything already waiting for the writer.
func (c *Conn) FinishHandshake() {
	c.mu.Lock()
	if c.head == nil || c.dead {
		c.mu.Unlock()
		return
	}
	if c.writer == writerActive || c.partial != nil || len(c.ctrl) > 0 || c.closeOut != nil || c.raw == nil {
		c.kickLocked() // the writer sends it ahead of the rest
		c.mu.Unlock()
		return
	}
	size, k := len(c.head), 0
	for k < len(c.queue) && c.queue[k].Received.IsZero() && size+len(c.queue[k].Wire) <= maxJoinBytes {
		size += len(c.queue[k].Wire)
		k++
	}
	head, wire := c.head, c.head
	c.head = nil
	if k > 0 {
		wire = make([]byte, 0, size)
		wire = append(wire, head...)
		for _, f := range c.queue[:k] {
			wire = append(wire, f.Wire...)
		}
		rest := copy(c.queue, c.queue[k:])
		clear(c.queue[rest:])
		c.queue = c.queue[:rest]
	}
	if len(c.queue) > 0 {
		c.kickLocked() // it waits for the lock, so goes on after wire
	} else {
		c.limit = c.cfg.SendQueue // a Burst's room is spent
	}
	c.writeOrHoldLocked(wire, nil)
}

// Finish ends the connection once the reader is done: what must still go
// out (a close frame) is written, at most WriteTimeout, then the socket
// is closed. It waits for the writer goroutine. Call once, from the
// reader, after Read failed.
func (c *Conn) Finish() {
	c.mu.Lock()
	n := c.dropQueueLocked()
	first := c.finishLocked()
	c.mu.Unlock()
	c.count(n)
	if first {
		c.closeSocket()
	}
	_ = c.ws.CloseNow() // the library's own state; its socket close is ours
	c.wg.Wait()
}

// finishLocked marks the Conn finishing: the socket is to close once
// nothing that matters is left to write. With a close frame still on its
// way the writer closes it after that frame; otherwise it is marked dead
// now, and finishLocked reports, like markDeadLocked, whether the caller
// must close the socket.
func (c *Conn) finishLocked() bool {
	c.finishing = true
	if c.writer != writerNone && c.closeQueued && !c.closeWritten {
		c.wakeLocked()
		return false
	}
	return c.markDeadLocked()
}

// tryWriteLocked writes p into the socket without waiting and returns
// how much went in: 0 without a non-blocking write, or on an error,
// which the writer meets and acts on. The caller found the Conn idle.
func (c *Conn) tryWriteLocked(p []byte) int {
	if c.raw == nil {
		return 0
	}
	n, err := c.raw.tryWrite(p)
	if err != nil {
		return 0
	}
	return n
}

// writeControlLocked queues a whole control frame written by the library or by
// Tick. Control frames go before queued data, never inside a frame, and
// never after a close frame.
func (c *Conn) writeControlLocked(frame []byte, isClose bool) {
	switch {
	case c.closeQueued || c.dead:
		return // nothing follows a close frame
	case isClose:
		// The library closes on a protocol error or answers the peer's
		// close: the data queued no longer matters.
		c.count(c.dropQueueLocked())
		c.queueCloseFrameLocked(append([]byte(nil), frame...))
	case c.idleLocked() && c.head == nil && c.raw != nil:
		if n := c.tryWriteLocked(frame); n < len(frame) {
			c.partial = append([]byte(nil), frame[n:]...)
			c.kickLocked()
		}
	default:
		c.ctrl = append(c.ctrl, frame...)
		c.kickLocked()
	}
}

func (c *Conn) dropped(f *Frame) {
	if !f.Received.IsZero() {
		c.count(1)
	}
}

func (c *Conn) conflated(n int) {
	if n > 0 && c.cfg.Observer != nil {
		c.cfg.Observer.Conflated(n)
	}
}

func (c *Conn) count(dropped int) {
	if dropped > 0 && c.cfg.Observer != nil {
		c.cfg.Observer.Dropped(dropped)
	}
}
