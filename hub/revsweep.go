package hub

import (
	"log/slog"
	"sync"
	"time"

	"github.com/pongcast/pongcast/auth"
)

// The sweep that closes the connections an announcement covers runs on a
// goroutine of its own, not on the feed's: one pass costs a check per
// session, so a burst of announcements (an operator revoking many
// tokens at once) applied one pass each would stall the pongs behind it
// for as long, and the last revocation of the burst would land late. A
// burst is taken as one batch, applied in one pass.

// maxSweepBatch bounds the entries waiting for a pass. Past it the pass
// checks every session against the whole list held instead: only an
// entry neither batched nor held (past --max-revocations too) is missed.
const maxSweepBatch = 4096

type revocationSweeper struct {
	srv      *Server
	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	// closedLog bounds the line of a pass that closed connections, apart
	// from the announcements' own (revocationList.appliedLog), so that
	// neither kind crowds the other out of the log.
	closedLog *logLimiter

	mu     sync.Mutex
	batch  []auth.Revocation
	byList bool // the batch overflowed: check against the list
	// For tests (a pass that closes nothing leaves no other trace):
	// passes made, and entries queued and swept so far.
	passes, queued, swept int
}

func (s *Server) startRevocationSweeper() {
	w := &revocationSweeper{srv: s, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		closedLog: newLogLimiter(100*time.Millisecond, 20)}
	s.sweeper = w
	go w.run()
}

// queue has r's connections closed by the next pass. It never waits.
func (w *revocationSweeper) queue(r auth.Revocation) {
	w.mu.Lock()
	w.queued++
	if len(w.batch) < maxSweepBatch {
		w.batch = append(w.batch, r)
	} else {
		w.byList = true
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default: // a pass is due already
	}
}

// close stops the sweeper; Shutdown may call it more than once.
func (w *revocationSweeper) close() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}

func (w *revocationSweeper) run() {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			return
		case <-w.wake:
		}
		w.mu.Lock()
		batch, byList, taken := w.batch, w.byList, w.queued
		w.batch, w.byList = nil, false
		w.mu.Unlock()
		idx := newRevocationIndex(batch)
		l := w.srv.revocations
		n := w.srv.closeRevoked(func(c *session) bool {
			c.token.mu.Lock()
			defer c.token.mu.Unlock()
			return c.token.authed && (idx.covers(c.claims) || byList && l.revoked(c.claims, time.Now()))
		})
		if n > 0 { // a pass that closed nothing is no news
			w.closedLog.log(w.srv.log, slog.LevelInfo, "revoked tokens' connections closed",
				"entries", len(batch), "closed", n)
		}
		// After the line: a test that sees the pass done sees its line.
		w.mu.Lock()
		w.passes, w.swept = w.passes+1, taken
		w.mu.Unlock()
	}
}

// revocationIndex is a batch of entries by what they match, so that a
// session is checked against all of them at once.
type revocationIndex struct {
	jtis   map[string]struct{}
	before map[string]time.Time // by sub: the latest before
}

func newRevocationIndex(batch []auth.Revocation) revocationIndex {
	idx := revocationIndex{jtis: make(map[string]struct{}), before: make(map[string]time.Time)}
	for _, r := range batch {
		if r.JTI != "" {
			idx.jtis[r.JTI] = struct{}{}
		} else if b, ok := idx.before[r.Subject]; !ok || r.Before.After(b) {
			idx.before[r.Subject] = r.Before
		}
	}
	return idx
}

func (idx revocationIndex) covers(c auth.Claims) bool {
	if _, ok := idx.jtis[c.ID]; ok && c.ID != "" {
		return true
	}
	b, ok := idx.before[c.Subject]
	return ok && auth.Revocation{Subject: c.Subject, Before: b}.Covers(c)
}
