package wsconn

import (
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
// enforced by Tick rather than a deadline per write.
func (c *Conn) writeBatchLocked() error {
	iov := c.iov[:0]
	if c.head != nil {
		iov = append(iov, c.head) // the 101 precedes everything
		c.head = nil
	}
	partialFrame := c.partialFrame
	if c.partial != nil {
		iov = append(iov, c.partial)
	}
	ctrl := c.ctrl
	if len(ctrl) > 0 {
		iov = append(iov, ctrl)
		c.ctrl, c.ctrlSpare = c.ctrlSpare[:0], nil
	}
	batch := c.queue
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
	c.iovView = nil
	clear(iov)
	now := time.Now()
	c.writeStart.Store(0)
	c.lastWrite.Store(now.UnixNano())
	if obs := c.cfg.Observer; obs != nil {
		if err == nil {
			if partialFrame != nil && !partialFrame.Received.IsZero() {
				obs.Delivered(partialFrame, now)
			}
			for _, f := range batch {
				if !f.Received.IsZero() {
					obs.Delivered(f, now)
				}
			}
		} else {
			n := 0
			if partialFrame != nil && !partialFrame.Received.IsZero() {
				n++
			}
			for _, f := range batch {
				if !f.Received.IsZero() {
					n++
				}
			}
			c.count(n)
		}
	}

	c.mu.Lock()
	clear(batch) // let the frames be collected
	if c.spare == nil {
		c.spare = batch[:0]
	}
	if c.ctrlSpare == nil && ctrl != nil {
		c.ctrlSpare = ctrl[:0]
	}
	if err == nil && closing {
		c.closeWritten = true
		c.closeSentAt.Store(now.UnixNano())
	}
	return err
}
