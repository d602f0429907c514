package hub

import (
	"sync"
	"time"
)

// watchdog drops clients whose writer has been stuck on one batch for
// longer than WriteTimeout (their socket has stopped draining), and retires
// writers that have been idle for writerIdle. One goroutine scanning every
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
	period := max(w.srv.opts.WriteTimeout/4, 50*time.Millisecond)
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
			w.srv.hub.retireIdleWriters(now.Add(-writerIdle).UnixNano())
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

// retireIdleWriters ends the writers parked since before cutoff.
func (h *Hub) retireIdleWriters(cutoff int64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.clients {
		c.retireIfIdle(cutoff)
	}
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
