package wsconn

import "time"

// Tick applies the connection's time limits at now. The owner calls it
// for every connection, from one goroutine, several times per the
// shortest limit: one scan costs far less than a timer per write.
func (c *Conn) Tick(now time.Time) {
	ns := now.UnixNano()
	if t := c.writeStart.Load(); t != 0 && ns-t > int64(c.cfg.WriteTimeout) {
		c.CloseNow(CauseWriteTimeout) // the socket stopped draining
		return
	}
	if t := c.closeSentAt.Load(); t != 0 && ns-t > int64(c.cfg.CloseTimeout) {
		c.CloseNow(CauseConnError) // the first cause (ours) stays
		return
	}
	if limit := c.cfg.MessageTimeout; limit > 0 {
		if t := c.readStart.Load(); t != 0 && ns-t > int64(limit) {
			c.Close(CauseMessageTimeout)
		}
	}
	c.retireIfIdle(ns - int64(writerIdle))
	if c.cfg.PingInterval > 0 {
		c.keepAlive(ns)
	}
}

// retireIfIdle ends a writer that has been parked since before cutoff,
// so an idle client holds no goroutine.
func (c *Conn) retireIfIdle(cutoff int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writer != writerParked || c.lastWrite.Load() >= cutoff {
		return
	}
	c.writer = writerActive
	c.retire = true
	c.wakeLocked()
}

// keepAlive drops the client if it has not answered the previous ping,
// and otherwise sends the next one when it is due.
func (c *Conn) keepAlive(now int64) {
	sent := c.lastPing.Load()
	since := sent
	if since == 0 {
		since = c.connectedAt
	}
	if now-since < int64(c.cfg.PingInterval) {
		return
	}
	if sent != 0 && c.lastPong.Load() < sent {
		c.CloseNow(CauseKeepAlive)
		return
	}
	c.lastPing.Store(now)
	c.mu.Lock()
	c.writeControlLocked(pingFrame, false)
	c.mu.Unlock()
}
