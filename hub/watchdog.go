package hub

import (
	"sync"
	"time"
)

// watchdog drops clients whose writer has been stuck on one batch for
// longer than WriteTimeout (their socket has stopped draining), retires
// writers that have been idle for writerIdle, and pings every client each
// PingInterval, dropping those that did not answer the previous ping. One goroutine scanning every
// client a few times per timeout costs far less than a timer per write.
type watchdog struct {
	srv      *Server
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func (s *Server) startWatchdog() {
	w := &watchdog{srv: s, stop: make(chan struct{}), done: make(chan struct{})}
	s.watchdog = w
	go w.run()
}

func (w *watchdog) run() {
	defer close(w.done)
	period := w.srv.opts.WriteTimeout / 4
	if ping := w.srv.opts.PingInterval; ping > 0 {
		period = min(period, ping/4)
	}
	period = max(period, 10*time.Millisecond)
	tick := time.NewTicker(period)
	defer tick.Stop()
	var stuck []*Client
	for {
		select {
		case <-w.stop:
			return
		case now := <-tick.C:
			stuck = w.srv.hub.stuckWriters(now.Add(-w.srv.opts.WriteTimeout).UnixNano(), stuck[:0])
			for _, c := range stuck {
				c.dropStuck()
			}
			clear(stuck)
			w.srv.hub.housekeep(now, w.srv.opts.PingInterval)
		}
	}
}

// close stops the watchdog and waits for it; safe to call twice.
func (w *watchdog) close() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}

// stuckWriters appends the clients whose current batch began before
// cutoff (Unix ns).
func (h *Hub) stuckWriters(cutoff int64, out []*Client) []*Client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.clients {
		if t := c.writeStart.Load(); t != 0 && t < cutoff {
			out = append(out, c)
		}
	}
	return out
}

// housekeep retires the writers parked for writerIdle and, when ping is
// not zero, runs every client's keep-alive.
// Pings are written outside the hub's lock, from a snapshot.
func (h *Hub) housekeep(now time.Time, ping time.Duration) {
	cutoff := now.Add(-writerIdle).UnixNano()
	ns := now.UnixNano()
	snap := snapshotPool.Get().(*[]*Client)
	clients := (*snap)[:0]
	h.mu.RLock()
	for c := range h.clients {
		clients = append(clients, c)
	}
	h.mu.RUnlock()
	for _, c := range clients {
		c.retireIfIdle(cutoff)
		if ping > 0 {
			c.keepAlive(ns, ping)
		}
	}
	clear(clients)
	*snap = clients[:0]
	snapshotPool.Put(snap)
}

// dropStuck closes a client whose socket stopped draining. No close
// handshake: the close frame could not get through either.
func (c *Client) dropStuck() {
	c.mu.Lock()
	if c.closeCode == 0 {
		c.closeCode, c.closeReason, c.discard = closePolicyViolation, reasonWriteTimeout, true
	}
	c.mu.Unlock()
	c.srv.log.Info("client write timed out", "client", c, "timeout", c.srv.opts.WriteTimeout)
	c.conn.CloseNow()
}
