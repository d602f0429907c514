package wsconn

import (
	"errors"
	"os"
	"time"
)

// kickLocked makes sure a writer will look at the output: it wakes a
// parked one or starts one.
func (c *Conn) kickLocked() {
	switch c.writer {
	case writerParked:
		c.writer = writerActive
		c.retire = false
		c.wakeLocked()
	case writerNone:
		if c.dead {
			return
		}
		c.writer = writerActive
		c.wg.Add(1)
		go c.writeLoop()
	}
}

func (c *Conn) wakeLocked() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// hasOutputLocked reports whether anything waits to be written.
func (c *Conn) hasOutputLocked() bool {
	return c.partial != nil || len(c.ctrl) > 0 || len(c.queue) > 0 || c.closeOut != nil
}

// writeLoop writes the output in batches, in order (on a kernel socket
// one writev each; on TLS one record per buffer);
// parks while there is none; and exits when the socket is closed, when
// the reader has finished and nothing is left, or when it is retired. It
// is the only goroutine that waits on the socket.
func (c *Conn) writeLoop() {
	defer c.wg.Done()
	c.mu.Lock()
	for {
		switch {
		case c.dead:
			c.writer = writerNone
			c.mu.Unlock()
			return
		case !c.hasOutputLocked() && c.finishing:
			c.exitDeadLocked()
			return
		case !c.hasOutputLocked() && c.retire:
			c.retire = false
			c.writer = writerNone
			c.mu.Unlock()
			return
		case !c.hasOutputLocked():
			c.writer = writerParked
			c.mu.Unlock()
			<-c.wake
			c.mu.Lock()
			continue
		}
		c.writer = writerActive
		if c.writeBatchLocked() != nil {
			// The socket failed: the reader sees it and tears down.
			if !c.hasCause {
				c.cause, c.hasCause = CauseConnError, true
			}
			c.exitDeadLocked()
			return
		}
	}
}

// exitDeadLocked ends the writer with the socket closed: it marks the
// Conn dead, unlocks, and closes the socket if nobody has.
func (c *Conn) exitDeadLocked() {
	first := c.markDeadLocked()
	c.writer = writerNone
	c.mu.Unlock()
	if first {
		c.closeSocket()
	}
}

// writeBatchLocked takes all the output, writes it with the lock
// released, and returns with the lock held again. Its time limit is
// enforced by Tick rather than a deadline per write. A batch cut short by
// abandonLocked keeps the remainder of the frame it was in, to be
// finished first, and drops the frames after it.
func (c *Conn) writeBatchLocked() error {
	iov := c.iov[:0]
	if c.head != nil {
		iov = append(iov, c.head) // the 101 precedes everything
		c.head = nil
	}
	partialFrame, partialAt := c.partialFrame, -1
	if c.partial != nil {
		partialAt = len(iov)
		iov = append(iov, c.partial)
	}
	ctrl := c.ctrl
	if len(ctrl) > 0 {
		iov = append(iov, ctrl)
		c.ctrl, c.ctrlSpare = c.ctrlSpare[:0], nil
	}
	// At most maxBatchBytes of data frames (and at least one): the write
	// timeout then bounds how long a client may take to drain that much,
	// not however much has piled up.
	full, batchAt := c.queue, len(iov)
	size, k := 0, 0
	for k < len(full) && (k == 0 || size+len(full[k].Wire) <= maxBatchBytes) {
		size += len(full[k].Wire)
		iov = append(iov, full[k].Wire)
		k++
	}
	batch := full[:k]
	c.queue, c.spare = append(c.spare[:0], full[k:]...), nil
	if len(c.queue) == 0 {
		c.limit = c.cfg.SendQueue // the backlog conflateLocked allowed for is gone
	}
	closing := c.closeOut != nil && len(c.queue) == 0
	if closing {
		iov = append(iov, c.closeOut)
		c.closeOut = nil
	}
	c.partial, c.partialFrame = nil, nil
	c.iov = iov
	c.mu.Unlock()

	c.writeStart.Store(time.Now().UnixNano())
	// WriteTo consumes its receiver: hand it a view, keep the backing
	// array. Both live in c, so nothing is allocated per batch.
	c.iovView = iov
	_, err := c.iovView.WriteTo(c.sock)
	now := time.Now()
	c.writeStart.Store(0)
	c.lastWrite.Store(now.UnixNano())

	c.mu.Lock()
	// done is how many buffers went out whole: all of them, or, for a
	// batch cut short, those before the first one left.
	done, kept := len(iov), -1
	switch {
	case err == nil && c.abandon:
		// The batch ended before the cut took effect.
		c.abandon = false
		_ = c.sock.SetWriteDeadline(time.Time{})
	case err != nil && c.abandon && !c.dead && errors.Is(err, os.ErrDeadlineExceeded):
		err = nil
		done = len(iov) - len(c.iovView)
		kept = c.resumeAfterAbandonLocked(done, batch, batchAt, partialFrame, partialAt)
	case err != nil:
		done = 0
	}
	c.iovView = nil
	c.account(now, done, kept, partialFrame, partialAt, batch, batchAt)
	clear(iov)
	clear(full) // let the frames be collected
	if c.spare == nil {
		c.spare = full[:0]
	}
	if c.ctrlSpare == nil && ctrl != nil {
		c.ctrlSpare = ctrl[:0]
	}
	if err == nil && closing && done == len(iov) {
		c.closeWritten = true
		c.closeSentAt.Store(now.UnixNano())
	}
	return err
}

