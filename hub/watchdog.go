package hub

import (
	"sync"
	"time"
)

// watchdog is one goroutine that applies every connection's time limits
// (see wsconn.Conn.Tick): a stuck write, an unanswered close, a message
// left open, an idle writer to retire, keep-alive pings. One scan of
// every client a few times per limit costs far less than timers per
// connection.
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

// watchdogPeriod is a quarter of the shortest limit, at least 10 ms.
func watchdogPeriod(o Options) time.Duration {
	period := min(o.WriteTimeout, closeHandshakeTimeout) / 4
	if o.PingInterval > 0 {
		period = min(period, o.PingInterval/4)
	}
	if o.MessageTimeout > 0 {
		period = min(period, o.MessageTimeout/4)
	}
	return max(period, 10*time.Millisecond)
}

func (w *watchdog) run() {
	defer close(w.done)
	tick := time.NewTicker(watchdogPeriod(w.srv.opts))
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-tick.C:
			w.scan(now)
		}
	}
}

// scan ticks every session's connection, from a snapshot taken under the
// hub's read lock and served after it.
func (w *watchdog) scan(now time.Time) {
	snap := sessionsPool.Get().(*[]*session)
	sessions := w.srv.hub.sessions((*snap)[:0])
	for _, s := range sessions {
		s.conn.Tick(now)
	}
	clear(sessions)
	*snap = sessions[:0]
	sessionsPool.Put(snap)
}

// close stops the watchdog and waits for it; safe to call twice.
func (w *watchdog) close() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}
