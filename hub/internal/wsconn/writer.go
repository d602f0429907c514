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
			first := c.markDeadLocked()
			c.writer = writerNone
			c.mu.Unlock()
			if first {
				c.closeSocket()
			}
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
			first := c.markDeadLocked()
			c.writer = writerNone
			c.mu.Unlock()
			if first {
				c.closeSocket()
			}
			return
		}
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
	batch, batchAt := c.queue, len(iov)
	c.queue, c.spare = c.spare[:0], nil
	for _, f := range batch {
		iov = append(iov, f.Wire)
	}
	closing := c.closeOut != nil
	if closing {
		iov = append(iov, c.closeOut)
	}
	c.partial, c.partialFrame, c.closeOut = nil, nil, nil
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
	done := len(iov)
	switch {
	case err == nil && c.abandon:
		// The batch ended before the cut took effect.
		c.abandon = false
		_ = c.sock.SetWriteDeadline(time.Time{})
	case err != nil && c.abandon && !c.dead && errors.Is(err, os.ErrDeadlineExceeded):
		err = nil
		done = len(iov) - len(c.iovView)
		c.resumeAfterAbandonLocked(done, batch, batchAt, partialFrame, partialAt, closing && done == len(iov)-1)
	case err != nil:
		done = 0
	}
	c.iovView = nil
	c.account(now, done, partialFrame, partialAt, batch, batchAt)
	clear(iov)
	clear(batch) // let the frames be collected
	if c.spare == nil {
		c.spare = batch[:0]
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
// buffers as delivered, the others as dropped (a frame kept as the new
// partial is neither yet).
func (c *Conn) account(now time.Time, done int, partialFrame *Frame, partialAt int, batch []*Frame, batchAt int) {
	obs := c.cfg.Observer
	if obs == nil {
		return
	}
	dropped := 0
	note := func(f *Frame, at int) {
		switch {
		case f == nil || f.Received.IsZero() || f == c.partialFrame:
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
// written is finished: the frames after it are being dropped anyway.
// Only kernel sockets are cut this way; a TLS connection does not survive
// a write deadline, so there the close frame waits for the batch.
func (c *Conn) abandonLocked() {
	if c.raw == nil || c.writer != writerActive || c.writeStart.Load() == 0 {
		return
	}
	c.abandon = true
	_ = c.sock.SetWriteDeadline(time.Now())
}

// resumeAfterAbandonLocked keeps the rest of the buffer the cut batch
// stopped in, to go out first: a frame begun, the 101, control frames or
// the close frame, which must all be finished. A frame not yet begun is
// dropped with those after it. It clears the deadline.
func (c *Conn) resumeAfterAbandonLocked(done int, batch []*Frame, batchAt int, partialFrame *Frame, partialAt int, inClose bool) {
	c.abandon = false
	_ = c.sock.SetWriteDeadline(time.Time{})
	if len(c.iovView) == 0 {
		return
	}
	// WriteTo has replaced the buffer with what is left of it, so its
	// original length comes from the frame.
	rest := c.iovView[0]
	if inClose {
		c.closeOut = append([]byte(nil), rest...)
		return
	}
	var f *Frame
	if done == partialAt {
		f = partialFrame
	}
	if i := done - batchAt; i >= 0 && i < len(batch) {
		if f = batch[i]; len(rest) == len(f.Wire) {
			return
		}
	}
	c.partial = append(c.partialBuf[:0], rest...)
	c.partialBuf, c.partialFrame = c.partial, f
}