// account reports the pong frames of a batch: those among the first done
// buffers as delivered, the others as dropped, except the one at kept
// (the new partial: counted once it is written or dropped).
func (c *Conn) account(now time.Time, done, kept int, partialFrame *Frame, partialAt int, batch []*Frame, batchAt int) {
	obs := c.cfg.Observer
	if obs == nil {
		return
	}
	dropped := 0
	note := func(f *Frame, at int) {
		switch {
		case f == nil || f.Received.IsZero() || at == kept:
		case at < done:
			obs.Delivered(f, now)
		default:
			dropped++
		}
	}
	note(partialFrame, partialAt)
	for i, f := range batch {
		note(f, batchAt+i)
	}
	c.count(dropped)
}

// abandonLocked cuts short the batch the writer is blocked on, so that
// the close frame queued behind it goes out as soon as the frame being
// written is finished: the frames after it are being dropped anyway. It
// is done with a write deadline, so only on connections that survive one
// and write without waiting otherwise (kernel sockets, a TryWriter); on
// TLS, where a deadline breaks the connection, and where there is no
// non-blocking write, the close frame waits for the batch.
func (c *Conn) abandonLocked() {
	if c.raw == nil || c.writer != writerActive || c.writeStart.Load() == 0 {
		return
	}
	c.abandon = true
	_ = c.sock.SetWriteDeadline(time.Now())
}

// resumeAfterAbandonLocked keeps the rest of the buffer the cut batch
// stopped in, to go out first: a frame begun, the 101, or control frames
// (whole frames, all to be finished), and returns its index in the batch,
// or -1. A data frame not yet begun is dropped with those after it. A cut
// batch never holds a close frame: the cut comes with the close. It
// clears the deadline.
func (c *Conn) resumeAfterAbandonLocked(done int, batch []*Frame, batchAt int, partialFrame *Frame, partialAt int) int {
	c.abandon = false
	_ = c.sock.SetWriteDeadline(time.Time{})
	if len(c.iovView) == 0 {
		return -1
	}
	// WriteTo has replaced the buffer with what is left of it, so its
	// original length comes from the frame.
	rest := c.iovView[0]
	var f *Frame
	switch i := done - batchAt; {
	case done == partialAt:
		f = partialFrame
	case i >= 0 && i < len(batch):
		f = batch[i]
	}
	if f != nil && len(rest) == len(f.Wire) {
		return -1 // not begun
	}
	c.partial, c.partialFrame = append([]byte(nil), rest...), f
	return done
}
