package hub

import (
	"sync"
	"time"
)

// healthTimer is the one goroutine that finds exchanges gone stale: it
// sleeps until the earliest deadline the health tracker holds, or a
// second at most, and sends the transitions then due. A pong only ever
// moves a deadline later, so nothing needs to wake it early; the second
// bounds the delay for a deadline that appears some other way (a snapshot
// merged from Redis), so a transition goes out within a second of its
// cause.
type healthTimer struct {
	srv      *Server
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func (s *Server) startHealthTimer() {
	t := &healthTimer{srv: s, stop: make(chan struct{}), done: make(chan struct{})}
	s.healthTimer = t
	go t.run()
}

// healthMaxWait is the longest the timer sleeps.
const healthMaxWait = time.Second

func (t *healthTimer) run() {
	defer close(t.done)
	timer := time.NewTimer(healthMaxWait)
	defer timer.Stop()
	for {
		select {
		case <-t.stop:
			return
		case now := <-timer.C:
			t.srv.expireHealth(now)
			wait := healthMaxWait
			if next, ok := t.srv.hub.health.NextDeadline(); ok {
				wait = min(wait, max(time.Until(next), time.Millisecond))
			}
			timer.Reset(wait)
		}
	}
}

// expireHealth sends the statuses due by now, and forgets the exchanges
// past the horizon, in the snapshot store too.
func (s *Server) expireHealth(now time.Time) {
	forgotten := s.hub.expire(now)
	if len(forgotten) > 0 && s.snaps != nil {
		s.snaps.Forget(forgotten, now.Add(-s.hub.health.Horizon()))
	}
}

// close stops the timer and waits for it; safe to call twice.
func (t *healthTimer) close() {
	t.stopOnce.Do(func() { close(t.stop) })
	<-t.done
}
